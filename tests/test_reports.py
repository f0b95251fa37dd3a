"""Reports: averages and the terminal table, Markdown step summary, HTML with charts, results JSON against its schema, JUnit properties, leaderboard."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from jallm_toy import base_args, write_script, write_suite
from pytest_jallm.__main__ import main as cli
from pytest_jallm.reporting import leaderboard
from pytest_jallm.reporting.html import render_html
from pytest_jallm.reporting.markdown import render_markdown
from pytest_jallm.reporting.record import BenchmarkRecord, averages
from pytest_jallm.reporting.results_json import (
    SCHEMA_VERSION,
    ResultsError,
    results_document,
    results_json_schema,
    run_meta,
    validate_document,
)
from pytest_jallm.reporting.terminal import render_terminal

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Collects tables (as rows of cell texts, by class) and embedded images."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.images: list[str] = []
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("class") or f"table{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "img":
            self.images.append(a.get("src", ""))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    page.close()
    return page


def _pngs(page: _Page) -> list[bytes]:
    out = []
    for src in page.images:
        assert src.startswith("data:image/png;base64,"), src[:40]
        out.append(base64.b64decode(src.split(",", 1)[1], validate=True))
    return out


def _pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A baseline from a perfect run, then a run that regresses on toy_mc, writing every report."""
    root = tmp_path_factory.mktemp("reports")
    write_suite(root)
    script = write_script(root)
    first = _pytest(root, *base_args(script, "--jallm-update-baseline"))
    assert first.returncode == 0, first.stdout + first.stderr
    write_script(root, wrong={"toy_mc": 7})
    second = _pytest(root, *base_args(
        script, "--jallm-report-md", "report.md", "--jallm-report-html", "report.html",
        "--jallm-results-json", "results.json", "--junitxml", "junit.xml",
        "--jallm-meta", "params_b=1.8", "--jallm-meta", "type=pretrained", "--jallm-meta", "license=apache-2.0",
    ))
    assert second.returncode == 1, second.stdout + second.stderr
    return root


@pytest.mark.slow  # run_dir: two whole pytest runs in subprocesses
def test_markdown_summary_has_status_table_flips_p_values_and_failures(run_dir: Path) -> None:
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    assert md.startswith("## pytest-jallm: ")
    assert "**❌ gate failed** — 2/3 benchmarks passed (2 pass, 1 regressed)" in md
    assert "backend `scripted" in md and "0-shot" in md and "#params (B) `1.8`" in md and "type `pretrained`" in md
    header = next(line for line in md.splitlines() if line.startswith("| benchmark"))
    assert [c.strip() for c in header.strip("|").split("|")] == [
        "benchmark", "cat", "metric", "n", "score", "OoC %", "OoF %", "baseline", "Δ", "p", "p adj", "flips −/+", "MDD", "verdict"]
    mc = next(line for line in md.splitlines() if line.startswith("| toy_mc"))
    cells = [c.strip() for c in mc.strip("|").split("|")]
    # p adj: Holm over the session's three paired tests (the other two have p = 1).
    assert cells[4:12] == ["30.00", "0.00", "0.00", "100.00", "-70.00", "0.0078", "0.023", "7/0"]
    assert cells[-1] == "❌ regressed" and "underpowered" in cells[12]  # 10 items cannot see a 2-point drop
    assert "Items flipped vs baseline: 7 worse, 0 better" in md
    assert "### Failures" in md and "<summary><b>toy_mc</b> — regressed</summary>" in md
    assert "7 flipped worse: toy_mc-0" in md


