"""Which code may import which (.importlinter, docs/ARCHITECTURE.md, Apps): the apps depend one way, approvals
and triggers (side by side) > runs > workflows > tools > projects | nodes, and flownova's shared helpers import
no app, only its wiring modules do.

import-linter checks the contracts; a broken one fails the test with its report, which names every import at
fault and the chain of imports that leads to it. Needs no database.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# The modules of flownova that put the apps together, and so may import them.
WIRING = {
    "flownova.api_urls",
    "flownova.asgi",
    "flownova.celery",
    "flownova.page_urls",
    "flownova.routing",
    "flownova.settings",
    "flownova.urls",
}
WIRING_PACKAGES = ("flownova.management.commands.",)


def contracts() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def test_imports_keep_the_contracts() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), str(CONFIG), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"lint-imports found imports that break the contracts:\n{report}"


def test_the_apps_are_layered_top_to_bottom_with_no_exceptions() -> None:
    apps = contracts()["importlinter:contract:apps"]
    assert apps["type"] == "layers"
    assert lines(apps["layers"]) == ["approvals | triggers", "runs", "workflows", "tools", "projects | nodes"]
    assert "ignore_imports" not in apps, "an app may not import one above it, whatever the reason"


def test_only_flownovas_wiring_modules_may_import_apps() -> None:
    helpers = contracts()["importlinter:contract:flownova-helpers"]
    assert (helpers["type"], lines(helpers["source_modules"])) == ("forbidden", ["flownova"])
    assert set(lines(helpers["forbidden_modules"])) == {
        "approvals",
        "triggers",
        "runs",
        "workflows",
        "tools",
        "projects",
        "nodes",
    }
    importers = {line.split("->")[0].strip() for line in lines(helpers.get("ignore_imports", ""))}
    not_wiring = sorted(name for name in importers if name not in WIRING and not name.startswith(WIRING_PACKAGES))
    assert not not_wiring, f"shared helpers of flownova may not import an app: {not_wiring}"
