"""Every page form that takes JSON refuses what PostgreSQL can't store, and JSON that Python can't read, with a
400 naming the problem next to the field: never a 500, and nothing stored changes.

The pages: the create-from-JSON form, the import, the run form on a workflow's page, the approvals inbox's edit
fields and the resume page. The cases: NUL characters (in text and in keys), unpaired surrogates, NaN and
Infinity, numbers too large to be finite, integers longer than Python converts, and nesting deeper than the
limit and deeper than the parser goes."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils.html import escape
from rest_framework.test import APIClient

from approvals.models import ApprovalRequest
from runs.models import LedgerEntry, NodeRun, Run
from tests.engine_helpers import graph_of
from tests.factories import make_run, make_workflow
from workflows.models import Workflow

pytestmark = pytest.mark.django_db

NUL = "text may not contain NUL characters (\\u0000)"


@dataclass(frozen=True)
class Case:
    """A hostile JSON value, and what must be said about it: `message`, for the text as a whole when
    `parsing`, else for the value at `path` within it ("" is the value itself; None: somewhere inside)."""

    value: str
    message: str
    path: str | None = ""
    parsing: bool = False

    def said(self, prefix: str) -> str:
        """`<path to the value>: <message>` for a value the page puts at `prefix`, as the pages and the API
        name a field; only the message when the text as a whole is at fault or the place is not known."""
        if self.parsing or self.path is None:
            return self.message
        path = f"{prefix}{self.path}" if prefix else self.path.removeprefix(".")
        return f"{path}: {self.message}" if path else self.message


CASES = {
    "nul in text": Case('"a\\u0000b"', NUL),
    "nul in a key": Case('{"k\\u0000": 1}', NUL, ".k\\u0000"),
    "high surrogate alone": Case('"smile \\ud83d"', "text may not contain an unpaired surrogate (\\ud83d)"),
    "low surrogate alone": Case('["ok", "\\ude00"]', "text may not contain an unpaired surrogate (\\ude00)", "[1]"),
    "NaN": Case("NaN", "NaN is not valid JSON (numbers must be finite)", parsing=True),
    "Infinity": Case("Infinity", "Infinity is not valid JSON (numbers must be finite)", parsing=True),
    "-Infinity": Case("-Infinity", "-Infinity is not valid JSON (numbers must be finite)", parsing=True),
    "1e400": Case("1e400", "the number is too large (it would be infinite)"),
    "-1e400 in a list": Case("[1, -1e400]", "the number is too large (it would be infinite)", "[1]"),
    "5000-digit integer": Case("9" * 5000, "the number has 5000 digits; at most 4300 are allowed"),
    # Where the limit is crossed depends on how deep the page puts the value.
    "nested past the limit": Case("[" * 70 + "]" * 70, "the JSON is nested more than 64 levels deep", None),
    "nested past the parser": Case("[" * 100_000 + "]" * 100_000, "the document is nested too deeply.", parsing=True),
}


# --- the pages ------------------------------------------------------------------------------------------------

WAIT_FOR_APPROVAL = graph_of(
    [
        ("start", "start", {}),
        ("ask", "user_approval", {"message": "Refund {{input.amount}}?", "editable_fields": ["amount"]}),
        ("yes", "end", {}),
        ("no", "end", {}),
    ],
    [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
)


def graph_holding(value: str) -> str:
    """A valid graph whose end node's output holds `value` (JSON text, pasted as is)."""
    return (
        '{"nodes": [{"id": "start", "type": "start", "data": {}}, '
        '{"id": "end", "type": "end", "data": {"output": {"v": ' + value + "}}}], "
        '"edges": [{"id": "e0", "source": "start", "target": "end"}]}'
    )


@dataclass
class Page:
    """Posts a hostile value through one page; `prefix` is the path the page's message gives the value."""

    post: Callable[[Client, Any, str], Any]
    prefix: str
    say: Callable[[str], str]  # the page's whole message around "<path>: <message>"


def stored_state() -> dict[str, Any]:
    return {
        "workflows": list(Workflow.objects.order_by("pk").values_list("pk", "name", "version")),
        "runs": list(Run.objects.order_by("pk").values_list("pk", "status", "input")),
        "approvals": list(ApprovalRequest.objects.order_by("pk").values_list("pk", "status", "edits")),
        "ledger": LedgerEntry.objects.count(),
    }


def post_create(client: Client, alice: Any, value: str) -> Any:
    return client.post(
        reverse("workflow_create"), {"name": "Hostile", "description": "", "graph": graph_holding(value)}
    )


def post_import(client: Client, alice: Any, value: str) -> Any:
    document = '{"name": "Hostile", "description": "", "graph": ' + graph_holding(value) + "}"
    upload = SimpleUploadedFile("hostile.json", document.encode())
    return client.post(reverse("workflow_import"), {"file": upload})


