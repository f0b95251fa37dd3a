"""A deterministic stand-in Backend that takes its time, for cache tests.

It "generates" ``fake_text(request)``, a pure function of the request (the
reversed prompt, or of the last message's content, cut at the stop sequences
and to ``max_new_tokens`` characters), sleeps ``delay`` seconds per item,
calls ``on_result`` per item as it finishes, and counts what it generated:
in ``self.generated`` and, when a counter file is given (argument or env
``JALLM_FAKE_COUNTER``), by appending one line per item to that file (one
``O_APPEND`` write each, so a killed process leaves an exact count).

Run as a script it drives ``cached_generate`` over ``--n`` numbered prompts,
for tests that need a separate process to kill::

    python tests/fakes/slow_backend.py --cache FILE --n 40 --delay 0.05 [--counter FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

if __name__ == "__main__":  # script use: make the checkout importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pytest_jallm.backends.base import (  # noqa: E402
    BackendIdentity,
    GenerationRequest,
    ResultCallback,
    SamplingSettings,
    apply_stop,
)

COUNTER_ENV = "JALLM_FAKE_COUNTER"


def fake_text(request: GenerationRequest) -> str:
    source = request.prompt
    if request.messages:
        source = str(request.messages[-1].get("content", ""))
    text = source[::-1]
    if request.guided_choices:
        text = request.guided_choices[len(source) % len(request.guided_choices)]
    return apply_stop(text, request.stop)[: request.max_new_tokens]


def numbered_requests(n: int, max_new_tokens: int = 32) -> list[GenerationRequest]:
    """``n`` distinct requests, the same in every process."""
    return [GenerationRequest(prompt=f"問題{i:04d}: 日本の首都は？", max_new_tokens=max_new_tokens) for i in range(n)]


class SlowBackend:
    """Implements pytest_jallm.backends.base.Backend."""

    def __init__(
        self,
        delay: float = 0.0,
        counter_path: str | os.PathLike | None = None,
        *,
        model: str = "fake/slow-model",
        revision: str = "rev1",
        threads: int = 0,
    ):
        self.delay = float(delay)
        counter = counter_path if counter_path is not None else os.environ.get(COUNTER_ENV)
        self.counter_path = Path(counter) if counter else None
        self.model = model
        self.revision = revision
        self.threads = threads  # >0: report results from that many worker threads
        self.generated = 0
        self.calls: list[int] = []  # len(requests) of each generate() call
        self._lock = threading.Lock()

    def identity(self) -> BackendIdentity:
        return BackendIdentity(
            backend="fake-slow",
            backend_version="1.0",
            model=self.model,
            model_revision=self.revision,
            settings={"delay_is_not_part_of_output": True},
        )

    def _one(self, i: int, request: GenerationRequest, on_result: ResultCallback | None) -> str:
        if self.delay:
            time.sleep(self.delay)
        text = fake_text(request)
        with self._lock:
            self.generated += 1
            if self.counter_path is not None:
                fd = os.open(self.counter_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, f"{i}\n".encode())
                finally:
                    os.close(fd)
        if on_result is not None:
            on_result(i, text)
        return text

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingSettings,
        on_result: ResultCallback | None = None,
    ) -> list[str]:
        self.calls.append(len(requests))
        if self.threads > 0:
            with ThreadPoolExecutor(self.threads) as pool:
                return list(pool.map(lambda ir: self._one(ir[0], ir[1], on_result), enumerate(requests)))
        return [self._one(i, r, on_result) for i, r in enumerate(requests)]

    def close(self) -> None:
        pass


def count_generated(counter_path: str | os.PathLike) -> int:
    try:
        return len(Path(counter_path).read_text().splitlines())
    except FileNotFoundError:
        return 0


def main(argv: Sequence[str] | None = None) -> int:
    from pytest_jallm.cache import GenerationCache
    from pytest_jallm.generation import cached_generate

    ap = argparse.ArgumentParser()
    ap.add_argument("--cache", required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--counter", default=None)
    args = ap.parse_args(argv)
    backend = SlowBackend(args.delay, args.counter)
    cache = GenerationCache(args.cache)
    texts, generated = cached_generate(backend, numbered_requests(args.n), SamplingSettings(), cache)
    cache.close()
    print(f"generated={generated} texts={len(texts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
