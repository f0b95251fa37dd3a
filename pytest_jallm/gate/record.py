"""The one record of a benchmark's result and verdict, and the gate's details inside it.

The gate builds it (`gate.run.Gate.judge`); it travels to the xdist controller as JSON in the
test's `user_properties`, is written to and read from the results JSON (whose schema is generated
from these models), and every report and the leaderboard render it. `GateDetails` holds what the
gate decided from, so that `merge` can decide again with the same function (`decide`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..baseline import DEFAULT_MIN_PAIRED, Limits
from .verdict import Verdict

FamilyMethod = Literal["holm", "bonferroni", "none"]
ErrorKind = Literal["data", "spec", "backend", "other"]


class RunSeconds(BaseModel):
    model_config = ConfigDict(extra="allow")

    prepare: float = Field(description="loading the data and rendering the prompts")
    generate: float = Field(description="wall time of the generation call that served this benchmark (model loading excluded); "
                                        "shared with every benchmark in generation_shared_by")
    score: float = Field(description="scoring")
    total: float = Field(description="prepare + generate + score")


class RunStats(BaseModel):
    """Where one benchmark's answers came from and where its time went."""

    model_config = ConfigDict(extra="allow")

    prompts: int = Field(ge=0, description="requests this benchmark made")
    generated: int = Field(ge=0, description="answered by the model in this run")
    cache_hits: int = Field(ge=0, description="answered from the generation cache")
    repeated: int = Field(ge=0, description="identical to an earlier prompt of this run, generated once and shared")
    seconds: RunSeconds
    generation_shared_by: list[str] = Field(default_factory=list,
                                            description="the benchmarks generated in the same backend call")


# --- what the gate decided from ------------------------------------------------------


