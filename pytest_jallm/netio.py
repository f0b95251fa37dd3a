"""HTTP exchanges with a deadline on the whole of them and a cap on what they read.

urllib's ``timeout`` bounds each socket operation, so a server sending one byte a second never
times out. Here a :class:`Deadline` bounds connect, TLS handshake, headers and body together:
the connections of a request opened through :func:`build_opener` are watched, and when the
deadline passes the watcher shuts the socket down (a ``dup`` of it, so whatever urllib does with
its own handle), which ends a read blocked in any phase. ``stall_s`` is the per-operation
socket timeout (the longest wait for the next bytes). :func:`read_body` reads in chunks and
stops as soon as a body exceeds its cap. Used by the openai backend and by downloads.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Callable

CHUNK = 1 << 16


class DeadlineExceeded(Exception):
    """The whole exchange took longer than the deadline."""


class Stalled(Exception):
    """No bytes arrived for ``stall_s`` seconds."""


class BodyTooLarge(Exception):
    def __init__(self, limit: int, announced: int | None = None):
        self.limit, self.announced = limit, announced
        super().__init__(f"announces {announced} bytes" if announced is not None else f"exceeds {limit} bytes")


class Deadline:
    """``with Deadline(total_s, stall_s) as d:`` around one request (redirects included)."""

    def __init__(self, total_s: float, stall_s: float | None = None):
        self.total_s = float(total_s)
        self.stall_s = min(float(stall_s), self.total_s) if stall_s else self.total_s
        self._ends = time.monotonic() + self.total_s
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._done = False
        self.expired = False
        self._timer = threading.Timer(self.total_s, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> "Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._timer.cancel()
        with self._lock:
            self._done = True
            socks, self._socks = self._socks, []
        for s in socks:
            s.close()

    def op_timeout(self) -> float:
        """The socket timeout for a new connection: the stall timeout, or what is left."""
        left = self._ends - time.monotonic()
        if left <= 0 or self.expired:
            self.expired = True
            raise DeadlineExceeded()
        return min(self.stall_s, left)

    def watch(self, sock: socket.socket) -> None:
        watched = sock.dup()  # survives urllib closing (and ssl detaching) its own handle
        with self._lock:
            if not self._done and not self.expired:
                self._socks.append(watched)
                return
        watched.close()
        raise DeadlineExceeded()

    def _expire(self) -> None:
        with self._lock:
            if self._done:
                return
            self.expired = True
            for s in self._socks:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)  # wakes a read blocked on the other handle

    def check(self, error: BaseException | None = None) -> None:
        """Raise DeadlineExceeded or Stalled when ``error`` (or a quietly cut body) came from them."""
        if self.expired:
            raise DeadlineExceeded() from None
        if error is not None and is_timeout(error):
            if self.stall_s < self.total_s:
                raise Stalled() from None
            raise DeadlineExceeded() from None


def is_timeout(e: BaseException) -> bool:
    if isinstance(e, urllib.error.URLError) and isinstance(e.reason, BaseException):
        e = e.reason
    return isinstance(e, (TimeoutError, socket.timeout))


def _watched(connection_class: type, deadline: Deadline | None) -> Callable[..., http.client.HTTPConnection]:
    def connect(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = connection_class(host, **kwargs)
        if deadline is not None:
            create = conn._create_connection

            def create_connection(*args: Any, **kw: Any) -> socket.socket:
                sock = create(*args, **kw)
                try:
                    deadline.watch(sock)
                except DeadlineExceeded:
                    sock.close()
                    raise
                return sock

            conn._create_connection = create_connection
        return conn

    return connect


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPConnection, getattr(req, "deadline", None)), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_watched(http.client.HTTPSConnection, getattr(req, "deadline", None)), req,
                            context=self._context)  # type: ignore[attr-defined]  # set by HTTPSHandler.__init__


class NoRedirect(urllib.request.HTTPRedirectHandler):
    """Redirects are not followed: a 3xx surfaces as an HTTPError (API calls: the API key would
    be re-sent to whatever origin the server names)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


def _origin(url: str) -> tuple[str, str | None, int | None]:
    parts = urllib.parse.urlsplit(url)
    return parts.scheme, parts.hostname, parts.port


class SameOriginCredentials(urllib.request.HTTPRedirectHandler):
    """Redirects (downloads: GitHub and Hugging Face redirect to CDNs) are followed to http(s)
    only, under the same deadline; credentials go to the origin they were given for, never on."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a non-http(s) URL refused ({msg})", headers, fp)
        new = super().redirect_request(req, fp, code, msg, headers, newurl)
        if new is not None:
            new.deadline = getattr(req, "deadline", None)  # type: ignore[attr-defined]
            if _origin(newurl) != _origin(req.full_url):
                new.remove_header("Authorization")
        return new


def build_opener(*handlers: Any, context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """An opener whose http(s) connections obey a request's ``deadline`` (see :func:`open_url`);
    ``context`` is the TLS context (default: the system's)."""
    return urllib.request.build_opener(_HTTPHandler, _HTTPSHandler(context=context), *handlers)


def open_url(opener: urllib.request.OpenerDirector, request: urllib.request.Request, deadline: Deadline) -> Any:
    request.deadline = deadline  # type: ignore[attr-defined]
    return opener.open(request, timeout=deadline.op_timeout())


def read_body(resp: Any, deadline: Deadline, max_bytes: int, sink: Callable[[bytes], Any] | None = None) -> bytes:
    """The body, read in chunks (each handed to ``sink`` instead of kept, when given); stops as
    soon as it exceeds ``max_bytes`` (or announces more), at the deadline or on a stall."""
    length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) is not None else None
    if length and length.strip().isdigit() and int(length) > max_bytes:
        raise BodyTooLarge(max_bytes, int(length))
    read = getattr(resp, "read1", None) or resp.read
    kept: list[bytes] = []
    total = 0
    try:
        while chunk := read(CHUNK):
            total += len(chunk)
            if total > max_bytes:
                raise BodyTooLarge(max_bytes)
            if sink is None:
                kept.append(chunk)
            else:
                sink(chunk)
    except BodyTooLarge:
        raise
    except Exception as e:
        deadline.check(e)
        raise
    deadline.check()  # the watcher may have cut a body without a length short: not a whole body
    return b"".join(kept)
