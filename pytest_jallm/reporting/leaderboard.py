"""A cross-run leaderboard: several models and few-shot settings in one table, sorted by AVG.

Laid out like the Open Japanese LLM Leaderboard: one row per model and few-shot
setting ("model (4-shot)"), AVG, the category averages, metadata, then the
per-benchmark scores. Shard files of one run are merged first (same checks as
`python -m pytest_jallm merge`).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tabulate import tabulate

from ..spec import CATEGORIES_OUT_OF_AVERAGE
from . import medtable
from .html import figure, html_page, html_table
from .record import AVERAGE_CATEGORIES, category_order
from .results_json import ResultsError, merge_documents, rows_of
from .terminal import cell

META_COLUMNS = [
    ("type", "type"),
    ("architecture", "architecture"),
    ("precision", "precision"),
    ("license", "license"),
    ("params_b", "#params (B)"),
    ("revision", "revision"),
    ("num_fewshot", "few-shot"),
    ("add_special_tokens", "add_special_tokens"),
    ("backend", "backend"),
]
SIZE_BUCKETS = [(3, "0–3B"), (7, "3–7B"), (13, "7–13B"), (35, "13–35B"), (60, "35–60B"), (math.inf, "60B+")]


@dataclass
class Entry:
    label: str
    model: str
    meta: dict[str, Any]
    avg: float | None
    categories: dict[str, float]
    scores: dict[str, float]  # benchmark -> score
    gate_passed: bool
    files: list[str]
    medical: list[medtable.MedicalRow] = field(default_factory=list)

    @property
    def size_bucket(self) -> str | None:
        p = self.meta.get("params_b")
        if not isinstance(p, (int, float)):
            return None
        return next(name for top, name in SIZE_BUCKETS if p < top)


def run_key(doc: Mapping[str, Any]) -> tuple:
    meta = doc.get("meta") or {}
    return (doc.get("model"), meta.get("revision"), meta.get("fewshot_setting"), meta.get("chat"),
            str(meta.get("backend")), str(meta.get("precision")), str(meta.get("shuffle_choices")))


def label_for(model: str, meta: Mapping[str, Any], ambiguous: bool) -> str:
    label = model
    if meta.get("num_fewshot") is not None:
        label += f" ({meta['num_fewshot']}-shot)"
    if meta.get("shuffle_choices") is not None:  # the harness's leaderboard reports both
        label += f" (shuffled choices, seed {meta['shuffle_choices']})"
    if ambiguous:
        extras = [str(meta[k]) for k in ("revision", "backend", "precision") if meta.get(k)]
        if meta.get("chat"):
            extras.append("chat")
        if extras:
            label += " [" + ", ".join(extras) + "]"
    return label


def build(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Entry]:
    """Group files by run (model, revision, few-shot, chat, backend, precision), merge each, sort by AVG."""
    groups: dict[tuple, list[tuple[str, Mapping[str, Any]]]] = {}
    for path, doc in docs:
        groups.setdefault(run_key(doc), []).append((path, doc))
    entries: list[Entry] = []
    for members in groups.values():
        try:
            doc = merge_documents(members) if len(members) > 1 or members[0][1].get("shard") else members[0][1]
        except ResultsError as e:
            raise ResultsError(f"{', '.join(p for p, _ in members)}: {e}") from None
        rows = rows_of(doc)
        meta = dict(doc["meta"])
        entries.append(Entry(
            label="",
            model=str(doc.get("model")),
            meta=meta,
            avg=doc["averages"]["AVG"],
            categories=dict(doc["averages"]["categories"]),
            scores={r.name: r.score for r in rows},
            gate_passed=not any(r.failed for r in rows),
            files=[p for p, _ in members],
            medical=medtable.medical_rows(rows),
        ))
    labels = [label_for(e.model, e.meta, False) for e in entries]
    for e, base in zip(entries, labels, strict=True):
        e.label = label_for(e.model, e.meta, labels.count(base) > 1)
    entries.sort(key=lambda e: (e.avg is None, -(e.avg or 0.0), e.label))
    return entries


def _category_columns(entries: Sequence[Entry]) -> list[str]:
    present = {c for e in entries for c in e.categories}
    return sorted(present, key=category_order)


def _benchmark_columns(entries: Sequence[Entry]) -> list[str]:
    return sorted({b for e in entries for b in e.scores})


def _meta_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "mixed"
    return str(value)


def table(entries: Sequence[Entry], *, benchmarks: bool = True, meta: bool = True) -> tuple[list[str], list[list[str]]]:
    cats = _category_columns(entries)
    headers = ["#", "model", "AVG"] + [c + ("*" if c in CATEGORIES_OUT_OF_AVERAGE else "") for c in cats]
    if meta:
        headers += [h for _, h in META_COLUMNS]
    benches = _benchmark_columns(entries) if benchmarks else []
    headers += benches
    body = []
    for i, e in enumerate(entries, 1):
        row = [str(i), e.label, cell(e.avg)] + [cell(e.categories.get(c)) for c in cats]
        if meta:
            row += [_meta_cell(e.meta.get(k)) for k, _ in META_COLUMNS]
        row += [cell(e.scores.get(b)) for b in benches]
        body.append(row)
    return headers, body


def notes(entries: Sequence[Entry]) -> list[str]:
    out = ["AVG is the mean of the category averages over the leaderboard categories a run has results for; "
           "a category that was not run is shown as '-', not counted as 0."]
    if any(c in CATEGORIES_OUT_OF_AVERAGE for e in entries for c in e.categories):
        out.append("* reported but not in AVG (" + ", ".join(sorted(CATEGORIES_OUT_OF_AVERAGE)) + ").")
    covered = {tuple(c for c in AVERAGE_CATEGORIES if c in e.categories) for e in entries}
    if len(covered) > 1:
        out.append("Runs cover different categories, so their AVGs are not over the same set: compare with care.")
    failing = [e.label for e in entries if not e.gate_passed]
    if failing:
        out.append("Gate failed in: " + ", ".join(failing) + ".")
    return out


def medical_table(entries: Sequence[Entry]) -> tuple[list[str], list[list[str]]]:
    """japanese-lm-med-harness's leaderboard layout: one row per model and language."""
    body = [row for e in entries for row in medtable.table_body(e.medical, label=e.label)]
    return ["model", *medtable.HEADERS], body


