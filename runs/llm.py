"""The one LLM client, on LiteLLM: model strings per node, provider settings from LiteLLM's environment
variables, timeouts, retries with backoff, token usage and cost, streaming in batches.

Importing this module imports LiteLLM (about 3 s), so only the Celery worker loads it, once, before forking
its pool (see flownova/celery.py); the web process and the test collector never do. LiteLLM's price map is
read from the copy bundled with the package: fetching it from the internet would stall every start here.
"""

from __future__ import annotations

import email.utils
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # after the environment variable above
from django.conf import settings

from flownova import deadline
from flownova.llm_config import EXAMPLE, OPENAI_PREFIX, VARIABLE, LLMServer, model_for_server
from nodes.base import NodeError

logger = logging.getLogger(__name__)
litellm.suppress_debug_info = True
litellm.telemetry = False
# `chat` is the one retry layer. LiteLLM retries a failed completion when this global is set (and a per-call
# num_retries=0 does not override it), so it stays off here as well as on every call.
litellm.num_retries = None

# Worth retrying: the provider is busy, flaky or slow. Anything else (bad request, auth, context too long)
# will fail the same way again.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    litellm.RateLimitError,
    litellm.APIConnectionError,
    litellm.InternalServerError,
    litellm.ServiceUnavailableError,
    litellm.BadGatewayError,
    litellm.Timeout,
)


# The longest wait between attempts, whatever the backoff or the provider's Retry-After says: beyond it the
# node's own retries (with their longer backoff) are the better place to wait.
MAX_RETRY_DELAY_SECONDS = 30.0


class LLMError(NodeError):
    """The model could not be used; the message says why and, where it helps, what to configure."""


@dataclass
class ToolCallRequest:
    id: str
    name: str
    arguments: str  # JSON text as the model wrote it; may be invalid


@dataclass
class ChatResult:
    content: str
    tool_calls: list[ToolCallRequest]
    usage: dict[str, Any]
    raw_message: dict[str, Any]


@dataclass
class Usage:
    """Tokens and cost over every call a node made."""

    model: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = 0.0
    per_call: list[dict[str, Any]] = field(default_factory=list)

    def add(self, usage: dict[str, Any]) -> None:
        self.calls += 1
        self.prompt_tokens += usage.get("prompt_tokens", 0)
        self.completion_tokens += usage.get("completion_tokens", 0)
        self.total_tokens += usage.get("total_tokens", 0)
        cost = usage.get("cost_usd")
        # One call of unknown price makes the total unknown, not smaller.
        self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + cost
        self.per_call.append(usage)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "calls": self.calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost_usd": self.cost_usd,
        }


def resolve_model(model: str | None) -> str:
    """The node's model, else the default; a bare name goes to FLOWNOVA_LLM_URL's server when one is set."""
    return model_for_server((model or settings.FLOWNOVA_DEFAULT_MODEL).strip(), settings.FLOWNOVA_LLM_SERVER)


def provider_kwargs(model: str) -> dict[str, Any]:
    """api_base/api_key for the call, or an LLMError that says how to configure the provider."""
    server: LLMServer | None = settings.FLOWNOVA_LLM_SERVER
    if server is not None and model.startswith(OPENAI_PREFIX):
        # The one-variable setting wins over LiteLLM's own for the models it serves.
        return {"api_base": server.base_url, "api_key": server.api_key or "not-needed"}
    base = os.environ.get("OPENAI_API_BASE") or os.environ.get("OPENAI_BASE_URL")
    if model.startswith(OPENAI_PREFIX) and base:
        # Any OpenAI-compatible server: local ones usually need no key, but the client insists on one.
        return {"api_base": base, "api_key": os.environ.get("OPENAI_API_KEY") or "not-needed"}
    try:
        check = litellm.validate_environment(model=model)
    except Exception as exc:  # LiteLLM raises assorted errors for providers it cannot place
        raise LLMError(f"model {model!r} is not a LiteLLM model string ({exc})") from exc
    if not check.get("keys_in_environment"):
        missing = ", ".join(check.get("missing_keys") or []) or "the provider's credentials"
        raise LLMError(
            f"no LLM provider is configured for model {model!r}: set {VARIABLE} to an OpenAI-compatible server "
            f"(e.g. {EXAMPLE} for a local Ollama, https://:<key>@api.openai.com/v1 for OpenAI), or {missing}, "
            "in the environment of the worker; FLOWNOVA_DEFAULT_MODEL chooses the model for nodes that name none"
        )
    return {}


