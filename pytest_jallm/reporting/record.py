"""The one record of a benchmark's result and verdict.

The benchmark test builds it from the gate's outcome; it travels to the xdist controller as
JSON in the test's `user_properties`, is written to and read from the results JSON (whose
schema is generated from these models), and every report and the leaderboard render it.
"""

from __future__ import annotations

from typing import Any, Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..spec import CATEGORIES, CATEGORIES_OUT_OF_AVERAGE

# The leaderboard's AVG is over these categories, in this column order.
AVERAGE_CATEGORIES = tuple(c for c in CATEGORIES if c not in CATEGORIES_OUT_OF_AVERAGE)


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


class BenchmarkRecord(BaseModel):
    """One benchmark of one run: its score, the gate's verdict, and the pytest outcome."""

    model_config = ConfigDict(extra="ignore")

    name: str
    category: str
    metric: str
    n: int
    score: float
    ooc_rate: float | None = None
    baseline: float | None = None
    verdict: str = "pass"
    in_average: bool = True
    p_value: float | None = None
    p_adjusted: float | None = Field(None, description="family-corrected (Holm over the session's paired tests)")
    flipped_worse: int | None = None
    flipped_better: int | None = None
    mdd: float | None = Field(None, description="minimum detectable drop at 80% power, points")
    underpowered: bool = Field(False, description="max_drop is below the mdd")
    outcome: str = Field("passed", description="pytest outcome of the benchmark test")
    message: str | None = Field(None, description="why the gate failed (the test's failure text)")
    extra: dict[str, Any] = Field(default_factory=dict)
    run: RunStats | None = Field(None, description="counts and seconds of the process that generated (absent in older files)")

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None else self.score - self.baseline

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    @classmethod
    def from_dict(cls, data: Any) -> "BenchmarkRecord":
        return cls.model_validate(data)


class Averages(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    avg: float | None = Field(alias="AVG", description="over AVERAGE_CATEGORIES that have results")
    categories: dict[str, float] = Field(description="every category that has results")
    included: list[str]
    missing: list[str] = Field(description="leaderboard categories with no result")


def category_order(cat: str) -> int:
    order = list(CATEGORIES)
    return order.index(cat) if cat in order else len(order)


def averages(rows: Sequence[BenchmarkRecord]) -> Averages:
    by_cat: dict[str, list[float]] = {}
    for r in rows:
        if r.in_average or r.category in CATEGORIES_OUT_OF_AVERAGE:
            by_cat.setdefault(r.category, []).append(r.score)
    cats = {c: sum(v) / len(v) for c, v in sorted(by_cat.items(), key=lambda kv: category_order(kv[0]))}
    included = [c for c in AVERAGE_CATEGORIES if c in cats]
    missing = [c for c in AVERAGE_CATEGORIES if c not in cats]
    avg = sum(cats[c] for c in included) / len(included) if included else None
    return Averages(categories=cats, avg=avg, included=included, missing=missing)