@pytest.mark.slow  # run_dir: two whole pytest runs in subprocesses
def test_html_report_parses_with_tables_and_embedded_pngs(run_dir: Path) -> None:
    page = _parse((run_dir / "report.html").read_text(encoding="utf-8"))
    bench = page.tables["benchmarks"]
    assert bench[0][0] == "benchmark" and sorted(r[0] for r in bench[1:]) == ["toy_he", "toy_mc", "toy_nli"]
    assert page.tables["averages"][0][0] == "AVG"
    meta = dict(page.tables["meta"][1:])
    assert meta["backend"] == "scripted" and meta["params_b"] == "1.8"
    pngs = _pngs(page)
    assert len(pngs) == 2  # the category radar and the deltas vs baseline
    assert all(p.startswith(PNG_MAGIC) for p in pngs)


@pytest.mark.slow  # run_dir: two whole pytest runs in subprocesses
def test_results_json_validates_against_its_schema(run_dir: Path) -> None:
    doc = json.loads((run_dir / "results.json").read_text(encoding="utf-8"))
    assert doc["schema_version"] == SCHEMA_VERSION
    validate_document(doc)
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema (a check-jsonschema dependency) is not installed")
    jsonschema.validate(doc, results_json_schema())
    meta = doc["meta"]
    assert meta["backend"] == "scripted" and meta["num_fewshot"] == 0 and meta["chat"] is False
    assert meta["params_b"] == 1.8 and meta["type"] == "pretrained" and meta["license"] == "apache-2.0"
    assert meta["given"] == {"params_b": 1.8, "type": "pretrained", "license": "apache-2.0"}
    mc = next(b for b in doc["benchmarks"] if b["name"] == "toy_mc")
    assert mc["verdict"] == "regressed" and mc["outcome"] == "failed" and mc["flipped_worse"] == 7
    with pytest.raises(ResultsError, match="key 'benchmarks.0.score'"):
        validate_document({**doc, "benchmarks": [{**mc, "score": "high"}]})
    with pytest.raises(ResultsError, match="schema_version"):
        validate_document({**doc, "schema_version": SCHEMA_VERSION + 1})


def test_version_1_files_are_still_read() -> None:
    v1 = {"schema": "pytest-jallm/results", "schema_version": 1, "created": "2026-01-01T00:00:00+00:00",
          "pytest_jallm": "0.1.0", "model": "m", "meta": {},
          "averages": {"AVG": 50.0, "categories": {"MC": 50.0}, "included": ["MC"], "missing": []},
          "benchmarks": [_row("a", "MC", 50).to_dict() | {"extra": {}}]}
    doc = validate_document(v1)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["meta"]["model"] == "m"


@pytest.mark.slow  # run_dir: two whole pytest runs in subprocesses
def test_junit_xml_carries_score_baseline_delta_and_verdict(run_dir: Path) -> None:
    root = ET.parse(run_dir / "junit.xml").getroot()
    props = {(tc.get("name"), p.get("name")): p.get("value") for tc in root.iter("testcase") for p in tc.iter("property")}
    assert props[("toy_mc", "jallm_score")] == "30.0000"
    assert props[("toy_mc", "jallm_baseline")] == "100.0000"
    assert props[("toy_mc", "jallm_delta")] == "-70.0000"
    assert props[("toy_mc", "jallm_verdict")] == "regressed"
    assert float(props[("toy_mc", "jallm_p_value")]) == pytest.approx(0.0078125)
    assert props[("toy_nli", "jallm_verdict")] == "pass"


# --- leaderboard -------------------------------------------------------------------


def _row(name: str, cat: str, score: float, **kw) -> BenchmarkRecord:
    return BenchmarkRecord(name=name, category=cat, metric="exact_match", n=10, score=score, **kw)


def _run(model: str, shots: int, scores: dict[str, float], params_b: float | None = None) -> dict:
    cats = {"jnli": "NLI", "jcqa": "MC", "jmmlu": "HE", "jsquad": "RC"}
    pb = {"backend": "vllm", "backend_version": "0.11.0", "model_revision": "main", "num_fewshot": shots, "chat": False,
          "settings": {"dtype": "bfloat16"}}
    rows = [_row(b, cats[b], s, extra={"produced_by": pb}) for b, s in scores.items()]
    given = {"params_b": params_b} if params_b is not None else {}
    return results_document(rows, model=model, meta=run_meta(rows, model=model, fewshot_setting=shots, given=given))


