"""Delete runs that ended more than --older-than-days days ago, with their ledgers, events and tool calls.

    python manage.py purge_runs --older-than-days 90 [--dry-run]

The ledger is append-only in the database itself: this is the one way to remove entries (see
runs.services.runs_purge). Child runs of a purged run go with it; runs still active are never touched.
"""

from __future__ import annotations

from datetime import datetime

from flownova.management.purging import PurgeCommand
from runs.services import runs_purge


class Command(PurgeCommand):
    help = "Delete runs that ended before a cutoff, with their ledgers (the only way the ledger shrinks)."
    older_help = "Runs that ended before this."

    def purge(self, cutoff: datetime, *, dry_run: bool) -> int:
        return runs_purge(finished_before=cutoff, dry_run=dry_run)

    def describe(self, count: int, cutoff: datetime) -> str:
        return f"{count} run(s) that ended before {cutoff.isoformat()}"
