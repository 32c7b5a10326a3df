"""A test-only URLconf mounting the tools API the way flownova/urls.py does (`/api/tools/`)."""

from django.urls import include, path
from rest_framework.routers import DefaultRouter

from tools.api import ToolViewSet

router = DefaultRouter()
router.register("tools", ToolViewSet, basename="tool")

urlpatterns = [path("api/", include(router.urls))]
