"""Leaderboard-style tables: per benchmark, category averages and AVG.

Works from plain summary rows (what each benchmark test records), so the same
table comes out of one process, xdist workers, or merged shard files.
"""

from __future__ import annotations

import html
import math
from typing import Any, Iterable, Mapping, Sequence

from tabulate import tabulate

from .reporting.record import AVERAGE_CATEGORIES, Averages, BenchmarkRecord, averages, category_order
from .spec import CATEGORIES_OUT_OF_AVERAGE

def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    if abs(x) < 0.005:
        x = 0.0  # a baseline stored to 6 decimals must not print as "-0.00"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def benchmark_table_rows(rows: Sequence[BenchmarkRecord]) -> list[list[str]]:
    out = []
    for r in sorted(rows, key=lambda r: (category_order(r.category), r.name)):
        out.append(
            [
                r.name,
                r.category,
                r.metric,
                str(r.n),
                _fmt(r.score),
                _fmt(r.ooc_rate),
                _fmt(r.baseline),
                _fmt(r.delta, signed=True),
                r.verdict,
            ]
        )
    return out


HEADERS = ["benchmark", "cat", "metric", "n", "score", "OoC %", "baseline", "Δ", "verdict"]


def _average_lines(av: Averages) -> tuple[list[str], list[str]]:
    headers = ["AVG"] + list(av.categories)
    values = [_fmt(av.avg)] + [_fmt(v) for v in av.categories.values()]
    return headers, values


def average_note(av: Averages) -> str:
    if av.avg is None:
        return "AVG: no leaderboard category has results."
    note = f"AVG over {len(av.included)} of {len(AVERAGE_CATEGORIES)} leaderboard categories"
    if av.missing:
        note += f" (not run, not counted as 0: {', '.join(av.missing)})"
    excluded = [c for c in av.categories if c in CATEGORIES_OUT_OF_AVERAGE]
    if excluded:
        note += f"; reported but not in AVG: {', '.join(excluded)}"
    return note + "."


def render_terminal(rows: Sequence[BenchmarkRecord]) -> str:
    if not rows:
        return ""
    av = averages(rows)
    parts = [tabulate(benchmark_table_rows(rows), headers=HEADERS, tablefmt="simple", disable_numparse=True)]
    h, v = _average_lines(av)
    parts.append(tabulate([v], headers=h, tablefmt="simple", disable_numparse=True))
    parts.append(average_note(av))
    guided = guided_choice_note(rows)
    if guided:
        parts.append(guided)
    medical = medical_block(rows, "simple")
    if medical:
        parts.append(medical)
    stats = paired_test_table(rows)
    if stats:
        parts.append(stats)
    return "\n\n".join(parts)


def medical_block(rows: Sequence[BenchmarkRecord], tablefmt: str) -> str:
    """japanese-lm-med-harness's leaderboard layout for the medical benchmarks of the run, or ""."""
    from . import medtable

    med = medtable.medical_rows(rows)
    if not med:
        return ""
    table = tabulate(medtable.table_body(med), headers=medtable.HEADERS, tablefmt=tablefmt, disable_numparse=True)
    return table + "\n\n" + "\n".join(medtable.notes(med))



STATS_HEADERS = ["benchmark", "paired", "flips −/+", "p", "p adj", "MDD@80%", "max_drop"]


def _family(rows: Sequence[BenchmarkRecord]) -> str:
    fams = {(r.extra.get("gate") or {}).get("family") for r in rows} - {None}
    return fams.pop() if len(fams) == 1 else "mixed"


