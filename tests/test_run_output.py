"""One line, not a wall: the end of a run says each kind of the gate's warnings once, naming the
benchmarks (not a pytest warning block per benchmark), and an unused thresholds entry is reported only
when no benchmark spec could have matched it (a catalog run does not warn about the samples' entries)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from jallm_toy import base_args, write_script, write_suite

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    write_suite(pytester.path)
    return pytester


def _warning_lines(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if line.startswith("pytest-jallm: ") and "gate " not in line[:19]]


def test_ungated_benchmarks_are_one_line_not_a_pytest_warning_each(toy: pytest.Pytester) -> None:
    result = toy.runpytest(*base_args(write_script(toy.path)))
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "PytestWarning" not in out and "warnings summary" not in out  # was a 3-line block per benchmark
    assert [line for line in _warning_lines(result) if "not gated" in line] == [
        "pytest-jallm: WARNING: 3 benchmark(s) not gated by any baseline: toy_he (no baseline), toy_mc (no baseline), "
        "toy_nli (no baseline) — accept baselines with --jallm-update-baseline; pass --jallm-strict to fail them"]
    doc_warnings = "no baseline and no min_score/max_ooc_rate/max_oof_rate: nothing gates this benchmark"
    toy.runpytest(*base_args(write_script(toy.path), "--jallm-results-json", "r.json"))
    rows = json.loads((toy.path / "r.json").read_text(encoding="utf-8"))["benchmarks"]
    assert all(r["gate"]["warnings"] == [doc_warnings] for r in rows)  # the results JSON keeps each one


def test_stale_baselines_say_why_in_one_line(toy: pytest.Pytester) -> None:
    script = write_script(toy.path)
    toy.runpytest(*base_args(script, "--jallm-update-baseline")).assert_outcomes(passed=3)
    for name in ("toy_mc", "toy_nli"):
        spec = toy.path / "benchmarks" / f"{name}.yaml"
        spec.write_text(spec.read_text(encoding="utf-8").replace("正しい選択肢", "最も適切な選択肢"), encoding="utf-8")
    result = toy.runpytest(*base_args(script))
    result.assert_outcomes(passed=3)
    assert "PytestWarning" not in result.stdout.str()
    [line] = [line for line in _warning_lines(result) if "not compared" in line]
    assert line.startswith("pytest-jallm: WARNING: 2 baseline(s) not compared: toy_mc: baseline is stale, not compared: "
                           "prompt template changed (prompt_hash ")
    assert "; toy_nli: baseline is stale, not compared: prompt template changed" in line


def test_an_entry_for_a_benchmark_outside_the_run_is_not_unused_but_a_typo_is(toy: pytest.Pytester) -> None:
    toy.makeini("[pytest]\njallm_benchmark_dirs = benchmarks samples\n")
    (toy.path / "samples").mkdir()
    other = (toy.path / "benchmarks" / "toy_mc.yaml").read_text(encoding="utf-8").replace("name: toy_mc", "name: sample_x")
    (toy.path / "samples" / "sample_x.yaml").write_text(other, encoding="utf-8")
    thresholds = toy.path / "thresholds"
    (thresholds / "model").mkdir(parents=True)
    (thresholds / "model.yaml").write_text("benchmarks:\n  sample_x: {min_score: 10}\n  toy_mcc: {min_score: 10}\n",
                                           encoding="utf-8")
    (thresholds / "model" / "sample_x.baseline.jsonl").write_text("", encoding="utf-8")
    (thresholds / "model" / "toy_gone.baseline.jsonl").write_text("", encoding="utf-8")
    result = toy.runpytest(*base_args(write_script(toy.path), "--jallm-strict", "-k", "not toy_mc"))
    [line] = [line for line in _warning_lines(result) if "match no benchmark spec" in line]
    # sample_x is a benchmark of samples/, which this run did not collect: its entries could not have matched.
    assert "sample_x" not in line
    assert "benchmarks.toy_mcc" in line and "toy_gone.baseline.jsonl" in line and line.endswith("failed by --jallm-strict")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # Everything spelt right: a strict run of benchmarks/ alone passes, the samples' entries unused but harmless.
    (thresholds / "model.yaml").write_text("benchmarks:\n  sample_x: {min_score: 10}\n  toy_mc: {min_score: 10}\n",
                                           encoding="utf-8")
    (thresholds / "model" / "toy_gone.baseline.jsonl").unlink()
    clean = toy.runpytest(*base_args(write_script(toy.path), "--jallm-strict", "-k", "toy_mc"))
    assert clean.ret == pytest.ExitCode.OK and not [line for line in _warning_lines(clean) if "match no" in line]


@pytest.mark.slow  # a subprocess that collects the whole catalog (about 2 s)
def test_a_catalog_run_does_not_warn_about_the_bundled_thresholds_file() -> None:
    # thresholds/tiny-ja-good.yaml gates the samples; `pytest benchmarks/ --model models/tiny-ja-good`
    # used to warn that its entries and baseline files matched nothing. -k selects no test: the
    # warning comes from what was collected, and nothing needs to run.
    result = subprocess.run([sys.executable, "-m", "pytest", "benchmarks", "--model", "models/tiny-ja-good",
                             "-p", "no:cacheprovider", "-k", "no_such_benchmark"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, result.stdout[-2000:] + result.stderr[-2000:]
    collected = re.search(r"collected (\d+) items / (\d+) deselected", result.stdout)
    assert collected and collected.group(1) == collected.group(2) and int(collected.group(1)) > 40
    assert "match no" not in result.stdout and "tiny-ja-good.yaml" not in result.stdout


def test_unpinned_data_sources_are_one_line_and_w_error_still_applies(toy: pytest.Pytester) -> None:
    # Two benchmarks read mirrors without a sha256 pin: pytest printed a three-line block per source.
    data = toy.path / "mirror"
    for name in ("toy_mc", "toy_nli"):
        (data / "toy").mkdir(parents=True, exist_ok=True)
        (data / "toy" / f"{name}.jsonl").write_bytes((toy.path / "benchmarks" / "data" / f"{name}.jsonl").read_bytes())
        spec = toy.path / "benchmarks" / f"{name}.yaml"
        spec.write_text(spec.read_text(encoding="utf-8").replace(
            f"source: {{path: data/{name}.jsonl}}", f"source: {{url: 'https://x.invalid/{name}.jsonl', mirror: toy/{name}.jsonl}}"),
            encoding="utf-8")
    result = toy.runpytest(*base_args(write_script(toy.path), "--jallm-data-dir", str(data)))
    result.assert_outcomes(passed=3)
    out = result.stdout.str()
    assert "warnings summary" not in out and "UnpinnedDataWarning" not in out
    [line] = [line for line in _warning_lines(result) if "not pinned" in line]
    assert line.startswith("pytest-jallm: WARNING: 2 data source(s), 2 file(s), not pinned by sha256 in their spec "
                           "(content not verified): toy_mc: source (1), toy_nli: source (1); e.g. ")
    strict = toy.runpytest(*base_args(write_script(toy.path), "--jallm-data-dir", str(data),
                                      "-W", "error::pytest_jallm.sources.UnpinnedDataWarning"))
    strict.assert_outcomes(passed=1, failed=2)  # the filter still turns the warning into each benchmark's error
