"""Create the demo user (printing its credentials) and load the example workflows for it.

Safe to run again: an existing demo user keeps its password (read back from the credentials file), and an
example already loaded under the same name is left as it is (workflows/demo.py).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from workflows.demo import examples_load

CREDENTIALS_FILE = Path(settings.BASE_DIR) / ".flownova" / "demo-credentials.json"


class Command(BaseCommand):
    help = "Create the demo user and load the example workflows."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="demo")

    @transaction.atomic
    def handle(self, *args: object, username: str = "demo", **options: object) -> None:
        user, password = self.demo_user(username)
        token, _ = Token.objects.get_or_create(user=user)
        loaded = examples_load(owner=user)
        self.stdout.write(self.style.SUCCESS(f"Demo user: {username} / password: {password}"))
        self.stdout.write(f"API token for {username}: {token.key}")
        self.stdout.write(f"Example workflows loaded now: {loaded or 'none (already there)'}")

    def demo_user(self, username: str) -> tuple[User, str]:
        stored = self.stored_credentials()
        user = get_user_model().objects.filter(username=username).first()
        if user is not None and stored.get("username") == username and user.check_password(stored.get("password", "")):
            return user, stored["password"]
        password = secrets.token_urlsafe(12)
        if user is None:
            user = get_user_model().objects.create_superuser(username=username, email="", password=password)
        else:
            # The file was lost or is stale: give the user a new password we can print.
            user.set_password(password)
            user.save(update_fields=["password"])
        CREDENTIALS_FILE.parent.mkdir(exist_ok=True)
        CREDENTIALS_FILE.touch(mode=0o600, exist_ok=True)
        CREDENTIALS_FILE.write_text(json.dumps({"username": username, "password": password}))
        return user, password

    def stored_credentials(self) -> dict[str, str]:
        try:
            credentials: dict[str, str] = json.loads(CREDENTIALS_FILE.read_text())
            return credentials
        except (OSError, ValueError):
            return {}