def paired_test_table(rows: Sequence[BenchmarkRecord]) -> str:
    """Per benchmark: the paired test's raw and family-adjusted p, and the drop it can detect."""
    body = []
    for r in sorted(rows, key=lambda r: (category_order(r.category), r.name)):
        if r.p_value is None and r.mdd is None:
            continue
        gate = r.extra.get("gate") or {}
        max_drop = gate.get("max_drop")
        body.append([r.name, "-" if gate.get("paired") is None else str(gate["paired"]), _flips(r), _fmt_p(r.p_value),
                     _fmt_p(r.p_adjusted), "-" if r.mdd is None else f"{r.mdd:.1f}",
                     ("-" if max_drop is None else f"{max_drop:g}") + (" UNDERPOWERED" if r.underpowered else "")])
    if not body:
        return ""
    fam = _family(rows)
    note = (f"p adj: {fam}-adjusted over the run's paired tests (compared with alpha). MDD@80%: the smallest drop "
            "(points) detected 4 times in 5, from n and the flip rate; UNDERPOWERED: max_drop is below it.")
    return tabulate(body, headers=STATS_HEADERS, tablefmt="simple", disable_numparse=True) + "\n" + note


def gate_notes(rows: Sequence[BenchmarkRecord], *, unused: Sequence[str] = (), strict: bool = False) -> list[tuple[str, bool]]:
    """Lines for the end of the run: (text, is_warning). Nothing gated silently, nothing configured for nothing."""
    from .gate import UNGATED_VERDICTS

    out: list[tuple[str, bool]] = []
    ungated = sorted((r for r in rows if r.verdict in UNGATED_VERDICTS), key=lambda r: r.name)
    if ungated:
        names = ", ".join(f"{r.name} ({r.verdict})" for r in ungated)
        tail = "failed by --jallm-strict" if strict else "pass --jallm-strict to fail them"
        out.append((f"pytest-jallm: WARNING: {len(ungated)} benchmark(s) not gated by any baseline: {names} — "
                    f"accept baselines with --jallm-update-baseline; {tail}", True))
    weak = sorted(r.name for r in rows if r.underpowered)
    if weak:
        out.append((f"pytest-jallm: underpowered: max_drop is below the minimum detectable drop for {', '.join(weak)}", True))
    if unused:
        out.append((f"pytest-jallm: WARNING: {len(unused)} threshold entr(y/ies) or baseline file(s) match no collected "
                    f"benchmark (typo? removed benchmark?): {', '.join(unused)}", True))
    written = [r.extra["baseline_written"] for r in sorted(rows, key=lambda r: r.name) if r.extra.get("baseline_written")]
    if written:
        changed = [w for w in written if w.endswith("(changed)")]
        out.append((f"pytest-jallm: baselines written: {len(changed)} changed, {len(written) - len(changed)} unchanged", False))
        out += [(f"  {w}", False) for w in written]
    return out


def guided_choice_note(rows: Sequence[BenchmarkRecord]) -> str:
    """Guided (constrained) decoding makes OoC 0 by construction: say so next to the table."""
    names = [
        r.name
        for r in rows
        if (r.extra.get("produced_by") or {}).get("settings", {}).get("guided_choice")
    ]
    if not names:
        return ""
    return (
        f"Guided choice was on for {', '.join(sorted(names))}: answers were constrained to the label set, "
        "so their OoC rates are 0 by construction and their scores are not comparable with unconstrained runs."
    )


# --- Markdown (GitHub step summary) ------------------------------------------------

VERDICT_MARK = {"pass": "✅", "improved": "⬆️", "accepted": "📌", "no baseline": "➖", "stale": "⚠️", "unpaired": "⚠️",
                "regressed": "❌", "FAIL": "❌", "invalid baseline": "❌", "not written": "❌"}
MD_HEADERS = ["benchmark", "cat", "metric", "n", "score", "OoC %", "baseline", "Δ", "p", "p adj", "flips −/+", "MDD", "verdict"]
MAX_MESSAGE = 1500  # characters of a failure message in the Markdown summary


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def _flips(r: BenchmarkRecord) -> str:
    if r.flipped_worse is None and r.flipped_better is None:
        return "-"
    return f"{r.flipped_worse or 0}/{r.flipped_better or 0}"


