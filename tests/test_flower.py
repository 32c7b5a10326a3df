"""Flower, started as docs/CONTRACT.md says (`celery -A flownova flower`), is never open to anyone outside DEBUG."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import ROOT, free_port, service_env, stop_process

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "flower-test-only",
    "FLOWNOVA_SECRET_KEYS": Fernet.generate_key().decode(),
}


def flower(port: int, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    """The real command, from the repository root, as bin/start and the Docker image run it."""
    environment = {key: value for key, value in service_env(**env).items() if not key.startswith("FLOWER_")}
    environment.update({key: value for key, value in env.items() if key.startswith("FLOWER_")})
    command = [sys.executable, "-m", "celery", "-A", "flownova", "flower", "--address=127.0.0.1", f"--port={port}"]
    return subprocess.Popen(
        [*command, *extra], cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def refusal(process: subprocess.Popen[bytes]) -> str:
    try:
        output, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        stop_process(process)
        raise AssertionError("Flower started without credentials") from None
    assert process.returncode == 1, output.decode()
    return output.decode()


def test_flower_refuses_to_start_without_credentials_when_debug_is_off() -> None:
    text = refusal(flower(free_port(), **PRODUCTION))
    assert "Flower refuses to start without credentials while DEBUG is off" in text
    assert "FLOWER_BASIC_AUTH=user:password" in text
    assert "Traceback" not in text


def test_flower_refuses_basic_auth_without_a_password() -> None:
    text = refusal(flower(free_port(), **PRODUCTION, FLOWER_BASIC_AUTH="admin"))
    assert "FLOWER_BASIC_AUTH must be user:password" in text and "'admin'" in text


@pytest.mark.parametrize("how", ["environment", "command line"])
def test_flower_starts_behind_basic_auth_with_credentials(how: str) -> None:
    port = free_port()
    if how == "environment":
        process = flower(port, **PRODUCTION, FLOWER_BASIC_AUTH="ops:s3cret-pass")
    else:
        process = flower(port, "--basic_auth=ops:s3cret-pass", **PRODUCTION)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[0].decode()
            try:
                anonymous = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "Flower did not answer"
                time.sleep(0.2)
        assert anonymous.status_code == 401
        assert httpx.get(url, auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(url, auth=("ops", "s3cret-pass"), timeout=5).status_code == 200
    finally:
        stop_process(process)
