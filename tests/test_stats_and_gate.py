"""The paired regression test and the gate's verdicts, on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from gate_cases import LIMITS, baseline_of, judge, judge_all, result_of
from pytest_jallm.baseline import Baseline, Limits
from pytest_jallm.gate import Verdict
from pytest_jallm.stats import binomial_sf, compare_paired, mcnemar_one_sided, sign_flip_test


def test_binomial_tail_by_hand() -> None:
    # P(X >= 4 | n=5, p=1/2) = (C(5,4) + C(5,5)) / 32 = 6/32
    assert binomial_sf(4, 5) == pytest.approx(6 / 32)
    assert binomial_sf(0, 5) == 1.0
    assert binomial_sf(6, 5) == 0.0


def test_mcnemar_counts_only_discordant_pairs() -> None:
    # 6 losses, 0 gains: p = 0.5**6
    assert mcnemar_one_sided(6, 0) == pytest.approx(1 / 64)
    # one loss, one gain: no evidence of a drop
    assert mcnemar_one_sided(1, 1) == pytest.approx(0.75)


def test_compare_paired_lists_flips_and_ignores_unpaired_items() -> None:
    base = {"a": 1, "b": 1, "c": 0, "d": 1, "gone": 1}
    cur = {"a": 0, "b": 1, "c": 1, "d": 0, "new": 0}
    cmp = compare_paired(base, cur, binary=True)
    assert cmp.n_paired == 4
    assert cmp.losses == ["a", "d"] and cmp.gains == ["c"]
    assert cmp.baseline_mean == pytest.approx(0.75) and cmp.current_mean == pytest.approx(0.5)
    assert cmp.p_value == pytest.approx(binomial_sf(2, 3))  # 4/8


def test_sign_flip_detects_a_consistent_drop_and_not_noise() -> None:
    worse, better = sign_flip_test([-0.2] * 16)
    assert worse == pytest.approx(2.0**-16) and better == pytest.approx(1.0)  # every one of the 2^16 sign patterns but one is higher
    symmetric = sign_flip_test([0.1, -0.1] * 20)
    assert symmetric[0] > 0.2 and symmetric[0] == pytest.approx(symmetric[1])
    assert sign_flip_test([0.0, 0.0]) == (1.0, 1.0)


def test_sign_flip_is_exact_by_enumeration_and_is_mcnemar_on_zero_one_scores() -> None:
    import itertools

    diffs = [-0.67, -0.5, 0.25, -1.0, 0.33, -0.08, 0.0, -0.5]
    weights = [round(abs(d) * 100) for d in diffs]
    observed = sum(w if d > 0 else -w for d, w in zip(diffs, weights, strict=True))
    patterns = [sum(s * w for s, w in zip(signs, weights, strict=True)) for signs in itertools.product((-1, 1), repeat=len(diffs))]
    worse, better = sign_flip_test(diffs)
    assert worse == pytest.approx(sum(t <= observed for t in patterns) / len(patterns))
    assert better == pytest.approx(sum(t >= observed for t in patterns) / len(patterns))
    for losses, gains in ((3, 0), (12, 5), (40, 10)):
        assert sign_flip_test([-1.0] * losses + [1.0] * gains + [0.0] * 7)[0] == pytest.approx(mcnemar_one_sided(losses, gains))


def test_sign_flip_p_has_no_floor_and_stays_valid_far_out() -> None:
    # 60 items collapse by 0.6: p = 2^-60, below floating-point resolution of the FFT; what is
    # reported is a bound that is never smaller than the true p (Hoeffding) and far below alpha/200.
    worse, _ = sign_flip_test([-0.6] * 60)
    assert 2.0**-60 <= worse < 1e-9


def _record(items: dict[str, float], **produced) -> Baseline:
    return baseline_of(items, produced_by={"prompt_hash": "p", "data_fingerprint": "d", **produced})


def test_gate_flags_significant_drop_beyond_tolerance() -> None:
    base = _record({str(i): 1.0 for i in range(20)})
    cur = {str(i): (0.0 if i < 8 else 1.0) for i in range(20)}
    out = judge(result_of(cur), base)
    assert out.verdict == "regressed" and not out.passed
    assert "8 flipped worse: 0, 1, 2, 3, 4, 5, 6, 7" in out.decision.failures[0]
    assert out.record.verdict is Verdict.REGRESSED and out.record.gate.paired.losses == 8


def test_gate_tolerates_insignificant_drop() -> None:
    base = _record({str(i): 1.0 for i in range(20)})
    cur = {str(i): (0.0 if i < 2 else 1.0) for i in range(20)}  # p = 0.25
    out = judge(result_of(cur), base)
    assert out.passed and out.verdict == "pass"
    assert out.record.p_value is not None and math.isclose(out.record.p_value, 0.25)


def test_gate_reports_stale_baseline_without_comparing() -> None:
    base = _record({"a": 1.0, "b": 1.0})
    out = judge(result_of({"a": 0.0, "b": 0.0}, produced_by={"prompt_hash": "p", "data_fingerprint": "CHANGED"}), base)
    assert out.verdict == "stale" and out.passed and out.record.p_value is None
    assert "data changed" in out.decision.warnings[0]


def test_gate_without_baseline_or_thresholds_is_never_a_plain_pass() -> None:
    out = judge(result_of({"a": 0.0}, produced_by={}), None)
    assert out.verdict == "no baseline" and out.passed and "nothing gates this benchmark" in out.decision.warnings[0]
    strict = judge(result_of({"a": 0.0}, produced_by={}), None, strict=True)
    assert not strict.passed and "--jallm-strict" in strict.decision.failures[0]


def test_gate_absolute_thresholds() -> None:
    limits = Limits(min_score=50, max_ooc_rate=5, max_drop=2, alpha=0.05)
    out = judge(result_of(None, score=40, ooc_rate=10, n=10, produced_by={}), None, limits)
    assert len(out.decision.failures) == 2 and out.verdict == "FAIL"


def test_corpus_level_metric_uses_plain_tolerance() -> None:
    base = Baseline(benchmark="b", score=80, ooc_rate=0, n=10, metric="pearson", binary=False, produced_by={}, items={})
    out = judge(result_of(None, score=75, n=10, ooc_rate=None, binary=False, metric="pearson", produced_by={}), base)
    assert out.verdict == "regressed"
    ok = judge(result_of(None, score=79, n=10, ooc_rate=None, binary=False, metric="pearson", produced_by={}), base)
    assert ok.passed


def test_holm_adjustment_by_hand() -> None:
    from pytest_jallm.stats import adjust, holm_adjust

    # sorted p: 0.01 (x3) -> 0.03, 0.03 (x2) -> 0.06, 0.04 (x1) -> max(0.06, 0.04) = 0.06
    assert holm_adjust({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm_adjust({"a": 0.9, "b": 0.3}) == pytest.approx({"a": 0.9, "b": 0.6})
    # A process that sees one test of a family of 40 can only use Bonferroni.
    assert adjust({"a": 0.001}, "holm", family_size=40) == pytest.approx({"a": 0.04})
    assert adjust({"a": 0.001, "b": 0.5}, "none") == {"a": 0.001, "b": 0.5}


def test_gate_uses_the_adjusted_p_value() -> None:
    base = _record({str(i): 1.0 for i in range(20)})
    cur = {str(i): (0.0 if i < 5 else 1.0) for i in range(20)}  # p = 1/32 < 0.05
    assert judge(result_of(cur), base).verdict == "regressed"
    # The same benchmark among ten (nine unchanged, p = 1): Holm makes it 10/32 = 0.31.
    others = [(result_of(dict(base.items), name=f"ok{i}"), baseline_of(base.items, name=f"ok{i}"), LIMITS) for i in range(9)]
    out = judge_all([(result_of(cur), base, LIMITS), *others])["b"]
    assert out.passed and out.verdict == "pass"
    assert out.record.p_adjusted == pytest.approx(10 / 32) and out.details.family.method == "holm"
    assert out.details.family.size == 10


def test_minimum_detectable_drop_grows_as_benchmarks_shrink() -> None:
    from pytest_jallm.stats import min_detectable_drop

    small, large = min_detectable_drop(100, 0.02, 0.05, 2.0), min_detectable_drop(1000, 0.02, 0.05, 2.0)
    assert small is not None and large is not None
    assert small > 3 > large  # a 100-item benchmark cannot see a 3-point drop; a 1,000-item one can
    assert min_detectable_drop(1000, 0.10, 0.05, 2.0) > large  # more churn, less power
    assert min_detectable_drop(1000, 0.02, 0.05 / 40, 2.0) > large  # a corrected level, less power
    assert min_detectable_drop(0, 0.0, 0.05, 2.0) is None


def test_family_simulation_script_runs_and_holm_cuts_false_alarms(capsys: pytest.CaptureFixture[str]) -> None:
    """perf/family_simulation.py (README's figures come from its default 4,000 runs); a short run here."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "perf" / "family_simulation.py"
    spec = importlib.util.spec_from_file_location("family_simulation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--runs", "200", "--seed", "1", "--continuous-runs", "0"])
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("10%")]
    per_benchmark, holm = (float(x.rstrip("%")) for x in rows[0][1:3])  # false alarms at 10% churn
    assert holm < per_benchmark and holm <= 10
    assert "power: a true 3-point drop on the 1000-item benchmark is flagged" in out


@pytest.mark.slow
def test_family_simulation_of_continuous_scores(capsys: pytest.CaptureFixture[str]) -> None:
    """The continuous part of perf/family_simulation.py (the plugin's sign-flip test on char_f1-like scores)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "perf" / "family_simulation.py"
    spec = importlib.util.spec_from_file_location("family_simulation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.continuous(10, module.np.random.default_rng(2))  # false alarms <= 5% with Holm, collapse flagged
    out = capsys.readouterr().out
    assert "a 60-point collapse among 200 benchmarks" in out and "(flagged)" in out and "never flagged" in out
