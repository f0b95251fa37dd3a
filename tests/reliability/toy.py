"""A small benchmark suite, scripted answers and subprocess runs for the reliability tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

from jallm_toy import SCRIPTED, SPEC, cache_rows  # noqa: F401  (one toy spec and row count shared with the other tests)

# Subprocess runs skip the hypothesis plugin: it costs ~1 s of start-up and nothing here uses it.
FAST = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


def question(bench: str, i: int) -> str:
    return f"{bench}の問題{i}番"


def write_suite(root: Path, benchmarks: dict[str, int] | None = None, category: str = "MC") -> dict[str, int]:
    """`benchmarks/<name>.yaml` + `benchmarks/data/<name>.jsonl` with n rows each; gold of row i is i % 3."""
    benchmarks = benchmarks or {"toy_a": 6, "toy_b": 6}
    data = root / "benchmarks" / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name, n in benchmarks.items():
        (root / "benchmarks" / f"{name}.yaml").write_text(SPEC.format(name=name, category=category), encoding="utf-8")
        rows = [
            {"qid": f"{name}-{i}", "question": question(name, i), "c0": "いぬ", "c1": "ねこ", "c2": "とり", "label": i % 3}
            for i in range(n)
        ]
        with open(data / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    return benchmarks


def write_script(
    root: Path,
    benchmarks: dict[str, int],
    *,
    name: str = "model.json",
    outputs: dict[str, str] | None = None,
    **extra,
) -> str:
    """Right answers (i % 3) unless `outputs[qid]` says otherwise; `extra` goes into the script (delay, fail_after)."""
    outputs = outputs or {}
    rules = []
    for bench, n in benchmarks.items():
        for i in range(n):
            rules.append({"contains": question(bench, i), "output": outputs.get(f"{bench}-{i}", str(i % 3))})
    path = root / name
    path.write_text(json.dumps({"rules": rules, "default": "", **extra}), encoding="utf-8")  # \uXXXX: lone surrogates survive
    return str(path)


def pytest_argv(script: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "pytest", "benchmarks", *FAST, "--jallm-backend", SCRIPTED, "--model", script, *args]


def env(**extra: str) -> dict[str, str]:
    e = dict(os.environ)
    e.pop("PYTEST_ADDOPTS", None)
    e.pop("PYTEST_XDIST_WORKER", None)
    e.update(extra)
    return e


def run(root: Path, script: str, *args: str, timeout: float = 120, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        pytest_argv(script, *args), cwd=root, env=env(**extra_env), capture_output=True, text=True, timeout=timeout
    )


def start(root: Path, script: str, *args: str, **extra_env: str) -> subprocess.Popen:
    return subprocess.Popen(
        pytest_argv(script, *args), cwd=root, env=env(**extra_env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )


def prompts_generated(log: Path) -> list[int]:
    """Prompts per generate() call, from the scripted backend's JALLM_SCRIPTED_LOG."""
    if not log.exists():
        return []
    return [json.loads(line)["prompts"] for line in log.read_text().splitlines() if line.strip()]


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def tree_text(paths: Iterable[Path]) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in paths if p.exists())
