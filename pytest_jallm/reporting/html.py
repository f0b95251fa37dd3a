"""The HTML report: the tables with charts, one self-contained page."""

from __future__ import annotations

import html
import math
from typing import Any, Mapping, Sequence

from ..gate import Verdict
from .markdown import MD_HEADERS, gate_status, status_word
from .record import BenchmarkRecord, OtherFailures, averages
from .terminal import UNSCORED_HEADERS, average_lines, average_note, in_table_order, table_rows, unscored_rows

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
    "table.unscored td{text-align:left;overflow-wrap:anywhere;max-width:60em}"
    "tr.failed td{background:#fde8e8}.note{color:#555}"
    "figure{display:inline-block;margin:1em}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}"
)


def html_table(headers: Sequence[str], body: Sequence[Sequence[str]], row_classes: Sequence[str] | None = None,
               table_class: str = "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    trs = []
    for i, row in enumerate(body):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        trs.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>")
    cls = f' class="{table_class}"' if table_class else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>"


def html_page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body}</body></html>\n"
    )


def figure(png_b64: str, alt: str) -> str:
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{png_b64}"><figcaption>{html.escape(alt)}</figcaption></figure>'


def render_html(rows: Sequence[BenchmarkRecord], title: str = "pytest-jallm results", meta: Mapping[str, Any] | None = None,
                charts: bool = True, other_failures: OtherFailures | None = None) -> str:
    """A self-contained page: status, metadata, tables, radar of categories, deltas vs baseline."""
    from . import charts as _charts

    av = averages(rows)
    ok, detail = gate_status(rows, other_failures)
    parts = [f"<p class='status'><b>{status_word(ok)}</b> — {html.escape(detail)}</p>"]
    if meta:
        shown = {k: v for k, v in meta.items() if v is not None and k != "given" and not isinstance(v, dict)}
        shown.update(meta.get("given") or {})
        parts.append(html_table(["key", "value"], [[k, str(v)] for k, v in shown.items()], table_class="meta"))
    h, v = average_lines(av)
    parts.append(html_table(h, [v], table_class="averages"))
    parts.append(f"<p class='note'>{html.escape(average_note(av, rows))}</p>")
    ordered = in_table_order(rows)
    classes = ["failed" if r.failed else "" for r in ordered]
    parts.append(html_table(MD_HEADERS, table_rows(rows, stats=True), classes, table_class="benchmarks"))
    unscored = unscored_rows(rows)
    if unscored:
        parts.append(html_table(UNSCORED_HEADERS, unscored, table_class="unscored"))
    from . import medtable

    med = medtable.medical_rows(rows)
    if med:
        parts.append("<h2>Medical</h2>")
        parts.append(html_table(medtable.HEADERS, medtable.table_body(med), table_class="medical"))
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in medtable.notes(med)]
    from . import mtbench

    judged = mtbench.judged_columns(rows)
    if judged:
        parts.append("<h2>MT-Bench</h2>")
        headers, body = mtbench.table(judged)
        parts.append(html_table(headers, body, table_class="mtbench"))
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in mtbench.notes(judged)]
        radar = _charts.radar(mtbench.radar_series(judged), mtbench.radar_axes(judged), max_value=10) \
            if charts and _charts.available() else None
        if radar:
            parts.append(figure(radar, "MT-Bench categories (1–10)"))
    if charts:
        if not _charts.available():
            parts.append(f"<p class='note'>{html.escape(_charts.MISSING)}</p>")
        else:
            radar = _charts.radar({title: av.categories})
            if radar:
                parts.append(figure(radar, "category scores (0–100)"))
            deltas = {r.name: r.delta for r in ordered if r.delta is not None and math.isfinite(r.delta)}
            if deltas:
                bad = {r.name for r in ordered if r.verdict in (Verdict.REGRESSED, Verdict.FAIL)}
                parts.append(figure(_charts.delta_bars(deltas, bad), "Δ score vs baseline (points)"))
            else:
                parts.append("<p class='note'>No baseline to compare with: no delta chart.</p>")
    failed = [r for r in ordered if r.failed]
    if failed:
        parts.append("<h2>Failures</h2>")
        for r in failed:
            parts.append(f"<h3>{html.escape(r.name)} — {html.escape(r.verdict)}</h3><pre>{html.escape(r.message or '')}</pre>")
            flips = r.gate.flips if r.gate is not None else []
            if flips:
                parts.append(f"<p>All {len(flips)} items that flipped from right to wrong:</p>")
                why = any(f.why for f in flips)  # the metric said why (ifeval: instructions failed)
                parts.append(html_table(["id", "input", "gold", "baseline answer", "answer now"] + ["why"] * why,
                                        [[f.id, f.input, f.gold, f.baseline, f.now] + [f.why or ""] * why for f in flips],
                                        table_class="flips"))
    return html_page(title, "".join(parts))
