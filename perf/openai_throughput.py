#!/usr/bin/env python
"""Throughput of the openai backend against a server with a fixed latency and a concurrency limit.

A perf-only OpenAI-compatible server runs on 127.0.0.1 in its own process (standard library,
HTTP/1.1 with keep-alive, TCP_NODELAY and a deep listen backlog, as uvicorn, vLLM's server, has): every
completion takes LATENCY seconds, and at most LIMIT requests are served at once (the rest wait,
as they would for a full batch on vLLM). The client is `OpenAIBackend(max_concurrency=LIMIT)`
sending N requests through `generate()`, as a run does. The ceiling is LIMIT / LATENCY requests
per second; the script prints what was achieved, as a share of that ceiling (goal: >= 90 %),
with the client's CPU time per request and how many TCP connections the server accepted.

    python perf/openai_throughput.py                          # 8/50 ms, 32/100 ms, 64/200 ms, 256/200 ms
    python perf/openai_throughput.py --points 64:0.2:5000 --repeat 3

It is a script, not a test: its figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POINTS = "8:0.05:2000,32:0.1:3000,64:0.2:5000,256:0.2:5000"

SERVER = r'''
import json, socketserver, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

latency, limit = float(sys.argv[1]), int(sys.argv[2])
slots = threading.BoundedSemaphore(limit)
lock = threading.Lock()
stats = {"requests": 0, "connections": 0, "max_in_service": 0}
in_service = 0

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless the client says "Connection: close"
    disable_nagle_algorithm = True  # TCP_NODELAY, as uvicorn sets: headers and body leave at once

    def setup(self):
        super().setup()
        with lock:
            stats["connections"] += 1

    def log_message(self, *args):
        pass

    def do_GET(self):  # /version, /stats
        body = json.dumps(stats if self.path == "/stats" else {"version": "perf-server"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        global in_service
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = json.loads(raw)
        with slots:  # at most `limit` requests in service; the others queue here
            with lock:
                in_service += 1
                stats["max_in_service"] = max(stats["max_in_service"], in_service)
            time.sleep(latency)
            with lock:
                in_service -= 1
                stats["requests"] += 1
        text = "ok:" + str(len(request.get("prompt", "")))
        body = json.dumps({"id": "x", "object": "text_completion", "model": request.get("model"),
                           "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
'''


def start_server(latency: float, limit: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(latency), str(limit)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, f"http://127.0.0.1:{port}/v1"


def server_stats(base_url: str) -> dict[str, Any]:
    import urllib.request

    with urllib.request.urlopen(base_url.removesuffix("/v1") + "/stats", timeout=5) as resp:
        return json.loads(resp.read())


def one_point(limit: int, latency: float, n: int) -> dict[str, Any]:
    from pytest_jallm.backends.base import GenerationRequest, SamplingSettings
    from pytest_jallm.backends.openai import OpenAIBackend

    proc, base_url = start_server(latency, limit)
    try:
        backend = OpenAIBackend("perf-model", base_url=base_url, max_concurrency=limit, timeout_s=60)
        requests = [GenerationRequest(prompt=f"質問{i}：" + "あ" * (i % 200), max_new_tokens=3) for i in range(n)]
        delivered = 0

        def on_result(i: int, text: str) -> None:
            nonlocal delivered
            delivered += 1

        before = server_stats(base_url)
        wall, cpu = time.perf_counter(), time.process_time()
        texts = backend.generate(requests, SamplingSettings(), on_result)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = server_stats(base_url)
        backend.close()
    finally:
        proc.terminate()
        proc.wait()
    assert delivered == n and all(t.startswith("ok:") for t in texts), "the server's answers did not all come back"
    ceiling = limit / latency
    achieved = n / wall
    return {
        "concurrency": limit, "latency_s": latency, "requests": n, "wall_s": wall, "ideal_s": n / ceiling,
        "achieved_rps": achieved, "ceiling_rps": ceiling, "share": achieved / ceiling,
        "client_cpu_ms_per_request": 1000 * cpu / n,
        "connections": after["connections"] - before["connections"] - 1,  # less the /stats call itself
        "max_in_service": after["max_in_service"],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", default=DEFAULT_POINTS, help="CONCURRENCY:LATENCY_S:REQUESTS,…")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each point (the fastest counts)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    from tabulate import tabulate

    rows = []
    for point in args.points.split(","):
        c, lat, n = point.split(":")
        runs = [one_point(int(c), float(lat), int(n)) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["wall_s"])
        best["all_wall_s"] = [r["wall_s"] for r in runs]
        rows.append(best)
        print(f"  {c} in flight, {float(lat) * 1000:.0f} ms: {best['achieved_rps']:.0f}/{best['ceiling_rps']:.0f} req/s "
              f"({100 * best['share']:.1f} %)", flush=True)
    print(f"\n{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M')}; fastest of {args.repeat}\n")
    print(tabulate([[r["concurrency"], f"{1000 * r['latency_s']:.0f} ms", r["requests"], f"{r['ceiling_rps']:.0f}",
                     f"{r['achieved_rps']:.0f}", f"{100 * r['share']:.1f} %", f"{r['wall_s']:.2f} s ({r['ideal_s']:.2f})",
                     f"{r['client_cpu_ms_per_request']:.2f}", r["connections"], r["max_in_service"]] for r in rows],
                   headers=["in flight", "latency", "requests", "ceiling req/s", "achieved req/s", "share",
                            "wall (ideal)", "client CPU ms/req", "TCP connections", "max in service"],
                   tablefmt="github"))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
