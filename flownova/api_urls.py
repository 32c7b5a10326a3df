"""Everything under /api/ (docs/CONTRACT.md, REST API): the router, the token endpoint, the OpenAPI schema and docs.

Any other path under /api/ is a JSON 404, never Django's HTML page.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, include, path, re_path, resolve
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import extend_schema, inline_serializer
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework import serializers
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter

from approvals.api import ApprovalViewSet
from flownova.api_base import StrictFieldsMixin, TokenObtainThrottle, error_response
from flownova.api_parsers import SafeJSONParser
from flownova.login_lockout import LoginLockedOut
from nodes.api import TransformPreviewView
from projects.api import ProjectViewSet
from projects.audit_api import AuditListView
from runs.api import RunViewSet, UsageView, WorkflowRunStartView
from tools.api import ToolViewSet
from triggers.api import TriggerViewSet, WorkflowTriggersView
from workflows.api import WorkflowViewSet
from workflows.versions_api import (
    WorkflowVersionDetailView,
    WorkflowVersionDiffView,
    WorkflowVersionListView,
    WorkflowVersionRestoreView,
)

app_name = "api"


class CredentialsSerializer(StrictFieldsMixin, AuthTokenSerializer):
    """A username and password."""


@extend_schema(
    tags=["auth"],
    auth=[],
    request=CredentialsSerializer,
    responses={
        200: inline_serializer("Token", {"token": serializers.CharField()}),
        400: error_response("Missing fields, or the username and password don't match.", validation=True),
        429: error_response(
            "Too many attempts from this address, or too many failed logins for this account or from this "
            "address; `Retry-After` says how many seconds to wait."
        ),
    },
    description="Your API token (created on first use): send it as `Authorization: Token <key>`.",
)
class TokenView(ObtainAuthToken):
    # No authentication: a stale token header must not stop a client from getting a new one.
    authentication_classes = []
    parser_classes = [SafeJSONParser]
    renderer_classes = [JSONRenderer]
    throttle_classes = [TokenObtainThrottle]
    serializer_class = CredentialsSerializer

    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        try:
            return super().post(request, *args, **kwargs)
        except ValidationError:
            # The login lockout refused the credentials (it flags the request): say so, not "wrong password".
            if getattr(request, "axes_locked_out", False):
                raise LoginLockedOut() from None
            raise


@csrf_exempt  # a POST to no endpoint is a 404 like any other, not a CSRF failure page
def not_found(request: HttpRequest, rest: str = "") -> JsonResponse:
    detail = f"Not found: there is no API endpoint at {request.path}."
    if not request.path.endswith("/"):
        try:
            match = resolve(request.path + "/")
        except Resolver404:
            match = None
        if match is not None and match.func is not not_found:
            detail += f" Did you mean {request.path}/ (with the trailing slash)?"
    return JsonResponse({"detail": detail}, status=404)


router = DefaultRouter()
router.include_format_suffixes = False
router.register("workflows", WorkflowViewSet, basename="workflow")
router.register("runs", RunViewSet, basename="run")
router.register("approvals", ApprovalViewSet, basename="approval")
router.register("tools", ToolViewSet, basename="tool")
router.register("triggers", TriggerViewSet, basename="trigger")
router.register("projects", ProjectViewSet, basename="project")

urlpatterns = [
    path("auth/token/", TokenView.as_view(), name="token"),
    path("usage/", UsageView.as_view(), name="usage"),
    path("audit/", AuditListView.as_view(), name="audit"),
    path("nodes/transform/preview/", TransformPreviewView.as_view(), name="transform-preview"),
    # A workflow's runs start in the runs app, which sits above workflows; the pattern is the router's own.
    re_path(r"^workflows/(?P<pk>[^/.]+)/runs/$", WorkflowRunStartView.as_view(), name="workflow-start-run"),
    re_path(r"^workflows/(?P<pk>[^/.]+)/triggers/$", WorkflowTriggersView.as_view(), name="workflow-triggers"),
    re_path(r"^workflows/(?P<pk>[^/.]+)/versions/$", WorkflowVersionListView.as_view(), name="workflow-versions"),
    re_path(
        r"^workflows/(?P<pk>[^/.]+)/versions/diff/$", WorkflowVersionDiffView.as_view(), name="workflow-version-diff"
    ),
    re_path(
        r"^workflows/(?P<pk>[^/.]+)/versions/(?P<number>[^/.]+)/$",
        WorkflowVersionDetailView.as_view(),
        name="workflow-version-detail",
    ),
    re_path(
        r"^workflows/(?P<pk>[^/.]+)/versions/(?P<number>[^/.]+)/restore/$",
        WorkflowVersionRestoreView.as_view(),
        name="workflow-version-restore",
    ),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("docs/redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    path("", include(router.urls)),
    re_path(r"^(?P<rest>.*)$", not_found),
]
