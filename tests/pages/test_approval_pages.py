"""The approvals inbox and deciding from pages, against real runs on the real worker; the /ws/approvals/
stream with session cookies. Personas: alice owns the runs, bob is an assignee, mallory is an outsider."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import reverse

from approvals.models import ApprovalRequest
from flownova.asgi import application
from runs.events import run_transition
from tests.engine_helpers import graph_of, ledger, start, wait_for
from tests.factories import make_run, make_workflow

pytestmark = pytest.mark.django_db(transaction=True)

HTMX = {"HTTP_HX_REQUEST": "true"}
ORIGIN = "http://localhost"


def ask(**data: object) -> dict[str, Any]:
    node = {"message": "Refund {{input.amount}}?", **data}
    return graph_of(
        [("start", "start", {}), ("ask", "user_approval", node), ("yes", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )


def waiting(owner, graph: dict[str, Any]):  # type: ignore[no-untyped-def]
    run = wait_for(start(owner, graph, {"amount": 120}), "waiting")
    return run, ApprovalRequest.objects.get(run=run)


@pytest.mark.worker
def test_inbox_decide_resumes_the_run_and_a_second_click_is_already_decided(  # type: ignore[no-untyped-def]
    client, alice, mallory, make_user, celery_worker
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
def test_decide_from_the_run_page_and_refusals_are_messages(client, alice, make_user, celery_worker) -> None:  # type: ignore[no-untyped-def]
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


# --- the /ws/approvals/ stream -------------------------------------------------------------------------------


def connect(*, cookie: str | None = None, origin: str | None = ORIGIN) -> WebsocketCommunicator:
    headers = []
    if origin:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return WebsocketCommunicator(application, "/ws/approvals/", headers=headers)


def pending_request(owner):  # type: ignore[no-untyped-def]
    run = make_run(make_workflow(owner), status="waiting")
    return ApprovalRequest.objects.create(run=run, node_id="ask", message=f"for {owner.username}")


def announce(approval: ApprovalRequest) -> None:
    with run_transition(approval.run_id) as tx:
        tx.emit("approval_needed", approval.node_id, {"approval_id": approval.pk, "message": approval.message})


def test_approvals_stream_sends_a_user_only_the_requests_they_may_see(client, alice, mallory) -> None:  # type: ignore[no-untyped-def]
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


def test_approvals_stream_refuses_anonymous_and_foreign_origins(client, alice) -> None:  # type: ignore[no-untyped-def]
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
