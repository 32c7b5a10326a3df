"""`subworkflow`: runs a saved workflow as a child run, on the same engine, and adds the child's output to its own
as `result`, with the child run's id as `child_run`.

Data: `workflow` (the id of a workflow the run's owner may run), `version` (`pinned`, the default, or
`current`) and `input` (an object of templates, rendered against the node's input: the child run's input).

- **Pinned** records the version at save time: saving the graph sets `pinned_version` to the referenced
  workflow's version then (a `pinned_version` already there is kept if that workflow has such a version, and
  refused otherwise), and runs execute that version's document, whatever was saved since. **Current** runs the
  workflow as saved when the node executes.
- Saving checks that the workflow exists, is not deleted and the saving user may see it, and refuses a cycle of
  workflows calling each other that it can see, naming it ("A (#1) -> B (#2) -> A (#1)").
- At run time the engine (runs/services/waits.py, `node_spawn`) checks again that the run's owner may see the
  workflow and that it is not deleted, refuses a child deeper than FLOWNOVA_SUBWORKFLOW_MAX_DEPTH, and checks the
  rendered input against the child's start node `input_schema`; any of these fails the node, saying why. A
  child run that fails or is cancelled fails the node with the child's error.
"""

from __future__ import annotations

from typing import Any

from nodes import register
from nodes.base import (
    ChildRunRequest,
    NodeContext,
    NodeError,
    NodeResult,
    NodeType,
    SaveContext,
    data_schema,
    field_schema,
    template_check,
)
from nodes.spec import NodeSpec

TYPE = "subworkflow"
PINNED = "pinned"
CURRENT = "current"
# How many saved documents the save-time cycle check reads at most; past it, the run-time depth limit is the
# guard.
MAX_WALKED = 200
# Workflow ids and version numbers are at most what a JavaScript number holds exactly (the editor's).
MAX_ID = 2**53 - 1


def execute(ctx: NodeContext) -> NodeResult:
    data = ctx.data
    workflow_id = int(data["workflow"])
    version: int | None = None
    if data.get("version", PINNED) == PINNED:
        pinned = data.get("pinned_version")
        if not isinstance(pinned, int):
            raise NodeError(
                f"the node pins workflow {workflow_id} but records no pinned_version: save the workflow again"
            )
        version = pinned
    child_input = ctx.render(data.get("input", {}))
    if not isinstance(child_input, dict):  # the schema makes `input` an object; a template can't change that
        raise NodeError("the subworkflow's input must be an object")
    return NodeResult(
        child=ChildRunRequest(graph=None, input=child_input, workflow_id=workflow_id, workflow_version=version)
    )


def child_result(own: dict[str, Any], child_output: dict[str, Any] | None, child_run_id: int) -> dict[str, Any]:
    """The node's own fields once the child run succeeded: its output under `result`, and its run's id."""
    return {**own, "result": child_output, "child_run": child_run_id}


def on_save(data: dict[str, Any], saving: SaveContext) -> tuple[dict[str, Any], list[tuple[str | None, str]]]:
    """Check the referenced workflow as the saving user sees it, record the pinned version, refuse cycles."""
    workflow_id = data["workflow"]
    workflow = saving.workflow(workflow_id)
    if workflow is None:
        return data, [("workflow", f"workflow {workflow_id} does not exist, was deleted, or is not yours")]
    if saving.workflow_id is not None and workflow_id == saving.workflow_id:
        return data, [("workflow", f"a workflow cannot run itself: {_label(workflow_id, saving.workflow_name)}")]
    completed = dict(data)
    if completed.get("version", PINNED) == PINNED:
        pinned = completed.get("pinned_version")
        if pinned is None:
            completed["pinned_version"] = workflow.version
        elif saving.document(workflow_id, pinned) is None:
            return data, [("pinned_version", f"workflow {workflow_id} has no version {pinned}")]
    else:
        completed.pop("pinned_version", None)
    cycle = _cycle(saving, workflow_id, completed.get("pinned_version"))
    if cycle:
        return data, [("workflow", "workflows would run each other in a cycle: " + " -> ".join(cycle))]
    return completed, []


def _references(document: dict[str, Any] | None) -> list[tuple[int, int | None]]:
    """The workflows a saved document's subworkflow nodes run: (id, pinned version, or None for current)."""
    graph = document.get("graph") if isinstance(document, dict) else None
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    found = []
    for node in nodes if isinstance(nodes, list) else []:
        data = node.get("data") if isinstance(node, dict) else None
        if not isinstance(data, dict) or node.get("type") != TYPE or not isinstance(data.get("workflow"), int):
            continue
        pinned = data.get("pinned_version") if data.get("version", PINNED) == PINNED else None
        found.append((data["workflow"], pinned if isinstance(pinned, int) else None))
    return found


def _cycle(saving: SaveContext, workflow_id: int, version: int | None) -> list[str] | None:
    """A cycle of workflows reached from (workflow_id, version): through the workflow being saved (which runs it)
    when that one is called at its current version, or among the workflows it reaches. Labels, in order."""
    names: dict[int, str] = {}
    if saving.workflow_id is not None:
        names[saving.workflow_id] = saving.workflow_name
    # A step is (workflow id, version or None for current); the saved workflow's current version is this save.
    root = (saving.workflow_id, None) if saving.workflow_id is not None else None
    path: list[tuple[int, int | None]] = [root] if root is not None else []
    done: set[tuple[int, int | None]] = set()
    walked = 0

    def visit(step: tuple[int, int | None]) -> list[tuple[int, int | None]] | None:
        nonlocal walked
        if step in path:
            return [*path[path.index(step) :], step]
        if step in done or walked >= MAX_WALKED:
            return None
        walked += 1
        document = saving.document(*step)
        if document is None:  # deleted: it cannot run, so it calls nothing
            done.add(step)
            return None
        names.setdefault(step[0], str(document.get("name", "")))
        path.append(step)
        for reference in _references(document):
            found = visit(reference)
            if found:
                return found
        path.pop()
        done.add(step)
        return None

    steps = visit((workflow_id, version))
    return [_label(step[0], names.get(step[0], "")) for step in steps] if steps else None


def _label(workflow_id: int, name: str) -> str:
    return f"{name} (#{workflow_id})" if name else f"#{workflow_id}"


SUBWORKFLOW = register(
    NodeType(
        spec=NodeSpec(
            type=TYPE,
            data_schema=data_schema(
                {
                    "workflow": field_schema(
                        {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_ID,
                            "description": "A saved workflow you may run.",
                            # The editor drops the pinned version when another workflow is chosen.
                            "x-clears": ["pinned_version"],
                        },
                        title="Workflow",
                        widget="workflow",
                    ),
                    "version": field_schema(
                        {
                            "enum": [PINNED, CURRENT],
                            "default": PINNED,
                            "description": "pinned: the version saved when this graph was saved; current: the "
                            "workflow as saved when the node runs.",
                        },
                        title="Version",
                    ),
                    "input": field_schema(
                        {
                            "type": "object",
                            "description": "The child run's input: an object whose values may be templates.",
                        },
                        title="Input (object; values may be templates)",
                    ),
                    "pinned_version": {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_ID,
                        "title": "Pinned version",
                        "description": "Recorded when the graph is saved; clear it to pin the version saved now.",
                        "x-advanced": True,
                    },
                },
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
        on_save=on_save,
    )
)
