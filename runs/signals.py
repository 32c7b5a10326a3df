"""What apps above runs plug into the engine, so that runs never imports them.

Both signals are sent inside the run's transition (its row locked): receivers write with the same transaction,
and what they raise rolls the transition back.
"""

from django.dispatch import Signal

# A node asked to wait for a person (`NodeResult.wait`). Keyword arguments: `tx` (the Transition), `node_run`,
# `wait` (the WaitRequest) and `deadline` (a datetime or None). The receiver that handles such waits (the
# approvals app) records what the person must decide and emits its event on `tx`.
node_waiting = Signal()

# A run ended (succeeded nodes aside, everything open is being cancelled). Keyword argument: `tx`. Waits
# recorded for its nodes can no longer be decided.
run_closing = Signal()
