"""A loopback HTTP file server in a thread, for download tests (127.0.0.1 only, bounded).

``serve_directory(root)`` is a context manager yielding a ``FileServer`` with ``base_url``
and ``requests`` (the paths asked for, in order). ``truncate`` names paths whose body is cut
short after announcing the full Content-Length (an interrupted download).
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from pathlib import Path
from typing import Iterator


class FileServer:
    def __init__(self, root: Path, truncate: set[str] | None = None):
        self.root = root
        self.truncate = set(truncate or ())
        self.requests: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.requests.append(self.path)
                if self.path in server.truncate:
                    body = (root / self.path.lstrip("/")).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def count(self, suffix: str) -> int:
        return sum(p.endswith(suffix) for p in self.requests)


@contextlib.contextmanager
def serve_directory(root: Path, truncate: set[str] | None = None) -> Iterator[FileServer]:
    server = FileServer(root, truncate)
    thread = threading.Thread(target=server.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
        thread.join(timeout=10)
