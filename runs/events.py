"""Run events as the contract lists them (docs/CONTRACT.md, Events): one class per kind, and the groups they go to.

A transition emits an event object (`tx.emit(NodeCompleted(...))`); its `type` and `data()` are what is
stored and sent. The classes keep every event's data the same wherever it is emitted, and a missing or
misspelt field is an error where it is written instead of a key a browser waits for in vain. How events are
stored and published is the write path's business (`runs.writes`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Event:
    """An event about a run, or about one of its nodes when `node_id` is set."""

    type: ClassVar[str]
    node_id: str = ""

    def data(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "node_id"}


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    workflow_id: int | None
    version: int
    trigger: dict[str, Any]  # how the run started: `Run.trigger`


@dataclass(frozen=True, kw_only=True)
class RunResumed(Event):
    """A run that reuses an earlier run's results up to `resumed_at` (sent as `run_started`)."""

    type: ClassVar[str] = "run_started"
    workflow_id: int | None
    resumed_from: int
    resumed_at: str
    trigger: dict[str, Any]

    def data(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "resumed_from": self.resumed_from,
            "node_id": self.resumed_at,
            "trigger": self.trigger,
        }


@dataclass(frozen=True, kw_only=True)
class ChildRunStarted(Event):
    """The first event of a child run (sent as `run_started`); its parent gets `ChildRunSpawned`."""

    type: ClassVar[str] = "run_started"
    parent_run_id: int
    parent_node_id: str
    trigger: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ChildRunSpawned(Event):
    type: ClassVar[str] = "child_run_started"
    child_run_id: int


@dataclass(frozen=True, kw_only=True)
class MapProgress(Event):
    """A map node's items so far: those ended (`failed` of them failed) out of `total`."""

    type: ClassVar[str] = "map_progress"
    done: int
    total: int
    failed: int


@dataclass(frozen=True, kw_only=True)
class NodeStarted(Event):
    type: ClassVar[str] = "node_started"
    attempt: int


@dataclass(frozen=True, kw_only=True)
class NodeCompleted(Event):
    type: ClassVar[str] = "node_completed"
    handle: str | None
    result: dict[str, Any]
    duration_ms: int | None
    ledger_seq: int


@dataclass(frozen=True, kw_only=True)
class NodeReused(Event):
    """A node whose earlier result a resumed run reuses (sent as `node_completed`)."""

    type: ClassVar[str] = "node_completed"
    handle: str | None
    result: dict[str, Any] | None

    def data(self) -> dict[str, Any]:
        return {"handle": self.handle, "result": self.result, "reused": True}


@dataclass(frozen=True, kw_only=True)
class NodeFailed(Event):
    type: ClassVar[str] = "node_failed"
    error: str
    attempt: int
    will_retry: bool
    retry_in_seconds: float | None
    # "error" when the failure took the node's error path and the run goes on; sent only then.
    routed: str | None = None

    def data(self) -> dict[str, Any]:
        data = super().data()
        if self.routed is None:
            del data["routed"]
        return data


@dataclass(frozen=True, kw_only=True)
class AttemptLost(Event):
    """An attempt that ended without a result; another one follows (sent as `node_failed`)."""

    type: ClassVar[str] = "node_failed"
    error: str
    attempt: int

    def data(self) -> dict[str, Any]:
        return {"error": self.error, "attempt": self.attempt, "will_retry": True}


@dataclass(frozen=True, kw_only=True)
class NodeSkipped(Event):
    type: ClassVar[str] = "node_skipped"


@dataclass(frozen=True, kw_only=True)
class ApprovalNeeded(Event):
    type: ClassVar[str] = "approval_needed"
    approval_id: int
    message: str
    assignees: list[str]
    deadline: str | None


@dataclass(frozen=True, kw_only=True)
class ApprovalDecided(Event):
    type: ClassVar[str] = "approval_decided"
    approval_id: int
    decision: str | None
    comment: str = ""
    decided_by: str | None = None
    decided_at: str
    decided_by_timeout: bool = False
    edits: dict[str, Any] | None = None

    def data(self) -> dict[str, Any]:
        data = super().data()
        if not self.decided_by_timeout:
            del data["decided_by_timeout"]
        if self.edits is None:
            del data["edits"]
        return data


@dataclass(frozen=True, kw_only=True)
class ApprovalExpired(Event):
    """Nobody decided before the deadline (sent as `approval_decided`, with no decision)."""

    type: ClassVar[str] = "approval_decided"
    approval_id: int
    decided_at: str

    def data(self) -> dict[str, Any]:
        return {
            "approval_id": self.approval_id,
            "decision": None,
            "decided_by_timeout": True,
            "decided_at": self.decided_at,
        }


@dataclass(frozen=True, kw_only=True)
class RunWaiting(Event):
    type: ClassVar[str] = "run_waiting"


@dataclass(frozen=True, kw_only=True)
class RunSucceeded(Event):
    type: ClassVar[str] = "run_succeeded"
    output: Any


@dataclass(frozen=True, kw_only=True)
class RunFailed(Event):
    type: ClassVar[str] = "run_failed"
    error: str


@dataclass(frozen=True, kw_only=True)
class RunCancelled(Event):
    type: ClassVar[str] = "run_cancelled"
    by: str | None


# What a node sends while it executes, through its context (`NodeContext.emit`), with data of its own making
# (`Transition.emit_streamed`).
STREAMED_TYPES = frozenset({"llm_token", "tool_call"})


EVENT_TYPES = frozenset({cls.type for cls in Event.__subclasses__()} | STREAMED_TYPES)

# Channels handler name: a message {"type": "run.events", "events": [...]} calls `run_events` on consumers.
# One message carries every event of one transition, or of several when they queued up together (events of
# several runs, each marked with its run_id), so a transition costs at most one group_send per group.
CONSUMER_MESSAGE_TYPE = "run.events"


def run_group(run_id: int) -> str:
    return f"run.{run_id}"


def workflow_group(workflow_id: int) -> str:
    return f"workflow.{workflow_id}"


# Every approval_needed / approval_decided event also goes to this group, for inbox pages: their consumers
# decide per user what to show (see approvals.selectors for who may see a request).
APPROVALS_GROUP = "approvals"
APPROVAL_EVENTS = frozenset({ApprovalNeeded.type, ApprovalDecided.type})
