"""Delete audit entries written more than --older-than-days days ago.

    python manage.py purge_audit --older-than-days 365 [--dry-run]

The audit log is append-only in the database itself: this is the one way to remove entries
(projects.audit.audit_purge).
"""

from __future__ import annotations

from datetime import datetime

from flownova.management.purging import PurgeCommand
from projects.audit import audit_purge


class Command(PurgeCommand):
    help = "Delete audit entries written before a cutoff (the only way the audit log shrinks)."
    older_help = "Entries written before this."

    def purge(self, cutoff: datetime, *, dry_run: bool) -> int:
        return audit_purge(created_before=cutoff, dry_run=dry_run)

    def describe(self, count: int, cutoff: datetime) -> str:
        return f"{count} audit entr{'y' if count == 1 else 'ies'} written before {cutoff.isoformat()}"
