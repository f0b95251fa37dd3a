"""pytest glue of the variants: the ``name[variants]`` item, its failure message and the reporter's table."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import pytest

from ..atomic import atomic_write_text
from ..display import shorten
from ..items import BenchmarkFailure, _JallmItem
from ..prompt_format import CANONICAL
from ..spec import BenchmarkSpec
from .search import FormatScore, VariantLimits, VariantResult, VariantSearch, check

SEARCH_KEY = pytest.StashKey["VariantSearch"]()
PROPERTY = "jallm_variants"


def requested(config: pytest.Config) -> int:
    return int(config.getoption("jallm_variants", 0) or 0)


def base_seed(config: pytest.Config) -> int:
    hseed = config.getoption("hypothesis_seed", None)
    if hseed not in (None, ""):
        try:
            return int(hseed)
        except ValueError:
            return zlib.crc32(str(hseed).encode("utf-8"))
    return int(config.getoption("jallm_seed", 0) or 0)


def search_for(config: pytest.Config, jallm: Any) -> VariantSearch:
    if SEARCH_KEY not in config.stash:
        config.stash[SEARCH_KEY] = VariantSearch(
            jallm.evaluation, n=requested(config), sample=config.getoption("jallm_variant_sample", 50),
            seed=base_seed(config),
        )
    return config.stash[SEARCH_KEY]


def limits_of(jallm: Any, name: str, spec: BenchmarkSpec) -> VariantLimits:
    from ..baseline import limits_for

    lim = limits_for(jallm.threshold_file(), name, spec.thresholds)
    return VariantLimits(getattr(lim, "max_spread", None), getattr(lim, "min_variant_score", None))


class VariantsItem(_JallmItem):
    """``name[variants]``: the benchmark's scores under drawn prompt formats, gated by max_spread/min_variant_score."""

    def runtest(self) -> None:
        jallm = self.jallm
        search = search_for(self.config, jallm)
        name = self.spec.name
        if name not in search.results and name not in search.errors:
            if jallm.is_worker:
                batch = [(self.spec, self.path)]
            else:
                batch = [(it.spec, it.path) for it in self.session.items if isinstance(it, VariantsItem)]
            search.run(batch)
        if name in search.errors:
            raise search.errors[name]
        result = search.results[name]
        limits = limits_of(jallm, name, self.spec)
        failures = check(result, limits)
        if failures:
            pending = {name: limits}
            for it in self.session.items:  # shrink every failing benchmark in the same batches
                if isinstance(it, VariantsItem) and it.spec.name in search.results and it.spec.name not in search.shrunk:
                    pending.setdefault(it.spec.name, limits_of(jallm, it.spec.name, it.spec))
            search.shrink(pending)
        row = summary_row(result, limits, failures, search.shrunk.get(name) if failures else None)
        self.user_properties.append((PROPERTY, json.dumps(row, ensure_ascii=False)))
        if failures:
            raise BenchmarkFailure(failure_message(search, result, failures))

    def reportinfo(self):
        return self.path, 0, f"{self.spec.category} prompt-format variants {self.name}"


def collect_item(parent: pytest.Collector, spec: BenchmarkSpec, marks: Sequence[Any]) -> VariantsItem | None:
    if not requested(parent.config):
        return None
    from ..prompt import template_of

    if not template_of(spec).variants:
        return None  # e.g. a harness template is one fixed text: there are no format features to vary
    if spec.judge is not None:
        return None  # a judged chat benchmark's prompt is the user's question as it is: no format to vary
    name = f"{spec.name}[variants]"  # the id given whole, as for per-item tests (--lf under pytest >= 9)
    item = VariantsItem.from_parent(parent, name=name, nodeid=f"{parent.nodeid}::{name}", spec=spec)
    for m in (*marks, pytest.mark.jallm_variants):
        item.add_marker(m)
    return item