class _Details(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GateLimits(_Details):
    """The thresholds in force (the thresholds file, the spec, the defaults)."""

    min_score: float | None = None
    max_ooc_rate: float | None = None
    max_oof_rate: float | None = None
    max_drop: float
    alpha: float
    min_paired: float = DEFAULT_MIN_PAIRED

    @classmethod
    def of(cls, limits: Limits) -> GateLimits:
        return cls(min_score=limits.min_score, max_ooc_rate=limits.max_ooc_rate, max_oof_rate=limits.max_oof_rate,
                   max_drop=limits.max_drop, alpha=limits.alpha, min_paired=limits.min_paired)

    @property
    def absolute(self) -> bool:
        return self.min_score is not None or self.max_ooc_rate is not None or self.max_oof_rate is not None


class BaselineFacts(_Details):
    """The accepted baseline as the gate found it."""

    file: str = ""
    invalid: str | None = Field(None, description="why the file cannot be used (it names the file and line)")
    stale: list[str] = Field(default_factory=list, description="why it no longer describes this run")
    score: float | None = Field(None, description="its score over all its items, 0-100")
    items: int | None = Field(None, description="items with a per-item score in the file")
    partial_limit: int | None = Field(None, description="accepted from a --jallm-limit run of this many items")


class PairedTest(_Details):
    """The paired test of this run against the baseline, on the items both have."""

    test: str = Field(description="mcnemar-exact (0/1 scores) or sign-flip-exact (continuous scores)")
    n_paired: int
    baseline_mean: float = Field(description="the baseline's mean over the paired items, 0-1")
    current_mean: float
    p_value: float = Field(description="one-sided: the run is worse")
    p_better: float = Field(1.0, description="one-sided: the run is better")
    losses: int
    gains: int

    @property
    def drop_points(self) -> float:
        return (self.baseline_mean - self.current_mean) * 100


class FamilyCorrection(_Details):
    """The family-wise correction applied to this benchmark's paired test."""

    requested: FamilyMethod = "holm"
    method: FamilyMethod = Field("none", description="what was applied: an xdist worker applies bonferroni for holm")
    size: int = Field(1, ge=1, description="paired tests sharing alpha (alpha / size enters the minimum detectable drop)")
    p_adjusted: float | None = None
    p_better_adjusted: float | None = None


class Churn(_Details):
    """The share of items that flip harmlessly (as many each way), for the minimum detectable drop."""

    rate: float
    source: Literal["baseline re-runs", "this run's gains"]


class FlippedItem(_Details):
    id: str
    input: str
    gold: str
    baseline: str
    now: str
    why: str | None = Field(None, description="what the metric says failed (instruction following: which instructions)")


class Acceptance(_Details):
    """--jallm-update-baseline: the baseline file written (or why not)."""

    file: str
    changed: bool = False
    error: str | None = None


class GateDetails(_Details):
    """What the gate decided from. `decide(details)` gives the verdict again, as `merge` does."""

    score: float = Field(description="unrounded, 0-100")
    ooc_rate: float | None = None
    oof_rate: float | None = Field(None, description="percent of outputs no answer could be extracted from")
    n: int = Field(description="items scored")
    backend_errors: int = Field(0, description="items left out because their request failed in the backend")
    limits: GateLimits
    smoke: bool = Field(False, description="a --jallm-limit run")
    enforce_min_score: bool = False
    strict: bool = False
    diff_items: int = Field(10, description="flipped items a regression's message shows")
    baseline: BaselineFacts | None = None
    paired: PairedTest | None = None
    family: FamilyCorrection = Field(default_factory=FamilyCorrection)
    churn: Churn | None = None
    flips: list[FlippedItem] = Field(default_factory=list, description="every item that got worse, with both answers")
    accepted: Acceptance | None = None
    carried_failures: list[str] = Field(default_factory=list, description="failures an older results file recorded "
                                                                          "only as text (schema 2), kept as they were")
    upgraded_from: int | None = Field(None, description="schema version these details were reconstructed from")
    warnings: list[str] = Field(default_factory=list, description="what the gate warned about (derived)")

    @property
    def paired_share(self) -> float | None:
        if self.paired is None or not self.n:
            return None
        return 100 * self.paired.n_paired / self.n

    @property
    def testable(self) -> bool:
        """Whether the paired test counts: it enters the family correction and can decide the verdict."""
        share = self.paired_share
        return (self.paired is not None and self.paired.n_paired > 0 and share is not None
                and share >= self.limits.min_paired and self.baseline is not None and not self.baseline.stale
                and self.baseline.invalid is None)


# --- the record ------------------------------------------------------------------------


class BenchmarkRecord(BaseModel):
    """One benchmark of one run: its score, the gate's verdict, and the pytest outcome."""

    model_config = ConfigDict(extra="ignore")

    name: str
    category: str
    metric: str
    n: int
    score: float | None = Field(description="0-100; null when nothing was scored (verdict error, skipped, not run)")
    ooc_rate: float | None = None
    oof_rate: float | None = Field(None, description="out of format: percent of outputs no answer could be extracted from")
    baseline: float | None = None
    verdict: Verdict = Verdict.PASS
    in_average: bool = True
    p_value: float | None = None
    p_adjusted: float | None = Field(None, description="family-corrected (gate.family.method says how)")
    flipped_worse: int | None = None
    flipped_better: int | None = None
    mdd: float | None = Field(None, description="minimum detectable drop at 80% power, points")
    underpowered: bool = Field(False, description="max_drop is below what the corrected paired test alone detects 4 times in 5")
    outcome: str = Field("passed", description="pytest outcome of the benchmark test (passed, failed, skipped; "
                                                "'not run' when the session stopped before it)")
    message: str | None = Field(None, description="why the test failed (the test's failure text)")
    reason: str | None = Field(None, description="why there is no score, in one line (verdict error, skipped, not run)")
    error_kind: ErrorKind | None = Field(None, description="what failed, for verdict error: the benchmark's data, its "
                                                           "spec, the backend, or something else")
    gate: GateDetails | None = Field(None, description="what the gate decided from (absent in files older than schema 3)")
    extra: dict[str, Any] = Field(default_factory=dict, description="scores of every metric, provenance")
    run: RunStats | None = Field(None, description="counts and seconds of the process that generated (absent in older files)")

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.score is None else self.score - self.baseline

    @property
    def failed(self) -> bool:
        """The benchmark's test failed, or the session stopped before running it (a skip is not a failure)."""
        return self.outcome == "failed" or self.verdict.failing

    @property
    def header(self) -> str:
        """The first line of the benchmark test's failure text."""
        return f"{self.name} ({self.category}, {self.metric}, n={self.n}):"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: Any) -> BenchmarkRecord:
        return cls.model_validate(data)
