"""The MT-Bench block of the reports: an LLM-judged benchmark's figures on FastChat's 1-10 scale.

One column per judged benchmark of the run (usually japanese_mt_bench); rows: the average over
every scored judgment of both turns (FastChat show_result's "Average"), each turn, each category
in the leaderboards' radar order, and how many judgments were scored and unscorable. The
benchmark table above shows the same benchmark ×10 (0-100). Works from the records
(``extra["judged"]``, which chatjudge.flow fills), so merged shard files render it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from ..chatjudge.fastchat import CATEGORY_ORDER

LABELS = {"writing": "Writing", "roleplay": "Roleplay", "reasoning": "Reasoning", "math": "Math", "coding": "Coding",
          "extraction": "Extraction", "stem": "STEM", "humanities": "Humanities"}
MAX_LISTED = 5  # unscorable judgments named in the notes


@dataclass(frozen=True)
class JudgedColumn:
    name: str
    judge: str
    average: float | None
    turns: dict[str, float | None]
    categories: dict[str, float | None]
    scored: int
    unscorable_count: int
    unscorable: dict[str, str] = field(default_factory=dict)
    backend_errors: int = 0


def judged_columns(rows: Sequence[Any]) -> list[JudgedColumn]:
    out = []
    for r in sorted(rows, key=lambda r: r.name):
        j = (getattr(r, "extra", None) or {}).get("judged")
        if not isinstance(j, dict):
            continue
        out.append(JudgedColumn(
            name=r.name, judge=str(j.get("judge", "?")), average=j.get("average"), turns=dict(j.get("turns") or {}),
            categories=dict(j.get("categories") or {}), scored=int(j.get("scored") or 0),
            unscorable_count=int(j.get("unscorable_count") or 0), unscorable=dict(j.get("unscorable") or {}),
            backend_errors=int(j.get("backend_errors") or 0)))
    return out


def label(category: str) -> str:
    return LABELS.get(category, category)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def categories_of(columns: Sequence[JudgedColumn]) -> list[str]:
    seen = {c for col in columns for c in col.categories}
    return [c for c in CATEGORY_ORDER if c in seen] + sorted(seen - set(CATEGORY_ORDER))


def table(columns: Sequence[JudgedColumn]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows: one column per benchmark."""
    headers = ["MT-Bench (1-10)", *(c.name for c in columns)]
    body = [["average", *(_fmt(c.average) for c in columns)]]
    turns = sorted({t for c in columns for t in c.turns}, key=int)
    body += [[f"turn {t}", *(_fmt(c.turns.get(t)) for c in columns)] for t in turns]
    body += [[label(cat), *(_fmt(c.categories.get(cat)) for c in columns)] for cat in categories_of(columns)]
    body.append(["scored judgments", *(str(c.scored) for c in columns)])
    body.append(["unscorable", *(str(c.unscorable_count) for c in columns)])
    return headers, body


def notes(columns: Sequence[JudgedColumn]) -> list[str]:
    if not columns:
        return []
    out = ["Rated 1-10 per turn by an LLM judge with FastChat's single-answer grading prompts; averages as FastChat's "
           "show_result computes them (over the scored judgments; the radar's categories over both turns). The "
           "benchmark table shows the same average ×10. Judge: "
           + "; ".join(f"{c.name}: {c.judge}" for c in columns) + "."]
    for c in columns:
        if c.unscorable_count:
            listed = "; ".join(f"{k}: {v}" for k, v in list(c.unscorable.items())[:MAX_LISTED])
            more = f" … and {c.unscorable_count - min(MAX_LISTED, len(c.unscorable))} more" \
                if c.unscorable_count > MAX_LISTED else ""
            out.append(f"{c.name}: {c.unscorable_count} judgment(s) unscorable, left out of the averages "
                       f"(not scored 0): {listed}{more}.")
        if c.backend_errors:
            out.append(f"{c.name}: {c.backend_errors} answer(s) failed in the model's backend and were not judged "
                       "(--jallm-max-backend-errors).")
    return out


def radar_series(columns: Sequence[JudgedColumn]) -> dict[str, dict[str, float]]:
    """label -> {Category: 1-10} for charts.radar (axes in the leaderboards' order)."""
    return {c.name: {label(cat): float(v) for cat, v in c.categories.items() if v is not None} for c in columns}


def radar_axes(columns: Sequence[JudgedColumn]) -> list[str]:
    return [label(c) for c in categories_of(columns)]
