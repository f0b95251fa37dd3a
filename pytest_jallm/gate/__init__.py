"""The gate: what the thresholds and an accepted baseline say about one benchmark's run.

    verdict.py   `Verdict`: every verdict a benchmark test can end with
    record.py    `BenchmarkRecord` (what every report renders) and `GateDetails` (what the gate decided from)
    decision.py  `decide(details)`: the verdict, failures and warnings; `stale_reasons`
    family.py    the family-wise correction (Holm in one process, Bonferroni on an xdist worker,
                 again over all shards at `merge`: `refamily`)
    build.py     the record from a result and a decision
    run.py       `Gate`: assess and judge each benchmark of a run (what the plugin calls)

Reporting depends on the gate, never the reverse.
"""

from __future__ import annotations

from .build import apply_decision, build_record, unscored_record
from .decision import Decision, decide, failure_text, stale_reasons
from .family import correct, refamily
from .record import (
    Acceptance,
    BaselineFacts,
    BenchmarkRecord,
    Churn,
    FamilyCorrection,
    FlippedItem,
    GateDetails,
    GateLimits,
    PairedTest,
    RunSeconds,
    RunStats,
)
from .run import Gate, GateOptions, Judgement
from .verdict import FAILING, UNGATED, Verdict

__all__ = [
    "FAILING", "UNGATED", "Acceptance", "BaselineFacts", "BenchmarkRecord", "Churn", "Decision", "FamilyCorrection",
    "FlippedItem", "Gate", "GateDetails", "GateLimits", "GateOptions", "Judgement", "PairedTest", "RunSeconds", "RunStats",
    "Verdict", "apply_decision", "build_record", "unscored_record", "correct", "decide", "failure_text", "refamily", "stale_reasons",
]
