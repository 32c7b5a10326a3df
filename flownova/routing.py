"""The WebSocket routes (served by flownova/asgi.py): each app's consumers, wired here so no app imports
another's."""

from django.urls import path

from approvals.consumers import ApprovalsConsumer
from runs import consumers as run_consumers

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", run_consumers.RunConsumer.as_asgi()),
    path("ws/workflows/<int:workflow_id>/", run_consumers.WorkflowConsumer.as_asgi()),
    path("ws/approvals/", ApprovalsConsumer.as_asgi()),
]
