"""The engine's write path: how a change to a run reaches PostgreSQL and then the browsers.

- `transition`: `run_transition` locks a run and yields a `Transition`, the one way to write the engine's rows
  (node state, ledger entries, tool calls, events, the run itself) while the lock is held;
- `sql`: the statements a transition combines, built from model metadata;
- `server`: how they are executed (bound on the server, pipelined with the COMMIT, prepared once they recur);
- `publish`: the events, sent to Channels groups after commit.

Why the engine has a write path of its own beside the ORM, and what it costs: docs/decisions/0003 (the SQL
path), 0004 (prepared statements), 0005 (events only to watched groups) and 0006 (the private library internals
it relies on, all in `flownova.reliances`).
"""

from runs.writes.publish import publisher
from runs.writes.server import server_execute
from runs.writes.transition import Transition, TransitionWriteError, run_transition

__all__ = ["Transition", "TransitionWriteError", "publisher", "run_transition", "server_execute"]
