"""A tiny scripted OpenAI-compatible server for fault injection (standard library only).

    with OpenAIStub(handler) as stub:
        backend = OpenAIBackend("m", base_url=stub.base_url)
        ...
        stub.requests      # every request received: StubRequest(path, headers, body, n)
        stub.max_in_flight # the most requests handled at the same time

``handler(request) -> Reply`` decides each answer; the default echoes the
prompt (or the last message) back as ``"echo:" + text``. A Reply may carry a
``delay`` (seconds slept before answering; interruptible by ``stop()``),
extra headers (e.g. ``Retry-After``) and a raw body. Only 127.0.0.1 is bound.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class StubRequest:
    path: str
    headers: Mapping[str, str]
    body: Any
    n: int  # 0-based arrival number

    @property
    def text(self) -> str:
        """The prompt, or the content of the last message."""
        if isinstance(self.body, dict):
            if "prompt" in self.body:
                return str(self.body["prompt"])
            if self.body.get("messages"):
                return str(self.body["messages"][-1].get("content", ""))
        return ""


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    raw: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


def completion_json(path: str, text: str, model: str = "stub") -> dict[str, Any]:
    """A minimal valid response body for ``path`` carrying ``text``."""
    if path.endswith("/chat/completions"):
        return {
            "id": "stub",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        }
    return {
        "id": "stub",
        "object": "text_completion",
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
    }


def echo(req: StubRequest) -> Reply:
    return Reply(json=completion_json(req.path, "echo:" + req.text))


class OpenAIStub:
    def __init__(self, handler: Callable[[StubRequest], Reply] | None = None):
        self.handler = handler or echo
        self.requests: list[StubRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "stub not started"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "OpenAIStub":
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw
                with stub._lock:
                    req = StubRequest(self.path, dict(self.headers.items()), body, len(stub.requests))
                    stub.requests.append(req)
                    stub.in_flight += 1
                    stub.max_in_flight = max(stub.max_in_flight, stub.in_flight)
                counted = True

                def done() -> None:
                    # Before the reply is written: once the client has it, it may send
                    # its next request, which must not find this one still counted.
                    nonlocal counted
                    if counted:
                        counted = False
                        with stub._lock:
                            stub.in_flight -= 1

                try:
                    reply = stub.handler(req)
                    if reply.delay and stub._stopping.wait(reply.delay):
                        return  # stopping: drop the connection
                    payload = reply.raw if reply.raw is not None else json.dumps(reply.json).encode()
                    done()
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)
                finally:
                    done()

            do_POST = _serve
            do_GET = _serve

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # client disconnects are expected in fault tests

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "OpenAIStub":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def posts(self) -> list[StubRequest]:
        """Requests to the generation endpoints (ignores e.g. GET /version)."""
        return [r for r in self.requests if r.path.endswith("completions")]
