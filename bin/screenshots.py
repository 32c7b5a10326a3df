"""The README's pictures (bin/screenshots): the editor with an example workflow, and a run page.

Drives Debian's Chromium with Playwright (its own browser download is not used), as the browser tests do. It
uses FlowNova at --url when /readyz answers ok there, else runs bin/start until the pictures are taken, and
logs in as the demo user (.flownova/demo-credentials.json, written by bin/start). The run it pictures is of an
example that needs no network or LLM, started from the run form with the example's sample input.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
CREDENTIALS = ROOT / ".flownova" / "demo-credentials.json"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The examples pictured (workflows/examples/): an agent checked by a guardrail for the editor (the agent's form
# beside it); a switch, transforms and an error path, which run on any machine, for the run page.
EDITOR_EXAMPLE = "Guarded support reply"
EDITOR_NODE = "Draft a reply"
RUN_EXAMPLE = "Order pricing (transform, switch, error path)"
RUN_NODE, RUN_NODE_ID = "Discount tier", "tier"
READY_WAIT_SECONDS = 300


def ready(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/readyz", timeout=5).json().get("status") == "ok")
    except (httpx.HTTPError, ValueError):
        return False


@contextmanager
def instance(url: str) -> Iterator[None]:
    """FlowNova answering at `url`: the one running there, or bin/start's, stopped on the way out."""
    if ready(url):
        yield
        return
    port = url.rsplit(":", 1)[-1].split("/")[0]
    print(f"Nothing ready at {url}: running bin/start (FLOWNOVA_PORT={port}) for the pictures", flush=True)
    log = (ROOT / ".flownova" / "screenshots-start.log").open("wb")
    process = subprocess.Popen(
        [str(ROOT / "bin" / "start")],
        cwd=ROOT,
        env={**os.environ, "FLOWNOVA_PORT": port},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so one signal stops honcho and everything it runs
    )
    try:
        deadline = time.monotonic() + READY_WAIT_SECONDS
        while not ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"bin/start did not get ready at {url}; see {log.name}")
            time.sleep(1)
        yield
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()


def log_in(page: Page, url: str, username: str, password: str) -> None:
    page.goto(f"{url}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda address: "/login/" not in address)


def workflow_id(page: Page, url: str, name: str) -> int:
    response = page.request.get(f"{url}/api/workflows/?page_size=100")
    for workflow in response.json()["results"]:
        if workflow["name"] == name:
            return int(workflow["id"])
    raise SystemExit(f"the demo user has no workflow named {name!r}: run `manage.py demo_setup`")


def picture_editor(page: Page, url: str, out: Path) -> Path:
    page.goto(f"{url}/workflows/{workflow_id(page, url, EDITOR_EXAMPLE)}/edit/")
    expect(page.locator(".react-flow__node")).not_to_have_count(0)
    page.locator(".react-flow__node", has_text=EDITOR_NODE).first.click()
    page.locator(".react-flow__controls-fitview").click()  # the whole graph, with the agent's form beside it
    page.wait_for_timeout(800)  # the side panel's form and the canvas settle
    path = out / "editor.png"
    page.screenshot(path=str(path))
    return path


def picture_run(page: Page, url: str, out: Path) -> Path:
    page.goto(f"{url}/workflows/{workflow_id(page, url, RUN_EXAMPLE)}/")
    page.locator("#run-form-json button[type=submit], #run-form-fields button[type=submit]").first.click()
    page.wait_for_url("**/runs/*/")
    expect(page.locator("#run-summary .badge").first).to_have_text("succeeded", timeout=60_000)
    page.wait_for_timeout(1000)  # the last node's colour and the ledger arrive over the WebSocket
    # The graph with the path taken, and the details of the node that chose it.
    page.locator("#canvas-heading").scroll_into_view_if_needed()
    node = page.locator("#run-canvas .react-flow__node", has_text=RUN_NODE).first
    expect(node).to_contain_text("succeeded")
    for _ in range(5):  # the canvas may redraw as the last events arrive, dropping a click
        node.click()
        try:
            expect(page.locator("#node-detail")).to_contain_text(f"Node {RUN_NODE_ID}", timeout=2000)
            break
        except AssertionError:
            continue
    page.locator("#run-canvas .react-flow__controls-fitview").click()
    page.evaluate("document.getElementById('canvas-heading').scrollIntoView()")
    page.wait_for_timeout(500)
    path = out / "run.png"
    page.screenshot(path=str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="where FlowNova answers (or will)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images", help="folder for the PNG files")
    parser.add_argument("--width", type=int, default=1440)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    url = args.url.rstrip("/")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).is_file():
        raise SystemExit("Chromium is needed: `sudo apt-get install -y chromium` (or set CHROMIUM to its path)")
    args.out.mkdir(parents=True, exist_ok=True)
    with instance(url):
        try:
            credentials = json.loads(CREDENTIALS.read_text())
        except (OSError, ValueError):
            raise SystemExit(f"no demo credentials in {CREDENTIALS}: run bin/start (or manage.py demo_setup)") from None
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            expect.set_options(timeout=20_000)
            log_in(page, url, credentials["username"], credentials["password"])
            for path in (picture_editor(page, url, args.out), picture_run(page, url, args.out)):
                print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
            browser.close()


if __name__ == "__main__":
    main()
