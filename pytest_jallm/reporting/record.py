"""The records reports render, and the leaderboard's averages over them.

`BenchmarkRecord` (with `RunStats`) is the gate's (`pytest_jallm/gate/record.py`): the gate
builds it, reporting reads it. Re-exported here for the renderers.
"""

from __future__ import annotations

from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..gate.record import BenchmarkRecord, RunSeconds, RunStats
from ..spec import CATEGORIES, CATEGORIES_OUT_OF_AVERAGE

__all__ = ["AVERAGE_CATEGORIES", "Averages", "BenchmarkRecord", "OtherFailures", "RunSeconds", "RunStats", "averages",
           "category_order",
           "collection_error_reason"]

# The leaderboard's AVG is over these categories, in this column order.
AVERAGE_CATEGORIES = tuple(c for c in CATEGORIES if c not in CATEGORIES_OUT_OF_AVERAGE)


class Averages(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    avg: float | None = Field(alias="AVG", description="over AVERAGE_CATEGORIES that have results")
    categories: dict[str, float] = Field(description="every category that has results")
    included: list[str]
    missing: list[str] = Field(description="leaderboard categories with no result")
    unscored: list[str] = Field(default_factory=list, description="selected benchmarks with no score (verdict error, "
                                                                  "skipped or not run): left out of their category's "
                                                                  "mean, not counted as 0, so AVG is not the whole run's")


class OtherFailures(BaseModel):
    """What failed a run besides the benchmark verdicts, so that a report's headline agrees with pytest's
    exit status: failed tests that are not benchmark tests, files that could not be collected (a broken
    spec), and --jallm-strict's unused entries."""

    model_config = ConfigDict(extra="forbid")

    failed_tests: list[str] = Field(default_factory=list, description="node ids of failed tests that are not benchmark "
                                                                      "tests (per-example, variants, plain tests)")
    strict_unused: list[str] = Field(default_factory=list, description="threshold entries and baseline files matching "
                                                                       "no collected benchmark, in a --jallm-strict run")
    collection_errors: list[str] = Field(default_factory=list, description="'node id: reason' of each file pytest "
                                                                           "could not collect (a broken spec): its "
                                                                           "benchmarks are in no row")

    def __bool__(self) -> bool:
        return bool(self.failed_tests or self.strict_unused or self.collection_errors)

    def lines(self) -> list[str]:
        out = []
        if self.collection_errors:
            shown = "; ".join(self.collection_errors[:3]) + (" …" if len(self.collection_errors) > 3 else "")
            out.append(f"{len(self.collection_errors)} file(s) not collected: {shown}")
        if self.failed_tests:
            shown = ", ".join(self.failed_tests[:3]) + (" …" if len(self.failed_tests) > 3 else "")
            out.append(f"{len(self.failed_tests)} other test(s) (per-example, variants or not pytest-jallm's): {shown}")
        if self.strict_unused:
            out.append(f"{len(self.strict_unused)} unused threshold entr(y/ies) or baseline file(s) (--jallm-strict)")
        return out

    @classmethod
    def merged(cls, parts: Sequence[OtherFailures]) -> OtherFailures:
        """Shards of one run: what one unsharded run would have recorded."""
        return cls(failed_tests=sorted({t for p in parts for t in p.failed_tests}),
                   strict_unused=sorted({u for p in parts for u in p.strict_unused}),
                   collection_errors=sorted({e for p in parts for e in p.collection_errors}))


def collection_error_reason(longrepr: str, node_id: str = "") -> str:
    """One line for a file pytest could not collect: the exception pytest marks with `E` (last), else the
    first line, without the file's own path in front (the node id names it)."""
    from ..gate.build import one_line

    lines = [line for line in longrepr.splitlines() if line.strip()]
    marked = [line[1:].strip() for line in lines if line.startswith("E ")]
    reason = marked[-1] if marked else (lines[0].strip() if lines else "")
    file_part = node_id.split("::")[0]
    head, sep, rest = reason.partition(": ")
    if file_part and sep and head.replace("\\", "/").endswith(file_part):
        reason = rest
    return one_line(reason)


def category_order(cat: str) -> int:
    order = list(CATEGORIES)
    return order.index(cat) if cat in order else len(order)


def averages(rows: Sequence[BenchmarkRecord]) -> Averages:
    by_cat: dict[str, list[float]] = {}
    unscored = []
    for r in rows:
        if r.score is None:
            unscored.append(r.name)
        elif r.in_average or r.category in CATEGORIES_OUT_OF_AVERAGE:
            by_cat.setdefault(r.category, []).append(r.score)
    cats = {c: sum(v) / len(v) for c, v in sorted(by_cat.items(), key=lambda kv: category_order(kv[0]))}
    included = [c for c in AVERAGE_CATEGORIES if c in cats]
    missing = [c for c in AVERAGE_CATEGORIES if c not in cats]
    avg = sum(cats[c] for c in included) / len(included) if included else None
    return Averages(categories=cats, avg=avg, included=included, missing=missing, unscored=sorted(unscored))
