"""Several pytest processes and xdist workers sharing one generation cache and one thresholds
file: no lost or corrupted entries."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from .toy import cache_rows, env, prompts_generated, pytest_argv, run, write_script, write_suite

BENCHES = {"toy_a": 6, "toy_b": 6, "toy_c": 6, "toy_d": 6, "shared": 6}


@pytest.mark.slow
def test_concurrent_runs_share_one_cache_and_one_thresholds_file(tmp_path: Path) -> None:
    write_suite(tmp_path, BENCHES)
    script = write_script(tmp_path, BENCHES, delay=0.02)
    cache = tmp_path / "gen.sqlite"
    common = ("--jallm-cache", str(cache), "--jallm-baseline", "team", "--jallm-update-baseline")
    selections = [
        ("-k", "toy_a or shared"),  # `shared` is generated and accepted by two processes at once
        ("-k", "toy_b or shared"),
        ("-k", "toy_c or toy_d", "-n", "2"),  # two xdist workers, each writing its own baseline
    ]
    procs = [
        subprocess.Popen(pytest_argv(script, *sel, *common), cwd=tmp_path, env=env(), stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        for sel in selections
    ]
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=180)
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-3000:]

    from pytest_jallm.baseline import read_baseline

    folder = tmp_path / "thresholds" / "team"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{name}.baseline.jsonl" for name in BENCHES)  # no temp file
    for name, n in BENCHES.items():
        base = read_baseline(folder / f"{name}.baseline.jsonl")
        assert base is not None and base.score == 100.0 and base.n == n
        assert base.items == {f"{name}-{i}": 1.0 for i in range(n)}
    assert cache_rows(cache) == sum(BENCHES.values())
    conn = sqlite3.connect(str(cache))
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()

    # Everything is in the cache and every baseline compares: a full run generates nothing.
    log = tmp_path / "calls.jsonl"
    again = run(tmp_path, script, "--jallm-cache", str(cache), "--jallm-baseline", "team", JALLM_SCRIPTED_LOG=str(log))
    assert again.returncode == 0, again.stdout[-3000:]
    assert prompts_generated(log) == []
    assert sum(line.split()[-1:] == ["pass"] for line in again.stdout.splitlines()) == len(BENCHES)


def _write_many(folder: str, worker: int, rounds: int) -> None:
    from pytest_jallm.baseline import Baseline, atomic_write_baseline

    for r in range(rounds):
        record = Baseline(benchmark=f"b{r % 3}", score=100.0, ooc_rate=0.0, n=1, metric="exact_match", binary=True,
                          items={"x": 1.0}, predictions={"x": f"w{worker} r{r}"}, produced_by={"model": "m"})
        atomic_write_baseline(Path(folder) / f"b{r % 3}.baseline.jsonl", record)


def test_baseline_writers_in_many_processes_leave_whole_files(tmp_path: Path) -> None:
    """A bounded stress loop: 4 processes x 15 atomic writes of the same three baseline files."""
    import multiprocessing

    from pytest_jallm.baseline import read_baseline

    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_many, args=(str(tmp_path), w, 15)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    for b in range(3):
        base = read_baseline(tmp_path / f"b{b}.baseline.jsonl")  # whole and valid: one writer's complete file
        assert base is not None and base.predictions["x"].split()[1] in {f"r{r}" for r in range(b, 15, 3)}
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"b{b}.baseline.jsonl" for b in range(3)]
