"""OpenAI-compatible HTTP backend: any server speaking `/v1/completions` and
`/v1/chat/completions` (vLLM `vllm serve`, SGLang, TGI, `transformers serve`,
llama.cpp server, hosted APIs).

Standard library only (``urllib.request`` + a thread pool): requests are sent
with bounded concurrency, retried with exponential backoff and jitter on 408,
429, 5xx, connection errors and timeouts (``Retry-After`` is honoured), and
never retried on other 4xx. Each text is handed to ``on_result`` as soon as
it arrives; results are returned in request order.

The API key is read from the environment variable named by ``api_key_env``
at request time and is never stored on the backend, so it cannot end up in
``identity()``, ``repr()``, exception messages or logs. Redirects are never
followed (a 3xx is an error naming the target), so the key is only ever sent to
the configured origin; text a server sends back in an error is redacted for the
key and its common encodings (:func:`pytest_jallm.redact.redact_secret`).

``timeout_s`` (``--jallm-timeout``) bounds each request as a whole, connect, headers and body
(:mod:`pytest_jallm.netio`), and a response body larger than ``max_response_mb`` is not read on.
"""

from __future__ import annotations

import concurrent.futures as cf
import email.utils
import http.client
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Mapping, NoReturn, Sequence

from .. import netio
from ..backend_options import OPENAI_OPTIONS
from ..redact import redact_secret, without_credentials
from .base import (
    BackendError,
    BackendIdentity,
    GenerationRequest,
    RequestErrors,
    ResultCallback,
    SamplingSettings,
    apply_stop,
    register_backend,
)
from .revision import resolve_revision

log = logging.getLogger(__name__)

MODES = ("completions", "chat")
RETRY_STATUSES = frozenset({408, 429})  # plus every 5xx
MAX_BACKOFF_S = 30.0  # cap of one computed backoff
MAX_RETRY_AFTER_S = 300.0  # cap of a parsed Retry-After (max_retry_wait_s caps the actual wait)
DEFAULT_MAX_RETRY_WAIT_S = 60.0  # the longest single wait before a retry
DEFAULT_RETRY_BUDGET_S = 600.0  # all retry waits of one backend (one run) together
MAX_BODY_IN_ERROR = 500  # characters of a server's error body quoted in a BackendError
MAX_STOP_SENT = 4  # OpenAI rejects more; the rest are applied client-side by apply_stop
DEFAULT_MAX_RESPONSE_MB = 32.0  # a response body larger than this is not read on (memory, cache)
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


class _RetryableError(Exception):
    def __init__(self, cause: str, retry_after: float | None = None, retry_after_header: str | None = None):
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after
        self.retry_after_header = retry_after_header


class _FatalError(Exception):
    """Stops the whole run (auth, redirects, a server that stays down)."""


class _BadResponse(Exception):
    """A 200 response that cannot be used (not UTF-8 JSON, no choices): retried, then that item fails."""


class _ItemFailure(Exception):
    """One request's responses stayed unusable; the others go on (RequestErrors at the end)."""


class _Cancelled(Exception):
    pass


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        secs = when.timestamp() - time.time()
    if secs != secs:  # NaN
        return None
    return min(max(secs, 0.0), MAX_RETRY_AFTER_S)


