#!/usr/bin/env python
"""What `PRAGMA quick_check` at cache open costs, next to a cached re-run.

Builds a generation cache of N rows (default 10,000) the way a run fills it (cached_generate with
a scripted backend: Japanese prompts, short answers, the usual meta), then times, each as the
median of --repeat runs in this process:

  quick_check      PRAGMA quick_check(3) on that file (what GenerationCache runs at open)
  open + lookup    GenerationCache(path) (includes quick_check) + cached_generate of all N requests
                   (every one a hit): the cache's part of a cached re-run, without pytest start-up

and prints quick_check as a share of "open + lookup" and of a whole cached re-run of 10,000 items
(perf/run.py figure 4, read from --rerun-json when given). Goal: under 5 %.

    python perf/cache_quick_check.py [--rows 10000] [--repeat 5] [--rerun-json perf/results/final.json]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pytest_jallm.backends.base import BackendIdentity, GenerationRequest, SamplingSettings  # noqa: E402
from pytest_jallm.cache import GenerationCache  # noqa: E402
from pytest_jallm.generation import cached_generate  # noqa: E402


class _Answers:
    def identity(self) -> BackendIdentity:
        return BackendIdentity("perf", "1", "perf-model", "r1", {})

    def generate(self, requests, sampling, on_result=None):
        out = []
        for i, _ in enumerate(requests):
            text = str(i % 5)
            if on_result is not None:
                on_result(i, text)
            out.append(text)
        return out

    def close(self) -> None:
        pass


def _requests(n: int) -> list[GenerationRequest]:
    shot = "質問：日本で一番高い山はどれですか？\n選択肢：0.富士山,1.北岳,2.奥穂高岳,3.間ノ岳,4.槍ヶ岳\n答え：0\n\n"
    return [
        GenerationRequest(prompt=f"以下の質問に答えてください。\n\n{shot * 4}質問：問題{i}番の答えは？\n答え：",
                          max_new_tokens=8, stop=("\n\n",))
        for i in range(n)
    ]


def _median(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rerun-json", type=Path, default=ROOT / "perf" / "results" / "final.json")
    args = ap.parse_args()
    backend, sampling, requests = _Answers(), SamplingSettings(), _requests(args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gen.sqlite"
        with GenerationCache(path) as cache:
            cached_generate(backend, requests, sampling, cache)
        size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20

        def quick_check() -> None:
            conn = sqlite3.connect(str(path))
            assert conn.execute("PRAGMA quick_check(3)").fetchall() == [("ok",)]
            conn.close()

        def open_and_lookup() -> None:
            with GenerationCache(path) as cache:
                _, generated = cached_generate(backend, requests, sampling, cache, identity=backend.identity())
            assert generated == 0

        check_s = _median(quick_check, args.repeat)
        lookup_s = _median(open_and_lookup, args.repeat)
    report = {
        "rows": args.rows,
        "file_mb": round(size_mb, 2),
        "quick_check_ms": round(check_s * 1000, 2),
        "open_and_lookup_ms": round(lookup_s * 1000, 2),
        "share_of_open_and_lookup_pct": round(100 * check_s / lookup_s, 2),
    }
    if args.rerun_json.is_file():
        rerun = json.loads(args.rerun_json.read_text(encoding="utf-8")).get("cached", {})
        if rerun.get("wall_s") and rerun.get("items") == args.rows:
            report["cached_rerun_wall_s"] = rerun["wall_s"]
            report["share_of_cached_rerun_pct"] = round(100 * check_s / rerun["wall_s"], 2)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
