"""Webhook calls over HTTP, as senders make them: daphne serving the ASGI application and the real worker running
what they start. One daphne serves the module, with a small body limit and a short signature tolerance (set
through its environment, as a deployment would); each test makes its own triggers.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from runs.models import Run, RunEvent
from tests.api.conftest import approval_graph
from tests.conftest import ServerProcess, WorkerProcess, service_env, start_daphne, stop_process
from tests.engine_helpers import wait_for
from tests.factories import make_workflow
from tests.test_metrics import samples
from triggers.models import FiringOutcome, IdempotencyKey, Trigger, TriggerFiring, TriggerType
from triggers.services import trigger_create
from triggers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from workflows.models import Workflow
from workflows.services import workflow_soft_delete

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

MAX_BYTES = 4096
TOLERANCE = 60
IDEMPOTENCY_HOURS = 2
SIGNING_SECRET = "whsec-test-0123456789"


@pytest.fixture(scope="module")
def server(django_db_setup: None) -> Iterator[ServerProcess]:
    process = start_daphne(
        service_env(
            FLOWNOVA_WEBHOOK_MAX_BYTES=str(MAX_BYTES),
            FLOWNOVA_WEBHOOK_SIGNATURE_TOLERANCE_SECONDS=str(TOLERANCE),
            FLOWNOVA_IDEMPOTENCY_HOURS=str(IDEMPOTENCY_HOURS),
        )
    )
    yield process
    stop_process(process.process)


@pytest.fixture(autouse=True)
def runs_settle(transactional_db: None) -> Iterator[None]:
    """After each test, let the worker finish what the calls started: emptying the tables under a node being
    recorded deadlocks."""
    yield
    deadline = time.monotonic() + 30
    while Run.objects.filter(status__in=["queued", "running"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


class Hook:
    """One webhook trigger and how to call it on the server."""

    def __init__(self, server: ServerProcess, trigger: Trigger, secret: str) -> None:
        self.trigger, self.secret = trigger, secret
        self.url = f"{server.base_url}/hooks/{secret}/"

    def post(
        self,
        body: Any = None,
        *,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> httpx.Response:
        if content is None:
            return httpx.post(self.url, json=body, headers=headers, params=params, timeout=timeout)
        sent = {"Content-Type": "application/json", **(headers or {})}
        return httpx.post(self.url, content=content, headers=sent, params=params, timeout=timeout)

    def runs(self) -> list[Run]:
        return list(Run.objects.filter(trigger={"type": "webhook", "id": self.trigger.pk}).order_by("id"))


def make_hook(server: ServerProcess, workflow: Workflow, **fields: Any) -> Hook:
    signing_secret = fields.pop("signing_secret", None)
    trigger = Trigger(workflow=workflow, type=TriggerType.WEBHOOK, **fields)
    secret = trigger_create(trigger, signing_secret=signing_secret)
    assert secret is not None
    return Hook(server, trigger, secret)


def signed(body: bytes, *, at: int | None = None, secret: str = SIGNING_SECRET) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {SIGNATURE_HEADER: sign(secret, body, timestamp), TIMESTAMP_HEADER: str(timestamp)}


def token_header(user: User) -> dict[str, str]:
    token, _ = Token.objects.get_or_create(user=user)
    return {"Authorization": f"Token {token.key}"}


# --- a good call ---------------------------------------------------------------------------------------------


def test_a_call_starts_a_run_of_the_owner_with_the_body_as_input(
    server: ServerProcess, celery_worker: WorkerProcess, alice: User, mallory: User, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    answer = hook.post({"order": 7})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert set(body) == {"run_id", "status_url"}
    assert body["status_url"] == f"{server.base_url}/api/runs/{body['run_id']}/"

    run = wait_for(Run.objects.get(pk=body["run_id"]))
    assert run.status == "succeeded"
    assert run.input == {"order": 7} and run.output == {"order": 7}
    assert run.owner == alice and run.workflow == orders
    assert run.trigger == {"type": "webhook", "id": hook.trigger.pk}
    firing = TriggerFiring.objects.get(trigger=hook.trigger)
    assert (firing.outcome, firing.run_id) == (FiringOutcome.STARTED, run.pk)
    fired = RunEvent.objects.get(run=run, type="trigger_fired")
    assert fired.data == {"trigger_id": hook.trigger.pk, "trigger_type": "webhook", "workflow_id": orders.pk}
    hook.trigger.refresh_from_db()
    assert hook.trigger.last_run_id == run.pk and hook.trigger.last_fired_at is not None

    status = httpx.get(body["status_url"], headers=token_header(alice))
    assert status.status_code == 200 and status.json()["id"] == run.pk and status.json()["status"] == "succeeded"
    assert httpx.get(body["status_url"], headers=token_header(mallory)).status_code == 404
    assert httpx.get(body["status_url"]).status_code == 401


def test_a_content_type_with_parameters_or_a_json_suffix_is_json(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    for media in ("application/json; charset=utf-8", "application/vnd.shop+json"):
        answer = hook.post(content=b'{"order": 1}', headers={"Content-Type": media})
        assert answer.status_code == 202, (media, answer.text)
    assert len(hook.runs()) == 2


# --- waiting for the end -------------------------------------------------------------------------------------


def test_wait_answers_200_with_the_output_of_a_fast_run(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    answer = hook.post({"order": 12}, params={"wait": "10"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body == {
        "run_id": body["run_id"],
        "status": "succeeded",
        "output": {"order": 12},
        "status_url": f"{server.base_url}/api/runs/{body['run_id']}/",
    }
    assert Run.objects.get(pk=body["run_id"]).status == "succeeded"


def test_wait_answers_202_when_the_run_cannot_end_in_time(
    server: ServerProcess, celery_worker: WorkerProcess, alice: User
) -> None:
    hook = make_hook(server, make_workflow(alice, name="Approve", graph=approval_graph()))
    started = time.monotonic()
    answer = hook.post({"order": 3}, params={"wait": "1"})
    elapsed = time.monotonic() - started
    assert answer.status_code == 202, answer.text
    assert set(answer.json()) == {"run_id", "status_url"}
    assert 1.0 <= elapsed < 3.0
    run = wait_for(Run.objects.get(pk=answer.json()["run_id"]), "waiting")
    assert run.status == "waiting"


@pytest.mark.parametrize("wait", ["31", "x", "-1", "nan"])
def test_a_wait_out_of_bounds_is_a_400_naming_wait(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow, wait: str
) -> None:
    hook = make_hook(server, orders)
    answer = hook.post({"order": 1}, params={"wait": wait})
    assert answer.status_code == 400
    body = answer.json()
    assert body["detail"] == f"wait must be a number of seconds from 0 to 30, not {wait!r}."
    assert body["wait"] == [body["detail"]]
    assert hook.runs() == []


# --- signatures ----------------------------------------------------------------------------------------------


def test_a_signed_call_with_a_good_signature_starts_a_run(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders, signing_secret=SIGNING_SECRET)
    content = b'{"order": 5}'
    answer = hook.post(content=content, headers=signed(content))
    assert answer.status_code == 202, answer.text
    assert [run.pk for run in hook.runs()] == [answer.json()["run_id"]]


def _refused(answer: httpx.Response, reason: str) -> None:
    assert answer.status_code == 401, answer.text
    assert answer.json() == {"detail": f"Signature refused: {reason}."}


def test_bad_signatures_are_401_and_start_nothing(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders, signing_secret=SIGNING_SECRET)
    content = b'{"order": 5}'
    now = int(time.time())

    wrong_key = signed(content, secret="not-the-secret")
    _refused(hook.post(content=content, headers=wrong_key), "the signature does not match the body")
    tampered = signed(content)
    _refused(hook.post(content=b'{"order": 6}', headers=tampered), "the signature does not match the body")
    digest_for_other_time = {**signed(content, at=now - 1), TIMESTAMP_HEADER: str(now)}
    _refused(hook.post(content=content, headers=digest_for_other_time), "the signature does not match the body")
    _refused(
        hook.post(content=content),
        f"this webhook needs a signature: send {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}",
    )
    _refused(
        hook.post(content=content, headers={SIGNATURE_HEADER: signed(content)[SIGNATURE_HEADER]}),
        f"a signed call needs {TIMESTAMP_HEADER} (the Unix time it was signed at)",
    )
    _refused(
        hook.post(content=content, headers=signed(content, at=now - TOLERANCE - 5)),
        f"{TIMESTAMP_HEADER} is more than {TOLERANCE} s from the server's clock",
    )
    _refused(
        hook.post(content=content, headers=signed(content, at=now + TOLERANCE + 5)),
        f"{TIMESTAMP_HEADER} is more than {TOLERANCE} s from the server's clock",
    )
    assert hook.runs() == []
    assert not TriggerFiring.objects.filter(trigger=hook.trigger).exists()


def test_an_exact_replay_of_a_signed_call_is_refused(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders, signing_secret=SIGNING_SECRET)
    content = b'{"order": 5}'
    headers = signed(content)
    first = hook.post(content=content, headers=headers)
    assert first.status_code == 202, first.text
    _refused(hook.post(content=content, headers=headers), "this signed call was already received (a replay)")
    assert [run.pk for run in hook.runs()] == [first.json()["run_id"]]


def test_a_replay_with_the_same_idempotency_key_returns_the_first_run(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders, signing_secret=SIGNING_SECRET)
    content = b'{"order": 5}'
    headers = {**signed(content), "Idempotency-Key": "delivery-1"}
    first = hook.post(content=content, headers=headers)
    assert first.status_code == 202, first.text
    assert "Idempotent-Replayed" not in first.headers
    again = hook.post(content=content, headers=headers)
    assert again.status_code == 202, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert [run.pk for run in hook.runs()] == [first.json()["run_id"]]


def test_a_replay_cannot_start_a_run_by_changing_or_adding_an_idempotency_key(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    """The key is not signed: whoever captured a signed call may put any key on it. Only the key the signed call
    was first received with makes sending it again harmless."""
    hook = make_hook(server, orders, signing_secret=SIGNING_SECRET)
    content = b'{"order": 5}'
    headers = signed(content)
    first = hook.post(content=content, headers={**headers, "Idempotency-Key": "delivery-1"})
    assert first.status_code == 202, first.text
    replay = "this signed call was already received (a replay)"
    _refused(hook.post(content=content, headers={**headers, "Idempotency-Key": "delivery-2"}), replay)
    _refused(hook.post(content=content, headers=headers), replay)

    unkeyed = {**signed(b'{"order": 6}'), "Idempotency-Key": ""}
    assert hook.post(content=b'{"order": 6}', headers=unkeyed).status_code == 202
    _refused(hook.post(content=b'{"order": 6}', headers={**unkeyed, "Idempotency-Key": "added-later"}), replay)
    assert len(hook.runs()) == 2


# --- idempotency keys ----------------------------------------------------------------------------------------


def test_the_same_idempotency_key_twice_returns_the_same_run(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    first = hook.post({"order": 1}, headers={"Idempotency-Key": "abc"})
    second = hook.post({"order": 1}, headers={"Idempotency-Key": "abc"})
    assert first.status_code == second.status_code == 202
    assert second.json()["run_id"] == first.json()["run_id"]
    assert "Idempotent-Replayed" not in first.headers and second.headers["Idempotent-Replayed"] == "true"
    assert len(hook.runs()) == 1
    assert TriggerFiring.objects.filter(trigger=hook.trigger).count() == 1


def test_the_same_key_on_another_webhook_is_another_key(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    one, two = make_hook(server, orders), make_hook(server, orders)
    first = one.post({"order": 1}, headers={"Idempotency-Key": "abc"})
    second = two.post({"order": 1}, headers={"Idempotency-Key": "abc"})
    assert first.status_code == second.status_code == 202
    assert first.json()["run_id"] != second.json()["run_id"]
    assert "Idempotent-Replayed" not in second.headers


def test_different_idempotency_keys_start_different_runs(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    first = hook.post({"order": 1}, headers={"Idempotency-Key": "abc"})
    second = hook.post({"order": 1}, headers={"Idempotency-Key": "abd"})
    assert first.status_code == second.status_code == 202
    assert first.json()["run_id"] != second.json()["run_id"]
    assert len(hook.runs()) == 2


def test_concurrent_calls_with_one_key_start_one_run(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    gate = threading.Barrier(10)
    answers: list[httpx.Response] = []
    lock = threading.Lock()

    def call() -> None:
        with httpx.Client(timeout=30) as client:
            gate.wait()
            answer = client.post(hook.url, json={"order": 9}, headers={"Idempotency-Key": "same"})
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [answer.status_code for answer in answers] == [202] * 10, [answer.text for answer in answers]
    runs = hook.runs()
    assert len(runs) == 1
    assert {answer.json()["run_id"] for answer in answers} == {runs[0].pk}
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 9
    assert TriggerFiring.objects.filter(trigger=hook.trigger).count() == 1


def test_a_burst_of_calls_holds_a_bounded_number_of_database_connections(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    """The web process serves webhooks from a few database connections, whatever the number of calls in
    flight: one connection per call would soon take all that PostgreSQL allows, for every process."""
    hook = make_hook(server, orders)
    before = database_connections()
    gate = threading.Barrier(40)
    statuses: list[int] = []

    def call(number: int) -> None:
        with httpx.Client(timeout=60) as client:
            gate.wait()
            statuses.append(client.post(hook.url, json={"order": number}, params={"wait": "2"}).status_code)

    threads = [threading.Thread(target=call, args=(number,)) for number in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(set(statuses)) in ([200], [200, 202]), statuses
    assert len(hook.runs()) == 40
    assert database_connections() <= before + 8


def database_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])


def test_a_key_older_than_the_window_starts_a_new_run(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    first = hook.post({"order": 1}, headers={"Idempotency-Key": "abc"}).json()["run_id"]
    IdempotencyKey.objects.filter(trigger=hook.trigger).update(
        created_at=timezone.now() - timedelta(hours=IDEMPOTENCY_HOURS, minutes=1)
    )
    later = hook.post({"order": 1}, headers={"Idempotency-Key": "abc"})
    assert later.status_code == 202 and "Idempotent-Replayed" not in later.headers
    assert later.json()["run_id"] != first
    assert [run.pk for run in hook.runs()] == [first, later.json()["run_id"]]
    assert IdempotencyKey.objects.get(trigger=hook.trigger).run_id == later.json()["run_id"]

    within = hook.post({"order": 1}, headers={"Idempotency-Key": "abc"})
    assert within.json()["run_id"] == later.json()["run_id"] and within.headers["Idempotent-Replayed"] == "true"


def test_an_idempotency_key_over_255_characters_is_a_400(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    answer = hook.post({"order": 1}, headers={"Idempotency-Key": "k" * 256})
    assert answer.status_code == 400
    assert answer.json()["detail"] == "Idempotency-Key is longer than 255 characters."
    assert hook.runs() == []


# --- refusals ------------------------------------------------------------------------------------------------


def test_unknown_disabled_and_deleted_webhooks_are_the_same_404(
    server: ServerProcess, celery_worker: WorkerProcess, alice: User, orders: Workflow
) -> None:
    disabled = make_hook(server, orders, enabled=False)
    doomed = make_workflow(alice, name="Doomed")
    deleted = make_hook(server, doomed)
    workflow_soft_delete(workflow=doomed)
    unknown = f"{server.base_url}/hooks/{'A' * 43}/"

    answers = [
        httpx.post(unknown, json={"order": 1}),
        disabled.post({"order": 1}),
        deleted.post({}),
        # Even a body that would be refused: nothing about the trigger comes before the 404.
        disabled.post(content=b"not json", headers={"Content-Type": "text/plain"}),
    ]
    assert [answer.status_code for answer in answers] == [404] * 4
    assert {answer.content for answer in answers} == {b'{"detail": "Not found."}'}
    assert disabled.runs() == [] and deleted.runs() == []
    assert not TriggerFiring.objects.exists()


def test_a_body_that_is_not_json_is_a_415(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    answer = hook.post(content=b"order=1", headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415
    assert answer.json() == {
        "detail": "A webhook takes a JSON body: send Content-Type: application/json, not 'text/plain'."
    }
    assert hook.post(content=b'{"order": 1}', headers={"Content-Type": ""}).status_code == 415
    assert hook.runs() == []


def test_a_body_over_the_limit_is_a_413(server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow) -> None:
    hook = make_hook(server, orders)
    big = b'{"order": 1, "pad": "' + b"x" * MAX_BYTES + b'"}'
    detail = {"detail": f"The body is larger than {MAX_BYTES} bytes (FLOWNOVA_WEBHOOK_MAX_BYTES)."}

    answer = hook.post(content=big)
    assert answer.status_code == 413 and answer.json() == detail

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds on what arrives
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = httpx.post(hook.url, content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413 and streamed.json() == detail

    just_fits = b'{"order": 1, "pad": "' + b"x" * (MAX_BYTES - 23) + b'"}'
    assert len(just_fits) == MAX_BYTES
    assert hook.post(content=just_fits).status_code == 202
    assert len(hook.runs()) == 1


def test_invalid_json_is_a_400(server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow) -> None:
    hook = make_hook(server, orders)
    answer = hook.post(content=b'{"order": ')
    assert answer.status_code == 400
    assert answer.json() == {"detail": "The body is not valid JSON: Expecting value: line 1 column 11 (char 10)."}
    not_utf8 = hook.post(content=b'{"order": "\xff"}')
    assert not_utf8.status_code == 400
    assert not_utf8.json()["detail"] == (
        "The body is not valid JSON: the text is not valid utf-8: invalid start byte at byte 11."
    )
    nan = hook.post(content=b'{"order": NaN}')
    assert nan.status_code == 400
    assert nan.json() == {"detail": "The body is not valid JSON: NaN is not valid JSON (numbers must be finite)."}
    assert hook.runs() == []


def test_input_that_breaks_the_input_schema_is_a_400_listing_the_errors(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    answer = hook.post({"order": "seven"})
    assert answer.status_code == 400
    assert answer.json() == {
        "detail": "The body is not a valid input for this workflow: input.order: 'seven' is not of type 'integer'.",
        "input": ["input.order: 'seven' is not of type 'integer'"],
    }
    missing = hook.post({"order": None, "extra": 1})
    assert missing.status_code == 400
    assert missing.json()["input"] == ["input.order: None is not of type 'integer'"]
    assert hook.post({}).json()["input"] == ["input: 'order' is a required property"]
    assert hook.runs() == []
    assert not TriggerFiring.objects.filter(trigger=hook.trigger).exists()


def test_a_body_that_is_not_an_object_is_a_400(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders)
    answer = hook.post([{"order": 1}])
    assert answer.status_code == 400
    assert answer.json() == {
        "detail": "The body is not a valid input for this workflow: input must be a JSON object, not list.",
        "input": ["input must be a JSON object, not list"],
    }
    assert hook.runs() == []


def test_get_is_a_405(server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow) -> None:
    hook = make_hook(server, orders)
    answer = httpx.get(hook.url)
    assert answer.status_code == 405
    assert answer.headers["Allow"] == "POST"
    assert answer.json() == {"detail": "Method GET not allowed: a webhook is called with POST."}
    assert hook.runs() == []


# --- rate limit ----------------------------------------------------------------------------------------------


def test_calls_past_the_rate_limit_are_a_429_and_start_nothing(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders, rate_limit="3/min")
    if time.time() % 60 > 50:  # the limit counts per minute: keep the four calls in one
        time.sleep(60.5 - time.time() % 60)
    accepted = [hook.post({"order": i}) for i in range(3)]
    assert [answer.status_code for answer in accepted] == [202] * 3
    refused = hook.post({"order": 4})
    assert refused.status_code == 429
    assert refused.json() == {
        "detail": f"Too many calls of this webhook just now: try again in {refused.headers['Retry-After']} s."
    }
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert [run.pk for run in hook.runs()] == [answer.json()["run_id"] for answer in accepted]
    assert TriggerFiring.objects.filter(trigger=hook.trigger).count() == 3


def test_a_signed_call_refused_by_the_rate_limit_may_be_sent_again_as_it_was(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders, rate_limit="1/s", signing_secret=SIGNING_SECRET)
    time.sleep(1.05 - time.time() % 1)  # at the start of a one-second window: both calls fall in it
    first = json.dumps({"order": 1}).encode()
    assert hook.post(content=first, headers=signed(first)).status_code == 202
    second = json.dumps({"order": 2}).encode()
    headers = signed(second)
    assert hook.post(content=second, headers=headers).status_code == 429
    time.sleep(1.05 - time.time() % 1)
    again = hook.post(content=second, headers=headers)
    assert again.status_code == 202, again.json()  # not refused as a replay: the 429 did not use it up
    time.sleep(1.05 - time.time() % 1)
    assert hook.post(content=second, headers=headers).status_code == 401  # now it has been used


def test_calls_are_counted_by_status_in_the_metrics(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow, client: Client, superuser: User
) -> None:
    client.force_login(superuser)
    hook = make_hook(server, orders)
    before = samples(client)  # daphne writes to the metrics folder this process reads
    assert hook.post({"order": 1}).status_code == 202
    assert httpx.post(f"{server.base_url}/hooks/{'Q' * 43}/", json={}).status_code == 404
    after = samples(client)

    def grew(status: str) -> float:
        key = ("flownova_webhook_calls_total", (("status", status),))
        return after.get(key, 0) - before.get(key, 0)

    assert (grew("202"), grew("404")) == (1, 1)
    firings = ("flownova_trigger_firings_total", (("outcome", "started"), ("type", "webhook")))
    assert after.get(firings, 0) - before.get(firings, 0) == 1


# --- logs ----------------------------------------------------------------------------------------------------


def refused_calls(server: ServerProcess, hook: Hook, unknown_secret: str) -> None:
    """One of each 4xx a webhook answers, which Django logs with the request's path."""
    answers = [
        httpx.post(f"{server.base_url}/hooks/{unknown_secret}/", json={}),
        httpx.get(hook.url),
        hook.post(content=b"x", headers={"Content-Type": "text/plain"}),
        hook.post(content=b"x" * (MAX_BYTES + 1)),
        hook.post({"order": 1}),  # not signed
        hook.post(content=b"{", headers=signed(b"{")),
    ]
    assert [answer.status_code for answer in answers] == [404, 405, 415, 413, 401, 400]


