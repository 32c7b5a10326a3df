"""Approvals as governed decisions: who may decide, exactly one decision, deadlines, edits, parallel requests."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.authtoken.models import Token

from approvals.models import ApprovalRequest
from approvals.services import (
    ApprovalAlreadyDecided,
    ApprovalError,
    ApprovalForbidden,
    approval_can_decide,
    approval_decide,
    approval_for_decider,
    approvals_expire_overdue,
)
from runs.models import LedgerEntry, NodeRun, Run, RunEvent
from runs.services import node_runs_recover
from tests.conftest import WorkerProcess, free_port, service_env, start_daphne, stop_process
from tests.engine_helpers import graph_of, ledger, start, wait_for

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def worker(celery_worker: WorkerProcess) -> WorkerProcess:
    return celery_worker


def ask(**data: object) -> dict[str, Any]:
    node = {"message": "Refund {{input.amount}}?", **data}
    return graph_of(
        [("start", "start", {}), ("ask", "user_approval", node), ("yes", "end", {}), ("no", "end", {})],
        [("start", "ask"), ("ask", "yes", "approved"), ("ask", "no", "rejected")],
    )


# A node that runs on a worker, not in the process that decides (which begins control-flow nodes itself).
WORK = {"expression": '{"done": true}'}


def waiting(owner: User, graph: dict[str, Any], run_input: dict[str, Any] | None = None) -> tuple[Run, ApprovalRequest]:
    run = wait_for(start(owner, graph, run_input or {"amount": 120}), "waiting")
    return run, ApprovalRequest.objects.get(run=run)


def test_who_may_decide(alice: User, mallory: User, make_user: Callable[..., User]) -> None:
    bob, carol, staff = make_user("bob"), make_user("carol"), make_user("sam", staff=True)
    reviewers = Group.objects.create(name="reviewers")
    carol.groups.add(reviewers)
    _, by_owner = waiting(alice, ask())
    _, assigned = waiting(alice, ask(assignees=["bob", "reviewers"]))
    _, not_self = waiting(alice, ask(assignees=["bob"], allow_self_approval=False))
    # No assignee: the workflow's owner (and staff).
    assert approval_can_decide(approval=by_owner, user=alice) and approval_can_decide(approval=by_owner, user=staff)
    assert not approval_can_decide(approval=by_owner, user=bob)
    # Assignees: a named user and a member of a named group; not the owner, not an outsider.
    assert approval_can_decide(approval=assigned, user=bob) and approval_can_decide(approval=assigned, user=carol)
    assert not approval_can_decide(approval=assigned, user=mallory)
    assert not approval_can_decide(approval=not_self, user=alice)
    with pytest.raises(ApprovalForbidden):
        approval_decide(approval_id=assigned.pk, user=mallory, decision="approved")
    assigned.refresh_from_db()
    assert assigned.status == "pending"  # the refusal changed nothing


def test_two_decisions_at_the_same_instant_one_wins_one_conflicts_one_resume_50_times(alice: User) -> None:
    from runs.services import run_start
    from tests.factories import make_workflow

    workflow = make_workflow(alice, graph=ask())
    runs = [run_start(workflow=workflow, input={"amount": i}, user=alice) for i in range(50)]
    for run in runs:
        wait_for(run, "waiting", timeout=60)
    for run in runs:
        assert sorted(race(ApprovalRequest.objects.get(run=run), alice)) == ["200", "409"]
    for run in runs:
        wait_for(run, timeout=60)
        assert run.status == "succeeded"
        entries = ledger(run)
        assert [node for node, status in entries if status == "succeeded"].count("ask") == 1
        assert entries[-1][0] in ("yes", "no") and len([n for n, _ in entries if n in ("yes", "no")]) == 1
        assert RunEvent.objects.filter(run=run, type="approval_decided").count() == 1


def race(approval: ApprovalRequest, user: User) -> list[str]:
    """Two decisions released at the same instant from two threads (two database connections)."""
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def decide(decision: str) -> None:
        barrier.wait()
        try:
            approval_decide(approval_id=approval.pk, user=user, decision=decision)
            outcomes.append("200")
        except ApprovalAlreadyDecided:
            outcomes.append("409")
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(decision,)) for decision in ("approved", "rejected")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def overdue(approval: ApprovalRequest) -> None:
    """The deadline passes without the task sent for it (an hour away, it was not sent yet): only the periodic
    scan applies it. On time, through that task: tests/test_approval_deadlines.py."""
    ApprovalRequest.objects.filter(pk=approval.pk).update(deadline=timezone.now() - timedelta(seconds=1))


@pytest.mark.parametrize(("action", "route"), [("approve", "yes"), ("reject", "no")])
def test_a_deadline_applies_its_timeout_action_once_and_says_nobody_decided(
    alice: User, action: str, route: str
) -> None:
    run, approval = waiting(alice, ask(deadline_seconds=3600, timeout_action=action))
    assert approvals_expire_overdue() == 0  # not overdue yet
    overdue(approval)
    assert approvals_expire_overdue() == 1
    assert approvals_expire_overdue() == 0  # exactly once
    run = wait_for(run)
    assert run.status == "succeeded" and ledger(run)[-1][0] == route
    approval.refresh_from_db()
    assert approval.decided_by_timeout and approval.decided_by is None
    assert run.output is not None
    assert run.output["approval"]["decided_by"] is None and run.output["approval"]["decided_by_timeout"] is True
    with pytest.raises(ApprovalAlreadyDecided):
        approval_decide(approval_id=approval.pk, user=alice, decision="approved")


def test_a_deadline_with_the_fail_action_fails_the_run(alice: User) -> None:
    run, approval = waiting(alice, ask(deadline_seconds=3600, timeout_action="fail"))
    overdue(approval)
    assert approvals_expire_overdue() == 1
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error == 'node "ask" (user_approval) failed: nobody decided the approval before its deadline'
    approval.refresh_from_db()
    assert approval.status == "expired" and approval.decided_by_timeout


def test_an_approver_edits_allowed_fields_and_the_diff_is_in_the_ledger(alice: User) -> None:
    run, approval = waiting(alice, ask(editable_fields=["amount"]), {"amount": 120, "customer": "Ann"})
    with pytest.raises(ApprovalError, match="these fields may not be edited: customer"):
        approval_decide(approval_id=approval.pk, user=alice, decision="approved", edits={"customer": "Bob"})
    with pytest.raises(ApprovalError, match="only be edited when approving"):
        approval_decide(approval_id=approval.pk, user=alice, decision="rejected", edits={"amount": 1})
    approval_decide(approval_id=approval.pk, user=alice, decision="approved", edits={"amount": 90})
    run = wait_for(run)
    assert run.output is not None and run.output["amount"] == 90 and run.output["customer"] == "Ann"
    change = {"by": "alice", "changes": {"amount": {"from": 120, "to": 90}}}
    assert run.output["approval"]["edits"] == change
    entry = LedgerEntry.objects.get(run=run, node_id="ask", status="succeeded")
    assert entry.output is not None and entry.output["amount"] == 90 and entry.output["approval"]["edits"] == change
    approval.refresh_from_db()
    assert approval.edits == change


def test_two_parallel_approvals_are_decided_in_either_order_then_the_join_runs(alice: User) -> None:
    graph = graph_of(
        [
            ("start", "start", {}),
            ("fork", "fork", {}),
            ("legal", "user_approval", {"message": "legal"}),
            ("finance", "user_approval", {"message": "finance"}),
            ("join", "join", {}),
            ("end", "end", {}),
        ],
        [
            ("start", "fork"),
            ("fork", "legal"),
            ("fork", "finance"),
            ("legal", "join", "approved"),
            ("finance", "join", "approved"),
            # Branches that run together meet before one end node, whichever way they are decided.
            ("legal", "join", "rejected"),
            ("finance", "join", "rejected"),
            ("join", "end"),
        ],
    )
    for order in (("legal", "finance"), ("finance", "legal")):
        run = wait_for(start(alice, graph), "waiting")

        def both_asked(run: Run = run) -> bool:
            return ApprovalRequest.objects.filter(run=run).count() == 2

        wait_until(both_asked)
        first, second = (ApprovalRequest.objects.get(run=run, node_id=node) for node in order)
        approval_decide(approval_id=first.pk, user=alice, decision="approved")
        run = wait_for(run, "waiting")
        assert NodeRun.objects.get(run=run, node_id="join").status == "pending"
        approval_decide(approval_id=second.pk, user=alice, decision="approved")
        run = wait_for(run)
        assert run.status == "succeeded"
        join = LedgerEntry.objects.get(run=run, node_id="join")
        assert join.output is not None and sorted(join.output["branches"]) == ["finance", "legal"]


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        time.sleep(0.02)


def test_staff_decide_from_the_admin_with_a_comment(client: Client, alice: User, superuser: User) -> None:
    run, approval = waiting(alice, ask())
    client.force_login(superuser)
    url = reverse("admin:approvals_approvalrequest_changelist")
    page = client.post(url, {"action": "approve", "_selected_action": [approval.pk]})
    assert page.status_code == 200 and "Refund 120?" in page.content.decode()
    done = client.post(url, {"action": "approve", "_selected_action": [approval.pk], "apply": "1", "comment": "ok"})
    assert done.status_code == 302
    approval.refresh_from_db()
    assert (approval.status, approval.comment, approval.decided_by) == ("approved", "ok", superuser)
    run = wait_for(run)
    assert run.status == "succeeded" and ledger(run)[-1][0] == "yes"
    again = client.post(url, {"action": "reject", "_selected_action": [approval.pk], "apply": "1"}, follow=True)
    assert "0 request(s) rejected" in again.content.decode()


# --- deciding while Redis is down -----------------------------------------------------------------------------


@contextmanager
def private_redis(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A redis-server of this test's own on a free loopback port, which the test may stop (never the machine's)."""
    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(folder)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        wait_until(lambda: _answers(client))
        yield f"redis://127.0.0.1:{port}/0", process
    finally:
        client.close()
        stop_process(process)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


