"""The WebSocket routes (served by flownova/asgi.py): each app's consumers, wired here so no app imports
another's."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.urls import path

from approvals.consumers import ApprovalsConsumer
from runs import consumers as run_consumers

if TYPE_CHECKING:
    from channels.consumer import _ASGIApplicationProtocol
    from channels.routing import URLRouter, _ExtendedURLPattern


def websocket_path(route: str, consumer: _ASGIApplicationProtocol) -> _ExtendedURLPattern:
    """`path()` for a consumer, typed as the route to an ASGI application that channels' URLRouter takes."""
    # django-stubs type path() for views only; channels routes consumers with it.
    pattern = path(route, consumer)  # type: ignore[arg-type]
    return cast("_ExtendedURLPattern", pattern)


websocket_urlpatterns: list[_ExtendedURLPattern | URLRouter] = [
    websocket_path("ws/runs/<int:run_id>/", run_consumers.RunConsumer.as_asgi()),
    websocket_path("ws/workflows/<int:workflow_id>/", run_consumers.WorkflowConsumer.as_asgi()),
    websocket_path("ws/approvals/", ApprovalsConsumer.as_asgi()),
]
