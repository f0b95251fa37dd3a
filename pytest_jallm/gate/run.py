"""One run's gate: what the plugin calls for each benchmark test (tests call the same).

`Gate.assess` compares a benchmark's result with its accepted baseline; `Gate.judge` applies the
family correction over every assessed benchmark, decides, and builds the record. One process
assesses every selected benchmark before judging the first (Holm needs every p-value; all
generation happens before the first verdict). An xdist worker, which sees only its own
benchmarks, is given `partial_view` (the number of selected benchmarks) and applies Bonferroni.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..baseline import Baseline, BaselineError, Limits
from ..display import shorten
from ..stats import compare_paired
from .build import build_record
from .decision import Decision, decide, failure_text, stale_reasons
from .family import correct
from .record import (
    Acceptance,
    BaselineFacts,
    BenchmarkRecord,
    Churn,
    FamilyCorrection,
    FamilyMethod,
    FlippedItem,
    GateDetails,
    GateLimits,
    PairedTest,
)
from .verdict import Verdict

if TYPE_CHECKING:
    from ..evaluation import BenchmarkResult

FLIP_TEXT = 160  # characters of each field of a flipped item in reports


@dataclass(frozen=True)
class GateOptions:
    family: FamilyMethod = "holm"
    strict: bool = False  # fail a benchmark that no baseline gates
    smoke: bool = False  # a --jallm-limit run: min_score reported, not enforced
    enforce_min_score: bool = False
    update_baseline: bool = False  # the run is being accepted: no comparison, no family
    diff_items: int = 10


@dataclass
class Judgement:
    details: GateDetails
    decision: Decision
    record: BenchmarkRecord

    @property
    def verdict(self) -> Verdict:
        return self.decision.verdict

    @property
    def passed(self) -> bool:
        return self.decision.passed

    @property
    def failure_text(self) -> str:
        return failure_text(self.record.header, self.decision.failures)


class Gate:
    def __init__(self, options: GateOptions, *, partial_view: int | None = None):
        self.options = options
        self.partial_view = partial_view  # an xdist worker: how many benchmarks the whole run selected
        self._details: dict[str, GateDetails] = {}

    def assess(self, result: BenchmarkResult, baseline: Baseline | BaselineError | None, limits: Limits) -> GateDetails:
        """What the baseline says about this run, before any family correction (once per benchmark)."""
        if result.name not in self._details:
            self._details[result.name] = self._assess(result, None if self.options.update_baseline else baseline, limits)
        return self._details[result.name]

    def judge(self, result: BenchmarkResult, *, accepted: Acceptance | None = None) -> Judgement:
        """The verdict on one assessed benchmark, and its record."""
        details = self._details[result.name]
        family = self._family().get(result.name) or FamilyCorrection(requested=self._requested, method="none")
        details = details.model_copy(update={"family": family, "accepted": accepted})
        decision = decide(details)
        return Judgement(details, decision, build_record(result, details, decision))

    @property
    def _requested(self) -> FamilyMethod:
        return "none" if self.options.update_baseline else self.options.family

    def _family(self) -> dict[str, FamilyCorrection]:
        tests = {name: d.paired for name, d in self._details.items() if d.testable and d.paired is not None}
        return correct({n: t.p_value for n, t in tests.items()}, {n: t.p_better for n, t in tests.items()},
                       self._requested, self.partial_view)

    def _assess(self, result: BenchmarkResult, baseline: Baseline | BaselineError | None, limits: Limits) -> GateDetails:
        o = self.options
        details = GateDetails(score=result.score, ooc_rate=result.ooc_rate, oof_rate=result.oof_rate, n=result.n,
                              backend_errors=len(result.backend_errors), limits=GateLimits.of(limits), smoke=o.smoke,
                              enforce_min_score=o.enforce_min_score, strict=o.strict, diff_items=o.diff_items,
                              family=FamilyCorrection(requested=self._requested))
        if isinstance(baseline, BaselineError):
            return details.model_copy(update={"baseline": BaselineFacts(file=baseline.path, invalid=str(baseline))})
        if baseline is None:
            return details
        facts = BaselineFacts(file=baseline.path, stale=stale_reasons(baseline, result.produced_by, result.metric),
                              score=baseline.score, items=len(baseline.items), partial_limit=baseline.partial_limit)
        details = details.model_copy(update={"baseline": facts})
        scores = result.item_scores()
        if facts.stale or scores is None:
            return details
        cmp = compare_paired(baseline.items, scores, binary=result.binary and baseline.binary)
        details = details.model_copy(update={"paired": PairedTest(
            test=cmp.test, n_paired=cmp.n_paired, baseline_mean=cmp.baseline_mean, current_mean=cmp.current_mean,
            p_value=cmp.p_value, p_better=cmp.p_better, losses=len(cmp.losses), gains=len(cmp.gains))})
        if not details.testable:
            return details
        update: dict = {"flips": [flipped_item(result, baseline, i) for i in cmp.losses]}
        if cmp.test == "mcnemar-exact":
            reruns = baseline.reruns.churn if baseline.reruns is not None else None
            update["churn"] = (Churn(rate=reruns, source="baseline re-runs") if reruns is not None
                               else Churn(rate=2 * len(cmp.gains) / cmp.n_paired, source="this run's gains"))
        return details.model_copy(update=update)


def flipped_item(result: BenchmarkResult, baseline: Baseline, item_id: str) -> FlippedItem:
    """An item that got worse, with its input, gold and the two answers (bounded)."""
    it = result.item(item_id)
    return FlippedItem(id=item_id, input=shorten(" ".join((it.input or it.prompt[-FLIP_TEXT:]).split()), FLIP_TEXT),
                       gold=shorten(it.gold, FLIP_TEXT), baseline=shorten(baseline.predictions.get(item_id, "?"), FLIP_TEXT),
                       now=shorten(it.prediction, FLIP_TEXT), why=shorten(it.detail, FLIP_TEXT) if it.detail else None)
