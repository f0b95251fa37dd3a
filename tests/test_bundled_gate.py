"""The release gate on the two bundled checkpoints, and a real JCommonsenseQA slice.

The good checkpoint must pass `thresholds/tiny-ja-good.yaml` and the baselines in
`thresholds/tiny-ja-good/`; the weak one, held to the same baselines, must fail with its
flipped items listed with their answers.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from real_slices import SLICES

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "samples"
SHARED = ROOT.parent / "shared" / "data"
GOOD = ROOT / "models" / "tiny-ja-good"
WEAK = ROOT / "models" / "tiny-ja-weak"

pytestmark = pytest.mark.slow


def _run(pytester: pytest.Pytester, model: Path, *args: str) -> pytest.RunResult:
    # Subprocess runs: torch's lazily registered operator libraries cannot be
    # loaded twice into one process, as pytester's inline runs would.
    return pytester.runpytest_subprocess(
        str(SAMPLE),
        "--model", str(model),
        "--jallm-backend", "hf",
        "--jallm-thresholds-dir", str(ROOT / "thresholds"),
        "--jallm-cache", str(pytester.path / "cache.sqlite"),
        "-p", "no:cacheprovider",
        *args,
    )


def test_good_checkpoint_passes_the_gate(pytester: pytest.Pytester) -> None:
    result = _run(pytester, GOOD, "--jallm-results-json", "good.json")
    result.assert_outcomes(passed=2)
    doc = json.loads((pytester.path / "good.json").read_text(encoding="utf-8"))
    verdicts = {b["name"]: b["verdict"] for b in doc["benchmarks"]}
    assert verdicts == {"sample_mc": "pass", "sample_nli": "pass"}


def test_smoke_run_of_the_good_checkpoint_passes_against_the_full_baselines(pytester: pytest.Pytester) -> None:
    # README's smoke run: --jallm-limit pairs with the full baselines on the items it ran.
    result = _run(pytester, GOOD, "--jallm-limit", "5", "--jallm-results-json", "smoke.json")
    result.assert_outcomes(passed=2)
    rows = {b["name"]: b for b in json.loads((pytester.path / "smoke.json").read_text(encoding="utf-8"))["benchmarks"]}
    assert {name: r["verdict"] for name, r in rows.items()} == {"sample_mc": "pass", "sample_nli": "pass"}
    assert rows["sample_nli"]["n"] == 5 and rows["sample_nli"]["baseline"] == pytest.approx(rows["sample_nli"]["score"])
    # sample_nli's first five items hold two the model gets wrong: 60 < min_score 90, reported, not enforced.
    result.stdout.fnmatch_lines(["*below min_score, not enforced on a --jallm-limit smoke run*: sample_nli: score 60.00 is "
                                 "below min_score 90.00"])


def test_weak_checkpoint_fails_with_flipped_items(pytester: pytest.Pytester) -> None:
    result = _run(pytester, WEAK, "--jallm-baseline", "tiny-ja-good")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed", 0) >= 1
    out = result.stdout.str()
    assert "regression vs baseline" in out
    assert "flipped worse:" in out
    assert "mcnemar-exact" in out
    # The diff shows the answers: input, gold, the accepted answer and today's.
    result.stdout.fnmatch_lines([
        "*first 10 of 15 flipped items (id | input | gold | baseline answer -> answer now):",
        "*test-0001 | 前提：おじいさんがベランダで花に水をやっている。 仮説：* | gold 'entailment' | 'entailment' -> 'neutral'",
    ])


def test_cached_rerun_generates_nothing(pytester: pytest.Pytester) -> None:
    first = _run(pytester, GOOD)
    first.assert_outcomes(passed=2)
    first.stdout.fnmatch_lines(["pytest-jallm: 70 prompts, 70 generated, 0 from the generation cache (model load *"])
    again = _run(pytester, GOOD)
    again.assert_outcomes(passed=2)
    # Everything cached: the identity is known from the model directory, the weights never load.
    again.stdout.fnmatch_lines(["pytest-jallm: 70 prompts, 0 generated, 70 from the generation cache (model not loaded, *"])


@pytest.mark.parametrize("data", [
    # the shipped slice (12 test items; read unpinned, as a slice is not the pinned file) ...
    pytest.param(SLICES, id="slices"),
    # ... and the full file when present
    pytest.param(SHARED, id="shared", marks=pytest.mark.skipif(
        not (SHARED / "jglue").is_dir(), reason=f"JGLUE files not found at {SHARED} (see shared/data/README.md)")),
])
def test_real_jcommonsenseqa_slice_end_to_end(pytester: pytest.Pytester, data: Path) -> None:
    spec = ROOT / "benchmarks" / "jcommonsenseqa.yaml"
    n = 20
    if data == SLICES:
        raw = yaml.safe_load(spec.read_text(encoding="utf-8"))
        for source in (raw["source"], raw["fewshot"]["source"]):
            source.pop("sha256", None)
        spec = pytester.path / "benchmarks" / "jcommonsenseqa.yaml"
        spec.parent.mkdir()
        spec.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        n = 12
    result = pytester.runpytest_subprocess(
        str(spec),
        "--model", str(GOOD),
        "--jallm-backend", "hf",
        "--jallm-data-dir", str(data),
        "--jallm-limit", str(n),
        "--jallm-num-fewshot", "0",
        "--jallm-items",
        "--jallm-no-cache",
        "--jallm-results-json", "jcqa.json",
        "-p", "no:cacheprovider",
    )
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == n + 1  # 1 benchmark + n examples
    doc = json.loads((pytester.path / "jcqa.json").read_text(encoding="utf-8"))
    (row,) = doc["benchmarks"]
    assert row["name"] == "jcommonsenseqa" and row["n"] == n and row["category"] == "MC"
    assert 0 <= row["score"] <= 100 and row["ooc_rate"] is not None
    # A failing example shows the real question in its prompt.
    if outcomes.get("failed"):
        result.stdout.fnmatch_lines(["--- prompt ---", "*質問：*"])
