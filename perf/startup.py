#!/usr/bin/env python
"""What pytest-jallm costs a pytest run that uses no benchmark.

Teams install the plugin into the environment of their other tests, and pytest loads it in every
session there. This times `pytest test_plain.py` (one passing test) in a fresh process with the
plugin and with `-p no:jallm`, alternating the sides (the order rotates every round), and prints the
fastest wall and CPU time of each side, their ratio, the peak RSS and the modules each run imports
(sys.modules at the end of the session, counted in separate runs so that counting costs nothing).
With --ref, a third side runs the plugin as committed at that git ref (e.g. `--ref main`).

    python perf/startup.py                  # 21 rounds, about 30 s on 2 cores
    python perf/startup.py --ref 047d892 --json perf/results/startup.json

A script, not a test: tests/test_startup.py asserts which modules a plain run imports, never a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLAIN_TEST = "def test_one():\n    assert 1 + 1 == 2\n"
RECORDER = """\
import json, os, sys

def pytest_unconfigure(config):
    with open(os.environ["JALLM_MODULES_LOG"], "w", encoding="utf-8") as fh:
        json.dump(sorted(sys.modules), fh)
"""
WATCHED = ("pydantic", "yaml", "regex", "tabulate", "torch", "transformers", "numpy")


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall time, CPU time and peak RSS of one fresh process (os.wait4: that child's own rusage)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read()  # to the end, then wait4 reaps the child with its rusage
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{output.decode(errors='replace')[-2000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mib": usage.ru_maxrss / 1024}


def checkout_of(ref: str, into: Path) -> Path:
    """The package as committed at `ref` (git archive), for a before/after in the same paired run."""
    data = subprocess.run(["git", "archive", ref, "pytest_jallm"], cwd=ROOT, capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(into, filter="data")
    return into


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=21, help="rounds; each runs every side once (default 21)")
    ap.add_argument("--ref", default=None, help="also time the plugin as committed at this git ref")
    ap.add_argument("--json", type=Path, default=None, help="write the figures as JSON")
    args = ap.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="jallm-startup-"))
    timed, counted = tmp / "timed", tmp / "counted"
    for d in (timed, counted):
        d.mkdir()
        (d / "test_plain.py").write_text(PLAIN_TEST, encoding="utf-8")
    (counted / "conftest.py").write_text(RECORDER, encoding="utf-8")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTHONDONTWRITEBYTECODE")}
    cmd = [sys.executable, "-m", "pytest", "-q", "test_plain.py"]
    sides: dict[str, tuple[list[str], str]] = {
        "without (-p no:jallm)": (cmd + ["-p", "no:jallm"], str(ROOT)),
        "plugin (this checkout)": (cmd, str(ROOT)),
    }
    if args.ref:
        sides[f"plugin at {args.ref}"] = (cmd, str(checkout_of(args.ref, tmp / "ref")))

    modules: dict[str, list[str]] = {}
    for name, (argv_, path) in sides.items():
        side_env = {**env, "PYTHONPATH": path, "JALLM_MODULES_LOG": str(tmp / "modules.json")}
        measure(argv_, timed, side_env)  # warm-up: bytecode compiled, files in the page cache
        measure(argv_, counted, side_env)
        modules[name] = json.loads((tmp / "modules.json").read_text(encoding="utf-8"))

    samples: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
    names = list(sides)
    for i in range(args.runs):
        for name in names[i % len(names):] + names[: i % len(names)]:
            argv_, path = sides[name]
            samples[name].append(measure(argv_, timed, {**env, "PYTHONPATH": path}))

    base = names[0]
    figures: dict[str, Any] = {"runs": args.runs, "python": sys.version.split()[0], "cpus": os.cpu_count(), "sides": {}}
    print(f"pytest on a one-test file, fastest of {args.runs} alternating runs per side ({os.cpu_count()} CPUs)\n")
    header = f"{'side':<26}{'wall s':>8}{'median':>8}{'CPU s':>8}{'RSS MiB':>9}{'modules':>9}  {'wall x':>7}{'CPU x':>7}"
    print(header)
    print("-" * len(header))
    for name in names:
        runs = samples[name]
        fig = {
            "wall_s": min(r["wall_s"] for r in runs),
            "wall_median_s": statistics.median(r["wall_s"] for r in runs),
            "cpu_s": min(r["cpu_s"] for r in runs),
            "peak_rss_mib": min(r["peak_rss_mib"] for r in runs),
            "modules": len(modules[name]),
            "watched_imported": [m for m in WATCHED if m in modules[name]],
            "jallm_modules": sorted(m for m in modules[name] if m.split(".")[0] == "pytest_jallm"),
        }
        figures["sides"][name] = fig
        ref = figures["sides"][base]
        fig["wall_ratio"] = fig["wall_s"] / ref["wall_s"]
        fig["cpu_ratio"] = fig["cpu_s"] / ref["cpu_s"]
        print(f"{name:<26}{fig['wall_s']:>8.3f}{fig['wall_median_s']:>8.3f}{fig['cpu_s']:>8.3f}{fig['peak_rss_mib']:>9.1f}"
              f"{fig['modules']:>9}  {fig['wall_ratio']:>7.2f}{fig['cpu_ratio']:>7.2f}")
    print()
    for name in names[1:]:
        fig, ref = figures["sides"][name], figures["sides"][base]
        print(f"{name}: +{1000 * (fig['wall_s'] - ref['wall_s']):.0f} ms wall, +{1000 * (fig['cpu_s'] - ref['cpu_s']):.0f} ms CPU, "
              f"+{fig['peak_rss_mib'] - ref['peak_rss_mib']:.1f} MiB, +{fig['modules'] - ref['modules']} modules "
              f"({len(fig['jallm_modules'])} of pytest_jallm); imports {', '.join(fig['watched_imported']) or 'none'} "
              f"of {', '.join(WATCHED)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
