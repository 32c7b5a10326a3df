"""`POST /hooks/<secret>/`: a webhook call starts a run (docs/CONTRACT.md, Triggers).

The secret in the path is the credential: no session, no token, no CSRF. Checks come in this order, so that
nothing about a trigger leaks to whoever does not hold its URL: an unknown or disabled secret is a 404 like
any other missing page; then the media type (415), the size (413), the signature when the trigger has a
signing secret (401), the trigger's rate limit (429 with Retry-After), the body (400) and the start node's
input schema (400 listing each error). A good call answers 202 with the run's id and where to follow it; with
`?wait=<seconds>`, 200 with the run's final status and output if it ends in time.

The view is asynchronous: a call that waits holds no thread, only a timer. It follows its run by reading the
run's status with a backoff (20 ms, doubling, at most 250 ms apart): one indexed read at a time per waiting
call, and no dependency on event publishing, which only reaches groups a browser watches.

Its database work runs on a small pool of threads of its own (`_db`): a burst of calls queues for those threads
instead of each taking one of the web process's pooled connections (FLOWNOVA_DB_POOL_SIZE), which the pages and
the API share. Without a connection pool (FLOWNOVA_DB_POOL_SIZE=0), each thread keeps its own connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections
from django.http import HttpRequest, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from flownova import metrics
from flownova.jsonbody import JSONInputError, parse_json
from runs.errors import RunError, RunInputError
from runs.models import FINAL_RUN_STATUSES, Run
from triggers.services import (
    TriggerRateLimited,
    WebhookAccepted,
    signing_secret,
    webhook_find,
    webhook_fire,
    webhook_rate_check,
)
from triggers.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, BadSignature, verify

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
_FIRST_POLL, _MAX_POLL = 0.02, 0.25
# At most this many database connections per web process serve webhook calls, however many arrive at once.
_DB_THREADS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="webhook-db")

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _db(function: Callable[_P, _R]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """`function` as a coroutine that runs on the webhooks' database threads. Their connections serve no
    request, so no request signal retires them: each call does, before and after, as a request would (one
    broken by a database restart or older than CONN_MAX_AGE is replaced)."""

    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        close_old_connections()
        try:
            return function(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(call, thread_sensitive=False, executor=_DB_THREADS)


def _error(status: int, detail: str, **extra: Any) -> JsonResponse:
    return JsonResponse({"detail": detail, **extra}, status=status)


def _json_media_type(content_type: str) -> bool:
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@csrf_exempt
async def webhook(request: HttpRequest, secret: str) -> JsonResponse:
    response = await _webhook(request, secret)
    metrics.WEBHOOK_CALLS.labels(status=str(response.status_code)).inc()
    return response


async def _webhook(request: HttpRequest, secret: str) -> JsonResponse:
    if request.method != "POST":
        response = _error(405, f"Method {request.method} not allowed: a webhook is called with POST.")
        response["Allow"] = "POST"
        return response
    trigger = await _db(webhook_find)(secret)
    if trigger is None:
        return _error(404, "Not found.")
    if not _json_media_type(request.content_type or ""):
        return _error(
            415, f"A webhook takes a JSON body: send Content-Type: application/json, not {request.content_type!r}."
        )
    limit = settings.FLOWNOVA_WEBHOOK_MAX_BYTES
    too_large = _error(413, f"The body is larger than {limit} bytes (FLOWNOVA_WEBHOOK_MAX_BYTES).")
    try:
        if int(request.META.get("CONTENT_LENGTH") or 0) > limit:
            return too_large
    except ValueError:
        return _error(400, "Content-Length is not a number.")
    raw = request.read(limit + 1)
    if len(raw) > limit:
        return too_large
    wait = _wait_seconds(request.GET.get("wait"))
    if isinstance(wait, JsonResponse):
        return wait
    idempotency_key = request.headers.get(IDEMPOTENCY_HEADER, "").strip()
    if len(idempotency_key) > 255:
        return _error(400, f"{IDEMPOTENCY_HEADER} is longer than 255 characters.")
    digest = None
    if trigger.has_signing_secret:
        checked = await _db(_signature_verify)(trigger, raw, request)
        if isinstance(checked, JsonResponse):
            return checked
        digest = checked
    try:
        await _db(webhook_rate_check)(trigger)
    except TriggerRateLimited as exc:
        response = _error(429, str(exc).capitalize() + ".")
        response["Retry-After"] = str(exc.wait)
        return response
    # Only a call past the rate limit uses its signature up: a sender may send a refused (429) call again as it was.
    if digest is not None and (refused := await _db(_signature_first_use)(trigger, digest, idempotency_key)):
        return refused
    try:
        payload = parse_json(raw, max_depth=settings.FLOWNOVA_API_MAX_JSON_DEPTH)
    except JSONInputError as exc:
        if exc.parsing:
            return _error(400, f"The body is not valid JSON: {exc.message}.")
        return _error(400, f"The body cannot be used as a run's input: {exc}.")
    try:
        accepted: WebhookAccepted = await _db(webhook_fire)(trigger, payload, idempotency_key=idempotency_key)
    except RunInputError as exc:
        return _error(400, f"The body is not a valid input for this workflow: {exc}.", input=exc.errors)
    except RunError as exc:
        return _error(409, f"The run could not start: {exc}.")
    return await _answer(request, accepted, wait)


def _wait_seconds(raw: str | None) -> float | JsonResponse:
    if raw is None or raw == "":
        return 0.0
    most = settings.FLOWNOVA_WEBHOOK_MAX_WAIT_SECONDS
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= most:
        message = f"wait must be a number of seconds from 0 to {most}, not {raw!r}."
        return _error(400, message, wait=[message])
    return wait


def _signature_verify(trigger: Any, raw: bytes, request: HttpRequest) -> str | JsonResponse:
    """The digest of a good signature, or the 401 to answer."""
    try:
        return verify(
            signing_secret(trigger),
            raw,
            signature=request.headers.get(SIGNATURE_HEADER),
            timestamp=request.headers.get(TIMESTAMP_HEADER),
            tolerance=settings.FLOWNOVA_WEBHOOK_SIGNATURE_TOLERANCE_SECONDS,
        )
    except BadSignature as exc:
        return _error(401, f"Signature refused: {exc}.")


def _signature_first_use(trigger: Any, digest: str, idempotency_key: str) -> JsonResponse | None:
    """None when a good signature is used for the first time; else the 401 to answer. A call that carries an
    Idempotency-Key may be sent again as it was (a retry after a lost answer): the key makes it harmless. Only
    with the key it first came with: the key is not signed, and a new one would start a new run."""
    tolerance = settings.FLOWNOVA_WEBHOOK_SIGNATURE_TOLERANCE_SECONDS
    # Remembered, with the key it came with, for twice the tolerance: as long as a timestamp stays acceptable,
    # on either side of the clock.
    seen = f"webhook_signature_{trigger.pk}_{digest}"
    if cache.add(seen, idempotency_key, 2 * tolerance):
        return None
    if idempotency_key and cache.get(seen) == idempotency_key:
        return None
    return _error(401, "Signature refused: this signed call was already received (a replay).")


async def _answer(request: HttpRequest, accepted: WebhookAccepted, wait: float) -> JsonResponse:
    run = accepted.run
    status_url = request.build_absolute_uri(reverse("api:run-detail", args=[run.pk]))
    if wait > 0:
        final = await _run_end(run.pk, wait)
        if final is not None:
            status, output = final
            return _with_replay_header(
                JsonResponse({"run_id": run.pk, "status": status, "output": output, "status_url": status_url}),
                accepted,
            )
    return _with_replay_header(JsonResponse({"run_id": run.pk, "status_url": status_url}, status=202), accepted)


def _with_replay_header(response: JsonResponse, accepted: WebhookAccepted) -> JsonResponse:
    if accepted.repeated:
        response["Idempotent-Replayed"] = "true"
    return response


async def _run_end(run_id: int, wait: float) -> tuple[str, Any] | None:
    """The run's final status and output once it ends, or None when `wait` seconds pass first."""
    deadline = time.monotonic() + wait
    pause = _FIRST_POLL
    read = _db(_status_and_output)
    while True:
        status, output = await read(run_id)
        if status in FINAL_RUN_STATUSES:
            return status, output
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, _MAX_POLL)


def _status_and_output(run_id: int) -> tuple[str, Any]:
    status, output = Run.objects.values_list("status", "output").get(pk=run_id)
    return status, output