def test_decisions_committed_while_redis_is_down_answer_success_and_the_sweep_resumes_the_runs(
    alice: User, tmp_path: Path
) -> None:
    """The web process loses its Redis (broker and channel layer) before the decisions: each is committed and
    answered as a success from the API, the inbox and the run page; its next node (one that runs on a worker:
    control flow would be begun by the deciding process itself) stays queued until the recovery sweep, with
    the broker back, sends it again."""
    graph = graph_of(
        [
            ("start", "start", {}),
            ("ask", "user_approval", {"message": "ok?"}),
            ("work", "transform", WORK),
            ("yes", "end", {}),
            ("no", "end", {}),
        ],
        [("start", "ask"), ("ask", "work", "approved"), ("work", "yes"), ("ask", "no", "rejected")],
    )
    by_api, by_inbox, by_run_page = (waiting(alice, graph) for _ in range(3))
    token = Token.objects.create(user=alice).key
    browser = Client()
    browser.force_login(alice)
    with private_redis(tmp_path) as (redis_url, redis_process):
        web = start_daphne(service_env(FLOWNOVA_TEST_REDIS_URL=redis_url))
        try:
            with httpx.Client(
                base_url=web.base_url,
                cookies={settings.SESSION_COOKIE_NAME: browser.cookies[settings.SESSION_COOKIE_NAME].value},
                timeout=60,
            ) as http:
                assert http.get(reverse("approval_inbox")).status_code == 200  # sets the CSRF cookie
                stop_process(redis_process)
                api = http.post(
                    f"/api/approvals/{by_api[1].pk}/decide/",
                    json={"decision": "approved"},
                    headers={"Authorization": f"Token {token}"},
                )
                htmx = {"HX-Request": "true", "X-CSRFToken": http.cookies["csrftoken"]}
                inbox = http.post(
                    reverse("approval_decide", args=[by_inbox[1].pk]),
                    data={"decision": "approved"},
                    headers={**htmx, "HX-Target": "approvals-list"},
                )
                run_page = http.post(
                    reverse("approval_decide", args=[by_run_page[1].pk]),
                    data={"decision": "approved"},
                    headers={**htmx, "HX-Target": "run-approvals"},
                )
        finally:
            stop_process(web.process)
    assert api.status_code == 200, api.text
    assert api.json()["status"] == "approved" and api.json()["decided_by"] == "alice"
    for page in (inbox, run_page):
        assert page.status_code == 200, page.text
        assert "Approved: the run resumes." in page.text
    for run, approval in (by_api, by_inbox, by_run_page):
        approval.refresh_from_db()
        assert approval.status == "approved" and approval.decided_by == alice
        assert NodeRun.objects.get(run=run, node_id="work").status == "queued"  # its message was never sent

    # The broker is back (this process's, which the worker consumes from): the sweep sends the nodes again.
    assert node_runs_recover(queued_for=0, running_for=3600) == 3
    for run, _ in (by_api, by_inbox, by_run_page):
        run = wait_for(run)
        assert run.status == "succeeded" and ledger(run)[-1] == ("yes", "succeeded")