@register_backend("openai")
class OpenAIBackend:
    """Generate through an OpenAI-compatible HTTP server."""

    cli_options = OPENAI_OPTIONS  # declared in backend_options.py, so that start-up imports no backend
    engine_args_as_keywords = True  # e.g. max_retries=1, extra_body={...}

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key_env: str = "OPENAI_API_KEY",
        mode: str = "completions",
        max_concurrency: int = 8,
        timeout_s: float = 120,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        max_retry_wait_s: float = DEFAULT_MAX_RETRY_WAIT_S,
        retry_budget_s: float = DEFAULT_RETRY_BUDGET_S,
        max_response_mb: float = DEFAULT_MAX_RESPONSE_MB,
        revision: str | None = None,
        extra_body: Mapping[str, Any] | None = None,
    ):
        if mode not in MODES:
            raise BackendError(f"openai backend: mode must be one of {MODES}, got {mode!r}")
        if not model:
            raise BackendError("openai backend: a model name is required")
        try:
            parts = urllib.parse.urlsplit(base_url)
            parts.port  # noqa: B018 - raises ValueError on a malformed port
        except (ValueError, TypeError):
            raise BackendError("openai backend: base_url is not a valid URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BackendError(
                f"openai backend: base_url must be an http(s) URL, got {without_credentials(base_url)!r}"
            )
        if parts.username is not None or parts.password is not None:
            # Never carry credentials in the URL: they would end up in caches and reports.
            raise BackendError(
                "openai backend: base_url must not contain credentials; "
                f"put the API key in the environment variable {api_key_env!r}"
            )
        if max_concurrency < 1:
            raise BackendError("openai backend: max_concurrency must be >= 1")
        if max_retries < 0:
            raise BackendError("openai backend: max_retries must be >= 0")
        if timeout_s <= 0:
            raise BackendError("openai backend: timeout_s must be > 0")
        if not (max_retry_wait_s >= 0 and retry_budget_s >= 0):  # also rejects NaN
            raise BackendError("openai backend: max_retry_wait_s and retry_budget_s must be numbers >= 0")
        if not max_response_mb > 0:
            raise BackendError("openai backend: max_response_mb must be a number > 0")

        self.model = model
        self.mode = mode
        self.api_key_env = api_key_env
        self.max_concurrency = int(max_concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_base_s = float(backoff_base_s)
        self.max_retry_wait_s = float(max_retry_wait_s)
        self.retry_budget_s = float(retry_budget_s)
        self.max_response_mb = float(max_response_mb)
        self._retry_waited_s = 0.0  # summed over every request of this backend, under _lock
        self._retries = 0
        self.revision = revision
        self.extra_body = dict(extra_body or {})
        try:
            json.dumps(self.extra_body)
        except (TypeError, ValueError) as e:
            raise BackendError(f"openai backend: extra_body must be JSON-serialisable: {e}") from None

        # Accept both "http://host:8000" and "http://host:8000/v1" (the OpenAI SDK convention).
        path = parts.path.rstrip("/")
        api_root = path if path.endswith("/v1") else path + "/v1"
        root_path = path[: -len("/v1")] if path.endswith("/v1") else path
        self._server_root = urllib.parse.urlunsplit((parts.scheme, parts.netloc, root_path, "", ""))
        self._endpoint = {
            kind: urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"{api_root}/{kind}", parts.query, ""))
            for kind in ("completions", "chat/completions")
        }
        self._public_base_url = without_credentials(base_url)
        if parts.hostname in _LOOPBACK or (parts.hostname or "").startswith("127."):
            self._opener = netio.build_opener(netio.NoRedirect, urllib.request.ProxyHandler({}))
        else:
            self._opener = netio.build_opener(netio.NoRedirect)  # honours *_proxy / no_proxy
        self._server_info: str | None = None
        self._server_info_probed = False
        self._lock = threading.Lock()
        self._closed = False

    # ----- identity -----

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self._public_base_url!r}, mode={self.mode!r})"

    def _model_revision(self) -> str:
        # A local directory served by a loopback server: its content hash.
        return resolve_revision(self.model, self.revision, default="unspecified")

    def _probe_server_info(self) -> str | None:
        """``GET /version`` (vLLM, SGLang's ``/get_server_info`` is not probed): one short try, cached."""
        with self._lock:
            if self._server_info_probed:
                return self._server_info
            self._server_info_probed = True
        info = None
        req = urllib.request.Request(self._server_root + "/version", headers=self._headers(json_body=False))
        try:
            with netio.Deadline(min(2.0, self.timeout_s)) as deadline, netio.open_url(self._opener, req, deadline) as resp:
                data = json.loads(netio.read_body(resp, deadline, 4096).decode("utf-8", "replace"))
            if isinstance(data, dict) and isinstance(data.get("version"), (str, int, float)):
                info = str(data["version"])[:64]
        except Exception:
            info = None
        self._server_info = info
        return info

    def identity(self) -> BackendIdentity:
        from .. import __version__

        version = f"pytest-jallm {__version__}"
        server = self._probe_server_info()
        if server:
            version += f"; server {server}"
        return BackendIdentity(
            backend="openai",
            backend_version=version,
            model=self.model,
            model_revision=self._model_revision(),
            settings={
                "base_url": self._public_base_url,
                "mode": self.mode,
                "extra_body": dict(self.extra_body),
            },
        )

    # ----- request building -----

    def _headers(self, *, json_body: bool = True) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "pytest-jallm"}
        if json_body:
            headers["Content-Type"] = "application/json"
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _redact(self, text: str) -> str:
        """Remove the API key (and its encodings) from text quoted back from a server."""
        return redact_secret(text, os.environ.get(self.api_key_env))

    def build_payload(self, request: GenerationRequest, sampling: SamplingSettings) -> tuple[str, dict[str, Any]]:
        """Return ``(endpoint_kind, json_body)`` for one request."""
        body: dict[str, Any] = {"model": self.model}
        if request.messages is not None:
            kind = "chat/completions"
            body["messages"] = [dict(m) for m in request.messages]
        elif self.mode == "chat":
            kind = "chat/completions"
            body["messages"] = [{"role": "user", "content": request.prompt}]
        else:
            kind = "completions"
            body["prompt"] = request.prompt
        body["max_tokens"] = int(request.max_new_tokens)
        body["temperature"] = float(sampling.temperature)
        body["top_p"] = float(sampling.top_p)
        body["seed"] = int(sampling.seed)
        if sampling.repetition_penalty != 1.0:  # not OpenAI-standard; vLLM/SGLang accept it
            body["repetition_penalty"] = float(sampling.repetition_penalty)
        stops = [s for s in request.stop if s]
        if stops:
            body["stop"] = stops[:MAX_STOP_SENT]
        body.update(self.extra_body)
        return kind, body

    @staticmethod
    def _extract_text(kind: str, data: Any) -> str:
        try:
            choice = data["choices"][0]
            if kind == "completions":
                text = choice["text"]
            else:
                text = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _BadResponse("response has no choices[0] text") from None
        if text is None:
            return ""
        if not isinstance(text, str):
            raise _BadResponse(f"response text is a {type(text).__name__}, not a string")
        return text

    # ----- one request with retries -----

    def _post_once(self, url: str, payload: bytes) -> Any:
        req = urllib.request.Request(url, data=payload, headers=self._headers(), method="POST")
        timed_out = f"timed out: no complete response within {self.timeout_s:g} s (--jallm-timeout)"
        with netio.Deadline(self.timeout_s) as deadline:
            try:
                with netio.open_url(self._opener, req, deadline) as resp:
                    raw = netio.read_body(resp, deadline, int(self.max_response_mb * 2**20))
            except urllib.error.HTTPError as e:
                self._http_error(url, e)
            except netio.BodyTooLarge:
                raise _BadResponse(f"response body exceeds {self.max_response_mb:g} MB (max_response_mb)") from None
            except netio.DeadlineExceeded:
                raise _RetryableError(timed_out) from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
                if deadline.expired or netio.is_timeout(e):
                    raise _RetryableError(timed_out) from None
                reason = e.reason if isinstance(e, urllib.error.URLError) else e
                raise _RetryableError(f"connection error: {type(reason).__name__}: {reason}") from None
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            snippet = self._redact(raw[:200].decode("utf-8", "replace"))
            raise _BadResponse(f"response is not JSON or not UTF-8: {snippet!r}") from None

    def _http_error(self, url: str, e: urllib.error.HTTPError) -> NoReturn:
        """Raise what an HTTP error status means: a redirect or 4xx stops the run, 408/429/5xx retry."""
        status = e.code
        try:
            err_body = e.read(4096).decode("utf-8", "replace")
        except Exception:
            err_body = ""
        finally:
            e.close()
        err_body = self._redact(" ".join(err_body.split()))[:MAX_BODY_IN_ERROR]
        if 300 <= status <= 399:
            target = urllib.parse.urljoin(url, (e.headers.get("Location") if e.headers else None) or "")
            raise _FatalError(
                f"HTTP {status} redirect to {self._redact(without_credentials(target))} not followed "
                "(API calls never follow redirects, so the API key stays with its server): "
                "point --jallm-base-url at the final address"
            ) from None
        if status in RETRY_STATUSES or 500 <= status <= 599:
            header = e.headers.get("Retry-After") if e.headers else None
            raise _RetryableError(f"HTTP {status}: {err_body}", _parse_retry_after(header), header) from None
        raise _FatalError(f"HTTP {status}: {err_body}") from None

    def _waited(self) -> str:
        """The run's retry waits. Requests in flight wait side by side, so the sum can exceed the time passed."""
        text = f"{self._retry_waited_s:.1f} s of retry waits in this run over {self._retries} retries"
        if self.max_concurrency > 1:
            text += f", summed over requests waiting at the same time (up to {self.max_concurrency} in flight)"
        return text

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        delay = min(self.backoff_base_s * (2**attempt), MAX_BACKOFF_S)
        return delay / 2 + random.uniform(0, delay / 2)  # "equal jitter"

    def _run_one(self, index: int, kind: str, payload: bytes, stop: Sequence[str], cancel: threading.Event) -> str:
        try:
            return self._attempts(index, kind, payload, stop, cancel)
        except _FatalError:
            cancel.set()  # at once, so this worker does not start the next queued request
            raise

    def _attempts(self, index: int, kind: str, payload: bytes, stop: Sequence[str], cancel: threading.Event) -> str:
        url = self._endpoint[kind]
        for attempt in range(self.max_retries + 1):
            if cancel.is_set():
                raise _Cancelled()
            try:
                data = self._post_once(url, payload)
                return apply_stop(self._extract_text(kind, data), stop)
            except _BadResponse as e:
                if attempt >= self.max_retries:
                    raise _ItemFailure(f"{e} (the same after {self.max_retries + 1} attempts)") from None
                log.warning("openai backend: request %d: %s; retry %d/%d", index, e, attempt + 1, self.max_retries)
                continue
            except _RetryableError as e:
                if attempt >= self.max_retries:
                    waited = f"; {self._waited()}" if self._retry_waited_s >= 0.05 else ""
                    raise _FatalError(f"{e.cause} (gave up after {self.max_retries + 1} attempts){waited}") from None
                delay = min(self._backoff(attempt, e.retry_after), self.max_retry_wait_s)
                with self._lock:
                    spent = self._retry_waited_s + delay > self.retry_budget_s
                    if not spent:
                        self._retry_waited_s += delay
                        self._retries += 1
                if spent:
                    asked = ""
                    if e.retry_after_header is not None:
                        asked = (f"; the server asked to wait {self._redact(e.retry_after_header.strip()[:40])} s "
                                 f"(Retry-After), each wait capped at max_retry_wait_s={self.max_retry_wait_s:g}")
                    raise _FatalError(
                        f"{e.cause}: gave up: the run's retry budget (retry_budget_s={self.retry_budget_s:g}) is "
                        f"spent: {self._waited()}{asked}"
                    ) from None
                log.warning(
                    "openai backend: request %d: %s; retry %d/%d in %.2f s",
                    index, e.cause, attempt + 1, self.max_retries, delay,
                )
                if cancel.wait(delay):
                    raise _Cancelled() from None
        raise AssertionError("unreachable")  # pragma: no cover

    # ----- the Backend interface -----

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingSettings,
        on_result: ResultCallback | None = None,
    ) -> list[str]:
        if self._closed:
            raise BackendError("openai backend: generate() after close()")
        n = len(requests)
        if n == 0:
            return []
        jobs = []
        for req in requests:
            kind, body = self.build_payload(req, sampling)
            jobs.append((kind, json.dumps(body, ensure_ascii=False).encode("utf-8"), tuple(req.stop)))

        results: list[str | None] = [None] * n
        cancel = threading.Event()
        failure: tuple[int, str] | None = None
        item_failures: dict[int, str] = {}
        pool = cf.ThreadPoolExecutor(max_workers=min(self.max_concurrency, n), thread_name_prefix="jallm-openai")
        finished = False
        try:
            futures = {
                pool.submit(self._run_one, i, kind, payload, stop, cancel): i
                for i, (kind, payload, stop) in enumerate(jobs)
            }
            # on_result runs in the caller's thread, as each response arrives.
            for fut in cf.as_completed(futures):
                i = futures[fut]
                try:
                    text = fut.result()
                except _Cancelled:
                    continue
                except _ItemFailure as e:
                    item_failures[i] = self._redact(str(e))
                    continue
                except Exception as e:
                    if failure is None:
                        cause = str(e) if isinstance(e, _FatalError) else f"{type(e).__name__}: {e}"
                        failure = (i, self._redact(cause))
                    # Queued requests are skipped and retry loops stop; requests already
                    # in flight finish and are still delivered through on_result.
                    cancel.set()
                    continue
                results[i] = text
                if on_result is not None:
                    on_result(i, text)
            finished = True
        finally:
            if not finished:  # KeyboardInterrupt or on_result raised: do not wait for the server
                cancel.set()
            pool.shutdown(wait=finished, cancel_futures=True)
        if failure is not None:
            i, cause = failure
            done = sum(r is not None for r in results)
            raise BackendError(
                f"openai backend: request {i} to {self._public_base_url} failed: {cause} "
                f"({done}/{n} results delivered)"
            )
        if item_failures:
            raise RequestErrors(item_failures, results)
        return [r if r is not None else "" for r in results]

    def close(self) -> None:
        self._closed = True

    # ----- the context check (pytest_jallm.context_fit), asked of the server: openai_context.py -----

    def context_window(self) -> int | None:
        """The served model's ``max_model_len`` (``GET /v1/models``), when the server can also count
        tokens (``POST /tokenize``); else None, and the run says once that prompts go unchecked."""
        return self._server_context().window()

    def count_prompt_tokens(self, requests: Sequence[GenerationRequest]) -> list[int]:
        """Each prompt's length in tokens as the server will encode it (``POST /tokenize``, concurrently)."""
        return self._server_context().count(requests)

    def _server_context(self) -> Any:
        context = getattr(self, "_context", None)
        if context is None:
            from .openai_context import ServerContext

            context = self._context = ServerContext(self)
        return context
