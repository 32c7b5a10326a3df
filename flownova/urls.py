from django.contrib import admin
from django.urls import include, path

from flownova import health, metrics

admin.site.site_header = "FlowNova administration"
admin.site.site_title = "FlowNova"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("flownova.api_urls", namespace="api")),
    # Webhook triggers: the secret in the path is the credential (triggers/hooks.py).
    path("hooks/", include("triggers.urls")),
    path("", include("flownova.page_urls")),
]
