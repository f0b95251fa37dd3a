"""The records reports render, and the leaderboard's averages over them.

`BenchmarkRecord` (with `RunStats`) is the gate's (`pytest_jallm/gate/record.py`): the gate
builds it, reporting reads it. Re-exported here for the renderers.
"""

from __future__ import annotations

from typing import Sequence

from pydantic import BaseModel, ConfigDict, Field

from ..gate.record import BenchmarkRecord, RunSeconds, RunStats
from ..spec import CATEGORIES, CATEGORIES_OUT_OF_AVERAGE

__all__ = ["AVERAGE_CATEGORIES", "Averages", "BenchmarkRecord", "RunSeconds", "RunStats", "averages", "category_order"]

# The leaderboard's AVG is over these categories, in this column order.
AVERAGE_CATEGORIES = tuple(c for c in CATEGORIES if c not in CATEGORIES_OUT_OF_AVERAGE)


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
