"""Every process of `bin/start` comes back after a crash (bin/respawn), and Ctrl-C still stops them all at once."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT

RESPAWN = str(ROOT / "bin" / "respawn")
HONCHO = str(Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "honcho")


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {timeout}s"
        time.sleep(0.05)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A child that exited but was not reaped yet (a zombie) counts as gone.
    return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"


def _default_interrupts() -> None:
    # As under honcho or a terminal. A suite started in the background of a non-interactive shell inherits
    # SIGINT ignored, and a shell cannot trap a signal ignored when it started.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def respawn(name: str, command: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [RESPAWN, name, "sh", "-c", command],
        cwd=ROOT,
        env={**os.environ, "FLOWNOVA_RESPAWN_MAX_DELAY": "1", **env},
        stderr=subprocess.PIPE,
        preexec_fn=_default_interrupts,
    )


def test_every_procfile_process_runs_under_respawn() -> None:
    entries = [line.split(":", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()]
    assert {name for name, _ in entries} == {"web", "worker", "io", "beat", "flower"}
    for name, command in entries:
        assert command.split()[:2] == ["bin/respawn", name], command


def test_every_compose_service_is_restarted_and_flower_has_no_default_password() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        assert service.get("restart") == "unless-stopped", name
    # Compose refuses to start (naming the variable) rather than publish a password everybody knows.
    auth = compose["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert auth.startswith("${FLOWER_BASIC_AUTH:?") and "change-me" not in auth


def test_a_command_that_exits_is_started_again_with_a_log_line(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    wrapper = respawn("flaky", f"echo started >> {marker}; exit 3")
    try:
        wait_until(lambda: len(lines(marker)) >= 3, 10, "three starts")
        assert wrapper.poll() is None
    finally:
        wrapper.send_signal(signal.SIGTERM)
        _, stderr = wrapper.communicate(timeout=5)
    log = stderr.decode()
    assert "respawn[flaky]: 'sh -c echo started" in log
    assert "exited with status 3 after 0s; starting it again in 1s" in log


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_command_and_the_loop_at_once(tmp_path: Path, signum: int) -> None:
    pid_file = tmp_path / "pid"
    wrapper = respawn("steady", f"echo $$ > {pid_file}; exec sleep 300")
    wait_until(lambda: bool(lines(pid_file)), 10, "the command started")
    child = int(lines(pid_file)[0])
    started = time.monotonic()
    wrapper.send_signal(signum)
    wrapper.wait(timeout=5)
    assert time.monotonic() - started < 2
    wait_until(lambda: not alive(child), 2, "the command stopped")
    assert wrapper.returncode == 128 + signal.SIGTERM  # sleep was ended by the SIGTERM passed on
    assert wrapper.stderr is not None
    assert "starting it again" not in wrapper.stderr.read().decode()


def test_a_signal_during_the_wait_before_a_restart_stops_the_loop(tmp_path: Path) -> None:
    marker = tmp_path / "starts"
    wrapper = respawn("crashing", f"echo started >> {marker}; exit 1", FLOWNOVA_RESPAWN_MAX_DELAY="30")
    wait_until(lambda: len(lines(marker)) >= 3, 15, "three starts")  # now waiting 4 s before the next one
    wrapper.send_signal(signal.SIGTERM)
    wrapper.wait(timeout=2)
    time.sleep(1)
    assert len(lines(marker)) == 3


def test_under_honcho_a_crashed_process_comes_back_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    """What `bin/start` does: honcho runs the Procfile; without respawn it stopped everything when one ended."""
    marker, pid_file = tmp_path / "starts", tmp_path / "pid"
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        f"crashing: bin/respawn crashing sh -c 'echo started >> {marker}; sleep 0.2; exit 1'\n"
        f"steady: bin/respawn steady sh -c 'echo $$ > {pid_file}; exec sleep 300'\n"
    )
    honcho = subprocess.Popen(
        [HONCHO, "start", "-f", str(procfile), "-d", str(ROOT)],
        cwd=ROOT,
        env={**os.environ, "FLOWNOVA_RESPAWN_MAX_DELAY": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(lambda: len(lines(marker)) >= 3 and bool(lines(pid_file)), 15, "three starts under honcho")
        assert honcho.poll() is None
        steady = int(lines(pid_file)[0])
        assert alive(steady)
        started = time.monotonic()
        honcho.send_signal(signal.SIGINT)  # Ctrl-C
        output, _ = honcho.communicate(timeout=10)
        assert time.monotonic() - started < 3, output.decode()
        wait_until(lambda: not alive(steady), 2, "the steady process stopped")
    finally:
        if honcho.poll() is None:
            honcho.kill()
    text = output.decode()
    assert "exited with status 1" in text and "starting it again" in text
    assert "sending SIGKILL" not in text  # everything stopped on the SIGTERM, within honcho's grace period