def summary_row(result: VariantResult, limits: VariantLimits, failures: list[str], shrunk: FormatScore | None) -> dict[str, Any]:
    worst = result.worst()
    return {
        "name": result.name, "category": result.category, "metric": result.metric, "seed": result.seed,
        "n": len(result.item_ids), "formats": [s.to_dict() for s in result.scores],
        "canonical": round(result.canonical.score, 4), "min": round(result.min, 4), "max": round(result.max, 4),
        "spread": round(result.spread, 4), "std": round(result.std, 4),
        "max_spread": limits.max_spread, "min_variant_score": limits.min_variant_score,
        "verdict": "FAIL" if failures else ("pass" if limits.active else "report"),
        "worst": worst.to_dict(), "shrunk": None if shrunk is None else shrunk.to_dict(),
        "failures": failures,
    }


def failure_message(search: VariantSearch, result: VariantResult, failures: list[str]) -> str:
    worst = result.worst()
    lines = [f"{result.name}[variants] ({result.category}, {result.metric}): {len(result.scores)} prompt formats on "
             f"{len(result.item_ids)} items (seed {result.seed}), canonical {result.canonical.score:.2f}:"]
    lines += [f"  - {f}" for f in failures]
    ooc = "" if worst.ooc_rate is None else f", OoC {worst.ooc_rate:.2f}%"
    lines.append(f"worst format (score {worst.score:.2f}{ooc}): {worst.format.describe()}")
    shrunk = search.shrunk.get(result.name)
    if shrunk is not None:
        if shrunk.format == CANONICAL:
            best = result.best()
            lines.append(f"the canonical format is the lowest-scoring one; the model does better under {best.format.describe()} "
                         f"({best.score:.2f})")
        else:
            lines.append(f"shrunk to the smallest change from canonical that still fails: {shrunk.format.describe()} "
                         f"(score {shrunk.score:.2f})")
    ex_id, text, gold = search.prompt_of(result.name, worst.format)
    lines += [f"--- worst format's prompt (item {ex_id}, expected {gold!r}) ---", shorten(text)]
    if shrunk is not None and shrunk.format not in (CANONICAL, worst.format):
        ex_id, text, gold = search.prompt_of(result.name, shrunk.format)
        lines += [f"--- shrunk format's prompt (item {ex_id}, expected {gold!r}) ---", shorten(text)]
    return "\n".join(lines)


class Reporter:
    """Gathers `name[variants]` rows from reports (also xdist workers') and prints the table."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: list[dict[str, Any]] = []
        config.addinivalue_line("markers", "jallm_variants: a pytest-jallm prompt-format sensitivity check")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == PROPERTY:
                self.rows.append(json.loads(str(value)))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        terminalreporter.write_sep("=", "pytest-jallm: prompt-format variants")
        terminalreporter.write_line(render_table(self.rows, details=self.config.getoption("verbose") >= 0))
        path = self.config.getoption("jallm_variants_json", None)
        if path:
            atomic_write_text(Path(path), json.dumps({"variants": self.rows}, ensure_ascii=False, indent=2))


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(rows: Sequence[Mapping[str, Any]], tablefmt: str = "simple", details: bool = True) -> str:
    from tabulate import tabulate

    head = ["benchmark", "n", "formats", "canonical", "min", "max", "spread", "std", "OoC% max", "verdict",
            "shrunk / worst format"]
    body = []
    for r in sorted(rows, key=lambda r: r["name"]):
        oocs = [f["ooc_rate"] for f in r["formats"] if f["ooc_rate"] is not None]
        body.append([r["name"], r["n"], len(r["formats"]), _fmt(r["canonical"]), _fmt(r["min"]), _fmt(r["max"]),
                     _fmt(r["spread"]), _fmt(r["std"]), _fmt(max(oocs)) if oocs else "-", r["verdict"],
                     _clip((r.get("shrunk") or r["worst"])["describe"], 60)])
    out = [tabulate(body, headers=head, tablefmt=tablefmt, disable_numparse=True)]
    if details:
        for r in sorted(rows, key=lambda r: r["name"]):
            table = [[i, _fmt(f["score"]), _fmt(f["ooc_rate"]), f["describe"]] for i, f in enumerate(r["formats"])]
            out.append(f"\n{r['name']} (seed {r['seed']}, {r['n']} items)"
                       + (f" — shrunk: {r['shrunk']['describe']}" if r.get("shrunk") else ""))
            out.append(tabulate(table, headers=["#", "score", "OoC %", "format"], tablefmt=tablefmt, disable_numparse=True))
    return "\n".join(out)
