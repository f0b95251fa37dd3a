"""Reporting: the one record of a benchmark's result (`record`), and what is rendered from it.

`record` (the model), `terminal`, `markdown` and `html` (the renderings of one run), `results_json`
(the versioned results file, and merging shards), `leaderboard` (many runs), `charts` and `medtable`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from ..scale import ShardPlan
    from .record import BenchmarkRecord, OtherFailures


def write_reports(rows: Sequence[BenchmarkRecord], *, model: str | None, option, shard: ShardPlan | None = None,
                  other_failures: OtherFailures | None = None) -> None:
    """The files the report options ask for. `option` is `config.getoption`; `other_failures`: what
    else failed the run (per-example tests, --jallm-strict's unused entries), so that every headline
    agrees with pytest's exit status."""
    from ..atomic import atomic_write_text
    from .html import render_html
    from .markdown import render_markdown
    from .results_json import parse_meta_pairs, run_meta, write_results

    meta = run_meta(rows, model=model, fewshot_setting=option("jallm_num_fewshot"),
                    given=parse_meta_pairs(option("jallm_meta") or []))
    title = f"pytest-jallm: {model}"
    if shard is not None:
        title += f" (shard {shard.index}/{shard.count})"
    md_path = option("jallm_report_md")
    if md_path:
        # $GITHUB_STEP_SUMMARY is appended to (other steps write there too); any other file is replaced.
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        mode = "a" if step_summary and os.path.abspath(step_summary) == os.path.abspath(md_path) else "w"
        with open(md_path, mode, encoding="utf-8", errors="backslashreplace") as fh:
            fh.write(render_markdown(rows, title=title, meta=meta, other_failures=other_failures))
    html_path = option("jallm_report_html")
    if html_path:
        atomic_write_text(Path(html_path), render_html(rows, title=title, meta=meta, other_failures=other_failures))
    json_path = option("jallm_results_json")
    if json_path:
        write_results(Path(json_path), rows, model=model, meta=meta, shard=shard, other_failures=other_failures)
