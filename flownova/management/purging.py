"""The shape the purge commands share: `--older-than-days N [--dry-run]`, checked, turned into a cutoff and
passed to the app's purge function, whose count is reported in a sentence."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

MAX_DAYS = 36500


class PurgeCommand(BaseCommand):
    """Subclasses set `help`, `older_help` (what the cutoff applies to) and implement `purge` and `describe`."""

    older_help = ""

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=float, required=True, help=self.older_help)
        parser.add_argument("--dry-run", action="store_true", help="Only count what would be deleted.")

    def purge(self, cutoff: datetime, *, dry_run: bool) -> int:
        raise NotImplementedError

    def describe(self, count: int, cutoff: datetime) -> str:
        """What was deleted, after "deleted" or "would delete"."""
        raise NotImplementedError

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than_days"]
        if not 0 <= days <= MAX_DAYS:
            raise CommandError(f"--older-than-days must be between 0 and {MAX_DAYS}")
        cutoff = timezone.now() - timedelta(days=days)
        count = self.purge(cutoff, dry_run=options["dry_run"])
        verb = "would delete" if options["dry_run"] else "deleted"
        self.stdout.write(f"{verb} {self.describe(count, cutoff)}")
