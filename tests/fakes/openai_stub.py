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


# --- a server answering as `vllm serve` does ----------------------------------------------------------
# Field names of vLLM 0.33.0's OpenAI-compatible server, read from its wheel:
# entrypoints/serve/engine/protocol.py (ModelCard, ModelList, ErrorResponse/ErrorInfo) and
# entrypoints/serve/tokenize/protocol.py (TokenizeCompletionRequest, TokenizeChatRequest, TokenizeResponse);
# /tokenize is routed at the server's root (entrypoints/serve/tokenize/api_router.py), /v1/models under /v1.
# tests/test_openai_context.py checks these names against the wheel when it is at hand.
MODEL_CARD_FIELDS = ("id", "object", "created", "owned_by", "root", "parent", "max_model_len", "permission")
MODEL_LIST_FIELDS = ("object", "data")
TOKENIZE_COMPLETION_FIELDS = ("model", "prompt", "add_special_tokens", "return_token_strs")
TOKENIZE_CHAT_FIELDS = ("model", "messages", "add_generation_prompt", "return_token_strs", "continue_final_message",
                        "add_special_tokens", "chat_template", "chat_template_kwargs", "media_io_kwargs",
                        "mm_processor_kwargs", "tools")
TOKENIZE_RESPONSE_FIELDS = ("count", "max_model_len", "tokens", "token_strs")
ERROR_INFO_FIELDS = ("message", "type", "param", "code")


def vllm_error(status: int, message: str, kind: str = "BadRequestError") -> Reply:
    return Reply(status=status, json={"error": {"message": message, "type": kind, "param": None, "code": status}})


@dataclass
class VLLMLike:
    """A handler answering like `vllm serve --max-model-len N`: ``GET /v1/models`` with the model card's
    ``max_model_len``, ``POST /tokenize`` (``count``, ``max_model_len``, ``tokens``, ``token_strs``), and
    completions that refuse a prompt with no room left for ``max_tokens`` (HTTP 400, as vLLM's
    renderer does). One token per character; a raw prompt gets one BOS token (``add_special_tokens``),
    a conversation is rendered ``<|role|>content`` per message plus ``<|assistant|>`` and gets none.
    ``models=False`` / ``tokenize=False``: a server without those routes (404); ``card_window=False``:
    a model card without ``max_model_len`` (OpenAI's own shape)."""

    max_model_len: int = 64
    model: str = "m"
    models: bool = True
    tokenize: bool = True
    card_window: bool = True
    tokenize_delay: float = 0.0
    refuse_tokenize: Callable[[Any], bool] = lambda body: False  # noqa: E731

    @staticmethod
    def chat_text(messages: list[dict[str, Any]], add_generation_prompt: bool = True) -> str:
        return "".join(f"<|{m['role']}|>{m['content']}" for m in messages) + ("<|assistant|>" if add_generation_prompt else "")

    def tokens(self, body: dict[str, Any]) -> list[int]:
        if "messages" in body:
            text = self.chat_text(body["messages"], body.get("add_generation_prompt", True))
            special = body.get("add_special_tokens", False)
        else:
            text, special = body["prompt"], body.get("add_special_tokens", True)
        return ([1] if special else []) + [ord(c) for c in text]

    def __call__(self, req: StubRequest) -> Reply:
        path = req.path.split("?")[0]
        if path == "/v1/models":
            if not self.models:
                return vllm_error(404, "Not Found", "NotFoundError")
            card = {"id": self.model, "object": "model", "created": 0, "owned_by": "vllm", "root": "/models/" + self.model,
                    "parent": None, "max_model_len": self.max_model_len, "permission": []}
            if not self.card_window:
                card = {"id": self.model, "object": "model", "created": 0, "owned_by": "openai"}
            return Reply(json={"object": "list", "data": [card]})
        if path == "/tokenize":
            if not self.tokenize:
                return Reply(status=404, json={"detail": "Not Found"})  # FastAPI's answer to an unknown route
            body = req.body
            if not isinstance(body, dict) or ("prompt" in body) == ("messages" in body) or self.refuse_tokenize(body):
                return vllm_error(400, "expected a prompt or messages")
            tokens = self.tokens(body)
            return Reply(json={"count": len(tokens), "max_model_len": self.max_model_len, "tokens": tokens,
                               "token_strs": None}, delay=self.tokenize_delay)
        if path.endswith("completions") and isinstance(req.body, dict):
            body = dict(req.body)
            if path.endswith("/chat/completions"):
                body.setdefault("add_special_tokens", False)
            n, room = len(self.tokens(body)), self.max_model_len - int(req.body.get("max_tokens", 16))
            if n > room:
                return vllm_error(400, f"This model's maximum context length is {self.max_model_len} tokens. However, "
                                       f"your prompt contains {n} input tokens, which exceeds the {room} left for "
                                       f"{req.body.get('max_tokens')} output tokens.")
            return echo(req)
        return Reply(status=404, json={"detail": "Not Found"})
