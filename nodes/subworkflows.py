"""What the node types that run a saved workflow as child runs share (`subworkflow`, `map`, `loop`): the data
fields naming the workflow, the version a run executes, and the checks made when a graph is saved.

- **Pinned** (`version: "pinned"`, the default) records the version at save time: saving the graph sets
  `pinned_version` to the referenced workflow's version then (a `pinned_version` already there is kept if that
  workflow has such a version, and refused otherwise), and runs execute that version's document, whatever was
  saved since. **Current** runs the workflow as saved when the node executes.
- Saving checks that the workflow exists, is not deleted and the saving user may see it, and refuses a cycle of
  workflows running each other that it can see through any of these types' nodes, naming it
  ("A (#1) -> B (#2) -> A (#1)").
"""

from __future__ import annotations

from typing import Any

from nodes.base import NodeError, SaveContext, field_schema

PINNED = "pinned"
CURRENT = "current"
# The node types whose nodes run a saved workflow (`workflow`, `version`, `pinned_version` in their data).
TYPES = frozenset({"subworkflow", "map", "loop"})
# How many saved documents the save-time cycle check reads at most; past it, the run-time depth limit is the
# guard.
MAX_WALKED = 200
# Workflow ids and version numbers are at most what a JavaScript number holds exactly (the editor's).
MAX_ID = 2**53 - 1


def properties(*, input_description: str) -> dict[str, Any]:
    """The data schema's properties naming the workflow to run, its version, and the child runs' `input`."""
    return {
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
                "description": "pinned: the version saved when this graph was saved; current: the workflow as "
                "saved when the node runs.",
            },
            title="Version",
        ),
        "input": field_schema(
            {"type": "object", "description": input_description},
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
    }


def version_to_run(data: dict[str, Any]) -> int | None:
    """The version of the referenced workflow a run executes: the pinned one, or None for the current one.
    NodeError when the node pins a version but records none (saved before it was set)."""
    if data.get("version", PINNED) != PINNED:
        return None
    pinned = data.get("pinned_version")
    if not isinstance(pinned, int):
        raise NodeError(
            f"the node pins workflow {data.get('workflow')} but records no pinned_version: save the workflow again"
        )
    return pinned


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
    """The workflows a saved document's nodes run: (id, pinned version, or None for current)."""
    graph = document.get("graph") if isinstance(document, dict) else None
    nodes = graph.get("nodes") if isinstance(graph, dict) else None
    found = []
    for node in nodes if isinstance(nodes, list) else []:
        data = node.get("data") if isinstance(node, dict) else None
        if not isinstance(data, dict) or node.get("type") not in TYPES or not isinstance(data.get("workflow"), int):
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
