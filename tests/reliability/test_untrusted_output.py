"""Untrusted model output -- empty, whitespace, 100k characters, lone surrogates, control
characters, the wrong script, the prompt echoed back -- is scored (wrong, usually out of choice),
never crashes the run, is shown bounded and escaped, and every report stays valid."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pytest_jallm.answers import extract_answer, normalize, out_of_choice
from pytest_jallm.backends.base import CUT_MARKER, MIN_OUTPUT_CHARS
from pytest_jallm.display import MAX_SHOWN, shorten
from pytest_jallm.metrics import METRIC_NAMES, get_metric
from pytest_jallm.reporting.markdown import render_markdown
from pytest_jallm.reporting.record import BenchmarkRecord
from pytest_jallm.reporting.results_json import read_results, write_results
from pytest_jallm.reporting.terminal import render_terminal

from .toy import SCRIPTED, write_script, write_suite

ECHOED_PROMPT = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。\n\n### 指示:\n正しい選択肢の番号で答えてください。\n\n### 応答:\n"

HOSTILE = {
    "empty": "",
    "whitespace": " \n\t\u3000 \r\n",
    "huge": "1" + "長" * 100_000,
    "lone-surrogates": "\ud800答え\udfff",
    "control": "\x00\x1b[2J\x1b]0;pwned\x07\x08\x0b\x0c\x7f\x9b31m1",
    "xml-forbidden": "\x01\x02\ufffe\uffff\x1f",
    "wrong-script": "Ответ: ثلاثة",
    "bidi-zero-width": "\u202e1\u200b\u2066",
    "echoed-prompt": ECHOED_PROMPT * 3,
    "fence-and-html": "```\n</details><script>alert(1)</script>\n```",
}


# --- metric level -------------------------------------------------------------------------


@pytest.mark.parametrize("metric", sorted(METRIC_NAMES - {"comet_wmt22", "code_exec"}))
def test_every_metric_scores_hostile_output_without_raising(metric: str) -> None:
    outputs = list(HOSTILE.values())
    preds = [normalize(extract_answer(o)) for o in outputs]
    golds = ["2"] * len(preds)
    contexts = [{"choices": ["0", "1", "2"]} for _ in preds]
    result = get_metric(metric)(preds, golds, contexts)
    assert math.isfinite(result.score)
    assert -1.0 <= result.score <= 1.0
    if result.per_item is not None:
        assert len(result.per_item) == len(preds)
        assert all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in result.per_item)
    if metric in ("exact_match", "mathematical_equivalence"):
        assert result.score == 0.0  # none of them is the gold "2"


def test_hostile_output_is_out_of_choice_and_normalizes_to_valid_text() -> None:
    preds = [normalize(extract_answer(o)) for o in HOSTILE.values()]
    assert all(out_of_choice(preds, ["0", "1", "2"]))
    for p in preds:
        p.encode("utf-8")  # no lone surrogates survive normalisation


def test_shorten_bounds_and_escapes() -> None:
    for name, text in HOSTILE.items():
        shown = shorten(text)
        assert len(shown) <= MAX_SHOWN + 60, name
        shown.encode("utf-8")
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f\x9b\u202e]", shown), (name, shown[:80])
    cut = shorten(HOSTILE["huge"])
    assert "characters cut" in cut and cut.startswith("1長")


def test_reports_stay_valid_with_hostile_text(tmp_path: Path) -> None:
    rows = [
        BenchmarkRecord(name=f"b{i}", category="MC", metric="exact_match", n=1, score=0.0, verdict="FAIL", outcome="failed",
                   message=text, extra={"produced_by": {"model": text[:50]}})
        for i, text in enumerate(HOSTILE.values())
    ]
    md = render_markdown(rows, title="hostile")
    assert len(md) < 30_000  # the 100k message is cut
    assert md.count("```text") == md.count("```\n\n</details>") == len(rows)  # no fence broken out of
    render_terminal(rows)
    path = tmp_path / "results.json"
    write_results(path, rows, model="m\udcff")  # e.g. a non-UTF-8 file name given as --model
    doc = read_results(path)
    assert len(doc["benchmarks"]) == len(rows)


# --- end to end through the plugin ---------------------------------------------------------


def test_hostile_outputs_end_to_end(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    names = list(HOSTILE)
    benches = {"toy_a": len(names) + 2}  # two ordinary items: one right, one wrong
    write_suite(pytester.path, benches)
    outputs = {f"toy_a-{i}": text for i, text in enumerate(HOSTILE.values())}
    outputs[f"toy_a-{len(names) + 1}"] = "0" if (len(names) + 1) % 3 else "1"  # wrong
    script = write_script(pytester.path, benches, outputs=outputs)
    args = ["benchmarks", "--jallm-backend", SCRIPTED, "--model", script, "--jallm-cache", "gen.sqlite", "--jallm-items",
            "--junitxml", "out.xml", "--jallm-results-json", "results.json", "--jallm-report-md", "report.md",
            "-p", "no:cacheprovider"]
    result = pytester.runpytest(*args)
    n = benches["toy_a"]
    result.assert_outcomes(passed=2, failed=n - 1)  # the benchmark test and the one right item pass
    out = result.stdout.str()
    assert "Traceback" not in out and "INTERNALERROR" not in out
    assert not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x9b\u202e]", out), "raw control characters reached the terminal"
    assert max(len(line) for line in out.splitlines()) < 2 * MAX_SHOWN
    assert "characters cut" in out  # the 100k output
    result.stdout.fnmatch_lines(["toy_a *MC *exact_match *12 *8.33 *83.33 *"])  # score 1/12, OoC 10/12

    root = ET.parse(pytester.path / "out.xml").getroot()  # parses: no XML-forbidden characters
    cases = list(root.iter("testcase"))
    assert len(cases) == n + 1
    assert sum(len(c.findall("failure")) for c in cases) == n - 1
    assert all(len(f.text or "") < 5 * MAX_SHOWN for f in root.iter("failure"))
    doc = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))
    assert doc["benchmarks"][0]["score"] == pytest.approx(8.3333, abs=1e-3)
    assert (pytester.path / "report.md").read_text(encoding="utf-8").startswith("## pytest-jallm")

    # Every output was cached (lone surrogates stored as U+FFFD; the 100k output, far longer than
    # 2 tokens allow, cut and marked); the re-run scores the same without generating anything.
    conn = sqlite3.connect(pytester.path / "gen.sqlite")
    texts = {t for (t,) in conn.execute("SELECT text FROM generations")}
    conn.close()
    huge = HOSTILE["huge"][:MIN_OUTPUT_CHARS] + CUT_MARKER
    assert len(texts) == n and "\ufffd答え\ufffd" in texts and huge in texts
    log = pytester.path / "calls.jsonl"
    monkeypatch.setenv("JALLM_SCRIPTED_LOG", str(log))
    again = pytester.runpytest(*args)
    again.assert_outcomes(passed=2, failed=n - 1)
    again.stdout.fnmatch_lines(["toy_a *MC *exact_match *12 *8.33 *83.33 *"])
    assert not log.exists()  # the backend was never asked
