"""A scripted OpenAI-compatible chat completions server on loopback, standing in for LLM providers.

The real LiteLLM client in the worker talks to it over HTTP, so our request building, streaming and parsing
run for real. Answers are scripted per model name, so tests running at once never take each other's answers;
every request body is kept for assertions.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    content: str = ""
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)  # (name, arguments)
    status: int = 200  # anything else: an error response with this status
    prompt_tokens: int = 11
    completion_tokens: int = 7
    chunk_delay: float = 0.0  # seconds between streamed chunks, so a page can watch the text arrive
    delay: float = 0.0  # seconds before answering at all: a slow model
    hold: threading.Event | None = None  # answer only once this is set (at most 60 s later): a call kept in flight


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up before its answer (a node past its time limit) is expected, not a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ScriptedLLM:
    def __init__(self) -> None:
        self._answers: dict[str, deque[Answer]] = defaultdict(deque)
        self._requests: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ScriptedLLM:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def model(self, *answers: Answer) -> str:
        """A fresh model name (as a LiteLLM model string) whose calls get `answers`, in order."""
        name = f"test-{uuid.uuid4().hex[:10]}"
        with self._lock:
            self._answers[name].extend(answers)
        return f"openai/{name}"

    def named(self, model: str, *answers: Answer) -> str:
        """Answers for a given LiteLLM model string (a real model name, for pricing); queued after any left."""
        with self._lock:
            self._answers[model.removeprefix("openai/")].extend(answers)
        return model

    def requests(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._requests[model.removeprefix("openai/")])

    def _next(self, body: dict[str, Any]) -> Answer | None:
        name = str(body.get("model"))
        with self._lock:
            self._requests[name].append(body)
            queue = self._answers.get(name)
            return queue.popleft() if queue else None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                if not self.path.endswith("/chat/completions"):
                    return self.reply(404, {"error": {"message": f"no route {self.path}"}})
                answer = server._next(body)
                if answer is None:
                    return self.reply(500, {"error": {"message": f"no scripted answer left for {body.get('model')}"}})
                if answer.hold is not None:
                    answer.hold.wait(60)
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.status != 200:
                    return self.reply(answer.status, {"error": {"message": f"scripted {answer.status}", "type": "x"}})
                if body.get("stream"):
                    return self.stream(body, answer)
                return self.reply(200, completion(body, answer))

            def reply(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def stream(self, body: dict[str, Any], answer: Answer) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for chunk in stream_chunks(body, answer):
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                    time.sleep(answer.chunk_delay)
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

        return Handler


def tool_call_objects(answer: Answer) -> list[dict[str, Any]]:
    return [
        {
            "id": f"call_{index}",
            "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)},
        }
        for index, (name, args) in enumerate(answer.tool_calls)
    ]


def usage(answer: Answer) -> dict[str, int]:
    total = answer.prompt_tokens + answer.completion_tokens
    return {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens, "total_tokens": total}


def completion(body: dict[str, Any], answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content or None}
    if answer.tool_calls:
        message["tool_calls"] = tool_call_objects(answer)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:8]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if answer.tool_calls else "stop"}],
        "usage": usage(answer),
    }


def stream_chunks(body: dict[str, Any], answer: Answer) -> list[dict[str, Any]]:
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:8]}", "object": "chat.completion.chunk", "created": int(time.time())}
    base["model"] = body.get("model")
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    text = answer.content
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    for index, call in enumerate(tool_call_objects(answer)):
        delta = {"tool_calls": [{"index": index, **call}]}
        chunks.append({**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    finish = "tool_calls" if answer.tool_calls else "stop"
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    chunks.append({**base, "choices": [], "usage": usage(answer)})
    return chunks
