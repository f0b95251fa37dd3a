"""The terminal table of one run: per benchmark, category averages and AVG, the gate's notes.

Works from the records (what each benchmark test records), so the same table comes out of one
process, xdist workers, or merged shard files. Its cell formatters serve the other renderings.
"""

from __future__ import annotations

from typing import Sequence

from tabulate import tabulate

from ..spec import CATEGORIES_OUT_OF_AVERAGE
from .record import AVERAGE_CATEGORIES, Averages, BenchmarkRecord, averages, category_order


def cell(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    if abs(x) < 0.005:
        x = 0.0  # a baseline stored to 6 decimals must not print as "-0.00"
    return f"{x:+.2f}" if signed else f"{x:.2f}"


def p_cell(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p < 0.01 else f"{p:.3f}"


def flips_cell(r: BenchmarkRecord) -> str:
    if r.flipped_worse is None and r.flipped_better is None:
        return "-"
    return f"{r.flipped_worse or 0}/{r.flipped_better or 0}"


def mdd_cell(r: BenchmarkRecord) -> str:
    if r.mdd is None:
        return "-"
    return f"{r.mdd:.1f}" + (" ⚠ underpowered" if r.underpowered else "")


def in_table_order(rows: Sequence[BenchmarkRecord]) -> list[BenchmarkRecord]:
    return sorted(rows, key=lambda r: (category_order(r.category), r.name))


def table_rows(rows: Sequence[BenchmarkRecord], *, stats: bool = False, verdict=lambda r: r.verdict) -> list[list[str]]:
    """One row per benchmark (HEADERS; with `stats`, the p-values, flips and MDD too: MD_HEADERS)."""
    return [[r.name, r.category, r.metric, str(r.n), cell(r.score), cell(r.ooc_rate), cell(r.oof_rate), cell(r.baseline), cell(r.delta, signed=True),
             *([p_cell(r.p_value), p_cell(r.p_adjusted), flips_cell(r), mdd_cell(r)] if stats else []), verdict(r)]
            for r in in_table_order(rows)]


HEADERS = ["benchmark", "cat", "metric", "n", "score", "OoC %", "OoF %", "baseline", "Δ", "verdict"]


def average_lines(av: Averages) -> tuple[list[str], list[str]]:
    headers = ["AVG"] + list(av.categories)
    values = [cell(av.avg)] + [cell(v) for v in av.categories.values()]
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
    parts = [tabulate(table_rows(rows), headers=HEADERS, tablefmt="simple", disable_numparse=True)]
    h, v = average_lines(av)
    parts.append(tabulate([v], headers=h, tablefmt="simple", disable_numparse=True))
    parts.append(average_note(av))
    guided = guided_choice_note(rows)
    if guided:
        parts.append(guided)
    medical = medical_block(rows, "simple")
    if medical:
        parts.append(medical)
    judged = judged_block(rows, "simple")
    if judged:
        parts.append(judged)
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


def judged_block(rows: Sequence[BenchmarkRecord], tablefmt: str) -> str:
    """The MT-Bench block (LLM-judged benchmarks on FastChat's 1-10 scale), or ""."""
    from . import mtbench

    columns = mtbench.judged_columns(rows)
    if not columns:
        return ""
    headers, body = mtbench.table(columns)
    return tabulate(body, headers=headers, tablefmt=tablefmt, disable_numparse=True) + "\n\n" + "\n".join(mtbench.notes(columns))



STATS_HEADERS = ["benchmark", "paired", "flips −/+", "p", "p adj", "MDD@80%", "max_drop"]


def family_phrase(rows: Sequence[BenchmarkRecord]) -> str:
    """How the p adj column was corrected, as applied (an xdist worker applies Bonferroni for Holm)."""
    applied = sorted({(r.gate.family.method, r.gate.family.size) for r in rows
                      if r.gate is not None and r.p_adjusted is not None and r.gate.family.method != "none"})
    if not applied:
        return "p adj: not corrected (--jallm-family none)"
    names = {"holm": "Holm", "bonferroni": "Bonferroni"}
    return "p adj: " + "; ".join(f"{names[m]}-adjusted over {k} paired tests" for m, k in applied)


def churn_phrase(rows: Sequence[BenchmarkRecord]) -> str:
    sources = sorted({r.gate.churn.source for r in rows if r.mdd is not None and r.gate and r.gate.churn})
    return " and ".join(sources) or "the harmless churn"


def paired_test_table(rows: Sequence[BenchmarkRecord]) -> str:
    """Per benchmark: the paired test's raw and family-adjusted p, and the drop it can detect."""
    body = []
    for r in in_table_order(rows):
        if r.p_value is None and r.mdd is None:
            continue
        gate = r.gate
        paired = gate.paired if gate is not None else None
        max_drop = gate.limits.max_drop if gate is not None else None
        body.append([r.name, "-" if paired is None else str(paired.n_paired), flips_cell(r), p_cell(r.p_value),
                     p_cell(r.p_adjusted), "-" if r.mdd is None else f"{r.mdd:.1f}",
                     ("-" if max_drop is None else f"{max_drop:g}") + (" UNDERPOWERED" if r.underpowered else "")])
    if not body:
        return ""
    if any(r.mdd is not None for r in rows):
        mdd = (f"MDD@80%: the smallest true drop (points) the gate flags 4 times in 5 at max_drop and the corrected "
               f"alpha, from n and the harmless churn ({churn_phrase(rows)}); UNDERPOWERED: the corrected test alone "
               "cannot see a drop of max_drop 4 times in 5.")
    else:
        mdd = ("MDD@80%: only for 0/1 scores (on continuous ones the test's power depends on the sizes of the changes, "
               "not their count).")
    note = f"{family_phrase(rows)} (compared with alpha). {mdd}"
    return tabulate(body, headers=STATS_HEADERS, tablefmt="simple", disable_numparse=True) + "\n" + note


def gate_notes(rows: Sequence[BenchmarkRecord], *, unused: Sequence[str] = (), strict: bool = False) -> list[tuple[str, bool]]:
    """Lines for the end of the run: (text, is_warning). Nothing gated silently, nothing configured for nothing."""
    out: list[tuple[str, bool]] = []
    ungated = sorted((r for r in rows if r.verdict.ungated), key=lambda r: r.name)
    if ungated:
        names = ", ".join(f"{r.name} ({r.verdict})" for r in ungated)
        tail = "failed by --jallm-strict" if strict else "pass --jallm-strict to fail them"
        out.append((f"pytest-jallm: WARNING: {len(ungated)} benchmark(s) not gated by any baseline: {names} — "
                    f"accept baselines with --jallm-update-baseline; {tail}", True))
    partial = sorted((r for r in rows if r.gate and r.gate.baseline and r.gate.baseline.partial_limit and r.baseline is not None),
                     key=lambda r: r.name)
    if partial:
        names = ", ".join(f"{r.name} (first {r.gate.baseline.partial_limit} items)" for r in partial)  # type: ignore[union-attr]
        out.append((f"pytest-jallm: WARNING: {len(partial)} benchmark(s) compared with a partial baseline (accepted from a "
                    f"--jallm-limit run): {names} — accept full baselines", True))
    weak = sorted(r.name for r in rows if r.underpowered)
    if weak:
        out.append((f"pytest-jallm: underpowered: the family-corrected paired test cannot see a drop of max_drop 4 times "
                    f"in 5 for {', '.join(weak)}", True))
    if unused:
        tail = " — failed by --jallm-strict" if strict else ""
        out.append((f"pytest-jallm: WARNING: {len(unused)} threshold entr(y/ies) or baseline file(s) match no collected "
                    f"benchmark (typo? removed benchmark?): {', '.join(unused)}{tail}", True))
    written = [r.gate.accepted for r in sorted(rows, key=lambda r: r.name)
               if r.gate and r.gate.accepted and r.gate.accepted.error is None]
    if written:
        changed = sum(1 for a in written if a.changed)
        out.append((f"pytest-jallm: baselines written: {changed} changed, {len(written) - changed} unchanged", False))
        out += [(f"  {a.file} ({'changed' if a.changed else 'unchanged'})", False) for a in written]
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
