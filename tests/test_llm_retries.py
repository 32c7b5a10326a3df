"""One retry layer for LLM calls: FLOWNOVA_LLM_RETRIES retries mean that many more requests, no more.

LiteLLM and the OpenAI client under it each retry on their own; these tests count the requests that reach the
scripted OpenAI-compatible server, so a second layer hiding under ours shows up as extra requests.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import TYPE_CHECKING

import pytest
from pytest_django import Settings

from tests.llm_server import Answer, ScriptedLLM

if TYPE_CHECKING:
    from runs.llm import ChatResult


@pytest.fixture
def llm(llm_server: ScriptedLLM, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> ModuleType:
    from runs import llm  # imports LiteLLM: only the tests that call it pay for that

    monkeypatch.setenv("OPENAI_API_BASE", llm_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    settings.FLOWNOVA_LLM_BACKOFF_SECONDS = 0
    return llm


def ask(llm: ModuleType, model: str, *, stream: bool) -> ChatResult:
    on_text = (lambda text: None) if stream else None
    return llm.chat(model=model, messages=[{"role": "user", "content": "Hi"}], on_text=on_text)


@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
@pytest.mark.parametrize("status", [500, 429])
@pytest.mark.parametrize("retries", [0, 2])
def test_a_failing_provider_gets_one_request_per_attempt(
    llm: ModuleType, llm_server: ScriptedLLM, settings: Settings, retries: int, status: int, stream: bool
) -> None:
    settings.FLOWNOVA_LLM_RETRIES = retries
    # More failures scripted than any layer could use, so every request the client sends is answered and counted.
    model = llm_server.model(*[Answer(status=status) for _ in range(12)])
    times = "once" if retries == 0 else f"{retries + 1} times"
    with pytest.raises(llm.LLMError, match=f"the LLM provider failed {times} for {model}"):
        ask(llm, model, stream=stream)
    assert len(llm_server.requests(model)) == retries + 1


@pytest.mark.parametrize("status", [500, 429])
def test_a_provider_that_recovers_is_asked_once_more_per_failure(
    llm: ModuleType, llm_server: ScriptedLLM, settings: Settings, status: int
) -> None:
    settings.FLOWNOVA_LLM_RETRIES = 2
    model = llm_server.model(Answer(status=status), Answer(content="second time lucky"))
    assert ask(llm, model, stream=True).content == "second time lucky"
    assert len(llm_server.requests(model)) == 2


class Throttling:
    """A provider that answers every request 429 with the given headers, noting when each request came."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.arrivals: list[float] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.arrivals.append(time.monotonic())
                body = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
                self.send_response(429)
                for name, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"retry-after-ms": "400"}, 0.4), ({"Retry-After": "1"}, 1.0), ({"Retry-After": "soon"}, 0.0)],
    ids=["retry-after-ms", "retry-after-seconds", "unreadable"],
)
def test_the_wait_a_provider_asks_for_is_honoured(
    llm: ModuleType, settings: Settings, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str], wait: float
) -> None:
    # The OpenAI client used to honour Retry-After in the layer now turned off; ours does it instead.
    provider = Throttling(headers)
    monkeypatch.setenv("OPENAI_API_BASE", provider.base_url)
    settings.FLOWNOVA_LLM_RETRIES = 1
    try:
        with pytest.raises(llm.LLMError, match="failed 2 times"):
            ask(llm, "openai/throttled", stream=False)
    finally:
        provider.server.shutdown()
        provider.server.server_close()
    first, second = provider.arrivals
    assert wait <= second - first < wait + 0.5
