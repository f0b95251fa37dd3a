"""The Markdown summary (a GitHub step summary): the table, the gate's status and its failures."""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

from tabulate import tabulate

from ..gate import Verdict
from .record import BenchmarkRecord, OtherFailures, averages
from .terminal import (
    UNSCORED_HEADERS,
    average_lines,
    average_note,
    family_phrase,
    judged_block,
    medical_block,
    run_status,
    table_rows,
    unscored_rows,
)

VERDICT_MARK = {Verdict.PASS: "✅", Verdict.IMPROVED: "⬆️", Verdict.ACCEPTED: "📌", Verdict.NO_BASELINE: "➖",
                Verdict.STALE: "⚠️", Verdict.UNPAIRED: "⚠️", Verdict.SKIPPED: "⏭️", **{v: "❌" for v in Verdict if v.failing}}
MD_HEADERS = ["benchmark", "cat", "metric", "n", "score", "OoC %", "OoF %", "baseline", "Δ", "p", "p adj", "flips −/+", "MDD", "verdict"]
MAX_MESSAGE = 1500  # characters of a failure message in the Markdown summary





def _verdict_cell(r: BenchmarkRecord) -> str:
    mark = VERDICT_MARK.get(r.verdict, "")
    if r.failed and mark != "❌":
        mark = "❌"
    return f"{mark} {r.verdict}".strip()


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


def gate_status(rows: Sequence[BenchmarkRecord], other_failures: OtherFailures | None = None) -> tuple[bool, str]:
    """(passed, headline): every selected benchmark counted, what else failed the run named."""
    return run_status(rows, other_failures)


def status_word(ok: bool) -> str:
    return "✅ gate passed" if ok else "❌ gate failed"


def _md_cell(text: str) -> str:
    """Text (a reason quoting data or a server) as one safe Markdown table cell."""
    return html.escape(text, quote=False).replace("|", "\\|").replace("\n", " ")


def render_markdown(rows: Sequence[BenchmarkRecord], title: str = "pytest-jallm results", meta: Mapping[str, Any] | None = None,
                    other_failures: OtherFailures | None = None) -> str:
    av = averages(rows)
    ok, detail = gate_status(rows, other_failures)
    lines = [f"## {title}", "", f"**{status_word(ok)}** — {detail}", ""]
    line = meta_line(meta)
    if line:
        lines += [line, ""]
    h, v = average_lines(av)
    lines.append(tabulate([v], headers=h, tablefmt="github", disable_numparse=True))
    lines += ["", average_note(av, rows), ""]
    lines.append(tabulate(table_rows(rows, stats=True, verdict=_verdict_cell), headers=MD_HEADERS, tablefmt="github", disable_numparse=True))
    unscored = unscored_rows(rows)
    if unscored:
        lines += ["", tabulate([[_md_cell(c) for c in row] for row in unscored], headers=UNSCORED_HEADERS,
                               tablefmt="github", disable_numparse=True)]
    flipped = sum(r.flipped_worse or 0 for r in rows)
    gained = sum(r.flipped_better or 0 for r in rows)
    if any(r.flipped_worse is not None for r in rows):
        lines += ["", f"Items flipped vs baseline: {flipped} worse, {gained} better (p: one-sided paired test on the "
                      f"paired items, exact McNemar on 0/1 scores, exact sign-flip on continuous ones; {family_phrase(rows)}; "
                      "Δ in points)."]
    medical = medical_block(rows, "github")
    if medical:
        lines += ["", "### Medical", "", medical]
    judged = judged_block(rows, "github")
    if judged:
        lines += ["", "### MT-Bench", "", judged]
    failed = sorted((r for r in rows if r.failed), key=lambda r: r.name)
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
