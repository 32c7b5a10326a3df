"""The approvals inbox and deciding from pages, against real runs on the real worker: editing fields when
approving, the pending list a page at a time, the recent decisions; the /ws/approvals/ stream with session
cookies. Personas: alice owns the runs, bob is an assignee, mallory is an outsider."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from approvals.models import ApprovalRequest
from flownova.asgi import application
from runs.events import ApprovalNeeded
from runs.models import LedgerEntry, Run
from runs.writes import run_transition
from tests.conftest import WorkerProcess
from tests.engine_helpers import graph_of, ledger, start, wait_for
from tests.factories import make_run, make_workflow

if TYPE_CHECKING:
    from django.test.client import _MonkeyPatchedWSGIResponse

pytestmark = pytest.mark.django_db(transaction=True)

HTMX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}
ORIGIN = "http://localhost"


def ask(**data: object) -> dict[str, Any]:
    node = {"message": "Refund {{input.amount}}?", **data}
    return graph_of(
        [("start", "start", {}), ("ask", "user_approval", node), ("yes", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )


def waiting(owner: User, graph: dict[str, Any], run_input: dict[str, Any] | None = None) -> tuple[Run, ApprovalRequest]:
    run = wait_for(start(owner, graph, run_input or {"amount": 120}), "waiting")
    return run, ApprovalRequest.objects.get(run=run)


@pytest.mark.worker
def test_inbox_decide_resumes_the_run_and_a_second_click_is_already_decided(
    client: Client, alice: User, mallory: User, make_user: Callable[..., User], celery_worker: WorkerProcess
) -> None:
    bob = make_user("bob")
    run, approval = waiting(alice, ask())
    _, for_bob = waiting(alice, ask(assignees=["bob"]))
    decide_url = reverse("approval_decide", args=[approval.pk])

    # The outsider sees nothing, and deciding alice's request is a 404 that changes nothing.
    client.force_login(mallory)
    assert client.get(reverse("approval_inbox")).context["approvals"] == []
    assert client.post(decide_url, {"decision": "approved"}).status_code == 404
    assert client.post(decide_url, {"decision": "approved"}, HTTP_HX_TARGET="approvals-list", **HTMX).status_code == 404
    approval.refresh_from_db()
    assert approval.status == "pending"

    # bob sees only the request assigned to him.
    client.force_login(bob)
    assert [a.pk for a in client.get(reverse("approval_inbox")).context["approvals"]] == [for_bob.pk]

    client.force_login(alice)
    page = client.get(reverse("approval_inbox"))
    # An assigned request is the assignees' to see, not the owner's.
    assert [a.pk for a in page.context["approvals"]] == [approval.pk]
    html = page.content.decode()
    assert "Refund 120?" in html and f'href="{reverse("run_detail", args=[run.pk])}"' in html
    assert f'hx-post="{decide_url}"' in html and 'for="comment-' in html
    count = client.get(reverse("approval_inbox"), HTTP_HX_TARGET="approvals-count", **HTMX).content.decode()
    assert count.strip().startswith('<span id="approvals-count"') and ">1</span>" in count

    response = client.post(
        decide_url, {"decision": "approved", "comment": "fine"}, HTTP_HX_TARGET="approvals-list", **HTMX
    )
    assert response.status_code == 200
    fragment = response.content.decode()
    assert fragment.startswith('<div id="approvals-list"') and "Approved: the run resumes." in fragment
    assert wait_for(run).status == "succeeded"
    assert ("yes", "succeeded") in ledger(run)
    approval.refresh_from_db()
    assert (approval.decided_by, approval.comment) == (alice, "fine")

    again = client.post(decide_url, {"decision": "rejected"}, HTTP_HX_TARGET="approvals-list", **HTMX)
    assert again.status_code == 409 and "Already decided by alice: approved." in again.content.decode()
    plain = client.post(decide_url, {"decision": "rejected"})
    assert plain.status_code == 409 and "Already decided" in plain.content.decode()


@pytest.mark.worker
def test_decide_from_the_run_page_and_refusals_are_messages(
    client: Client, alice: User, make_user: Callable[..., User], celery_worker: WorkerProcess
) -> None:
    make_user("bob")
    run, approval = waiting(alice, ask())
    client.force_login(alice)
    run_url = reverse("run_detail", args=[run.pk])
    page = client.get(run_url).content.decode()
    assert 'id="run-approvals"' in page and 'hx-target="#run-approvals"' in page and "Refund 120?" in page
    response = client.post(
        reverse("approval_decide", args=[approval.pk]), {"decision": "rejected", "comment": "no", "next": run_url}
    )
    assert response.status_code == 302 and response["Location"] == run_url
    assert wait_for(run).status == "succeeded" and ("no", "succeeded") in ledger(run)
    assert "Rejected: the run resumes." in client.get(run_url).content.decode()

    # alice is an assignee of a request of her own run that forbids self-approval: she sees it, but deciding
    # it is a 403 and changes nothing.
    other_run, not_self = waiting(alice, ask(assignees=["alice", "bob"], allow_self_approval=False))
    url = reverse("approval_decide", args=[not_self.pk])
    assert (
        "You may see this request but not decide it."
        in client.get(reverse("run_detail", args=[other_run.pk])).content.decode()
    )
    refused = client.post(url, {"decision": "approved"}, HTTP_HX_TARGET="run-approvals", **HTMX)
    assert refused.status_code == 403 and "you may not decide it" in refused.content.decode()
    assert refused.content.decode().startswith('<section id="run-approvals"')
    # bob's own request on alice's run is not hers to see, but her run page says the run waits on it.
    bobs_run, _ = waiting(alice, ask(assignees=["bob"]))
    assert (
        "Waiting for 1 approval by its assignees."
        in client.get(reverse("run_detail", args=[bobs_run.pk])).content.decode()
    )
    assert client.post(url, {"decision": "approved"}).status_code == 403
    assert client.post(url, {"decision": "maybe"}).status_code == 400
    not_self.refresh_from_db()
    other_run.refresh_from_db()
    assert not_self.status == "pending" and other_run.status == "waiting"


# --- editing fields when approving ----------------------------------------------------------------------------


@pytest.mark.worker
def test_edit_on_approve_from_the_inbox_bad_input_names_the_field_and_changes_nothing(
    client: Client, alice: User, celery_worker: WorkerProcess
) -> None:
    run, approval = waiting(alice, ask(editable_fields=["amount"]), {"amount": 120, "customer": "Ann"})
    _, plain = waiting(alice, ask())
    client.force_login(alice)
    html = client.get(reverse("approval_inbox")).content.decode()
    # One JSON field per editable name, holding the current value; a request without editable fields has none.
    assert html.count('name="edit__amount"') == 1 and f'id="edit-{approval.pk}-approvals-list-0"' in html
    described = f'aria-describedby="edit-{approval.pk}-approvals-list-0-error" hx-preserve="true">120</textarea>'
    assert described in html
    assert f'id="edit-{plain.pk}-' not in html

    url = reverse("approval_decide", args=[approval.pk])

    def post(**data: str) -> _MonkeyPatchedWSGIResponse:
        return client.post(url, {"decision": "approved", **data}, HTTP_HX_TARGET="approvals-list", **HTMX)

    bad = post(edit__amount="ninety")
    assert bad.status_code == 400
    fragment = bad.content.decode()
    message = "Edit of &quot;amount&quot;: not valid JSON (Expecting value); text needs double quotes"
    assert fragment.startswith('<div id="approvals-list"') and message in fragment
    assert f'<p class="field-error" id="edit-{approval.pk}-approvals-list-0-error" role="alert">{message}' in fragment
    assert 'class="field has-error"' in fragment and "approvals-recent" not in fragment
    assert "give a JSON value (null for none)" in post(edit__amount="  ").content.decode()
    too_deep = post(edit__amount="[" * 100_000 + "]" * 100_000)
    assert too_deep.status_code == 400 and "nested too deeply" in too_deep.content.decode()
    # Which fields may change is the request's call, enforced by the service.
    other = post(edit__amount="90", edit__customer='"Bob"')
    assert other.status_code == 400
    assert "these fields may not be edited: customer (editable: amount)" in other.content.decode()
    # A plain form post gets the refusal page with the same message.
    refused = client.post(url, {"decision": "approved", "edit__amount": "{"})
    assert refused.status_code == 400 and "Edit of &quot;amount&quot;: not valid JSON" in refused.content.decode()
    approval.refresh_from_db()
    run.refresh_from_db()
    assert approval.status == "pending" and run.status == "waiting"

    done = post(edit__amount="90", comment="capped")
    assert done.status_code == 200
    fragment = done.content.decode()
    assert "Approved with your edits: the run resumes." in fragment
    # The decision shows at once in the recent decisions, swapped out of band, with the change.
    assert '<section id="approvals-recent"' in fragment and 'hx-swap-oob="true"' in fragment
    assert f'id="decided-{approval.pk}"' in fragment
    assert "edited <code>amount</code>: <code>120</code> → <code>90</code>" in fragment
    run = wait_for(run)
    change = {"by": "alice", "changes": {"amount": {"from": 120, "to": 90}}}
    assert run.status == "succeeded" and run.output is not None
    assert run.output["amount"] == 90 and run.output["customer"] == "Ann"
    entry = LedgerEntry.objects.get(run=run, node_id="ask", status="succeeded")
    assert entry.output is not None
    assert entry.output["approval"]["edits"] == change and entry.output["approval"]["comment"] == "capped"
    approval.refresh_from_db()
    assert approval.edits == change


@pytest.mark.worker
def test_edit_on_approve_from_the_run_page_and_a_rejection_ignores_the_edit_fields(
    client: Client, alice: User, celery_worker: WorkerProcess
) -> None:
    graph = ask(editable_fields=["amount", "customer"], show={"amount": "{{input.amount}}"})
    run, approval = waiting(alice, graph, {"amount": 120, "customer": "Ann"})
    client.force_login(alice)
    run_url = reverse("run_detail", args=[run.pk])
    page = client.get(run_url).content.decode()
    # A field the `show` template leaves out still starts from the node's input.
    assert 'name="edit__amount"' in page and 'name="edit__customer"' in page
    assert 'hx-preserve="true">&quot;Ann&quot;</textarea>' in page

    url = reverse("approval_decide", args=[approval.pk])
    bad = client.post(
        url,
        {"decision": "approved", "edit__amount": "120", "edit__customer": "Bob"},
        HTTP_HX_TARGET="run-approvals",
        **HTMX,
    )
    assert bad.status_code == 400
    fragment = bad.content.decode()
    assert fragment.startswith('<section id="run-approvals"')
    assert f'id="edit-{approval.pk}-run-approvals-1-error" role="alert">Edit of &quot;customer&quot;' in fragment

    good = client.post(
        url,
        {"decision": "approved", "edit__amount": "120", "edit__customer": '"Bob"', "next": run_url},
        HTTP_HX_TARGET="run-approvals",
        **HTMX,
    )
    assert good.status_code == 200 and "Approved with your edits: the run resumes." in good.content.decode()
    run = wait_for(run)
    # Only what really changed is kept in the diff.
    assert run.output is not None and run.output["customer"] == "Bob"
    assert run.output["approval"]["edits"] == {"by": "alice", "changes": {"customer": {"from": "Ann", "to": "Bob"}}}
    assert "edited <code>customer</code>: <code>&quot;Ann&quot;</code> → <code>&quot;Bob&quot;</code>" in (
        client.get(run_url).content.decode()
    )

    # Rejecting with the edit fields in the form (they always are) is a plain rejection, whatever they hold.
    other_run, other = waiting(alice, ask(editable_fields=["amount"]))
    rejected = client.post(
        reverse("approval_decide", args=[other.pk]),
        {"decision": "rejected", "edit__amount": "not json"},
        HTTP_HX_TARGET="run-approvals",
        **HTMX,
    )
    assert rejected.status_code == 200 and "Rejected: the run resumes." in rejected.content.decode()
    other_output = wait_for(other_run).output
    assert other_output is not None and other_output["approval"]["decision"] == "rejected"
    other.refresh_from_db()
    assert other.edits is None


# --- the pending list, a page at a time, and the recent decisions -------------------------------------------


def test_the_inbox_shows_pending_requests_25_a_page(client: Client, alice: User, mallory: User) -> None:
    workflow = make_workflow(alice)
    requests = [
        ApprovalRequest.objects.create(run=make_run(workflow, status="waiting"), node_id="ask", message=f"req {i}")
        for i in range(30)
    ]
    pending_request(mallory)
    newest_first = [r.pk for r in reversed(requests)]
    client.force_login(alice)
    url = reverse("approval_inbox")

    first = client.get(url)
    assert [a.pk for a in first.context["approvals"]] == newest_first[:25]
    html = first.content.decode()
    assert "30 pending requests; showing 1 to 25." in html and "Page 1 of 2" in html
    assert f'href="?page=2" hx-get="{url}?page=2" hx-target="#approvals-list"' in html and 'rel="prev"' not in html

    # The next page as the part HTMX swaps in; it refreshes itself (live) on the same page.
    second = client.get(url, {"page": "2"}, HTTP_HX_TARGET="approvals-list", **HTMX)
    fragment = second.content.decode()
    assert fragment.startswith(f'<div id="approvals-list" hx-get="{url}?page=2"')
    assert [a.pk for a in second.context["approvals"]] == newest_first[25:]
    assert "showing 26 to 30." in fragment and 'rel="prev"' in fragment and 'rel="next"' not in fragment
    assert "<html" not in fragment and "approvals-recent" not in fragment
    # A decision posted from page 2 comes back to page 2, and without JavaScript redirects there.
    assert '<input type="hidden" name="page" value="2">' in fragment
    assert f'<input type="hidden" name="next" value="{url}?page=2">' in fragment

    # Out of range or not a number: the nearest page, not an error.
    assert [a.pk for a in client.get(url, {"page": "99"}).context["approvals"]] == newest_first[25:]
    assert [a.pk for a in client.get(url, {"page": "x"}).context["approvals"]] == newest_first[:25]
    count = client.get(url, HTTP_HX_TARGET="approvals-count", **HTMX).content.decode()
    assert ">30</span>" in count


def test_recently_decided_lists_the_last_decisions_the_user_may_see(
    client: Client, alice: User, mallory: User, make_user: Callable[..., User]
) -> None:
    bob = make_user("bob")
    workflow = make_workflow(alice, name="Refunds")
    now = timezone.now()

    def decided(minutes_ago: int, **fields: Any) -> ApprovalRequest:
        fields.setdefault("status", fields.get("decision", "approved"))
        return ApprovalRequest.objects.create(
            run=make_run(workflow, status="succeeded"),
            node_id="ask",
            message="Refund?",
            decided_at=now - timedelta(minutes=minutes_ago),
            **fields,
        )

    by_bob = decided(1, decision="approved", decided_by=bob, comment="fine by me")
    edited = decided(
        2,
        decision="approved",
        decided_by=alice,
        edits={"by": "alice", "changes": {"amount": {"from": 120, "to": 90}}},
    )
    by_deadline = decided(3, decision="rejected", decided_by_timeout=True, comment="no decision before the deadline")
    older = [decided(10 + i, decision="rejected", decided_by=alice) for i in range(10)]
    decided(0, status="cancelled")  # closed because its run ended: not a decision
    pending_request(alice)
    ApprovalRequest.objects.create(
        run=make_run(make_workflow(mallory), status="succeeded"),
        node_id="ask",
        status="approved",
        decision="approved",
        decided_by=mallory,
        decided_at=now,
        comment="mallory's own",
    )

    client.force_login(alice)
    page = client.get(reverse("approval_inbox"))
    expected = [by_bob.pk, edited.pk, by_deadline.pk] + [a.pk for a in older[:7]]
    assert [a.pk for a in page.context["recent"]] == expected  # the last 10, newest first
    html = page.content.decode()
    assert "Recently decided" in html and "mallory&#x27;s own" not in html
    row = html.split(f'<tr id="decided-{by_bob.pk}">')[1].split("</tr>")[0]
    assert 'class="badge status-approved"' in row and "<td>bob</td>" in row and "fine by me" in row
    assert f'<a href="{reverse("run_detail", args=[by_bob.run_id])}">Run #{by_bob.run_id}</a>' in row
    assert by_bob.decided_at is not None
    assert f'datetime="{by_bob.decided_at.isoformat()}"' in row.replace("+00:00", "+00:00")
    row = html.split(f'<tr id="decided-{by_deadline.pk}">')[1].split("</tr>")[0]
    assert "status-rejected" in row and "<td>the deadline</td>" in row
    assert "edited <code>amount</code>: <code>120</code> → <code>90</code>" in html

    # The part HTMX refreshes when a decision is announced.
    part = client.get(reverse("approval_inbox"), HTTP_HX_TARGET="approvals-recent", **HTMX).content.decode()
    assert part.startswith('<section id="approvals-recent"') and "hx-swap-oob" not in part
    client.force_login(mallory)
    assert [a.comment for a in client.get(reverse("approval_inbox")).context["recent"]] == ["mallory's own"]


# --- the /ws/approvals/ stream -------------------------------------------------------------------------------


def connect(*, cookie: str | None = None, origin: str | None = ORIGIN) -> WebsocketCommunicator:
    headers = []
    if origin:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, "/ws/approvals/", headers=headers)


def pending_request(owner: User) -> ApprovalRequest:
    run = make_run(make_workflow(owner), status="waiting")
    return ApprovalRequest.objects.create(run=run, node_id="ask", message=f"for {owner.username}")


def announce(approval: ApprovalRequest) -> None:
    with run_transition(approval.run_id) as tx:
        tx.emit(
            ApprovalNeeded(
                node_id=approval.node_id,
                approval_id=approval.pk,
                message=approval.message,
                assignees=[],
                deadline=None,
            )
        )


def test_approvals_stream_sends_a_user_only_the_requests_they_may_see(
    client: Client, alice: User, mallory: User
) -> None:
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}"
    theirs, mine = pending_request(mallory), pending_request(alice)

    async def scenario() -> list[dict[str, Any]]:
        communicator = connect(cookie=cookie)
        connected, _ = await communicator.connect()
        assert connected
        await database_sync_to_async(announce)(theirs)
        await database_sync_to_async(announce)(mine)
        received = [await communicator.receive_json_from(timeout=5)]
        assert await communicator.receive_nothing(timeout=0.5)
        await communicator.disconnect()
        return received

    received = async_to_sync(scenario)()
    assert [(m["type"], m["data"]["approval_id"]) for m in received] == [("approval_needed", mine.pk)]


def test_approvals_stream_refuses_anonymous_and_foreign_origins(client: Client, alice: User) -> None:
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}"

    async def attempt(**kwargs: Any) -> bool:
        communicator = connect(**kwargs)
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        return connected

    assert async_to_sync(attempt)() is False  # no session: anonymous
    assert async_to_sync(attempt)(cookie=cookie, origin="https://evil.example") is False
    assert async_to_sync(attempt)(cookie=cookie) is True
