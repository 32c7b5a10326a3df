"""The ASGI application served by daphne: Django for HTTP (static files through WhiteNoise), Channels
for the WebSocket event streams."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flownova.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402 - needs Django set up first

from flownova.routing import websocket_urlpatterns  # noqa: E402
from flownova.ws_auth import WebSocketAuthMiddleware  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": WebSocketAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)

from flownova.celery import freeze_imported_objects  # noqa: E402

freeze_imported_objects()  # what starting up made, out of the collector's walks (as in the worker)
