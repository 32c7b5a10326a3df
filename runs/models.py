"""Runs, the state of each node within a run, the append-only ledger, and the stored event stream.

A run executes the graph snapshot it was started with (`Run.graph`), whatever is saved to the workflow later.
`NodeRun` is the mutable state the engine advances under the run's row lock; `LedgerEntry` is the
append-only record of each node execution (a PostgreSQL trigger refuses UPDATE on it); `RunEvent` keeps the
events sent to browsers so that a late or reconnecting client first receives what it missed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import models
from django.db.models import Q

from projects.permissions import Action, scoped

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User


class RunStatus(models.TextChoices):
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_RUN_STATUSES = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING)
FINAL_RUN_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


class RunTrigger(models.TextChoices):
    """How a run started: `Run.trigger["type"]`. The labels are the short ones the pages show."""

    MANUAL = "manual", "manual"  # a page's run form, or the run_workflow command
    API = "api", "API"
    WEBHOOK = "webhook", "webhook"
    SCHEDULE = "schedule", "schedule"
    RERUN = "rerun", "re-run"
    RESUME = "resume", "resume"
    CHILD = "child", "child"  # a node started it: a cognitive node's generated workflow


# Triggers that name the trigger row that started the run, as `"id"`.
TRIGGERS_WITH_ID = (RunTrigger.WEBHOOK, RunTrigger.SCHEDULE)


def default_trigger() -> dict[str, Any]:
    """`Run.trigger` of a row created without one (a fresh dict each time, never a shared literal)."""
    return {"type": RunTrigger.API.value}


class RunQuerySet(models.QuerySet["Run"]):
    def visible_to(self, user: User | AnonymousUser, action: Action = Action.VIEW) -> RunQuerySet:
        """The runs of the projects in which `user` may take `action` (see `projects.permissions`)."""
        return scoped(self, user, action)


class Run(models.Model):
    # No index of its own on this and `owner`: the composite indexes below start with them. Every index on the
    # run row costs an entry whenever an update cannot stay on the row's page (a status change, for one).
    workflow = models.ForeignKey(
        "workflows.Workflow", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs", db_index=False
    )
    # Copied at start so the run can be read and audited after its workflow is edited or deleted.
    workflow_name = models.CharField(max_length=200, blank=True, default="")
    workflow_version = models.PositiveIntegerField(default=1)
    graph = models.JSONField(help_text="The graph snapshot this run executes.")
    # The workflow's project when the run started (a child run's: its parent's). Who may see the run, and which
    # tools its nodes call, follow from it; it stays when the workflow is deleted.
    project = models.ForeignKey("projects.Project", on_delete=models.PROTECT, related_name="runs", db_index=False)
    # Who started it (for a child run, a webhook's or a schedule's: the workflow's creator).
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs", db_index=False)
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    # A cognitive node's generated workflow runs as a child run of the run that holds the node.
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    parent_node_id = models.CharField(max_length=64, blank=True, default="")
    # The run this one re-runs or resumes from, if any.
    source_run = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="derived_runs"
    )
    # How it started: {"type": a RunTrigger value}, plus "id" (the trigger's) for a webhook or a schedule.
    trigger = models.JSONField(default=default_trigger)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Last `seq` handed to an event and to a ledger entry of this run; both advance under the run's row lock.
    last_event_seq = models.PositiveBigIntegerField(default=0, editable=False)
    last_ledger_seq = models.PositiveIntegerField(default=0, editable=False)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # Run history of a workflow, filtered by status, newest first.
            models.Index(fields=["workflow", "status", "-created_at"], name="run_workflow_status_idx"),
            models.Index(fields=["workflow", "-created_at"], name="run_workflow_recent_idx"),
            # The run list: a project's runs, newest first.
            models.Index(fields=["project", "-created_at"], name="run_project_recent_idx"),
            # The runs one user started, newest first.
            models.Index(fields=["owner", "-created_at"], name="run_owner_recent_idx"),
            # Recovery and dashboards scan only the runs still in flight.
            models.Index(
                fields=["status", "updated_at"],
                name="run_active_idx",
                condition=Q(status__in=["queued", "running", "waiting"]),
            ),
        ]

    def __str__(self) -> str:
        return f"run {self.pk} of {self.workflow_name or 'deleted workflow'} [{self.status}]"

    @property
    def is_finished(self) -> bool:
        return self.status in FINAL_RUN_STATUSES

    @property
    def trigger_label(self) -> str:
        """How the run started, in the pages' words ("manual", "API", "re-run"...)."""
        kind = (self.trigger or {}).get("type", "")
        return str(RunTrigger(kind).label) if kind in RunTrigger.values else str(kind or "unknown")


class NodeStatus(models.TextChoices):
    # Reached by some of its incoming branches, waiting for the others (joins and other merge points).
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


UNFINISHED_NODE_STATUSES = (NodeStatus.PENDING, NodeStatus.QUEUED, NodeStatus.RUNNING, NodeStatus.WAITING)


