"""Building the record: a benchmark's result and the gate's decision become its `BenchmarkRecord`.

The benchmark test and `merge` (after deciding again) fill the verdict, p-values, MDD and message
through `record_fields`, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .decision import Decision, decide, failure_text
from .record import BenchmarkRecord, ErrorKind, GateDetails, RunStats
from .verdict import Verdict

if TYPE_CHECKING:
    from ..evaluation import BenchmarkResult


def record_fields(details: GateDetails, decision: Decision) -> dict[str, Any]:
    """The record's fields that the gate decides (all but the outcome and message of the test)."""
    shown = details.paired if details.testable else None  # a p-value of too few pairs describes other items
    mdd = decision.mdd
    return {
        "verdict": decision.verdict,
        "baseline": decision.baseline_score,
        "p_value": shown.p_value if shown else None,
        "p_adjusted": details.family.p_adjusted if shown else None,
        "flipped_worse": shown.losses if shown else None,
        "flipped_better": shown.gains if shown else None,
        "mdd": None if mdd is None else round(mdd, 2),
        "underpowered": decision.underpowered,
        "gate": details.model_copy(update={"warnings": decision.warnings + decision.notes}),
    }


def build_record(result: BenchmarkResult, details: GateDetails, decision: Decision) -> BenchmarkRecord:
    """The record of one benchmark's run and the gate's verdict on it (what every report renders)."""
    return BenchmarkRecord(
        name=result.name, category=result.category, metric=result.metric, n=result.n, score=round(result.score, 4),
        ooc_rate=None if result.ooc_rate is None else round(result.ooc_rate, 4), in_average=result.in_average,
        oof_rate=None if result.oof_rate is None else round(result.oof_rate, 4),
        extra={"scores": result.scores, "produced_by": result.produced_by,
               **({"judged": result.judged} if result.judged else {})},
        run=RunStats.model_validate(result.run) if result.run else None,
        **record_fields(details, decision),
    )


def apply_decision(record: BenchmarkRecord, details: GateDetails) -> BenchmarkRecord:
    """`record` decided again from `details`: verdict, p-values, MDD, and the test's outcome and message."""
    decision = decide(details)
    return record.model_copy(update={
        **record_fields(details, decision),
        "outcome": "passed" if decision.passed else "failed",
        "message": failure_text(record.header, decision.failures) if decision.failures else None,
    })


REASON_CHARS = 240  # a reason is one line of the reports


def one_line(text: str, limit: int = REASON_CHARS) -> str:
    """The first non-empty line of a message, bounded (what a report shows as the reason)."""
    from ..display import shorten

    first = shorten(next((line.strip() for line in str(text).splitlines() if line.strip()), ""), 10 * limit)
    if len(first) > limit:  # what failed comes first, why often last ("… exceeds the model's context of 512 tokens")
        head = limit * 3 // 5
        first = first[:head] + " … " + first[-(limit - head - 3):]
    return first


def unscored_record(name: str, category: str, metric: str, verdict: Verdict, reason: str, *,
                    error_kind: ErrorKind | None = None, in_average: bool = True, message: str | None = None,
                    outcome: str | None = None) -> BenchmarkRecord:
    """The record of a selected benchmark that has no score: its data, spec or backend failed (`error`),
    pytest skipped it, or the session stopped before it ran. Every report shows it as a row."""
    assert not verdict.scored, verdict
    default_outcome = {Verdict.ERROR: "failed", Verdict.SKIPPED: "skipped", Verdict.NOT_RUN: "not run"}[verdict]
    return BenchmarkRecord(name=name, category=category, metric=metric, n=0, score=None, verdict=verdict,
                           in_average=in_average, reason=one_line(reason), error_kind=error_kind,
                           outcome=outcome or default_outcome, message=message)
