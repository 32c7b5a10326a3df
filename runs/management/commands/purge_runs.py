"""Delete runs that ended more than --older-than-days days ago, with their ledgers, events and tool calls.

    python manage.py purge_runs --older-than-days 90 [--dry-run]

The ledger is append-only in the database itself: this is the one way to remove entries (see
runs.services.runs_purge). Child runs of a purged run go with it; runs still active are never touched.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from runs.services import runs_purge


class Command(BaseCommand):
    help = "Delete runs that ended before a cutoff, with their ledgers (the only way the ledger shrinks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=float, required=True, help="Runs that ended before this.")
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than_days"]
        if not 0 <= days <= 36500:
            raise CommandError("--older-than-days must be between 0 and 36500")
        cutoff = timezone.now() - timedelta(days=days)
        count = runs_purge(finished_before=cutoff, dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(f"{verb} {count} run(s) that ended before {cutoff.isoformat()}")
