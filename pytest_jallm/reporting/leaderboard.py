"""A cross-run leaderboard: several models and few-shot settings, ranked by AVG among comparable runs.

Laid out like the Open Japanese LLM Leaderboard: one row per model and few-shot
setting ("model (4-shot)"), its gate, coverage, AVG, the category averages, metadata, then the
per-benchmark scores. Shard files of one run are merged first (same checks as
`python -m pytest_jallm merge`).

AVG is a mean over the benchmarks a run scored, so two runs are ranked against each other only
when they scored the same benchmarks: runs are grouped by that set, the group with the most
benchmarks first, and ranked by AVG within their group. A partial run (fewer benchmarks, or
benchmarks that errored) is never ranked above a complete one; its table says what it lacks.
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
from .results_json import ResultsError, merge_documents, other_failures_of, rows_of
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
    scores: dict[str, float | None]  # benchmark -> score; None: selected, no score (`unscored` says why)
    gate_passed: bool
    files: list[str]
    medical: list[medtable.MedicalRow] = field(default_factory=list)
    unscored: dict[str, str] = field(default_factory=dict)  # benchmark -> verdict (error, skipped, not run)
    failed: list[str] = field(default_factory=list)  # benchmarks whose test failed (errors included)
    other_failures: list[str] = field(default_factory=list)  # what else failed the run
    group: int = 0  # index of its Group: runs over the same scored benchmarks
    rank: int = 0  # 1-based, within its group

    @property
    def scored(self) -> frozenset[str]:
        return frozenset(b for b, s in self.scores.items() if s is not None)

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
    """Group files by run (model, revision, few-shot, chat, backend, precision) and merge each; then
    rank: group by the benchmarks scored (`groups`), the group with the most first, by AVG within it."""
    by_run: dict[tuple, list[tuple[str, Mapping[str, Any]]]] = {}
    for path, doc in docs:
        by_run.setdefault(run_key(doc), []).append((path, doc))
    entries: list[Entry] = []
    for members in by_run.values():
        try:
            doc = merge_documents(members) if len(members) > 1 or members[0][1].get("shard") else members[0][1]
        except ResultsError as problem:
            raise ResultsError(f"{', '.join(p for p, _ in members)}: {problem}") from None
        rows = rows_of(doc)
        meta = dict(doc["meta"])
        entries.append(Entry(
            label="",
            model=str(doc.get("model")),
            meta=meta,
            avg=doc["averages"]["AVG"],
            categories=dict(doc["averages"]["categories"]),
            scores={r.name: r.score for r in rows},
            gate_passed=not any(r.failed for r in rows) and not other_failures_of(doc),
            files=[p for p, _ in members],
            medical=medtable.medical_rows(rows),
            unscored={r.name: str(r.verdict) for r in rows if r.score is None},
            failed=sorted(r.name for r in rows if r.failed),
            other_failures=other_failures_of(doc).lines(),
        ))
    labels = [label_for(e.model, e.meta, False) for e in entries]
    for e, base in zip(entries, labels, strict=True):
        e.label = label_for(e.model, e.meta, labels.count(base) > 1)
    sets = sorted({e.scored for e in entries}, key=lambda s: (-len(s), sorted(s)))
    for e in entries:
        e.group = sets.index(e.scored)
    entries.sort(key=lambda e: (e.group, e.avg is None, -(e.avg or 0.0), e.label))
    for i, e in enumerate(entries):
        e.rank = 1 if i == 0 or entries[i - 1].group != e.group else entries[i - 1].rank + 1
    return entries


@dataclass
class Group:
    """Runs that scored the same benchmarks: their AVGs are over the same set, so they are ranked."""

    entries: list[Entry]
    benchmarks: frozenset[str]  # scored by every run of the group
    lacking: list[str]  # benchmarks a run of an earlier (fuller) group scored and these did not

    earlier: int = 0  # benchmarks scored by the runs of the earlier groups

    def scope(self) -> str:
        cats = sorted({c for e in self.entries for c in e.categories if c in AVERAGE_CATEGORIES}, key=category_order)
        return (f"Ranked among runs over the same {len(self.benchmarks)} benchmark(s) "
                f"({len(cats)} of {len(AVERAGE_CATEGORIES)} leaderboard categories)")

    def lacks(self) -> str:
        """What these runs lack that the fuller runs above scored ("" for the first group)."""
        if not self.earlier:
            return ""
        return (f"{len(self.lacking)} of the {self.earlier} benchmarks scored there are missing here "
                f"({_listed(self.lacking)})")

    def heading(self) -> str:
        return self.scope() + (f" — not ranked against the runs above: {self.lacks()}" if self.earlier else "")


def _listed(names: Sequence[str], most: int = 8) -> str:
    return ", ".join(names[:most]) + (f" … ({len(names)} in all)" if len(names) > most else "")


def groups(entries: Sequence[Entry]) -> list[Group]:
    """The entries of `build`, split into their groups, fullest first."""
    out: list[Group] = []
    for e in entries:
        if out and out[-1].entries[0].group == e.group:
            out[-1].entries.append(e)
        else:
            earlier = set().union(*(g.benchmarks for g in out)) if out else set()
            out.append(Group([e], e.scored, sorted(earlier - e.scored), len(earlier)))
    return out


def _all_benchmarks(entries: Sequence[Entry]) -> list[str]:
    return sorted({b for e in entries for b in e.scores})


def gate_cell(e: Entry, markdown: bool = False) -> str:
    if e.gate_passed:
        return "✅ passed" if markdown else "passed"
    n = len(e.failed) + len(e.other_failures)
    return f"❌ FAILED ({n})" if markdown else f"FAILED ({n})"


def coverage_cell(e: Entry, total: int) -> str:
    """Benchmarks scored out of every benchmark any run of the leaderboard has, and what has no score."""
    text = f"{len(e.scored)}/{total}"
    if e.unscored:
        counts: dict[str, int] = {}
        for v in e.unscored.values():
            counts[v] = counts.get(v, 0) + 1
        text += " (" + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())) + ")"
    return text


def _meta_cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "mixed"
    return str(value)


def _category_columns(entries: Sequence[Entry]) -> list[str]:
    present = {c for e in entries for c in e.categories}
    return sorted(present, key=category_order)


def _score_cell(e: Entry, benchmark: str) -> str:
    if benchmark in e.unscored:
        return e.unscored[benchmark]  # error, skipped, not run
    return cell(e.scores.get(benchmark))


def table(entries: Sequence[Entry], *, benchmarks: bool = True, meta: bool = True, markdown: bool = False,
          columns_of: Sequence[Entry] | None = None) -> tuple[list[str], list[list[str]]]:
    """One row per entry: rank in its group, label, gate, coverage, AVG, categories (then metadata and
    per-benchmark scores). `columns_of`: the entries whose categories make the columns (all of them,
    so that every group's table has the same columns)."""
    every = list(columns_of) if columns_of is not None else list(entries)
    cats = _category_columns(every)
    total = len(_all_benchmarks(every))
    headers = ["#", "model", "gate", "benchmarks", "AVG"] + [c + ("*" if c in CATEGORIES_OUT_OF_AVERAGE else "") for c in cats]
    if meta:
        headers += [h for _, h in META_COLUMNS]
    benches = _all_benchmarks(every) if benchmarks else []
    headers += benches
    body = []
    for e in entries:
        row = [str(e.rank), e.label, gate_cell(e, markdown), coverage_cell(e, total), cell(e.avg)]
        row += [cell(e.categories.get(c)) for c in cats]
        if meta:
            row += [_meta_cell(e.meta.get(k)) for k, _ in META_COLUMNS]
        row += [_score_cell(e, b) for b in benches]
        body.append(row)
    return headers, body


def notes(entries: Sequence[Entry]) -> list[str]:
    out = ["AVG is the mean of the category averages over the leaderboard categories a run has results for; "
           "a category that was not run is shown as '-', not counted as 0. # ranks a run only among the runs over "
           "the same benchmarks (its table); 'benchmarks' counts those it scored of all the leaderboard's."]
    if any(c in CATEGORIES_OUT_OF_AVERAGE for e in entries for c in e.categories):
        out.append("* reported but not in AVG (" + ", ".join(sorted(CATEGORIES_OUT_OF_AVERAGE)) + ").")
    unscored = [e for e in entries if e.unscored]
    if unscored:
        out.append("No score (left out of AVG, not counted as 0): " + "; ".join(
            f"{e.label}: {_listed([f'{b} ({v})' for b, v in sorted(e.unscored.items())])}" for e in unscored) + ".")
    failing = [e for e in entries if not e.gate_passed]
    if failing:
        out.append("Gate failed in: " + "; ".join(
            f"{e.label} ({_listed(e.failed + e.other_failures)})" for e in failing) + ".")
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
    if any(r.cells[c].metric != medtable.HARNESS_METRIC and r.cells[c].score is not None for r in rows for c in r.cells):
        out.append("Some medical cells come from benchmarks without gestalt_match and show their primary score.")
    if any(r.cells[c].differs for r in rows for c in r.cells):
        out.append("‡ the benchmark's own score (per-benchmark table) is another metric; this is its gestalt_match.")
    return out


def _medical_text(entries: Sequence[Entry], tablefmt: str) -> str:
    headers, body = medical_table(entries)
    if not body:
        return ""
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True) + "\n\n" + "\n".join(medical_notes(entries))