def medical_notes(entries: Sequence[Entry]) -> list[str]:
    rows = [r for e in entries for r in e.medical]
    if not rows:
        return []
    out = ["Medical: accuracy by Gestalt match (japanese-lm-med-harness's metric) per benchmark; the average is "
           "over the columns a row has. JMMLU-medical is MMLU-medical for en."]
    if any(r.cells[c].metric != medtable.HARNESS_METRIC for r in rows for c in r.cells):
        out.append("Some medical cells come from benchmarks without gestalt_match and show their primary score.")
    return out


def _medical_text(entries: Sequence[Entry], tablefmt: str) -> str:
    headers, body = medical_table(entries)
    if not body:
        return ""
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True) + "\n\n" + "\n".join(medical_notes(entries))


def render_terminal(entries: Sequence[Entry]) -> str:
    headers, body = table(entries, benchmarks=False, meta=False)
    extra_h = ["few-shot", "#params (B)", "precision"]
    body = [row + [_meta_cell(e.meta.get(k)) for k in ("num_fewshot", "params_b", "precision")] for row, e in zip(body, entries, strict=True)]
    text = tabulate(body, headers=headers + extra_h, tablefmt="simple", disable_numparse=True) + "\n\n" + "\n".join(notes(entries))
    medical = _medical_text(entries, "simple")
    return text + ("\n\nMedical\n\n" + medical if medical else "")


def render_markdown(entries: Sequence[Entry], title: str = "pytest-jallm leaderboard") -> str:
    headers, body = table(entries, benchmarks=False)
    lines = [f"## {title}", "", tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), ""]
    lines += notes(entries)
    bh, bb = table(entries, benchmarks=True, meta=False)
    lines += ["", "### Per benchmark", "", tabulate(bb, headers=bh, tablefmt="github", disable_numparse=True)]
    medical = _medical_text(entries, "github")
    if medical:
        lines += ["", "### Medical", "", medical]
    return "\n".join(lines) + "\n"


def render_html(entries: Sequence[Entry], title: str = "pytest-jallm leaderboard", charts: bool = True) -> str:
    from . import charts as _charts

    headers, body = table(entries, benchmarks=True)
    parts = [html_table(headers, body, table_class="leaderboard")]
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes(entries)]
    mh, mb = medical_table(entries)
    if mb:
        parts.append("<h2>Medical</h2>")
        parts.append(html_table(mh, mb, table_class="medical"))
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in medical_notes(entries)]
    if charts and not _charts.available():
        parts.append(f"<p class='note'>{html.escape(_charts.MISSING)}</p>")
    elif charts:
        axes = [c for c in AVERAGE_CATEGORIES if any(c in e.categories for e in entries)]
        parts.append("<h2>Category scores</h2>")
        for e in entries:
            png = _charts.radar({e.label: e.categories}, axes=axes, title=e.label)
            if png:
                parts.append(figure(png, f"{e.label}: category scores (0–100)"))
        if len(axes) < 3:
            parts.append("<p class='note'>Radar charts need at least three categories.</p>")
        points = {e.label: (float(e.meta["params_b"]), e.avg) for e in entries
                  if isinstance(e.meta.get("params_b"), (int, float)) and e.avg is not None}
        if points:
            parts.append("<h2>Score against size</h2>")
            parts.append(figure(_charts.scatter_params(points), "AVG against #params (B)"))
    return html_page(title, "".join(parts))
