"""The gate's numbers mean what they say (issue 23) and merge decides as the run would (issue 20):
the minimum detectable drop, continuous regressions in a large family, what the labels say,
improvements, merging shards, partial baselines and the re-run history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gate_cases import LIMITS, baseline_of, judge, judge_all, result_of
from jallm_toy import base_args, write_script, write_suite
from pytest_jallm.baseline import Reruns, read_baseline
from pytest_jallm.gate import Gate, GateOptions, Verdict, refamily
from pytest_jallm.stats import min_detectable_drop

FIXTURES = Path(__file__).parent / "fixtures" / "results-v2"


def _binary(n: int, losses: int, gains: int, name: str = "b"):
    """A baseline with half its n items right, and a run that loses `losses` of them and gains `gains`."""
    base = {f"q{i}": 1.0 if i < n // 2 else 0.0 for i in range(n)}
    cur = dict(base)
    for i in range(losses):
        cur[f"q{i}"] = 0.0
    for i in range(gains):
        cur[f"q{n // 2 + i}"] = 1.0
    return result_of(cur, name=name), baseline_of(base, name=name)


# --- the minimum detectable drop -------------------------------------------------------


def test_mdd_comes_from_the_harmless_churn_and_does_not_grow_with_the_drop() -> None:
    # 1,000 items, 2% harmless churn (10 gains and 10 losses), plus a true drop of 0/3/10/50 points.
    # The old MDD used the observed flip rate, which holds the drop: 2.63 / 3.58 / 5.05 / 9.59.
    mdds = []
    for drop in (0, 3, 10, 50):
        out = judge(*_binary(1000, 10 + drop * 10, 10))
        assert out.details.churn is not None and out.details.churn.rate == pytest.approx(0.02)
        assert out.details.churn.source == "this run's gains"
        mdds.append(out.record.mdd)
    assert mdds == [round(min_detectable_drop(1000, 0.02, 0.05, 2.0), 2)] * 4


def test_mdd_counts_max_drop_and_the_family() -> None:
    # 2,500 items: the paired test alone would see about 1.4 points at alpha/40, but the gate
    # flags nothing below max_drop (2): the MDD says so.
    cases = [(*_binary(2500, 25, 25, name="big"), LIMITS)]
    cases += [(*_binary(100, 0, 0, name=f"other{i}"), LIMITS) for i in range(39)]
    big = judge_all(cases)["big"]
    assert big.details.family.size == 40
    assert big.record.mdd is not None and big.record.mdd > 2.0
    assert min_detectable_drop(2500, 0.02, 0.05 / 40, 0.0) < 1.6  # the test alone
    assert not big.record.underpowered  # the corrected test can see a drop of max_drop
    assert judge(*_binary(100, 1, 1)).record.underpowered  # 100 items cannot


def test_mdd_uses_the_baselines_rerun_history_when_it_has_one() -> None:
    result, base = _binary(1000, 30, 10)
    base.reruns = Reruns(runs=2, items=2000, flips=10)  # the accepted model re-run twice: 0.5% churn
    out = judge(result, base)
    assert out.details.churn is not None and out.details.churn.source == "baseline re-runs"
    assert out.details.churn.rate == pytest.approx(0.005)
    assert out.record.mdd == round(min_detectable_drop(1000, 0.005, 0.05, 2.0), 2)


# --- continuous metrics in a large family ------------------------------------------------


def _char_f1(n: int, rng: np.random.Generator) -> np.ndarray:
    """Per-item char_f1 as llm-jp-eval rounds it: 0/1-heavy, whole percent in between."""
    kind = rng.random(n)
    return np.where(kind < 0.45, 1.0, np.where(kind < 0.7, 0.0, np.round(rng.random(n), 2)))


def _continuous(name: str, base: np.ndarray, cur: np.ndarray):
    ids = [f"q{i}" for i in range(len(base))]
    return (result_of(dict(zip(ids, cur.tolist(), strict=True)), name=name, binary=False, metric="char_f1"),
            baseline_of(dict(zip(ids, base.tolist(), strict=True)), name=name, binary=False, metric="char_f1"), LIMITS)


def test_a_60_point_char_f1_collapse_regresses_with_200_benchmarks_selected() -> None:
    # The paired bootstrap's p could not go below 1/2001: times 200 (Holm's first step) that is 0.1 > 0.05.
    rng = np.random.default_rng(0)
    collapse = np.full(100, 0.8)
    cases = [_continuous("collapsed", collapse, collapse - 0.6)]
    for i in range(199):
        scores = _char_f1(100, rng)
        cases.append(_continuous(f"same{i}", scores, scores))
    out = judge_all(cases)["collapsed"]
    assert out.verdict is Verdict.REGRESSED and not out.passed
    assert out.details.paired.test == "sign-flip-exact" and out.details.family.size == 200
    assert out.record.p_adjusted < 0.05
    assert "regression vs baseline: 80.00 -> 20.00 (-60.00 points" in out.decision.failures[0]


def test_harmless_char_f1_churn_over_200_benchmarks_raises_no_alarm() -> None:
    # 10% of each benchmark's items re-drawn from the same distribution: a change as likely either way.
    rng = np.random.default_rng(1)
    cases = []
    for i in range(200):
        base = _char_f1(300, rng)
        cur = base.copy()
        churned = rng.random(300) < 0.10
        cur[churned] = _char_f1(int(churned.sum()), rng)
        cases.append(_continuous(f"b{i}", base, cur))
    verdicts = {name: j.verdict for name, j in judge_all(cases).items()}
    assert set(verdicts.values()) <= {Verdict.PASS}, {n: v for n, v in verdicts.items() if v != Verdict.PASS}


# --- what the labels say ---------------------------------------------------------------


def test_an_xdist_worker_says_bonferroni_and_one_process_says_holm() -> None:
    result, base = _binary(40, 12, 0)  # p = 2^-12
    gate = Gate(GateOptions(), partial_view=40)  # a worker: its own benchmark of the 40 selected
    gate.assess(result, base, LIMITS)
    worker = gate.judge(result)
    assert worker.details.family.method == "bonferroni" and worker.details.family.requested == "holm"
    assert worker.record.p_adjusted == pytest.approx(40 / 4096)
    assert "mcnemar-exact p=0.00024 (Bonferroni-adjusted over 40 paired tests: p=0.0098)" in worker.failure_text
    alone = judge(result, base)
    assert alone.details.family.method == "holm" and alone.details.family.size == 1
    assert "p=0.00024 (Holm-adjusted over 1 paired tests: p=0.00024)" in alone.failure_text


def test_improved_is_judged_on_the_family_corrected_p() -> None:
    result, base = _binary(20, 0, 5)  # 5 wrong -> right: one-sided p = 1/32
    assert judge(result, base).verdict is Verdict.IMPROVED
    others = [(*_binary(20, 0, 0, name=f"ok{i}"), LIMITS) for i in range(9)]
    among_ten = judge_all([(result, base, LIMITS), *others])["b"]
    assert among_ten.verdict is Verdict.PASS
    assert among_ten.details.family.p_better_adjusted == pytest.approx(10 / 32)


# --- merge decides again with the same function -------------------------------------------


def test_merge_reverses_a_worker_pass_and_renders_its_failure_from_the_inputs() -> None:
    # Three workers, each with one of three benchmarks: Bonferroni x3 passes the third (p = 1/32 -> 0.094);
    # Holm over the three, as one process would have, flags all three.
    records = []
    for name, losses in (("a", 7), ("b", 6), ("c", 5)):
        result, base = _binary(20, losses, 0, name=name)
        gate = Gate(GateOptions(), partial_view=3)
        gate.assess(result, base, LIMITS)
        j = gate.judge(result)
        records.append(j.record.model_copy(update={"outcome": "passed" if j.passed else "failed",
                                                   "message": None if j.passed else j.failure_text}))
    assert [r.verdict for r in records] == [Verdict.REGRESSED, Verdict.REGRESSED, Verdict.PASS]
    merged = {r.name: r for r in refamily(records)}
    c = merged["c"]
    assert (c.verdict, c.outcome) == (Verdict.REGRESSED, "failed") and c.p_adjusted == pytest.approx(1 / 32)
    assert c.message is not None and c.message.startswith("c (MC, exact_match, n=20):\n  - regression vs baseline: 50.00 -> 25.00")
    assert "mcnemar-exact p=0.031 (Holm-adjusted over 3 paired tests: p=0.031) < alpha 0.05" in c.message
    assert "first 5 of 5 flipped items" in c.message and "Bonferroni" not in c.message
    assert "(Holm-adjusted over 3 paired tests: p=0.031)" in merged["b"].message  # re-rendered, not patched
    # One process reaches the same verdicts and words them the same way.
    whole = judge_all([(*_binary(20, k, 0, name=n), LIMITS) for n, k in (("a", 7), ("b", 6), ("c", 5))])
    assert whole["c"].failure_text == c.message


def test_version_2_shard_files_merge_as_their_unsharded_run() -> None:
    from pytest_jallm.reporting.results_json import merge_documents, read_results, rows_of

    shards = [(str(p), read_results(p)) for p in sorted(FIXTURES.glob("s*.json"))]
    before = {r.name: r for _, doc in shards for r in rows_of(doc)}
    assert before["toy_mc"].verdict is Verdict.REGRESSED and before["toy_mc"].gate.upgraded_from == 2
    merged = {r.name: r for r in rows_of(merge_documents(shards))}
    whole = {r.name: r for r in rows_of(read_results(FIXTURES / "whole.json"))}
    for name, row in whole.items():
        assert (merged[name].verdict, merged[name].outcome) == (row.verdict, row.outcome), name
        assert merged[name].p_adjusted == pytest.approx(row.p_adjusted), name
    assert merged["toy_mc"].message is None  # reversed: its failure text is gone, not patched
    # toy_nli's min_score failure was only text in version 2: carried as it was.
    assert merged["toy_nli"].message == "toy_nli (NLI, exact_match, n=6):\n  - score 83.33 is below min_score 90.00"


# --- partial baselines and the re-run history (plugin level) ---------------------------------


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    write_suite(pytester.path)
    return pytester


def test_update_baseline_with_limit_is_refused_unless_partial_is_accepted(toy: pytest.Pytester) -> None:
    good = write_script(toy.path)
    refused = toy.runpytest(*base_args(good, "--jallm-update-baseline", "--jallm-limit", "5"))
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*--jallm-update-baseline with --jallm-limit 5 would accept baselines of the first 5 "
                                  "items only*--jallm-accept-partial*"])
    toy.runpytest(*base_args(good, "--jallm-update-baseline", "--jallm-limit", "5", "--jallm-accept-partial")
                  ).assert_outcomes(passed=3)
    path = toy.path / "thresholds" / "model" / "toy_mc.baseline.jsonl"
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["partial"] == {"limit": 5}
    # Every comparison with it says so: the terminal, the failure text, the results JSON.
    smoke = toy.runpytest(*base_args(write_script(toy.path, {"toy_mc": 5}), "--jallm-limit", "5", "--jallm-family", "none",
                                     "--jallm-results-json", "smoke.json"))
    smoke.assert_outcomes(passed=2, failed=1)
    smoke.stdout.fnmatch_lines([
        "*regression vs baseline: 100.00 -> 0.00*(partial baseline: accepted from a --jallm-limit 5 run, it holds those "
        "5 items only)",
        "pytest-jallm: WARNING: 3 benchmark(s) compared with a partial baseline (accepted from a --jallm-limit run): "
        "toy_he (first 5 items), toy_mc (first 5 items), toy_nli (first 5 items) — accept full baselines",
    ])
    rows = {b["name"]: b for b in json.loads((toy.path / "smoke.json").read_text(encoding="utf-8"))["benchmarks"]}
    assert rows["toy_he"]["gate"]["baseline"]["partial_limit"] == 5
    assert rows["toy_he"]["gate"]["warnings"] == ["partial baseline: accepted from a --jallm-limit 5 run, it holds those 5 "
                                                  "items only"]
    full = toy.runpytest(*base_args(good, "--jallm-results-json", "full.json"))
    full.stdout.fnmatch_lines(["*toy_mc: only 5 of 10 current items (50.0%) pair with the baseline's 5 items (partial "
                               "baseline: accepted from a --jallm-limit 5 run*"])


def test_reruns_of_the_accepted_model_are_counted_in_the_header(toy: pytest.Pytester) -> None:
    toy.runpytest(*base_args(write_script(toy.path), "--jallm-update-baseline")).assert_outcomes(passed=3)
    path = toy.path / "thresholds" / "model" / "toy_mc.baseline.jsonl"
    before = path.read_text(encoding="utf-8")
    toy.runpytest(*base_args(write_script(toy.path), "--jallm-update-baseline")).assert_outcomes(passed=3)
    assert path.read_text(encoding="utf-8") == before  # a deterministic re-run changes nothing
    # The same provenance (the scripted backend's revision is its rule count), one item flipped.
    toy.runpytest(*base_args(write_script(toy.path, {"toy_mc": 1}), "--jallm-update-baseline")).assert_outcomes(passed=3)
    b = read_baseline(path, "toy_mc")
    assert b is not None and b.reruns == Reruns(runs=1, items=10, flips=1)
    toy.runpytest(*base_args(write_script(toy.path, {"toy_mc": 1}), "--jallm-update-baseline")).assert_outcomes(passed=3)
    assert read_baseline(path, "toy_mc").reruns == Reruns(runs=2, items=20, flips=1)  # type: ignore[union-attr]
    run = toy.runpytest(*base_args(write_script(toy.path, {"toy_mc": 3}), "--jallm-results-json", "r.json"))
    row = next(b for b in json.loads((toy.path / "r.json").read_text(encoding="utf-8"))["benchmarks"] if b["name"] == "toy_mc")
    assert row["gate"]["churn"] == {"rate": 0.05, "source": "baseline re-runs"}
    run.stdout.fnmatch_lines(["*from n and the harmless churn (baseline re-runs and this run's gains)*"])


def test_the_limits_in_force_are_recorded(toy: pytest.Pytester) -> None:
    (toy.path / "thresholds").mkdir()
    (toy.path / "thresholds" / "model.yaml").write_text("defaults: {max_drop: 3}\nbenchmarks:\n  toy_mc: {min_score: 50}\n")
    toy.runpytest(*base_args(write_script(toy.path), "--jallm-results-json", "r.json"))
    rows = {b["name"]: b for b in json.loads((toy.path / "r.json").read_text(encoding="utf-8"))["benchmarks"]}
    assert rows["toy_mc"]["gate"]["limits"] == {"min_score": 50.0, "max_ooc_rate": None, "max_oof_rate": None, "max_drop": 3.0, "alpha": 0.05,
                                                "min_paired": 90.0}