def render_terminal(entries: Sequence[Entry]) -> str:
    parts = []
    for g in groups(entries):
        headers, body = table(g.entries, benchmarks=False, meta=False, columns_of=entries)
        extra_h = ["few-shot", "#params (B)", "precision"]
        body = [row + [_meta_cell(e.meta.get(k)) for k in ("num_fewshot", "params_b", "precision")]
                for row, e in zip(body, g.entries, strict=True)]
        parts.append(g.heading() + "\n\n"
                     + tabulate(body, headers=headers + extra_h, tablefmt="simple", disable_numparse=True))
    text = "\n\n".join(parts) + "\n\n" + "\n".join(notes(entries))
    medical = _medical_text(entries, "simple")
    return text + ("\n\nMedical\n\n" + medical if medical else "")


def render_markdown(entries: Sequence[Entry], title: str = "pytest-jallm leaderboard") -> str:
    lines = [f"## {title}", ""]
    for g in groups(entries):
        headers, body = table(g.entries, benchmarks=False, markdown=True, columns_of=entries)
        lines += [f"**{g.heading()}**", "",
                  tabulate(body, headers=headers, tablefmt="github", disable_numparse=True), ""]
    lines += notes(entries)
    bh, bb = table(entries, benchmarks=True, meta=False, markdown=True)
    lines += ["", "### Per benchmark", "", tabulate(bb, headers=bh, tablefmt="github", disable_numparse=True)]
    medical = _medical_text(entries, "github")
    if medical:
        lines += ["", "### Medical", "", medical]
    return "\n".join(lines) + "\n"


