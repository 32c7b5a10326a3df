"""`map`: runs a saved workflow once per item of a list, as child runs, some at a time, and adds their outputs
in item order as `results`.

Data: `items` (a template yielding a list, or a list), `workflow`, `version` and `pinned_version` as a
`subworkflow`'s (`nodes/subworkflows.py`), `input` (an object of templates: each child run's input; they may
read `{{item}}` and `{{index}}` besides `{{input...}}` and `{{nodes...}}`; default `{"item": "{{item}}"}`),
`concurrency` (1-50, default 4: child runs at a time) and `on_error` (`fail`, the default, or `continue`).

The handler renders every item's input and hands them to the engine as one ChildRunRequest; the engine
(runs/services/children.py) records one ChildItem per item and starts the child runs, the node holding no
worker while it waits. With `on_error: fail` the first failed item fails the node and the children still running
are cancelled; with `continue` a failed item's entry is `{"error": ...}` and `failed` counts them. A list that is
not one, or longer than FLOWNOVA_MAP_MAX_ITEMS, fails the node; an empty list completes it at once.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from nodes import register, subworkflows, templating
from nodes.base import ChildRunRequest, NodeContext, NodeError, NodeResult, NodeType, data_schema, field_schema
from nodes.jsonkinds import json_kind_phrase
from nodes.spec import NodeSpec

TYPE = "map"
FAIL = "fail"
CONTINUE = "continue"
MAX_CONCURRENCY = 50
DEFAULT_CONCURRENCY = 4
# What an item's input templates may read besides the node's input and the earlier nodes.
ITEM_ROOTS = ("item", "index")
DEFAULT_INPUT = {"item": "{{item}}"}


def execute(ctx: NodeContext) -> NodeResult:
    data = ctx.data
    version = subworkflows.version_to_run(data)
    items = ctx.render(data["items"])
    if not isinstance(items, list):
        raise NodeError(f"items must be a list, not {json_kind_phrase(items)}")
    limit = int(settings.FLOWNOVA_MAP_MAX_ITEMS)
    if len(items) > limit:
        raise NodeError(f"items has {len(items)} entries, more than FLOWNOVA_MAP_MAX_ITEMS allows ({limit})")
    if not items:
        return NodeResult(fields={"results": [], "failed": 0})
    template = data.get("input", DEFAULT_INPUT)
    inputs = []
    for index, item in enumerate(items):
        rendered = ctx.render(template, {"item": item, "index": index})
        if not isinstance(rendered, dict):  # the schema makes `input` an object; a template can't change that
            raise NodeError("the map's input must be an object")
        inputs.append(rendered)
    return NodeResult(
        child=ChildRunRequest(
            graph=None,
            input={},
            workflow_id=int(data["workflow"]),
            workflow_version=version,
            items=inputs,
            concurrency=int(data.get("concurrency", DEFAULT_CONCURRENCY)),
            continue_on_error=data.get("on_error", FAIL) == CONTINUE,
        )
    )


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    problems: list[tuple[str | None, str]] = [
        ("items", message) for message in templating.check_syntax(data.get("items"))
    ]
    if "input" in data:
        roots = (*templating.ROOTS, *ITEM_ROOTS)
        problems += [("input", message) for message in templating.check_syntax(data["input"], roots=roots)]
    return problems


MAP = register(
    NodeType(
        spec=NodeSpec(
            type=TYPE,
            data_schema=data_schema(
                {
                    "items": field_schema(
                        {
                            "type": ["string", "array"],
                            "description": "A template yielding the list to map over, such as {{input.orders}}.",
                        },
                        title="Items",
                        widget="template",
                    ),
                    **subworkflows.properties(
                        input_description="Each child run's input: an object whose values may be templates, "
                        'reading {{item}} and {{index}} too. Default: {"item": "{{item}}"}.'
                    ),
                    "concurrency": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_CONCURRENCY,
                        "default": DEFAULT_CONCURRENCY,
                        "title": "Child runs at a time",
                    },
                    "on_error": {
                        "enum": [FAIL, CONTINUE],
                        "default": FAIL,
                        "title": "When an item fails",
                        "description": "fail: the node fails (the other children are cancelled); continue: "
                        'the item\'s result is {"error": ...}, counted in `failed`.',
                    },
                },
                required=["items", "workflow"],
            ),
            check=check,
        ),
        execute=execute,
        title="Map",
        description="Runs one of your saved workflows once per item of a list, some at a time, and adds their "
        "outputs in order as `results`.",
        icon="⇶",
        colour="#4c6ef5",
        group="Flow",
        order=46,
        summary="each of {{items}}: workflow #{{workflow}}",
        output_fields=("results", "failed"),
        side_effects=True,
        starts_child_runs=True,
        on_save=subworkflows.on_save,
    )
)