def _fmt_mdd(r: BenchmarkRecord) -> str:
    if r.mdd is None:
        return "-"
    return f"{r.mdd:.1f}" + (" ⚠ underpowered" if r.underpowered else "")


def _verdict_cell(r: BenchmarkRecord) -> str:
    mark = VERDICT_MARK.get(r.verdict, "")
    if r.outcome != "passed" and mark != "❌":
        mark = "❌"
    return f"{mark} {r.verdict}".strip()


def markdown_table_rows(rows: Sequence[BenchmarkRecord]) -> list[list[str]]:
    return [
        [r.name, r.category, r.metric, str(r.n), _fmt(r.score), _fmt(r.ooc_rate), _fmt(r.baseline),
         _fmt(r.delta, signed=True), _fmt_p(r.p_value), _fmt_p(r.p_adjusted), _flips(r), _fmt_mdd(r), _verdict_cell(r)]
        for r in sorted(rows, key=lambda r: (category_order(r.category), r.name))
    ]


def meta_line(meta: Mapping[str, Any] | None) -> str:
    """One line of what produced the run, leaderboard style."""
    if not meta:
        return ""
    parts = []
    if meta.get("revision"):
        parts.append(f"revision `{meta['revision']}`")
    if meta.get("backend"):
        parts.append(f"backend `{meta['backend']}" + (f" {meta['backend_version']}`" if meta.get("backend_version") else "`"))
    if meta.get("num_fewshot") is not None:
        parts.append(f"{meta['num_fewshot']}-shot")
    if meta.get("chat") is not None:
        parts.append("chat template" if meta["chat"] is True else "raw prompt")
    if meta.get("shuffle_choices") is not None:
        parts.append(f"shuffled choices (seed `{meta['shuffle_choices']}`)")
    for key, label in (("precision", "precision"), ("architecture", "arch"), ("params_b", "#params (B)"),
                       ("add_special_tokens", "add_special_tokens"), ("limit", "limit")):
        if meta.get(key) is not None:
            parts.append(f"{label} `{meta[key]}`")
    for key, value in (meta.get("given") or {}).items():
        if key not in ("precision", "architecture", "params_b", "add_special_tokens", "limit"):
            parts.append(f"{key} `{value}`")
    return " · ".join(parts)


def gate_status(rows: Sequence[BenchmarkRecord]) -> tuple[bool, str]:
    failed = [r for r in rows if r.outcome != "passed"]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    detail = ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    text = f"{len(rows) - len(failed)}/{len(rows)} benchmarks passed ({detail})"
    return not failed, text


