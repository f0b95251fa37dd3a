"""The medical block (japanese-lm-med-harness's leaderboard layout) in every report and the leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_jallm.__main__ import main as cli
from pytest_jallm.reporting import leaderboard
from pytest_jallm.reporting.html import render_html
from pytest_jallm.reporting.markdown import render_markdown
from pytest_jallm.reporting.record import BenchmarkRecord
from pytest_jallm.reporting.results_json import results_document, run_meta
from pytest_jallm.reporting.terminal import render_terminal


def _med(name: str, score: float, gestalt_match: float | None = None, metric: str = "gestalt_match", pb=None) -> BenchmarkRecord:
    scores = {metric: score}
    if gestalt_match is not None:
        scores["gestalt_match"] = gestalt_match
    return BenchmarkRecord(name=name, category="MED", metric=metric, n=10, score=score, in_average=False,
                      extra={"scores": scores, "produced_by": pb or {}})


ROWS = [
    _med("igakuqa_harness", 40.0),
    _med("igakuqa", 99.0, metric="exact_match"),  # the harness-style spec wins its column
    _med("medqa_ja", 30.0),
    _med("medmcqa_ja", 20.0),
    _med("jmmlu_medical", 10.0, gestalt_match=50.0, metric="exact_match"),  # gestalt_match, not the primary
    _med("medqa_en", 60.0),
    BenchmarkRecord(name="jnli", category="NLI", metric="exact_match", n=10, score=70.0),
]


def _cells(line: str) -> list[str]:
    return line.split()


def test_terminal_report_has_one_medical_row_per_language() -> None:
    out = render_terminal(ROWS)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:5] == ["lang", "IgakuQA", "MedQA", "MedMCQA", "JMMLU-medical"])
    ja = next(line for line in lines[header:] if line.startswith("ja "))
    en = next(line for line in lines[header:] if line.startswith("en "))
    assert _cells(ja) == ["ja", "40.00", "30.00", "20.00", "50.00‡", "35.00"]  # (40+30+20+50)/4
    assert _cells(en) == ["en", "-", "60.00", "-", "-", "60.00"]
    assert "IgakuQA ja: igakuqa_harness (gestalt_match)" in out
    assert "'-' = not run; not counted in the average." in out


def test_a_benchmark_without_gestalt_match_shows_its_primary_score_marked() -> None:
    out = render_terminal([_med("igakuqa", 45.0, metric="exact_match")])
    assert "IgakuQA ja: igakuqa (exact_match)†" in out and "primary score is shown instead" in out


def test_no_medical_rows_no_medical_block() -> None:
    rows = [BenchmarkRecord(name="jnli", category="NLI", metric="exact_match", n=10, score=70.0)]
    assert "IgakuQA" not in render_terminal(rows) and "Medical" not in render_markdown(rows)


def test_markdown_and_html_reports_carry_the_medical_table() -> None:
    md = render_markdown(ROWS)
    section = md.split("### Medical", 1)[1]
    assert "| lang   | IgakuQA   | MedQA   | MedMCQA   | JMMLU-medical   | average   |" in section
    assert "| ja     | 40.00     | 30.00   | 20.00     | 50.00‡          | 35.00     |" in section
    page = render_html(ROWS, charts=False)
    assert "<h2>Medical</h2><table class=\"medical\">" in page
    assert "<tr><td>ja</td><td>40.00</td><td>30.00</td><td>20.00</td><td>50.00‡</td><td>35.00</td></tr>" in page


def _doc(model: str, scores: dict[str, float], shuffle: int | None = None) -> dict:
    pb = {"backend": "hf", "model_revision": "r1", "num_fewshot": 0, "chat": False}
    if shuffle is not None:
        pb["shuffle_choices"] = shuffle
    rows = [_med(name, s, pb=pb) for name, s in scores.items()]
    return results_document(rows, model=model, meta=run_meta(rows, model=model))


def test_leaderboard_shows_a_medical_row_per_model_and_language(tmp_path: Path) -> None:
    runs = {
        "a.json": _doc("org/a", {"igakuqa_harness": 40, "medqa_ja": 30, "medqa_en": 50, "medmcqa_en": 40}),
        "a-shuffled.json": _doc("org/a", {"igakuqa_harness": 38, "medqa_ja": 28}, shuffle=1),
        "b.json": _doc("org/b", {"jmmlu_medical": 70}),
    }
    for name, doc in runs.items():
        (tmp_path / name).write_text(json.dumps(doc), encoding="utf-8")
    entries = leaderboard.build(list(runs.items()))
    assert {e.label for e in entries} == {"org/a (0-shot)", "org/a (0-shot) (shuffled choices, seed 1)", "org/b (0-shot)"}
    headers, body = leaderboard.medical_table(entries)
    assert headers == ["model", "lang", "IgakuQA", "MedQA", "MedMCQA", "JMMLU-medical", "average"]
    rows = {(r[0], r[1]): r[2:] for r in body}
    assert rows[("org/a (0-shot)", "ja")] == ["40.00", "30.00", "-", "-", "35.00"]
    assert rows[("org/a (0-shot)", "en")] == ["-", "50.00", "40.00", "-", "45.00"]
    assert rows[("org/a (0-shot) (shuffled choices, seed 1)", "ja")] == ["38.00", "28.00", "-", "-", "33.00"]
    assert rows[("org/b (0-shot)", "ja")] == ["-", "-", "-", "70.00", "70.00"]
    md_path, html_path = tmp_path / "lb.md", tmp_path / "lb.html"
    assert cli(["leaderboard", *(str(tmp_path / n) for n in runs), "--markdown", str(md_path), "--html", str(html_path)]) == 0
    md = md_path.read_text(encoding="utf-8")
    assert "### Medical" in md and "| org/b (0-shot)" in md.split("### Medical", 1)[1]
    assert "<h2>Medical</h2>" in html_path.read_text(encoding="utf-8")


def test_shards_must_agree_on_shuffling() -> None:
    from pytest_jallm.reporting.results_json import ResultsError, merge_documents

    plain = _doc("org/a", {"medqa_ja": 30})
    shuffled = _doc("org/a", {"medqa_en": 30}, shuffle=2)
    with pytest.raises(ResultsError, match="shuffle_choices"):
        merge_documents([("p.json", plain), ("s.json", shuffled)])


def test_a_cell_that_is_another_figure_than_the_benchmark_table_is_labelled_with_both() -> None:
    # The case: jmmlu_medical's score (its first metric, exact_match) is 0.00 in the benchmark
    # table while the medical block shows its gestalt_match, 11.00: two figures for one benchmark.
    out = render_terminal([_med("jmmlu_medical", 0.0, gestalt_match=11.0, metric="exact_match")])
    ja = next(line for line in out.splitlines() if line.startswith("ja "))
    assert _cells(ja)[4] == "11.00‡"
    assert ("‡ another figure than the benchmark table's for the same benchmark: jmmlu_medical is scored by "
            "exact_match there (0.00), and shown here by gestalt_match (11.00), the harness's metric.") in out
    same = render_terminal([_med("medqa_ja", 30.0)])  # gestalt_match is its score: one figure, no label
    assert "‡" not in same


def test_an_errored_medical_benchmark_shows_its_verdict_not_a_score() -> None:
    from pytest_jallm.gate import Verdict, unscored_record

    error = unscored_record("medqa_ja", "MED", "gestalt_match", Verdict.ERROR, "medqa_ja: source: missing", in_average=False)
    out = render_terminal([_med("igakuqa_harness", 40.0), error])
    ja = next(line for line in out.splitlines() if line.startswith("ja "))
    assert _cells(ja) == ["ja", "40.00", "error", "-", "-", "40.00"]  # not counted in the average
    assert "MedQA ja: medqa_ja (error)" in out and "†" not in out
