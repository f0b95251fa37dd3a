"""Hangs: a catastrophic `answer_pattern` and a server asking to wait (`Retry-After`) for hours.
Both are bounded and end with a one-line message saying what happened."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_jallm.metrics import AnswerPatternTimeout, extract_answer

from .toy import run, write_script, write_suite

BENCHES = {"toy_a": 3, "toy_b": 3, "toy_c": 3}
EVIL = "a" * 40 + "!"


def test_catastrophic_answer_pattern_fails_its_benchmark_clearly(tmp_path: Path) -> None:
    write_suite(tmp_path, BENCHES)
    spec_dir = tmp_path / "benchmarks"
    # The pattern (nested quantifier) and one that backtracks exponentially in `regex` too.
    for name, pattern in (("toy_a", "^(a+)+$"), ("toy_b", "^(a|aa)+$")):
        with open(spec_dir / f"{name}.yaml", "a", encoding="utf-8") as fh:
            fh.write(f"answer_pattern: '{pattern}'\n")
    script = write_script(tmp_path, BENCHES, outputs={f"{b}-{i}": EVIL for b in ("toy_a", "toy_b") for i in range(3)})
    try:
        done = run(tmp_path, script, "--jallm-no-cache", "-rA", timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("the run hung on a catastrophic answer_pattern")
    out = done.stdout
    assert "PASSED benchmarks/toy_a.yaml::toy_a" in out and "PASSED benchmarks/toy_c.yaml::toy_c" in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("AnswerPatternTimeout: ")]
    assert lines, out[-3000:]
    assert all("'^(a|aa)+$'" in line and "toy_b" in line and "backtracking" in line for line in lines), lines
    assert "Traceback" not in out


def test_extract_answer_is_bounded() -> None:
    assert extract_answer(EVIL, "^(a+)+$") == ""  # the `regex` engine answers this one at once
    with pytest.raises(AnswerPatternTimeout, match=r"did not finish within .* s on a model output of 41 characters"):
        extract_answer(EVIL, "^(a|aa)+$")
    assert extract_answer("答え：3です", "答え：(\\d)") == "3"
