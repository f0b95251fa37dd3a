"""The served model's context and the length of each prompt, asked of an OpenAI-compatible server, so
that the context check (:mod:`pytest_jallm.context_fit`) works through the openai backend too.

This matters more here than for the in-process backends: a server answers a prompt longer than its
context with HTTP 400, and the openai backend stops the whole run on a 4xx.

* **The context**: ``GET /v1/models``. vLLM's model card carries ``max_model_len`` (vLLM 0.33:
  ``entrypoints/serve/engine/protocol.py``, ``ModelCard``; ``entrypoints/openai/models/serving.py``
  fills it from the engine's ``model_config``). The card whose ``id`` is the run's model counts, else
  the only card. vLLM's ``/tokenize`` answer carries ``max_model_len`` too, used when no card does.
* **Token counts**: ``POST /tokenize`` at the server's root (``entrypoints/serve/tokenize/api_router.py``),
  one prompt or one conversation per request (``protocol.py``: ``TokenizeCompletionRequest``,
  ``TokenizeChatRequest``), sent ``max_concurrency`` at a time so the check adds little to a run:
  ``{"model", "prompt", "add_special_tokens": true}`` for a raw prompt, as ``/v1/completions`` encodes
  it; ``{"model", "messages", "add_generation_prompt": true, "add_special_tokens": false}`` for a
  conversation, as ``/v1/chat/completions`` renders it (both vLLM's defaults, written out), with the
  run's chat-template settings from ``extra_body``. The answer's ``count`` (``TokenizeResponse``:
  ``count``, ``max_model_len``, ``tokens``, ``token_strs``).
* A server that reports no context, or has no ``/tokenize`` (OpenAI's API; llama.cpp's takes another
  shape), is passed through unchecked, and the run says so once (:class:`ContextNotCheckedWarning`).
  A prompt the server fails to count is sent unchecked, also said once.
"""

from __future__ import annotations

import concurrent.futures as cf
import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from typing import Any, Sequence

from .. import netio
from .base import GenerationRequest, SamplingSettings

log = logging.getLogger(__name__)

# extra_body keys that change how /v1/chat/completions renders a conversation; /tokenize takes them too.
CHAT_RENDERING = ("chat_template", "chat_template_kwargs", "add_generation_prompt", "continue_final_message",
                  "add_special_tokens", "tools")
TOKENIZE_TRIES = 3


class ContextNotCheckedWarning(UserWarning):
    """The server cannot say how long its context is or how long a prompt is: prompts go unchecked."""


