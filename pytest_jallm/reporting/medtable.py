"""The medical block of the reports, laid out like japanese-lm-med-harness's leaderboard.

One row per model and language (ja, en); columns IgakuQA, MedQA, MedMCQA and JMMLU-medical
(MMLU-medical for English) and their average. Each cell is the harness's metric,
``gestalt_match`` (accuracy by Gestalt match), from the first benchmark of the column's list that
has a result; a benchmark without that metric shows its primary score and the note says so.
Works from summary rows (``extra.scores`` holds every metric of a benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

COLUMNS = ("IgakuQA", "MedQA", "MedMCQA", "JMMLU-medical")
LANGUAGES = ("ja", "en")
HARNESS_METRIC = "gestalt_match"

# column -> language -> benchmarks in order of preference (the harness-style spec first).
SOURCES: dict[str, dict[str, tuple[str, ...]]] = {
    "IgakuQA": {"ja": ("igakuqa_harness", "igakuqa"), "en": ("igakuqa_harness_en", "igakuqa_en")},
    "MedQA": {"ja": ("medqa_ja",), "en": ("medqa_en",)},
    "MedMCQA": {"ja": ("medmcqa_ja",), "en": ("medmcqa_en",)},
    "JMMLU-medical": {"ja": ("jmmlu_medical",), "en": ("mmlu_medical",)},
}
HEADERS = ["lang", *COLUMNS, "average"]


@dataclass(frozen=True)
class Cell:
    benchmark: str
    metric: str
    score: float  # 0-100


@dataclass(frozen=True)
class MedicalRow:
    language: str
    cells: dict[str, Cell]  # column -> cell, only the columns with a result

    @property
    def average(self) -> float | None:
        values = [c.score for c in self.cells.values()]
        return sum(values) / len(values) if values else None


def _cell(row: Any) -> Cell:
    scores = (getattr(row, "extra", None) or {}).get("scores") or {}
    if isinstance(scores.get(HARNESS_METRIC), (int, float)):
        return Cell(row.name, HARNESS_METRIC, float(scores[HARNESS_METRIC]))
    return Cell(row.name, row.metric, float(row.score))


def medical_rows(rows: Sequence[Any]) -> list[MedicalRow]:
    """The medical block of one run: a row per language that has at least one column."""
    by_name = {r.name: r for r in rows}
    out = []
    for lang in LANGUAGES:
        cells = {}
        for column in COLUMNS:
            for name in SOURCES[column][lang]:
                if name in by_name:
                    cells[column] = _cell(by_name[name])
                    break
        if cells:
            out.append(MedicalRow(lang, cells))
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def table_body(med: Sequence[MedicalRow], label: str | None = None) -> list[list[str]]:
    body = []
    for r in med:
        cells = [_fmt(r.cells[c].score) if c in r.cells else "-" for c in COLUMNS]
        body.append(([label] if label is not None else []) + [r.language, *cells, _fmt(r.average)])
    return body


def notes(med: Sequence[MedicalRow]) -> list[str]:
    if not med:
        return []
    used = []
    other_metric = False
    for r in med:
        for column in COLUMNS:
            if column in r.cells:
                cell = r.cells[column]
                mark = "" if cell.metric == HARNESS_METRIC else "†"
                other_metric = other_metric or bool(mark)
                used.append(f"{column} {r.language}: {cell.benchmark} ({cell.metric}){mark}")
    out = ["Medical block laid out like japanese-lm-med-harness's leaderboard (scores 0-100, accuracy by "
           "Gestalt match); the average is over the columns that have results. Sources: " + "; ".join(used) + "."]
    if other_metric:
        out.append("† the benchmark has no gestalt_match metric: its primary score is shown instead.")
    if any(len(r.cells) < len(COLUMNS) for r in med):
        out.append("'-' = not run; not counted in the average.")
    return out