def chat(
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    response_format: dict[str, Any] | None = None,
    temperature: float | None = None,
    on_text: Callable[[str], None] | None = None,
) -> ChatResult:
    """One chat completion, retried with backoff on transient provider errors. With `on_text`, the answer is
    streamed and each piece of text is handed to it as it arrives."""
    kwargs: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "timeout": settings.FLOWNOVA_LLM_TIMEOUT,
        # The retries below are the only ones: left to their defaults, LiteLLM's wrapper (num_retries) and the
        # OpenAI client it builds (max_retries, 2) each retry too, and the layers multiply (3 x 3 requests for
        # FLOWNOVA_LLM_RETRIES=2), each with its own backoff.
        "num_retries": 0,
        "max_retries": 0,
        **provider_kwargs(model),
    }
    if tools:
        kwargs["tools"] = tools
    if response_format:
        kwargs["response_format"] = response_format
    if temperature is not None:
        kwargs["temperature"] = temperature
    attempts = settings.FLOWNOVA_LLM_RETRIES + 1
    for attempt in range(1, attempts + 1):
        # Each attempt waits at most until the node's deadline (a thread of the I/O worker cannot be interrupted),
        # in whole seconds: LiteLLM keeps a client, with its connections, per timeout value.
        kwargs["timeout"] = deadline.bounded(settings.FLOWNOVA_LLM_TIMEOUT, whole=True)
        deadline.release_connection()
        try:
            return _stream(kwargs, on_text) if on_text else _complete(kwargs)
        except TRANSIENT_ERRORS as exc:
            if deadline.passed():
                raise deadline.DeadlineExceeded(f"the node's time limit passed waiting for {model}") from exc
            if attempt == attempts:
                times = "once" if attempts == 1 else f"{attempts} times"
                raise LLMError(f"the LLM provider failed {times} for {model}: {_short(exc)}") from exc
            delay = _retry_delay(exc, attempt)
            logger.warning("LLM call to %s failed (%s); retry %d in %.1f s", model, _short(exc), attempt, delay)
            time.sleep(deadline.bounded(delay))
        except litellm.AuthenticationError as exc:
            raise LLMError(f"the LLM provider refused the credentials for {model}: {_short(exc)}") from exc
        except (litellm.BadRequestError, litellm.NotFoundError, litellm.APIError) as exc:
            raise LLMError(f"the LLM provider rejected the request for {model}: {_short(exc)}") from exc
    raise AssertionError("unreachable")


def _retry_delay(exc: Exception, attempt: int) -> float:
    """Seconds to wait before the next attempt: our backoff, or longer when the provider said how long
    (Retry-After on a 429 or 503; the OpenAI client honoured it, and its retries are off now), capped."""
    delay = settings.FLOWNOVA_LLM_BACKOFF_SECONDS * 2.0 ** (attempt - 1)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is not None:
        asked = _retry_after_seconds(headers)
        if asked is not None:
            delay = max(delay, asked)
    return min(delay, MAX_RETRY_DELAY_SECONDS)


def _retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """The wait a response asks for: `retry-after-ms` (OpenAI's), or `Retry-After` in seconds or as a date."""
    try:
        if headers.get("retry-after-ms"):
            return max(float(headers["retry-after-ms"]) / 1000, 0.0)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(float(value), 0.0)
        except ValueError:
            moment = email.utils.parsedate_to_datetime(value)
            return max(moment.timestamp() - time.time(), 0.0)
    except (TypeError, ValueError, OverflowError):  # a header we cannot read: our own backoff applies
        return None


def _short(exc: Exception) -> str:
    text = str(exc).strip().replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."


def _complete(kwargs: dict[str, Any]) -> ChatResult:
    response = litellm.completion(**kwargs)
    return _result(response, kwargs["model"])


def _stream(kwargs: dict[str, Any], on_text: Callable[[str], None]) -> ChatResult:
    chunks = []
    for chunk in litellm.completion(**kwargs, stream=True, stream_options={"include_usage": True}):
        chunks.append(chunk)
        deadline.check()  # a stream that keeps trickling ends at the deadline too
        choices = getattr(chunk, "choices", None) or []
        text = getattr(choices[0].delta, "content", None) if choices else None
        if text:
            on_text(text)
    response = litellm.stream_chunk_builder(chunks, messages=kwargs["messages"])
    if response is None:
        raise LLMError(f"the LLM provider sent an empty stream for {kwargs['model']}")
    return _result(response, kwargs["model"])


def _result(response: Any, model: str) -> ChatResult:
    choice = response.choices[0]
    message = choice.message
    calls = [
        ToolCallRequest(id=call.id, name=call.function.name, arguments=call.function.arguments or "")
        for call in (getattr(message, "tool_calls", None) or [])
    ]
    usage = getattr(response, "usage", None)
    record = {
        "prompt_tokens": getattr(usage, "prompt_tokens", 0) or 0,
        "completion_tokens": getattr(usage, "completion_tokens", 0) or 0,
        "total_tokens": getattr(usage, "total_tokens", 0) or 0,
        "cost_usd": _cost(response),
    }
    raw = {"role": "assistant", "content": message.content or ""}
    if calls:
        raw["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}} for c in calls
        ]
    return ChatResult(content=message.content or "", tool_calls=calls, usage=record, raw_message=raw)


def _cost(response: Any) -> float | None:
    """The call's price from LiteLLM's bundled price map; None for a model it does not know (any local one)."""
    try:
        return float(litellm.completion_cost(completion_response=response))
    except Exception:  # noqa: BLE001 - completion_cost raises for models it does not know
        return None


def supports_schema(model: str) -> bool:
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:  # noqa: BLE001 - unknown model: no schema support to rely on
        return False


def parse_json_answer(text: str) -> Any:
    """The JSON value in a model's answer, tolerating a ```json fence around it. Raises ValueError."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return json.loads(stripped)


class TokenBatcher:
    """Collects streamed text and hands it on in batches, so a long answer sends a few events a second
    rather than one per token."""

    def __init__(self, send: Callable[[str], None], interval: float | None = None) -> None:
        self.send = send
        self.interval = settings.FLOWNOVA_LLM_TOKEN_INTERVAL if interval is None else interval
        self.pending: list[str] = []
        self.last = time.monotonic()

    def __call__(self, text: str) -> None:
        self.pending.append(text)
        if time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            text, self.pending = "".join(self.pending), []
            self.send(text)
        self.last = time.monotonic()