class ServerContext:
    """One backend's questions to its server about context and prompt lengths, asked once where they
    can be (the context, whether ``/tokenize`` answers)."""

    def __init__(self, backend: Any):
        self.backend = backend  # an OpenAIBackend (not imported: it imports this module)
        endpoint = urllib.parse.urlsplit(backend._endpoint["completions"])
        api_root = endpoint.path[: -len("/completions")]
        self.models_url = urllib.parse.urlunsplit((endpoint.scheme, endpoint.netloc, api_root + "/models", endpoint.query, ""))
        self.tokenize_url = backend._server_root + "/tokenize"
        self._lock = threading.Lock()
        self._window: int | None = None
        self._probed = False
        self._said: set[str] = set()

    # -- what the context check calls ---------------------------------------------------------

    def window(self) -> int | None:
        """The served model's context in tokens, or None (then nothing is checked: said once)."""
        with self._lock:
            if self._probed:
                return self._window
            self._probed = True
        card_window, why = self._card_window()
        status, data, problem = self._call(self.tokenize_url, self._tokenize_body("a", None))
        counted = status == 200 and isinstance(data, dict) and _count(data) is not None
        if not counted:
            self._say("no-tokenize", f"the server at {self.backend._public_base_url} does not count tokens "
                                     f"(POST {self._public(self.tokenize_url)}: {problem or 'no count in the answer'})")
            return None
        window = card_window if card_window is not None else _positive_int(data.get("max_model_len"))
        if window is None:
            self._say("no-window", f"the server at {self.backend._public_base_url} reports no context length ({why})")
            return None
        self._window = window
        return window

    def count(self, requests: Sequence[GenerationRequest]) -> list[int]:
        """Each prompt's token count as the server will encode it (0, i.e. sent unchecked, where the
        server could not count it)."""
        if not requests:
            return []
        bodies = [self._body_for(r) for r in requests]
        counts: list[int] = [0] * len(bodies)
        failures: list[str] = []
        workers = max(1, min(self.backend.max_concurrency, len(bodies)))
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="jallm-tokenize") as pool:
            for i, (n, problem) in enumerate(pool.map(self._count_one, bodies)):
                if n is None:
                    failures.append(f"prompt {i}: {problem}")
                else:
                    counts[i] = n
        if failures:
            self._say("uncounted", f"{len(failures)} of {len(bodies)} prompts could not be counted by the server and "
                                   f"were sent unchecked; first: {failures[0]}")
        return counts

    # -- requests ---------------------------------------------------------------------------------

    def _body_for(self, request: GenerationRequest) -> dict[str, Any]:
        kind, payload = self.backend.build_payload(request, SamplingSettings())
        if kind == "completions":
            return self._tokenize_body(payload["prompt"], None)
        return self._tokenize_body(None, payload["messages"])

    def _tokenize_body(self, prompt: str | None, messages: list[dict[str, Any]] | None) -> dict[str, Any]:
        if messages is None:
            return {"model": self.backend.model, "prompt": prompt, "add_special_tokens": True}
        body = {"model": self.backend.model, "messages": messages, "add_generation_prompt": True, "add_special_tokens": False}
        body.update({k: v for k, v in self.backend.extra_body.items() if k in CHAT_RENDERING})
        return body

    def _count_one(self, body: dict[str, Any]) -> tuple[int | None, str]:
        problem = ""
        for _ in range(TOKENIZE_TRIES):
            status, data, problem = self._call(self.tokenize_url, body)
            if status == 200 and isinstance(data, dict):
                n = _count(data)
                if n is not None:
                    return n, ""
                problem = "no count in the answer"
            if status is not None and status != 429 and status < 500 and status != 200:
                break  # refused for good (400: a conversation the template cannot render)
        return None, problem

    def _card_window(self) -> tuple[int | None, str]:
        status, data, problem = self._call(self.models_url, None)
        if status != 200:
            return None, f"GET {self._public(self.models_url)}: {problem}"
        cards = data.get("data") if isinstance(data, dict) else None
        if not isinstance(cards, list) or not cards:
            return None, f"GET {self._public(self.models_url)} lists no models"
        mine = [c for c in cards if isinstance(c, dict) and c.get("id") == self.backend.model]
        if not mine and len(cards) == 1 and isinstance(cards[0], dict):
            mine = cards
        if not mine:
            return None, f"GET {self._public(self.models_url)} does not list {self.backend.model!r}"
        window = _positive_int(mine[0].get("max_model_len"))
        return window, "" if window is not None else f"the model card of {mine[0].get('id')!r} has no max_model_len"

    def _call(self, url: str, body: dict[str, Any] | None) -> tuple[int | None, Any, str]:
        """(HTTP status or None, parsed JSON or None, what went wrong) of one GET (no body) or POST."""
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode("utf-8")
        req = urllib.request.Request(url, data=data, headers=self.backend._headers(json_body=body is not None),
                                     method="GET" if body is None else "POST")
        try:
            with netio.Deadline(self.backend.timeout_s) as deadline, \
                    netio.open_url(self.backend._opener, req, deadline) as resp:
                raw = netio.read_body(resp, deadline, int(self.backend.max_response_mb * 2**20))
                status = resp.status
        except urllib.error.HTTPError as e:
            e.close()
            return e.code, None, f"HTTP {e.code}"
        except Exception as e:  # connection refused, timeout, a body too large: no answer
            return None, None, self.backend._redact(f"{type(e).__name__}: {e}")
        try:
            return status, json.loads(raw.decode("utf-8")), ""
        except (UnicodeDecodeError, ValueError):
            return status, None, "the answer is not JSON"

    # -- saying so once ---------------------------------------------------------------------------

    def _public(self, url: str) -> str:
        return urllib.parse.urlsplit(url).path or "/"

    def _say(self, what: str, message: str) -> None:
        with self._lock:
            if what in self._said:
                return
            self._said.add(what)
        text = f"openai backend: {message}; prompts longer than the model's context are not caught before they are sent"
        if what == "uncounted":
            text = f"openai backend: {message}"
        log.warning(text)
        warnings.warn(ContextNotCheckedWarning(text), stacklevel=4)


def _positive_int(value: Any) -> int | None:
    return value if type(value) is int and value > 0 else None


def _count(data: dict[str, Any]) -> int | None:
    """vLLM's ``count``; a server that only lists ``tokens`` is counted by them."""
    n = data.get("count")
    if type(n) is int and n >= 0:
        return n
    tokens = data.get("tokens")
    return len(tokens) if isinstance(tokens, list) else None