# The leaderboard page reads at 1,400 px: long names and revisions wrap or are cut (the full text in a
# tooltip), the per-benchmark table scrolls sideways inside its own box, its first column stays put.
_LEADERBOARD_CSS = (
    "<style>"
    ".leaderboard td:nth-child(2),.leaderboard th:nth-child(2){text-align:left;max-width:22em;overflow-wrap:anywhere}"
    ".leaderboard td.gate-failed{color:#b00020;font-weight:bold}.leaderboard td.gate-passed{color:#1b5e20}"
    ".runs td,.runs th{text-align:left;max-width:16em;overflow-wrap:anywhere}"
    ".scroll{overflow-x:auto;max-width:100%}"
    ".scroll table{margin:0}.per-benchmark th,.per-benchmark td{white-space:nowrap}"
    ".per-benchmark td:first-child,.per-benchmark th:first-child{position:sticky;left:0;background:#fff;"
    "white-space:normal;min-width:12em;max-width:18em;overflow-wrap:anywhere}"
    "td.no-score{color:#b00020}h2 small{font-weight:normal;color:#555}"
    "</style>"
)
SHORT_REVISION = 12  # characters of a revision (a commit hash, a content hash) shown; the rest in the tooltip


def _html_rows(headers: Sequence[str], body: Sequence[Sequence[str]], table_class: str,
               cell_class=lambda i, j, text: "", titles=lambda i, j, text: "") -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    trs = []
    for i, row in enumerate(body):
        tds = []
        for j, text in enumerate(row):
            cls, title = cell_class(i, j, text), titles(i, j, text)
            attrs = (f' class="{cls}"' if cls else "") + (f' title="{html.escape(title)}"' if title else "")
            tds.append(f"<td{attrs}>{html.escape(text)}</td>")
        trs.append("<tr>" + "".join(tds) + "</tr>")
    return f'<table class="{table_class}"><thead><tr>{head}</tr></thead><tbody>{"".join(trs)}</tbody></table>'


def _short(value: str) -> str:
    return value if len(value) <= SHORT_REVISION + 1 else value[:SHORT_REVISION] + "…"


def render_html(entries: Sequence[Entry], title: str = "pytest-jallm leaderboard", charts: bool = True) -> str:
    from . import charts as _charts

    parts = [_LEADERBOARD_CSS]
    for i, g in enumerate(groups(entries)):
        headers, body = table(g.entries, benchmarks=False, meta=False, columns_of=entries)
        small = g.scope() + (f"; {g.lacks()}" if g.earlier else "")
        parts.append(f"<h2>{'Ranking' if i == 0 else 'Not ranked against the runs above'} "
                     f"<small>{html.escape(small)}</small></h2>")
        members = g.entries
        parts.append(_html_rows(
            headers, body, "leaderboard",
            cell_class=lambda r, c, text, m=members: (("gate-passed" if m[r].gate_passed else "gate-failed")
                                                      if c == 2 else ""),
            titles=lambda r, c, text, m=members: "; ".join(m[r].failed + m[r].other_failures) if c == 2 else ""))
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in notes(entries)]
    parts.append("<h2>Runs</h2>")
    keys = [k for k, _ in META_COLUMNS]
    run_rows = [[e.label] + [_meta_cell(e.meta.get(k)) for k in keys] for e in entries]
    parts.append(_html_rows(
        ["model"] + [h for _, h in META_COLUMNS], [[r[0]] + [_short(c) if keys[j] == "revision" else c
                                                            for j, c in enumerate(r[1:])] for r in run_rows], "runs",
        titles=lambda r, c, text: run_rows[r][c] if c > 0 and keys[c - 1] == "revision" and run_rows[r][c] != text else ""))
    bh, bb = table(entries, benchmarks=True, meta=False)
    first_bench = bh.index(_all_benchmarks(entries)[0]) if _all_benchmarks(entries) else len(bh)
    bh = [bh[1]] + bh[first_bench:]
    bb = [[row[1]] + row[first_bench:] for row in bb]
    parts.append("<h2>Per benchmark</h2><div class='scroll'>")
    parts.append(_html_rows(bh, bb, "per-benchmark",
                            cell_class=lambda r, c, text: "no-score" if c > 0 and text in ("error", "skipped", "not run") else ""))
    parts.append("</div>")
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
