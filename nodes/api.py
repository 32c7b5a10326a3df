"""`POST /api/nodes/transform/preview/`: try a transform node's JSONata expression on sample data, with the
limits a run has. An expression that does not parse or evaluate is what the user asks about, so it is an
answer (`ok: false` with the error and its position), not an HTTP error; a malformed body is a 400.

It lives here, with the node type, because it needs nothing but the evaluation and DRF: no model, no run.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import UserRateThrottle
from rest_framework.views import APIView

from flownova.api_base import StrictFieldsMixin, error_response
from nodes import limits as size_limits
from nodes.jsonata_eval import ExpressionError, evaluate_object
from nodes.types.transform import MAX_EXPRESSION_LENGTH, limits


class TransformPreviewThrottle(UserRateThrottle):
    """Previews per user (FLOWNOVA_TRANSFORM_PREVIEW_RATE, empty for no limit), counted in the default cache."""

    scope = "transform_preview"

    def get_rate(self) -> str | None:
        return settings.FLOWNOVA_TRANSFORM_PREVIEW_RATE or None


class TextField(serializers.CharField):
    """A string, and only a string: DRF's CharField would take 3 as "3"."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.")
        return str(super().to_internal_value(data))


class TransformPreviewSerializer(StrictFieldsMixin, serializers.Serializer[Any]):
    expression = TextField(max_length=MAX_EXPRESSION_LENGTH, trim_whitespace=False)
    input = serializers.DictField(help_text="The sample input: what the node would receive.")
    nodes = serializers.DictField(
        child=serializers.DictField(),
        required=False,
        default=dict,
        help_text="Earlier nodes' own fields, by node id (`nodes.<id>.<field>` in the expression).",
    )


PREVIEW_ANSWER = inline_serializer(
    "TransformPreview",
    {
        "ok": serializers.BooleanField(),
        "result": serializers.JSONField(required=False, help_text="The object the node would add (when ok)."),
        "error": serializers.CharField(required=False, help_text="Why it failed (when not ok)."),
        "position": serializers.IntegerField(
            required=False, allow_null=True, help_text="Where in the expression, when the error points there."
        ),
    },
)


class TransformPreviewView(APIView):
    throttle_classes = [TransformPreviewThrottle]

    @extend_schema(
        tags=["nodes"],
        request=TransformPreviewSerializer,
        responses={
            200: PREVIEW_ANSWER,
            429: error_response("Too many previews; `Retry-After` says how many seconds to wait."),
        },
        description="Evaluate a transform node's JSONata expression over `{input, nodes}` as a run would, with "
        "the same limits. An expression that fails is an answer: `ok` false, the error and its position.",
    )
    def post(self, request: Request) -> Response:
        body = TransformPreviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        scope = {"input": data["input"], "nodes": data["nodes"]}
        try:
            result = evaluate_object(data["expression"], scope, **limits())
            size_limits.check_size(
                {**data["input"], **result}, setting="FLOWNOVA_MAX_NODE_OUTPUT_BYTES", what="the node's output"
            )
        except ExpressionError as exc:
            return Response({"ok": False, "error": str(exc), "position": exc.position})
        except size_limits.SizeLimitError as exc:
            return Response({"ok": False, "error": str(exc), "position": None})
        return Response({"ok": True, "result": result})
