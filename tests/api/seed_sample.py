"""A realistic original FlowNova export (the format FlowNova imports besides its own), and what it becomes.

The original FlowNova wraps every node in the canvas component "custom" and keeps the real type in `data.type`, the
display name in `data.label` and the configuration in `data.config`; its edges carry `source_handle` and
`target_handle`; approvals branch on `yes` / `no`; if/else compares `lhs` and `rhs` with a named
`condition`.
"""

from __future__ import annotations

from typing import Any

SEED_EXPORT: dict[str, Any] = {
    "id": "wf_8d2f1c",
    "version": 4,
    "exported_at": "2024-05-02T10:11:12Z",
    "name": "Refund review",
    "description": "Large refunds need a person.",
    "nodes": [
        {
            "id": "start",
            "type": "custom",
            "position": {"x": 0, "y": 80},
            "data": {"type": "start", "label": "Refund requested"},
        },
        {
            "id": "amount_check",
            "type": "custom",
            "position": {"x": 220, "y": 80},
            "data": {
                "type": "ifElse",
                "label": "Over 100?",
                "config": {"lhs": "{{input.amount}}", "condition": "greater_than", "rhs": "100"},
            },
        },
        {
            "id": "manager",
            "type": "custom",
            "position": {"x": 440, "y": 0},
            "data": {
                "type": "approval",
                "label": "Manager approval",
                "config": {"message": "Refund {{input.amount}} to {{input.customer}}?"},
            },
        },
        {
            "id": "refund",
            "type": "custom",
            "position": {"x": 660, "y": 0},
            "data": {"type": "end", "label": "Refund", "config": {"output": {"refunded": True}}},
        },
        {
            "id": "decline",
            "type": "custom",
            "position": {"x": 660, "y": 120},
            "data": {"type": "end", "label": "Decline", "config": {"output": {"refunded": False}}},
        },
        {
            "id": "auto_refund",
            "type": "custom",
            "position": {"x": 440, "y": 200},
            "data": {"type": "end", "label": "Small refund", "config": {"output": {"refunded": True}}},
        },
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "amount_check", "source_handle": None, "target_handle": None},
        {"id": "e2", "source": "amount_check", "target": "manager", "source_handle": "true", "target_handle": None},
        {"id": "e3", "source": "amount_check", "target": "auto_refund", "source_handle": "false"},
        {"id": "e4", "source": "manager", "target": "refund", "source_handle": "yes", "target_handle": "in"},
        {"id": "e5", "source": "manager", "target": "decline", "source_handle": "no", "target_handle": "in"},
    ],
}

CONVERTED_GRAPH: dict[str, Any] = {
    "nodes": [
        {"id": "start", "type": "start", "position": {"x": 0, "y": 80}, "data": {"label": "Refund requested"}},
        {
            "id": "amount_check",
            "type": "if_else",
            "position": {"x": 220, "y": 80},
            "data": {"label": "Over 100?", "left": "{{input.amount}}", "right": "100", "operator": ">"},
        },
        {
            "id": "manager",
            "type": "user_approval",
            "position": {"x": 440, "y": 0},
            "data": {"label": "Manager approval", "message": "Refund {{input.amount}} to {{input.customer}}?"},
        },
        {
            "id": "refund",
            "type": "end",
            "position": {"x": 660, "y": 0},
            "data": {"label": "Refund", "output": {"refunded": True}},
        },
        {
            "id": "decline",
            "type": "end",
            "position": {"x": 660, "y": 120},
            "data": {"label": "Decline", "output": {"refunded": False}},
        },
        {
            "id": "auto_refund",
            "type": "end",
            "position": {"x": 440, "y": 200},
            "data": {"label": "Small refund", "output": {"refunded": True}},
        },
    ],
    "edges": [
        {"id": "e1", "source": "start", "target": "amount_check"},
        {"id": "e2", "source": "amount_check", "target": "manager", "sourceHandle": "true"},
        {"id": "e3", "source": "amount_check", "target": "auto_refund", "sourceHandle": "false"},
        {"id": "e4", "source": "manager", "target": "refund", "sourceHandle": "approved"},
        {"id": "e5", "source": "manager", "target": "decline", "sourceHandle": "rejected"},
    ],
}
