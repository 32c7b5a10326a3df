"""WSGI entry point, for tools that want one; the product itself is served by daphne (see asgi.py)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flownova.settings")
application = get_wsgi_application()