def test_leaderboard_sorts_by_avg_and_labels_few_shot_runs(tmp_path: Path) -> None:
    runs = {
        "small-0.json": _run("org/small", 0, {"jnli": 40, "jcqa": 50, "jmmlu": 30, "jsquad": 60}, params_b=1.8),
        "small-4.json": _run("org/small", 4, {"jnli": 55, "jcqa": 70, "jmmlu": 35, "jsquad": 80}, params_b=1.8),
        "big-4.json": _run("org/big", 4, {"jnli": 80, "jcqa": 90, "jmmlu": 60, "jsquad": 90}, params_b=13),
    }
    for name, doc in runs.items():
        (tmp_path / name).write_text(json.dumps(doc), encoding="utf-8")
    entries = leaderboard.build([(n, d) for n, d in runs.items()])
    assert [e.label for e in entries] == ["org/big (4-shot)", "org/small (4-shot)", "org/small (0-shot)"]
    assert [round(e.avg, 2) for e in entries] == [80.0, 60.0, 45.0]
    assert entries[0].size_bucket == "13–35B"

    files = [str(tmp_path / n) for n in runs]
    assert cli(["leaderboard", *files, "--markdown", str(tmp_path / "lb.md"), "--html", str(tmp_path / "lb.html")]) == 0
    md = (tmp_path / "lb.md").read_text(encoding="utf-8")
    body = [line for line in md.splitlines() if line.startswith("| ") and "org/" in line]
    assert [line.split("|")[2].strip() for line in body[:3]] == ["org/big (4-shot)", "org/small (4-shot)", "org/small (0-shot)"]
    header = next(line for line in md.splitlines() if line.startswith("| #"))
    for col in ("AVG", "NLI", "RC", "MC", "HE", "#params (B)", "few-shot", "precision", "revision", "add_special_tokens"):
        assert f" {col} " in header, col
    page = _parse((tmp_path / "lb.html").read_text(encoding="utf-8"))
    table = page.tables["leaderboard"]
    assert [r[1] for r in table[1:]] == ["org/big (4-shot)", "org/small (4-shot)", "org/small (0-shot)"]
    assert "jsquad" in table[0]  # per-benchmark columns too
    pngs = _pngs(page)
    assert len(pngs) == 4 and all(p.startswith(PNG_MAGIC) for p in pngs)  # a radar per run + the size scatter


def test_leaderboard_merges_shards_of_one_run(tmp_path: Path) -> None:
    from pytest_jallm.scale import ShardPlan

    whole = _run("org/m", 4, {"jnli": 50, "jcqa": 70, "jmmlu": 40, "jsquad": 80})
    rows = [BenchmarkRecord.from_dict(b) for b in whole["benchmarks"]]
    parts = []
    for i, names in enumerate((("jcqa", "jnli"), ("jmmlu", "jsquad")), 1):
        sel = [r for r in rows if r.name in names]
        plan = ShardPlan(i, 2, tuple(sorted(r.name for r in rows)), names)
        parts.append((f"s{i}.json", results_document(sel, model="org/m", meta=whole["meta"], shard=plan)))
    [entry] = leaderboard.build(parts)
    assert entry.avg == pytest.approx(whole["averages"]["AVG"]) and entry.files == ["s1.json", "s2.json"]
    with pytest.raises(ResultsError, match="no file for shard 2/2"):
        leaderboard.build([parts[0]])


def test_html_without_baselines_or_three_categories_still_renders() -> None:
    rows = [_row("a", "MC", 50), _row("b", "NLI", 70)]
    page = _parse(render_html(rows, title="t"))
    assert sorted(r[0] for r in page.tables["benchmarks"][1:]) == ["a", "b"] and page.images == []
    assert "gate passed" in render_markdown(rows)


