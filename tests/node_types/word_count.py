"""`word_count`: counts the words of a templated text. The whole node type is this module: the registry finds it
(its package is named in FLOWNOVA_NODE_MODULES), and the editor, the validator and the worker learn everything
about it from what it registers."""

from __future__ import annotations

from nodes import register
from nodes.base import NodeContext, NodeError, NodeResult, NodeType, data_schema, field_schema, template_check
from nodes.spec import NodeSpec
from nodes.templating import TemplateError, to_text


def execute(ctx: NodeContext) -> NodeResult:
    try:
        text = to_text(ctx.render(ctx.data["text"]))
    except TemplateError as exc:
        raise NodeError(f"text: {exc}") from exc
    return NodeResult(fields={"words": len(text.split())})


WORD_COUNT = register(
    NodeType(
        spec=NodeSpec(
            type="word_count",
            data_schema=data_schema(
                {
                    "text": field_schema(
                        {"type": "string", "minLength": 1, "maxLength": 100000},
                        title="Text to count",
                        widget="textarea",
                    )
                },
                required=["text"],
            ),
            check=template_check("text"),
        ),
        execute=execute,
        title="Word count",
        description="Counts the words of a text, which may be a template.",
        icon="¶",
        colour="#2f9e44",
        group="Text",
        order=200,
        summary="{{text}}",
        output_fields=("words",),
    )
)
