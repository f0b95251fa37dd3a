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
    score: float | None  # 0-100; None: the benchmark has no score (its verdict says why)
    verdict: str = ""
    table_metric: str = ""  # the benchmark's own score in the benchmark table: its primary metric …
    table_score: float | None = None  # … and its value

    @property
    def differs(self) -> bool:
        """This cell is another metric than the benchmark table's score for the same benchmark (labelled ‡)."""
        return self.score is not None and bool(self.table_metric) and self.metric != self.table_metric


@dataclass(frozen=True)
class MedicalRow:
    language: str
    cells: dict[str, Cell]  # column -> cell, only the columns with a result

    @property
    def average(self) -> float | None:
        values = [c.score for c in self.cells.values() if c.score is not None]
        return sum(values) / len(values) if values else None


def _cell(row: Any) -> Cell:
    scores = (getattr(row, "extra", None) or {}).get("scores") or {}
    own = {"table_metric": row.metric, "table_score": None if row.score is None else float(row.score)}
    if isinstance(scores.get(HARNESS_METRIC), (int, float)):
        return Cell(row.name, HARNESS_METRIC, float(scores[HARNESS_METRIC]), **own)
    if row.score is None:
        return Cell(row.name, row.metric, None, str(row.verdict), **own)
    return Cell(row.name, row.metric, float(row.score), **own)


def medical_rows(rows: Sequence[Any]) -> list[MedicalRow]:
    """The medical block of one run: a row per language that has at least one column."""
    by_name = {r.name: r for r in rows}
    out = []
    for lang in LANGUAGES:
        cells = {}
        for column in COLUMNS:
            # The first source with a score; else the first selected one, shown with its verdict (error …).
            present = [by_name[name] for name in SOURCES[column][lang] if name in by_name]
            scored = [r for r in present if r.score is not None]
            if present:
                cells[column] = _cell((scored or present)[0])
        if cells:
            out.append(MedicalRow(lang, cells))
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def table_body(med: Sequence[MedicalRow], label: str | None = None) -> list[list[str]]:
    body = []
    for r in med:
        cells = [_cell_text(r.cells[c]) if c in r.cells else "-" for c in COLUMNS]
        body.append(([label] if label is not None else []) + [r.language, *cells, _fmt(r.average)])
    return body


def _cell_text(cell: Cell) -> str:
    if cell.score is None:
        return cell.verdict  # error, skipped, not run: selected, no score
    return _fmt(cell.score) + ("‡" if cell.differs else "")


def notes(med: Sequence[MedicalRow]) -> list[str]:
    if not med:
        return []
    used = []
    other_metric = False
    for r in med:
        for column in COLUMNS:
            if column in r.cells:
                cell = r.cells[column]
                if cell.score is None:  # no score, so no metric to name
                    used.append(f"{column} {r.language}: {cell.benchmark} ({cell.verdict})")
                    continue
                mark = "" if cell.metric == HARNESS_METRIC else "†"
                other_metric = other_metric or bool(mark)
                used.append(f"{column} {r.language}: {cell.benchmark} ({cell.metric}){mark}")
    out = ["Medical block laid out like japanese-lm-med-harness's leaderboard (scores 0-100, accuracy by "
           "Gestalt match); the average is over the columns that have results. Sources: " + "; ".join(used) + "."]
    if other_metric:
        out.append("† the benchmark has no gestalt_match metric: its primary score is shown instead.")
    differ = {c.benchmark: c for r in med for c in r.cells.values() if c.differs}
    if differ:
        out.append("‡ another figure than the benchmark table's for the same benchmark: "
                   + "; ".join(f"{c.benchmark} is scored by {c.table_metric} there ({_fmt(c.table_score)}), and shown "
                               f"here by {c.metric} ({_fmt(c.score)}), the harness's metric" for c in differ.values()) + ".")
    if any(c.score is None for r in med for c in r.cells.values()):
        out.append("error / skipped / not run: the benchmark was selected but has no score (the benchmark table says "
                   "why); not counted in the average.")
    if any(len(r.cells) < len(COLUMNS) for r in med):
        out.append("'-' = not run; not counted in the average.")
    return out
