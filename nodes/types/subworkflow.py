"""`subworkflow`: runs a saved workflow as a child run, on the same engine, and adds the child's output to its own
as `result`, with the child run's id as `child_run`.

Data: `workflow` (the id of a workflow the run's owner may run), `version` (`pinned`, the default, or
`current`) and `input` (an object of templates, rendered against the node's input: the child run's input).

- **Pinned** or **current** version, and the checks made when the graph is saved (the workflow visible and
  alive, no cycle of workflows running each other): `nodes/subworkflows.py`, shared with `map` and `loop`.
- At run time the engine (runs/services/waits.py, `node_spawn`) checks again that the run's owner may see the
  workflow and that it is not deleted, refuses a child deeper than FLOWNOVA_SUBWORKFLOW_MAX_DEPTH, and checks the
  rendered input against the child's start node `input_schema`; any of these fails the node, saying why. A
  child run that fails or is cancelled fails the node with the child's error.
"""

from __future__ import annotations

from typing import Any

from nodes import register, subworkflows
from nodes.base import ChildRunRequest, NodeContext, NodeError, NodeResult, NodeType, data_schema, template_check
from nodes.spec import NodeSpec

TYPE = "subworkflow"


def execute(ctx: NodeContext) -> NodeResult:
    data = ctx.data
    version = subworkflows.version_to_run(data)
    child_input = ctx.render(data.get("input", {}))
    if not isinstance(child_input, dict):  # the schema makes `input` an object; a template can't change that
        raise NodeError("the subworkflow's input must be an object")
    return NodeResult(
        child=ChildRunRequest(
            graph=None, input=child_input, workflow_id=int(data["workflow"]), workflow_version=version
        )
    )


def child_result(own: dict[str, Any], child_output: dict[str, Any] | None, child_run_id: int) -> dict[str, Any]:
    """The node's own fields once the child run succeeded: its output under `result`, and its run's id."""
    return {**own, "result": child_output, "child_run": child_run_id}


SUBWORKFLOW = register(
    NodeType(
        spec=NodeSpec(
            type=TYPE,
            data_schema=data_schema(
                subworkflows.properties(
                    input_description="The child run's input: an object whose values may be templates."
                ),
                required=["workflow"],
            ),
            check=template_check("input"),
        ),
        execute=execute,
        title="Subworkflow",
        description="Runs one of your saved workflows as a child run and adds its output as `result`.",
        icon="⧉",
        colour="#5c7cfa",
        group="Flow",
        order=45,
        summary="workflow #{{workflow}} ({{version}})",
        output_fields=("result", "child_run"),
        side_effects=True,
        starts_child_runs=True,
        child_result=child_result,
        on_save=subworkflows.on_save,
    )
)
