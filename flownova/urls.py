from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from flownova import health, metrics

admin.site.site_header = "FlowNova administration"
admin.site.site_title = "FlowNova"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/", include("flownova.api_urls", namespace="api")),
    # The workflow pages (editor, runs, inbox) are still to come; until then the admin is the way in.
    path("", RedirectView.as_view(url="/admin/", permanent=False), name="home"),
]