def log_since(server: ServerProcess, offset: int) -> str:
    """What the web process wrote from `offset` on (bytes of its log), once it holds the six refusals' records:
    Django logs a response before sending it, so they are normally there already."""
    deadline = time.monotonic() + 5
    while True:
        with server.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        if text.count("django.request") >= 6 or time.monotonic() > deadline:
            return text


def json_records(text: str) -> list[dict[str, Any]]:
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                records.append(json.loads(line))
    return records


def test_logged_4xx_answers_name_no_secret(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    """Django logs every 4xx with its path and the request, and the path holds the credential: the filter on
    the project's log handler (flownova.logcontext.WebhookSecretFilter) redacts both."""
    hook = make_hook(server, orders, signing_secret=SIGNING_SECRET)
    unknown_secret = "Y" * 43
    offset = server.log_path.stat().st_size
    refused_calls(server, hook, unknown_secret)
    records = json_records(log_since(server, offset))
    logged = [
        (record["status_code"], record["message"], record["request"])
        for record in records
        if record["logger"] == "django.request"
    ]
    assert logged == [
        (status, f"{reason}: /hooks/<redacted>/", f"<ASGIRequest: {method} '/hooks/<redacted>/'>")
        for status, reason, method in [
            (404, "Not Found", "POST"),
            (405, "Method Not Allowed", "GET"),
            (415, "Unsupported Media Type", "POST"),
            (413, "Request Entity Too Large", "POST"),
            (401, "Unauthorized", "POST"),
            (400, "Bad Request", "POST"),
        ]
    ]
    text = json.dumps(records)
    assert hook.secret not in text and unknown_secret not in text


def test_the_secret_never_reaches_the_web_process_output(
    server: ServerProcess, celery_worker: WorkerProcess, orders: Workflow
) -> None:
    hook = make_hook(server, orders, signing_secret=SIGNING_SECRET)
    unknown_secret = "Z" * 43
    offset = server.log_path.stat().st_size
    refused_calls(server, hook, unknown_secret)
    body = json.dumps({"order": 2}).encode()
    assert hook.post(content=body, headers=signed(body)).status_code == 202
    output = log_since(server, offset)
    assert hook.secret not in output
    assert unknown_secret not in output
    # daphne's access log has a line for each call, the accepted one too, with the path redacted.
    deadline = time.monotonic() + 5
    while '"POST /hooks/<redacted>/" 202' not in output and time.monotonic() < deadline:
        time.sleep(0.05)
        output = log_since(server, offset)
    assert '"POST /hooks/<redacted>/" 202' in output, output[-2000:]
    assert hook.secret not in output
