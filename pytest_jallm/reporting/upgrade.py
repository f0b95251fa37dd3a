"""Results files of older schema versions, brought to the current one on reading (see
results_json.py's schema history)."""

from __future__ import annotations

import re
from typing import Any, Callable

from ..gate import BenchmarkRecord, GateDetails
from ..stats import mcnemar_one_sided

_TEST = re.compile(r"\b(mcnemar-exact|paired-bootstrap)\b p=")


def upgrade_v1(doc: dict[str, Any], run_meta: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """1 -> 2: structured run metadata, derived from the rows' provenance."""
    rows = [BenchmarkRecord.from_dict(b) for b in doc.get("benchmarks", [])]
    meta = run_meta(rows, model=doc.get("model"))
    meta.update({k: v for k, v in (doc.get("meta") or {}).items() if k not in ("given",)})
    return {**doc, "schema_version": 2, "meta": meta, "shard": None}


def upgrade_v2(doc: dict[str, Any]) -> dict[str, Any]:
    """2 -> 3: `extra.gate`, `extra.flips` and `extra.baseline_written` become the typed `gate`."""
    return {**doc, "schema_version": 3, "benchmarks": [_row_v2(dict(b)) for b in doc.get("benchmarks", [])]}


def _row_v2(row: dict[str, Any]) -> dict[str, Any]:
    extra = dict(row.get("extra") or {})
    old, flips, written = extra.pop("gate", None), extra.pop("flips", None) or [], extra.pop("baseline_written", None)
    row["extra"] = extra
    if old is None:
        return row
    message = row.get("message") or ""
    bullets = message.split("\n  - ")[1:]
    details: dict[str, Any] = {
        "score": row["score"], "ooc_rate": row.get("ooc_rate"), "n": row["n"],
        # min_paired 0: version 2 already decided whether the paired test counted (`testable`).
        "limits": {"max_drop": old.get("max_drop", 2.0), "alpha": old.get("alpha", 0.05), "min_paired": 0},
        # Version 2 kept the failures that were not the paired test's only as the message's text.
        "carried_failures": bullets[: old.get("other_failures") or 0],
        "warnings": old.get("notes") or [],
        "flips": flips,
        "family": {"requested": old.get("family", "none"), "method": old.get("family", "none")},
        "upgraded_from": 2,
    }
    if written:
        file, _, state = written.rpartition(" (")
        details["accepted"] = {"file": file, "changed": state.startswith("changed")}
    paired, p = old.get("paired"), row.get("p_value")
    if old.get("testable") and paired and p is not None and row.get("baseline") is not None:
        found = _TEST.search(message)
        test = found.group(1) if found else ("mcnemar-exact" if row.get("mdd") is not None else "paired test")
        losses, gains = row.get("flipped_worse") or 0, row.get("flipped_better") or 0
        base = row["baseline"] / 100
        details["baseline"] = {"score": row["baseline"]}
        details["paired"] = {
            "test": test, "n_paired": paired, "baseline_mean": base,
            "current_mean": base - (old.get("drop_points") or 0.0) / 100, "p_value": p,
            "p_better": mcnemar_one_sided(gains, losses) if test == "mcnemar-exact" else 1.0,
            "losses": losses, "gains": gains,
        }
        if test == "mcnemar-exact":
            details["churn"] = {"rate": 2 * gains / paired, "source": "this run's gains"}
        details["family"]["p_adjusted"] = row.get("p_adjusted")
    row["gate"] = GateDetails.model_validate(details).model_dump(mode="json")
    return row
