"""Reading runs back: compare two runs node by node, and rebuild a run's path and data from its ledger alone.

Both read only the ledger (and the run's own graph snapshot), so they work after the workflow was edited or
deleted: the ledger is the record.
"""

from __future__ import annotations

from typing import Any

import jsonpatch

from runs.models import LedgerEntry, Run

# Ledger statuses that end a node's story in a run (a `retrying` or `waiting` entry is followed by another).
FINAL_ENTRY_STATUSES = ("succeeded", "failed", "skipped", "cancelled", "waiting")


def last_entries(run: Run) -> dict[str, LedgerEntry]:
    """Each node's latest ledger entry in the run."""
    entries: dict[str, LedgerEntry] = {}
    for entry in LedgerEntry.objects.filter(run=run).order_by("seq"):
        entries[entry.node_id] = entry
    return entries


def runs_compare(first: Run, second: Run) -> dict[str, Any]:
    """Per node: its status in each run and the JSON Patch (RFC 6902) from the first run's output to the
    second's; `changed` when the outputs differ or only one run reached the node."""
    a, b = last_entries(first), last_entries(second)
    order = list(a) + [node for node in b if node not in a]
    nodes = []
    for node_id in order:
        left, right = a.get(node_id), b.get(node_id)
        patch = jsonpatch.make_patch((left.output if left else None) or {}, (right.output if right else None) or {})
        nodes.append(
            {
                "node_id": node_id,
                "node_type": (left or b[node_id]).node_type,  # a node of `order` is in a or in b
                "status": [left.status if left else None, right.status if right else None],
                "reused": [bool(left and left.reused), bool(right and right.reused)],
                "changed": left is None or right is None or bool(patch.patch),
                "output_diff": patch.patch,
            }
        )
    return {
        "runs": [first.pk, second.pk],
        "status": [first.status, second.status],
        "output_diff": jsonpatch.make_patch(first.output or {}, second.output or {}).patch,
        "nodes": nodes,
    }


def run_trace(run: Run) -> dict[str, Any]:
    """The path the run took and the data at every step, rebuilt from the ledger alone (plus the graph
    snapshot the run executed, which the run row keeps)."""
    steps = [
        {
            "seq": entry.seq,
            "node_id": entry.node_id,
            "node_type": entry.node_type,
            "status": entry.status,
            "attempt": entry.attempt,
            "reused": entry.reused,
            "input": entry.input,
            "output": entry.output,
            "error": entry.error,
            "started_at": entry.started_at,
            "finished_at": entry.finished_at,
            "tool_calls": entry.tool_calls,
            "llm_usage": entry.llm_usage,
        }
        for entry in LedgerEntry.objects.filter(run=run).order_by("seq")
    ]
    path: list[str] = []
    for step in steps:
        if step["status"] in ("succeeded", "failed") and step["node_id"] not in path:
            path.append(step["node_id"])
    return {
        "run": run.pk,
        "workflow": run.workflow_id,
        "workflow_name": run.workflow_name,
        "workflow_version": run.workflow_version,
        "status": run.status,
        "graph": run.graph,
        "path": path,
        "steps": steps,
        "children": list(run.children.order_by("pk").values_list("pk", flat=True)),
    }
