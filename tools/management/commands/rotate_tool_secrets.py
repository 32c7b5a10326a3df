"""Re-encrypt every tool's secret headers with the newest key in FLOWNOVA_SECRET_KEYS.

Key rotation: put the new key first in FLOWNOVA_SECRET_KEYS (keep the old ones after it), restart, run this
command, then remove the old keys. Tools whose secrets no configured key opens are named (their secrets are
left as they are) and the command exits with status 1.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tools.models import Tool
from tools.secrets import SecretsError
from tools.services import tool_rotate_secrets


class Command(BaseCommand):
    help = "Re-encrypt every tool's secret headers with the newest key in FLOWNOVA_SECRET_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        ids = Tool.objects.exclude(secret_headers_encrypted="").order_by("pk").values_list("pk", flat=True)
        rotated = 0
        failures = []
        for tool_id in ids.iterator():
            try:
                rotated += tool_rotate_secrets(tool_id=tool_id)
            except SecretsError as exc:
                failures.append(str(exc))
                self.stderr.write(f"tool {tool_id}: {exc}")
            except Tool.DoesNotExist:
                continue  # deleted meanwhile
        self.stdout.write(f"Re-encrypted the secret headers of {rotated} tool(s) with the newest key.")
        if failures:
            raise CommandError(f"{len(failures)} tool(s) could not be decrypted with any configured key; see above.")
