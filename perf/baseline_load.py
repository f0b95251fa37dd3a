"""Time loading and comparing a catalog-sized baseline set (issue 13: < 0.5 s for 50,000 items).

    python perf/baseline_load.py [--items 50000] [--benchmarks 40]

Writes one baseline file per benchmark (the plugin's own writer, into a temporary
directory), then times reading and validating all of them and pairing each with a current
run in which 2% of the items flipped. Prints the figures; not a unit test.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pytest_jallm.baseline import Baseline, atomic_write_baseline, read_baseline  # noqa: E402
from pytest_jallm.stats import compare_paired  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--benchmarks", type=int, default=40)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    rng = random.Random(0)
    per = args.items // args.benchmarks
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        current: dict[str, dict[str, float]] = {}
        started = time.perf_counter()
        for b in range(args.benchmarks):
            items = {f"b{b}-{i:05d}": float(rng.random() < 0.7) for i in range(per)}
            preds = {k: "答え" + str(rng.randrange(5)) * rng.randrange(1, 12) for k in items}
            score = 100 * sum(items.values()) / per
            atomic_write_baseline(folder / f"bench{b}.baseline.jsonl", Baseline(
                benchmark=f"bench{b}", metric="exact_match", score=round(score, 6), ooc_rate=0.0, n=per, binary=True,
                produced_by={"prompt_hash": "p", "data_fingerprint": "d"}, items=items, predictions=preds))
            current[f"bench{b}"] = {k: (1.0 - v if rng.random() < 0.02 else v) for k, v in items.items()}
        write_s = time.perf_counter() - started
        size = sum(f.stat().st_size for f in folder.iterdir())
        loads, compares = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            baselines = {f"bench{b}": read_baseline(folder / f"bench{b}.baseline.jsonl") for b in range(args.benchmarks)}
            t1 = time.perf_counter()
            for name, base in baselines.items():
                compare_paired(base.items, current[name], binary=True)
            t2 = time.perf_counter()
            loads.append(t1 - t0)
            compares.append(t2 - t1)
    total = per * args.benchmarks
    print(f"{args.benchmarks} baseline files, {total:,} items, {size / 1e6:.1f} MB (written in {write_s:.2f} s)")
    print(f"load + validate: best {min(loads):.3f} s, median {sorted(loads)[len(loads) // 2]:.3f} s")
    print(f"paired comparison: best {min(compares):.3f} s")
    best = min(loads) + min(compares)
    print(f"load + compare: {best:.3f} s (target < 0.5 s: {'met' if best < 0.5 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