def test_who_may_decide_reads_the_same_from_the_request_s_annotations_as_from_its_own_queries(
    alice: User, mallory: User, make_user: Callable[..., User]
) -> None:
    # A decision reads assignees and the decider's role with the request (approval_for_decider); the pages ask
    # approval_can_decide without them. Both must agree for every kind of request and decider.
    bob, carol = make_user("bob"), make_user("carol")
    reviewers = Group.objects.create(name="reviewers")
    carol.groups.add(reviewers)
    requests = {
        "unassigned": waiting(alice, ask())[1],
        "to bob": waiting(alice, ask(assignees=["bob"]))[1],
        "to reviewers": waiting(alice, ask(assignees=["reviewers"]))[1],
        "not self": waiting(alice, ask(assignees=["alice"], allow_self_approval=False))[1],
    }
    for name, approval in requests.items():
        for user in (alice, bob, carol, mallory):
            read, facts = approval_for_decider(approval.pk, user)
            assert read.pk == approval.pk and read.data == approval.data and read.run.owner_id == alice.pk
            expected = approval_can_decide(approval=ApprovalRequest.objects.get(pk=approval.pk), user=user)
            assert approval_can_decide(approval=read, user=user, facts=facts) == expected, (name, user)
            assert expected == (user in {"unassigned": [alice], "to bob": [bob], "to reviewers": [carol]}.get(name, []))
