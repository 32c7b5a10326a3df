"""Delete audit entries written more than --older-than-days days ago.

    python manage.py purge_audit --older-than-days 365 [--dry-run]

The audit log is append-only in the database itself: this is the one way to remove entries
(projects.audit.audit_purge).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from projects.audit import audit_purge


class Command(BaseCommand):
    help = "Delete audit entries written before a cutoff (the only way the audit log shrinks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=float, required=True, help="Entries written before this.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than_days"]
        if not 0 <= days <= 36500:
            raise CommandError("--older-than-days must be between 0 and 36500")
        cutoff = timezone.now() - timedelta(days=days)
        count = audit_purge(created_before=cutoff, dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(
            f"{verb} {count} audit entr{'y' if count == 1 else 'ies'} written before {cutoff.isoformat()}"
        )