def post_run_form(client: Client, alice: Any, value: str) -> Any:
    workflow = Workflow.objects.get(name="Target")
    url = reverse("workflow_detail", args=[workflow.pk])
    return client.post(url, {"input_mode": "json", "input_json": '{"v": ' + value + "}"})


def post_approval_edit(client: Client, alice: Any, value: str) -> Any:
    approval = ApprovalRequest.objects.get(status="pending")
    url = reverse("approval_decide", args=[approval.pk])
    return client.post(
        url, {"decision": "approved", "edit__amount": value}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="approvals-list"
    )


def post_resume(client: Client, alice: Any, value: str) -> Any:
    run = Run.objects.get(workflow__name="Recorded")
    url = reverse("run_resume", args=[run.pk])
    return client.post(url, {"node_id": "end", "version": "same", "input": '{"v": ' + value + "}"})


PAGES = {
    "create from JSON": Page(post_create, "nodes[1].data.output.v", lambda where: where),
    "import": Page(post_import, "graph.nodes[1].data.output.v", lambda where: f"The file can't be imported: {where}"),
    "run form": Page(post_run_form, "v", lambda where: f"The input can't be used: {where}"),
    "approval edit": Page(post_approval_edit, "", lambda where: f'Edit of "amount": {where}'),
    "resume": Page(post_resume, "v", lambda where: f"Input can't be used: {where}"),
}


@pytest.fixture
def targets(alice: User) -> None:
    """What the pages act on, as rows (no worker needed): a workflow to run, a run waiting for alice's approval
    of an editable amount, and a finished run to resume."""
    make_workflow(alice, name="Target")
    waiting = make_run(make_workflow(alice, name="Approve", graph=WAIT_FOR_APPROVAL), status="waiting")
    NodeRun.objects.create(run=waiting, node_id="ask", node_type="user_approval", status="waiting", input={"amount": 1})
    ApprovalRequest.objects.create(
        run=waiting, node_id="ask", message="Refund 1?", data={"amount": 1}, editable_fields=["amount"]
    )
    recorded = make_run(make_workflow(alice, name="Recorded"), input={"n": 1}, status="succeeded")
    for seq, node_id in enumerate(["start", "end"], start=1):
        NodeRun.objects.create(run=recorded, node_id=node_id, node_type=node_id, status="succeeded", input={"n": 1})
        LedgerEntry.objects.create(
            run=recorded, seq=seq, node_id=node_id, node_type=node_id, status="succeeded", input={"n": 1}
        )


@pytest.mark.parametrize("case_name", list(CASES))
@pytest.mark.parametrize("page_name", list(PAGES))
def test_hostile_json_is_400_naming_the_problem_and_changes_nothing(
    client: Client, alice: User, targets: None, page_name: str, case_name: str
) -> None:
    page, case = PAGES[page_name], CASES[case_name]
    client.force_login(alice)
    before = stored_state()

    response = page.post(client, alice, case.value)

    assert response.status_code == 400, response.content.decode()[:2000]
    html = response.content.decode()
    if case.path is None:
        assert escape(page.say("")) in html and escape(case.message) in html
    else:
        assert escape(page.say(case.said(page.prefix))) in html
    assert stored_state() == before


def test_the_same_reader_serves_the_api(alice: User) -> None:
    """The API names the same problems: it reads bodies with the same function."""
    client = APIClient()
    client.force_authenticate(alice)
    workflow = make_workflow(alice, name="Target")
    url = f"/api/workflows/{workflow.pk}/runs/"
    for case in CASES.values():
        response = client.post(url, '{"input": {"v": ' + case.value + "}}", content_type="application/json")
        assert response.status_code == 400
        detail = response.json()["detail"]
        if case.parsing:
            assert detail == f"JSON parse error: {case.message}"
        else:
            assert detail.endswith(case.said("input.v"))
    assert not Run.objects.exists()


def test_json_the_pages_accept_still_works(client: Client, alice: User, targets: None) -> None:
    """Big but finite numbers, long integers within the limit, an emoji (a surrogate pair) and 56 levels."""
    client.force_login(alice)
    value = json.dumps(
        {"n": 1e300, "i": int("9" * 4300), "s": "smile \U0001f600", "deep": json.loads("[" * 50 + "]" * 50)}
    )
    created = post_create(client, alice, value)
    assert created.status_code == 302, (created.context["form"].errors, created.context["issues"])
    workflow = Workflow.objects.get(name="Hostile")
    data = workflow.graph_document()["nodes"][1]["data"]
    assert isinstance(data, dict) and data["output"]["v"]["s"] == "smile \U0001f600"
    started = post_run_form(client, alice, value)
    assert started.status_code == 302
    assert Run.objects.get(pk=int(started.url.rstrip("/").rsplit("/", 1)[1])).input["v"]["i"] == int("9" * 4300)
