from django.urls import path

from approvals.consumers import ApprovalsConsumer
from runs import consumers

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", consumers.RunConsumer.as_asgi()),
    path("ws/workflows/<int:workflow_id>/", consumers.WorkflowConsumer.as_asgi()),
    path("ws/approvals/", ApprovalsConsumer.as_asgi()),
]