class NodeRun(models.Model):
    """The current state of one node within one run (one row per node that was reached)."""

    # Indexed by the constraint below, which starts with it.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="node_runs", db_index=False)
    node_id = models.CharField(max_length=64)
    node_type = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.QUEUED)
    input = models.JSONField(null=True, blank=True)
    # The node's own new fields (what `{{nodes.<id>.<field>}}` reads); the full output is input + result.
    result = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    # The outgoing handle the node chose (if/else `true`, approval `approved`...), empty for "all edges".
    handle = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    # For joins: incoming edge id -> "fired" or "dead", decided under the run's row lock.
    arrivals = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=255, blank=True, default="")
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["run", "node_id"], name="noderun_unique_per_run")]
        # No index holds a column a transition changes (status, output...), and the table leaves a fifth of each
        # page free (migration 0011): a node's state is rewritten in place on its page, without an entry in
        # every index (a "HOT" update). A run's nodes by status are read through the constraint's index above.

    def __str__(self) -> str:
        return f"{self.node_id} [{self.status}]"


class ChildItemStatus(models.TextChoices):
    PENDING = "pending"  # its child run has not started yet
    RUNNING = "running"  # its child run started and has not been reported as ended
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # its node ended first


class ChildBatch(models.Model):
    """A node that runs several child runs of a saved workflow: a map (one per item, at most `concurrency` at a
    time) or a loop (one per iteration, in turn). Written only in the parent run's transitions, under its lock,
    like the node itself: that is what keeps `concurrency` and never loses a child's result."""

    node_run = models.OneToOneField(NodeRun, on_delete=models.CASCADE, related_name="child_batch")
    # The workflow and version every child runs (resolved once, when the node started them).
    workflow_id = models.PositiveBigIntegerField()
    workflow_version = models.PositiveIntegerField()
    total = models.PositiveIntegerField()  # items so far (a loop adds one per iteration)
    concurrency = models.PositiveSmallIntegerField(default=1)
    continue_on_error = models.BooleanField(default=False)
    done = models.PositiveIntegerField(default=0)  # items that ended
    failed = models.PositiveIntegerField(default=0)
    progress_at = models.PositiveIntegerField(default=0)  # `done` when progress was last sent

    def __str__(self) -> str:
        return f"{self.done}/{self.total} children of node run {self.node_run_id}"


class ChildItem(models.Model):
    """One child run of a ChildBatch (a map's item, a loop's iteration): its input, its run, and what it gave."""

    # The node that runs it (its ChildBatch's). Indexed by the constraint below, which starts with it.
    node_run = models.ForeignKey(NodeRun, on_delete=models.CASCADE, related_name="child_items", db_index=False)
    index = models.PositiveIntegerField()
    status = models.CharField(max_length=16, choices=ChildItemStatus.choices, default=ChildItemStatus.PENDING)
    input = models.JSONField(default=dict)
    child_run = models.OneToOneField(Run, on_delete=models.SET_NULL, null=True, blank=True, related_name="child_item")
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["node_run", "index"]
        constraints = [models.UniqueConstraint(fields=["node_run", "index"], name="childitem_unique_index")]
        indexes = [models.Index(fields=["node_run", "status"], name="childitem_node_status_idx")]

    def __str__(self) -> str:
        return f"item {self.index} [{self.status}]"


class LedgerStatus(models.TextChoices):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    # This attempt failed for a transient reason; another attempt is scheduled.
    RETRYING = "retrying"
    WAITING = "waiting"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class LedgerEntry(models.Model):
    """One node execution, written once. Only `runs.ledger.ledger_append` creates these."""

    # Indexed by the constraint and index below, which start with it.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="ledger", db_index=False)
    seq = models.PositiveIntegerField()
    node_id = models.CharField(max_length=64)
    node_type = models.CharField(max_length=32)
    status = models.CharField(max_length=16, choices=LedgerStatus.choices)
    attempt = models.PositiveSmallIntegerField(default=1)
    input = models.JSONField(null=True, blank=True)
    output = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    tool_calls = models.JSONField(default=list, blank=True)
    llm_usage = models.JSONField(null=True, blank=True)
    # True when a resumed run copied this node's recorded result instead of executing it again.
    reused = models.BooleanField(default=False)
    # The run's trigger (`Run.trigger`) on its first entry (seq 1), null on every other: the ledger alone says
    # how the run started.
    trigger = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "seq"]
        verbose_name_plural = "ledger entries"
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="ledger_unique_seq_per_run")]
        indexes = [models.Index(fields=["run", "node_id"], name="ledger_run_node_idx")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.node_id} [{self.status}]"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise ValueError("Ledger entries are append-only and cannot be changed.")
        super().save(*args, **kwargs)


class RunEvent(models.Model):
    """An event sent to the run's WebSocket subscribers (docs/CONTRACT.md, Events), kept for late clients."""

    # Indexed by the constraint below, which starts with it.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveBigIntegerField()
    type = models.CharField(max_length=32)
    node_id = models.CharField(max_length=64, blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    ts = models.DateTimeField()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="runevent_unique_seq_per_run")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"

    def as_message(self) -> dict[str, object]:
        return {
            "type": self.type,
            "run_id": self.run_id,
            "seq": self.seq,
            "ts": self.ts.isoformat(),
            "node_id": self.node_id or None,
            "data": self.data,
        }