def test_meta_pairs_are_typed_and_bad_ones_rejected(pytester: pytest.Pytester) -> None:
    from pytest_jallm.reporting.results_json import parse_meta_pairs

    assert parse_meta_pairs(["params_b=7", "revision=0123", "type=pretrained"]) == {
        "params_b": 7.0, "revision": "0123", "type": "pretrained"}
    result = pytester.runpytest("--jallm-meta", "params_b=seven")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jallm-meta 'params_b=seven': Input should be a valid number*"])


# --- averages and the terminal table ---------------------------------------------


def test_category_mean_then_mean_of_categories() -> None:
    rows = [_row("jnli", "NLI", 60), _row("jamp", "NLI", 40), _row("jcqa", "MC", 90)]
    av = averages(rows)
    assert av.categories == {"NLI": 50, "MC": 90}
    assert av.avg == pytest.approx(70)  # (50 + 90) / 2, not the mean of benchmarks (63.3)
    assert "QA" in av.missing and "NLI" not in av.missing


def test_sts_and_medical_are_reported_but_not_averaged() -> None:
    rows = [_row("jcqa", "MC", 90), _row("jsts", "STS", 10, in_average=False), _row("igakuqa", "MED", 20, in_average=False)]
    av = averages(rows)
    assert av.avg == pytest.approx(90)
    assert av.categories["STS"] == 10 and av.categories["MED"] == 20
    text = render_terminal(rows)
    assert "reported but not in AVG: STS, MED" in text


def test_markdown_has_gate_status_and_delta() -> None:
    rows = [_row("jcqa", "MC", 85, baseline=90, verdict="regressed", outcome="failed")]
    md = render_markdown(rows)
    assert "❌ gate failed" in md
    assert "| jcqa " in md and "-5.00" in md


def test_rounding_noise_does_not_print_a_negative_zero_delta() -> None:
    rows = [_row("nli", "NLI", 93.333333333, baseline=93.333333)]
    assert "-0.00" not in render_terminal(rows)
    assert "+0.00" in render_terminal(rows)


def test_guided_choice_runs_are_flagged_next_to_the_table() -> None:
    guided = _row("jnli", "NLI", 90, extra={"produced_by": {"settings": {"guided_choice": True}}})
    plain = _row("jcqa", "MC", 80, extra={"produced_by": {"settings": {"guided_choice": False}}})
    text = render_terminal([guided, plain])
    assert "Guided choice was on for jnli" in text and "jcqa:" not in text
    assert "Guided choice" not in render_terminal([plain])


def test_the_paired_table_explains_no_mdd_where_no_benchmark_has_one() -> None:
    """Only 0/1 scores get an MDD: with continuous ones alone (an LLM judge's ratings) the note said
    "from n and the harmless churn (the harmless churn)" about a column of dashes."""
    from pytest_jallm.gate.record import FamilyCorrection, GateDetails, GateLimits, PairedTest
    from pytest_jallm.reporting.terminal import paired_test_table

    paired = PairedTest(test="sign-flip-exact", n_paired=80, baseline_mean=0.3975, current_mean=0.31, p_value=7.5e-05,
                        losses=38, gains=13)
    gate = GateDetails(score=31.0, n=80, limits=GateLimits(max_drop=2.0, alpha=0.05), paired=paired,
                       family=FamilyCorrection(requested="holm", method="holm", size=1, p_adjusted=7.5e-05))
    record = BenchmarkRecord(name="japanese_mt_bench", category="CHAT", metric="judge_rating", n=80, score=31.0,
                             p_value=7.5e-05, p_adjusted=7.5e-05, flipped_worse=38, flipped_better=13, gate=gate)
    text = paired_test_table([record])
    assert "japanese_mt_bench" in text and "(the harmless churn)" not in text
    assert text.endswith("p adj: Holm-adjusted over 1 paired tests (compared with alpha). MDD@80%: only for 0/1 "
                         "scores (on continuous ones the test's power depends on the sizes of the changes, not their "
                         "count).")
