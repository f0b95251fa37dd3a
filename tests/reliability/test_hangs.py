"""Hangs: a catastrophic `answer_pattern` and a server asking to wait (`Retry-After`) for hours.
Both are bounded and end with a one-line message saying what happened."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_jallm.answers import AnswerPatternTimeout, extract_answer

from .toy import run, write_script, write_suite

BENCHES = {"toy_a": 3, "toy_b": 3, "toy_c": 3}
EVIL = "a" * 40 + "!"


@pytest.mark.slow
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


def test_extract_answer_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytest_jallm.answers

    # The run above waits the real 1 s; here a shorter bound keeps the inner loop from burning a CPU second.
    monkeypatch.setattr(pytest_jallm.answers, "ANSWER_PATTERN_TIMEOUT_S", 0.1)
    assert extract_answer(EVIL, "^(a+)+$") == ""  # the `regex` engine answers this one at once
    with pytest.raises(AnswerPatternTimeout, match=r"did not finish within 0.1 s on a model output of 41 characters"):
        extract_answer(EVIL, "^(a|aa)+$")
    assert extract_answer("答え：3です", "答え：(\\d)") == "3"


# --- Retry-After: capped per wait and in total ---------------------------------------------------


def test_retry_after_is_capped_per_wait_and_per_run(pytester: pytest.Pytester) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from fakes.openai_stub import OpenAIStub, Reply

    from .toy import write_suite as suite

    suite(pytester.path, {"toy_a": 2, "toy_b": 2})
    with OpenAIStub(lambda req: Reply(status=429, json={"error": "slow down"}, headers={"Retry-After": "99999"})) as stub:
        result = pytester.runpytest(
            "benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "openai", "--jallm-base-url", stub.base_url,
            "--model", "stub-model", "--jallm-no-cache", "--jallm-concurrency", "2",
            # Small caps keep the test to seconds; the defaults are 60 s per wait, 600 s per run.
            "--jallm-engine-arg", "max_retry_wait_s=0.2", "--jallm-engine-arg", "retry_budget_s=1",
        )
        asked = len(stub.posts())
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines([
        "*BackendError: openai backend: request * failed: HTTP 429: *slow down*: gave up: the run's retry budget"
        " (retry_budget_s=1) is spent: * s of retry waits in this run over * retries, summed over requests waiting at"
        " the same time (up to 2 in flight); the server asked to wait 99999 s (Retry-After),"
        " each wait capped at max_retry_wait_s=0.2*",
    ])
    assert 5 <= asked <= 12, asked  # 1 s of 0.2 s waits: about five retries, then the run stops
