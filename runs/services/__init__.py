"""The one place that advances a run.

Every transition follows the same shape: one transaction, the run's row locked first (then node rows), ask
the pure core (`runs.engine.core`) what happens next, write node state and the ledger entry together, and
only after commit enqueue tasks and publish events. Handlers never touch the database; tasks only call these
functions.

Lock order, everywhere: the Run row, then NodeRun rows, then the rows of apps that wait on nodes (approvals).

The modules, by what a reader looks for:

- `start`: a new run, and a run resumed from a node of an earlier one;
- `execute`: a task claims a node, runs its handler, records the result or the failure;
- `outcome`: how an attempt ends (succeeded, failed, retried, lost, given up);
- `waits`: nodes that wait for a person or for a child run, holding no worker;
- `advance`: resolving a finished node's edges and settling the run's status;
- `recovery`: cancel, purge, and the sweep that recovers lost work;
- `dispatch`: sending tasks after commit.

The names below are the services' public interface; everything else is internal to the package.
"""

from nodes.base import DEFAULT_RETRIES
from runs.errors import ResumeInputConflict, RunError, RunFinishedError, RunInputError
from runs.services.base import BEGIN_FIELDS as NODE_LOCK_FIELDS
from runs.services.base import input_errors, run_graph, workflow_input_errors
from runs.services.execute import NodeClaim, continuing, node_begin, node_complete, node_crash, node_event, node_fail
from runs.services.outcome import LOST_PREFIX, LOST_REDELIVERED, LOST_STALLED, retry_delay
from runs.services.recovery import node_runs_recover, run_cancel, runs_purge
from runs.services.start import (
    Resumed,
    resume_skipped_message,
    run_resume,
    run_resume_reused,
    run_resume_unreachable,
    run_start,
)
from runs.services.waits import child_run_report, node_fail_waiting, node_resume

__all__ = [
    "DEFAULT_RETRIES",
    "LOST_PREFIX",
    "LOST_REDELIVERED",
    "LOST_STALLED",
    "NODE_LOCK_FIELDS",
    "NodeClaim",
    "ResumeInputConflict",
    "Resumed",
    "RunError",
    "RunFinishedError",
    "RunInputError",
    "child_run_report",
    "continuing",
    "input_errors",
    "node_begin",
    "node_complete",
    "node_crash",
    "node_event",
    "node_fail",
    "node_fail_waiting",
    "node_resume",
    "node_runs_recover",
    "resume_skipped_message",
    "retry_delay",
    "run_cancel",
    "run_graph",
    "run_resume",
    "run_resume_reused",
    "run_resume_unreachable",
    "run_start",
    "runs_purge",
    "workflow_input_errors",
]
