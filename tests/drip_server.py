"""A loopback TCP server that answers every connection with scripted bytes at a scripted pace,
for deadline, stall and size tests (127.0.0.1 only; every loop bounded; stops by itself).

    with DripServer(steps) as server:  # steps: [(delay_s, bytes), ...], sent in order
        server.base_url      # http://127.0.0.1:PORT (https:// with ``tls``, a server-side SSLContext)
        server.sent          # bytes written, over all connections
        server.completed     # connections that got every step (the client did not hang up)
        server.requests      # the request lines received

A step's delay is slept (interruptibly) before its bytes are written; a client that hangs up
ends that connection's script. With ``tls`` and ``stall_handshake`` the server never answers
the TLS handshake (it waits up to 10 s, then hangs up).

``self_signed(dir)`` makes a certificate for 127.0.0.1 with the ``openssl`` command (None
without it).
"""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path
from typing import Iterable, Sequence


def self_signed(directory: Path) -> tuple[Path, Path] | None:
    """(certificate, key) for 127.0.0.1, or None when there is no `openssl` command."""
    if shutil.which("openssl") is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    done = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                           str(cert), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                          capture_output=True, timeout=60)
    return (cert, key) if done.returncode == 0 else None


def http_head(status: int = 200, length: int | None = None, **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def dripped(data: bytes, interval: float) -> list[tuple[float, bytes]]:
    """One byte per step, ``interval`` seconds apart."""
    return [(interval, data[i:i + 1]) for i in range(len(data))]


class DripServer:
    def __init__(self, steps: Sequence[tuple[float, bytes]] | Iterable[tuple[float, bytes]], max_connections: int = 8,
                 tls: ssl.SSLContext | None = None, stall_handshake: bool = False):
        self.steps = list(steps)
        self.tls, self.stall_handshake = tls, stall_handshake
        self.max_connections = max_connections
        self.sent = 0
        self.completed = 0
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        self.base_url = f"{'https' if tls else 'http'}://127.0.0.1:{self._sock.getsockname()[1]}"
        self._threads: list[threading.Thread] = []

    def _accept_loop(self) -> None:
        accepted = 0
        while not self._stop.is_set() and accepted < self.max_connections:
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            accepted += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        if self.tls is not None:
            conn.settimeout(5)
            if self.stall_handshake:
                self._stop.wait(10)
                conn.close()
                return
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except OSError:
                conn.close()
                return
        with conn:
            conn.settimeout(5)
            head = b""
            try:
                while b"\r\n\r\n" not in head and len(head) < 65536:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    head += chunk
            except OSError:
                return
            with self._lock:
                self.requests.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
            for delay, data in self.steps:
                if delay and self._stop.wait(delay):
                    return
                try:
                    conn.sendall(data)
                except OSError:
                    return  # the client hung up
                with self._lock:
                    self.sent += len(data)
            with self._lock:
                self.completed += 1

    def __enter__(self) -> "DripServer":
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)
        self._sock.close()
