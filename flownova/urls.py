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
    path("", include("flownova.page_urls")),
]