def render_markdown(rows: Sequence[BenchmarkRecord], title: str = "pytest-jallm results", meta: Mapping[str, Any] | None = None) -> str:
    av = averages(rows)
    ok, detail = gate_status(rows)
    status = "✅ gate passed" if ok else "❌ gate failed"
    lines = [f"## {title}", "", f"**{status}** — {detail}", ""]
    line = meta_line(meta)
    if line:
        lines += [line, ""]
    h, v = _average_lines(av)
    lines.append(tabulate([v], headers=h, tablefmt="github", disable_numparse=True))
    lines += ["", average_note(av), ""]
    lines.append(tabulate(markdown_table_rows(rows), headers=MD_HEADERS, tablefmt="github", disable_numparse=True))
    flipped = sum(r.flipped_worse or 0 for r in rows)
    gained = sum(r.flipped_better or 0 for r in rows)
    if any(r.flipped_worse is not None for r in rows):
        lines += ["", f"Items flipped vs baseline: {flipped} worse, {gained} better "
                      "(p: exact McNemar test on the paired items; p adj: Holm-corrected over the run's paired tests; Δ in points)."]
    medical = medical_block(rows, "github")
    if medical:
        lines += ["", "### Medical", "", medical]
    failed = sorted((r for r in rows if r.outcome != "passed"), key=lambda r: r.name)
    if failed:
        lines += ["", "### Failures", ""]
        for r in failed:
            msg = (r.message or f"{r.name}: {r.verdict}").strip()
            if len(msg) > MAX_MESSAGE:
                msg = msg[:MAX_MESSAGE] + f"\n… [{len(msg) - MAX_MESSAGE} characters cut]"
            msg = msg.replace("```", "`\u200b``")
            lines += [f"<details><summary><b>{html.escape(r.name)}</b> — {html.escape(r.verdict)}</summary>", "",
                      "```text", msg, "```", "", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# --- HTML ----------------------------------------------------------------------------

_CSS = (
    "body{font-family:system-ui,sans-serif;margin:2em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}"
    "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
    "td:first-child,th:first-child{text-align:left}"
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
                charts: bool = True) -> str:
    """A self-contained page: status, metadata, tables, radar of categories, deltas vs baseline."""
    from . import charts as _charts

    av = averages(rows)
    ok, detail = gate_status(rows)
    parts = [f"<p><b>{'✅ gate passed' if ok else '❌ gate failed'}</b> — {html.escape(detail)}</p>"]
    if meta:
        shown = {k: v for k, v in meta.items() if v is not None and k != "given" and not isinstance(v, dict)}
        shown.update(meta.get("given") or {})
        parts.append(html_table(["key", "value"], [[k, str(v)] for k, v in shown.items()], table_class="meta"))
    h, v = _average_lines(av)
    parts.append(html_table(h, [v], table_class="averages"))
    parts.append(f"<p class='note'>{html.escape(average_note(av))}</p>")
    ordered = sorted(rows, key=lambda r: (category_order(r.category), r.name))
    body = [[r.name, r.category, r.metric, str(r.n), _fmt(r.score), _fmt(r.ooc_rate), _fmt(r.baseline),
             _fmt(r.delta, signed=True), _fmt_p(r.p_value), _fmt_p(r.p_adjusted), _flips(r), _fmt_mdd(r), r.verdict]
            for r in ordered]
    classes = ["failed" if r.outcome != "passed" else "" for r in ordered]
    parts.append(html_table(MD_HEADERS, body, classes, table_class="benchmarks"))
    from . import medtable

    med = medtable.medical_rows(rows)
    if med:
        parts.append("<h2>Medical</h2>")
        parts.append(html_table(medtable.HEADERS, medtable.table_body(med), table_class="medical"))
        parts += [f"<p class='note'>{html.escape(n)}</p>" for n in medtable.notes(med)]
    if charts:
        if not _charts.available():
            parts.append(f"<p class='note'>{html.escape(_charts.MISSING)}</p>")
        else:
            radar = _charts.radar({title: av.categories})
            if radar:
                parts.append(figure(radar, "category scores (0–100)"))
            deltas = {r.name: r.delta for r in ordered if r.delta is not None and math.isfinite(r.delta)}
            if deltas:
                bad = {r.name for r in ordered if r.verdict in ("regressed", "FAIL")}
                parts.append(figure(_charts.delta_bars(deltas, bad), "Δ score vs baseline (points)"))
            else:
                parts.append("<p class='note'>No baseline to compare with: no delta chart.</p>")
    failed = [r for r in ordered if r.outcome != "passed"]
    if failed:
        parts.append("<h2>Failures</h2>")
        for r in failed:
            parts.append(f"<h3>{html.escape(r.name)} — {html.escape(r.verdict)}</h3><pre>{html.escape(r.message or '')}</pre>")
            flips = r.extra.get("flips") or []
            if flips:
                parts.append(f"<p>All {len(flips)} items that flipped from right to wrong:</p>")
                parts.append(html_table(["id", "input", "gold", "baseline answer", "answer now"],
                                        [[f["id"], f["input"], f["gold"], f["baseline"], f["now"]] for f in flips],
                                        table_class="flips"))
    return html_page(title, "".join(parts))
