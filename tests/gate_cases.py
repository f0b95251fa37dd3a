"""Benchmark results built by hand, judged through the gate the plugin uses (`Gate.assess` + `Gate.judge`)."""

from __future__ import annotations

from typing import Any, Mapping

from pytest_jallm.baseline import Baseline, BaselineError, Limits
from pytest_jallm.evaluation import BenchmarkResult, ItemOutcome
from pytest_jallm.gate import Gate, GateOptions, Judgement

PRODUCED = {"prompt_hash": "p", "data_fingerprint": "d"}
LIMITS = Limits(min_score=None, max_ooc_rate=None, max_drop=2.0, alpha=0.05)


def result_of(item_scores: Mapping[str, float] | None, *, name: str = "b", score: float | None = None, n: int | None = None,
              ooc_rate: float | None = 0.0, binary: bool = True, metric: str = "exact_match",
              produced_by: Mapping[str, Any] = PRODUCED, backend_errors: Mapping[str, str] | None = None) -> BenchmarkResult:
    """A benchmark's result as evaluation.score_benchmark leaves it (texts made up from the ids)."""
    # A corpus-level metric (item_scores None) scores no item on its own.
    scores = dict(item_scores) if item_scores is not None else dict.fromkeys(map(str, range(n or 0)))
    items = [ItemOutcome(id=i, prompt=f"prompt {i}", gold=f"gold {i}", output=f"out {i}", prediction=f"pred {i}",
                         score=s, ooc=False, input=f"input {i}") for i, s in scores.items()]
    if score is None:
        score = 100 * sum(scores.values()) / len(scores) if scores and item_scores is not None else 0.0
    return BenchmarkResult(name=name, category="MC", in_average=True, metric=metric, score=score, scores={metric: score},
                           ooc_rate=ooc_rate, n=len(items) if n is None else n, binary=binary, items=items,
                           produced_by=dict(produced_by), backend_errors=dict(backend_errors or {}))


def baseline_of(items: Mapping[str, float], *, name: str = "b", metric: str = "exact_match", binary: bool = True,
                produced_by: Mapping[str, Any] = PRODUCED, **more: Any) -> Baseline:
    score = 100 * sum(items.values()) / len(items) if items else 0.0
    return Baseline(benchmark=name, metric=metric, score=score, ooc_rate=0.0, n=len(items), binary=binary,
                    produced_by=dict(produced_by), items=dict(items), predictions={i: f"was {i}" for i in items}, **more)


def judge(result: BenchmarkResult, baseline: Baseline | BaselineError | None, limits: Limits = LIMITS,
          **options: Any) -> Judgement:
    """One benchmark in a family of one."""
    return judge_all([(result, baseline, limits)], **options)[result.name]


def judge_all(cases, **options: Any) -> dict[str, Judgement]:
    """A run's benchmarks: every one assessed before the first is judged, as one process does."""
    gate = Gate(GateOptions(**options))
    for result, baseline, limits in cases:
        gate.assess(result, baseline, limits)
    return {result.name: gate.judge(result) for result, _, _ in cases}
