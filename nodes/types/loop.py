"""`loop`: runs a saved workflow as a child run again and again, each run's output the next one's input, until a
condition over the output holds or `max_iterations` runs have run; routes on `done` or `exhausted`.

Data: `workflow`, `version` and `pinned_version` as a `subworkflow`'s (`nodes/subworkflows.py`), `input` (an
object of templates: the first child run's input), `until` (`{"left", "operator", "right"}`, an if_else's
condition, whose templates read `{{result...}}`, the child's output, `{{iteration}}`, from 1, and
`{{input...}}`, the node's input) and `max_iterations` (1-100, default 10).

The node adds `result` (the last child's output) and `iterations`. The child runs run one at a time, the node
holding no worker while it waits; the engine asks `child_next` what to do as each one succeeds. A child that
fails or is cancelled, an `until` that cannot be evaluated, or an output the next run cannot take as its input
fails the node.
"""

from __future__ import annotations

from typing import Any

from nodes import register, subworkflows, templating
from nodes.base import ChildRunRequest, ChildStep, NodeContext, NodeError, NodeResult, NodeType, data_schema
from nodes.conditions import OPERATORS, UNARY_OPERATORS, ConditionError, evaluate
from nodes.jsonkinds import json_kind_phrase
from nodes.spec import NodeSpec

TYPE = "loop"
DONE = "done"
EXHAUSTED = "exhausted"
MAX_ITERATIONS = 100
DEFAULT_ITERATIONS = 10
# What `until`'s templates may read.
UNTIL_ROOTS = ("input", "result", "iteration")
SCALAR = {"type": ["string", "number", "boolean", "null"]}


def execute(ctx: NodeContext) -> NodeResult:
    data = ctx.data
    version = subworkflows.version_to_run(data)
    child_input = ctx.render(data.get("input", {}))
    if not isinstance(child_input, dict):  # the schema makes `input` an object; a template can't change that
        raise NodeError("the loop's input must be an object")
    return NodeResult(
        child=ChildRunRequest(
            graph=None, input=child_input, workflow_id=int(data["workflow"]), workflow_version=version
        )
    )


def child_next(step: ChildStep) -> ChildRunRequest | NodeResult:
    """After iteration `step.iteration` succeeded: done when `until` holds, exhausted at `max_iterations`, else
    the next iteration with this one's output as its input."""
    data = step.data
    if _holds(data["until"], {"input": step.input, "result": step.output, "iteration": step.iteration}):
        return NodeResult(fields={"result": step.output, "iterations": step.iteration}, handle=DONE)
    if step.iteration >= int(data.get("max_iterations", DEFAULT_ITERATIONS)):
        return NodeResult(fields={"result": step.output, "iterations": step.iteration}, handle=EXHAUSTED)
    if not isinstance(step.output, dict):
        raise NodeError(
            f"iteration {step.iteration} gave {json_kind_phrase(step.output)}, not an object the next iteration "
            "can take as its input"
        )
    return ChildRunRequest(
        graph=None,
        input=step.output,
        workflow_id=int(data["workflow"]),
        workflow_version=subworkflows.version_to_run(data),
    )


def _holds(until: dict[str, Any], context: dict[str, Any]) -> bool:
    operator = until["operator"]
    try:
        left = templating.render(until.get("left"), context, roots=UNTIL_ROOTS)
        right = (
            None if operator in UNARY_OPERATORS else templating.render(until.get("right"), context, roots=UNTIL_ROOTS)
        )
        return evaluate(left, operator, right)
    except (templating.TemplateError, ConditionError) as exc:
        raise NodeError(f"until, after iteration {context['iteration']}: {exc}") from exc


def check(data: dict[str, Any]) -> list[tuple[str | None, str]]:
    problems: list[tuple[str | None, str]] = [
        ("input", message) for message in templating.check_syntax(data.get("input", {}))
    ]
    until = data.get("until")
    if isinstance(until, dict):
        for side in ("left", "right"):
            for message in templating.check_syntax(until.get(side), roots=UNTIL_ROOTS):
                problems.append(("until", f"{side}: {message}"))
        if until.get("operator") not in UNARY_OPERATORS and "right" not in until:
            problems.append(("until", f"operator {until.get('operator')!r} needs a right-hand value"))
    return problems


LOOP = register(
    NodeType(
        spec=NodeSpec(
            type=TYPE,
            data_schema=data_schema(
                {
                    **subworkflows.properties(
                        input_description="The first child run's input: an object whose values may be templates; "
                        "each later run's input is the previous run's output."
                    ),
                    "until": {
                        "type": "object",
                        "title": "Until",
                        "description": "Stops the loop when this holds over the last output: {{result...}}, "
                        "{{iteration}} and {{input...}} may be read.",
                        "properties": {
                            "left": {**SCALAR, "x-widget": "template"},
                            "operator": {"enum": list(OPERATORS)},
                            "right": {**SCALAR, "x-widget": "template"},
                        },
                        "required": ["left", "operator"],
                        "additionalProperties": False,
                    },
                    "max_iterations": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_ITERATIONS,
                        "default": DEFAULT_ITERATIONS,
                        "title": "At most this many runs",
                    },
                },
                required=["workflow", "until"],
            ),
            handles=frozenset({DONE, EXHAUSTED}),
            required_handles=True,
            check=check,
        ),
        execute=execute,
        title="Loop",
        description="Runs one of your saved workflows again and again, each output the next input, until a "
        "condition holds; routes on done or exhausted.",
        icon="⟳",
        colour="#7048e8",
        group="Flow",
        order=47,
        summary="workflow #{{workflow}} until {{until.left}} {{until.operator}} {{until.right}}",
        output_fields=("result", "iterations"),
        side_effects=True,
        starts_child_runs=True,
        child_next=child_next,
        on_save=subworkflows.on_save,
    )
)
