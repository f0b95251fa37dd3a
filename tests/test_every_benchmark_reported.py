"""Every selected benchmark is a row of every report, also one that has no score (its data, spec or
backend failed: verdict `error`; skipped; never run), and every headline counts them all and agrees
with pytest's exit status: terminal, Markdown, HTML, results JSON, JUnit XML, merged shards."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from jallm_toy import BENCHMARKS, base_args, comparable, write_script, write_suite
from pytest_jallm.__main__ import main as cli
from pytest_jallm.gate import Verdict, unscored_record
from pytest_jallm.reporting.markdown import render_markdown
from pytest_jallm.reporting.record import BenchmarkRecord, OtherFailures, averages, collection_error_reason
from pytest_jallm.reporting.terminal import average_note, render_terminal

REPORTS = ("--jallm-report-md", "r.md", "--jallm-report-html", "r.html", "--jallm-results-json", "r.json",
           "--junitxml", "j.xml")


@pytest.fixture
def toy(pytester: pytest.Pytester) -> pytest.Pytester:
    write_suite(pytester.path)
    return pytester


def _break_data(root: Path, name: str) -> None:
    """The spec's local `path:` file does not exist (a typo, a file not checked out)."""
    spec = root / "benchmarks" / f"{name}.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace(f"data/{name}.jsonl", "data/missing.jsonl"), encoding="utf-8")


def _rows(result: pytest.RunResult) -> dict[str, list[str]]:
    """The terminal table's rows: benchmark -> cells."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if line.startswith("benchmark ") and "verdict" in line)
    out = {}
    for line in lines[start + 2:]:
        if not line.strip():
            break
        out[line.split()[0]] = line.split()
    return out


def _headline(result: pytest.RunResult) -> str:
    return next(line for line in result.stdout.lines if line.startswith("pytest-jallm: gate "))


def _doc(root: Path, name: str = "r.json") -> dict:
    return json.loads((root / name).read_text(encoding="utf-8"))


def test_missing_local_file_fails_its_benchmark_alone_and_every_report_has_its_row(toy: pytest.Pytester) -> None:
    _break_data(toy.path, "toy_nli")
    result = toy.runpytest(*base_args(write_script(toy.path), *REPORTS))
    # Not a collection error that interrupts the session: the other two ran and passed.
    result.assert_outcomes(passed=2, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*toy_nli: source: file 'data/missing.jsonl' not found*"])
    rows = _rows(result)
    assert set(rows) == set(BENCHMARKS)
    assert rows["toy_nli"][3:6] == ["-", "-", "-"] and rows["toy_nli"][-1] == "error"
    result.stdout.fnmatch_lines(["toy_nli * error * data * toy_nli: source: file 'data/missing.jsonl' not found*"])
    assert _headline(result) == "pytest-jallm: gate failed — 2/3 benchmarks passed (2 no baseline, 1 error)"
    result.stdout.fnmatch_lines(["*Not the whole run: 1 selected benchmark(s) have no score (1 error) and are left out, "
                                 "not counted as 0 (categories affected: NLI).*"])

    md = (toy.path / "r.md").read_text(encoding="utf-8")
    assert "**❌ gate failed** — 2/3 benchmarks passed (2 no baseline, 1 error)" in md
    assert any(line.startswith("| toy_nli ") and "❌ error" in line for line in md.splitlines())
    assert "<summary><b>toy_nli</b> — error</summary>" in md
    page = (toy.path / "r.html").read_text(encoding="utf-8")
    assert "❌ gate failed</b> — 2/3 benchmarks passed (2 no baseline, 1 error)" in page
    assert '<table class="unscored">' in page and "<td>toy_nli</td><td>error</td><td>data</td>" in page

    doc = _doc(toy.path)
    row = next(b for b in doc["benchmarks"] if b["name"] == "toy_nli")
    assert row["verdict"] == "error" and row["score"] is None and row["outcome"] == "failed"
    assert row["error_kind"] == "data" and row["reason"].startswith("toy_nli: source: file 'data/missing.jsonl' not found")
    assert row["category"] == "NLI" and row["metric"] == "exact_match" and row["n"] == 0
    assert doc["averages"]["unscored"] == ["toy_nli"] and "NLI" not in doc["averages"]["categories"]
    props = {(tc.get("name"), p.get("name")): p.get("value")
             for tc in ET.parse(toy.path / "j.xml").getroot().iter("testcase") for p in tc.iter("property")}
    assert props[("toy_nli", "jallm_verdict")] == "error"


def test_backend_error_of_one_benchmark_is_its_error_row(toy: pytest.Pytester) -> None:
    # toy_he's prompts no longer fit the backend's context even zero-shot: each of its requests fails
    # alone, more than --jallm-max-backend-errors allows, so toy_he fails with a BackendError.
    spec = toy.path / "benchmarks" / "toy_he.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("instruction: ", "instruction: " + "長い指示。" * 20),
                    encoding="utf-8")
    script = toy.path / "small.json"
    script.write_text(json.dumps({**json.loads(Path(write_script(toy.path)).read_text(encoding="utf-8")),
                                  "context_window": 200}), encoding="utf-8")
    result = toy.runpytest(*base_args(str(script), *REPORTS))
    result.assert_outcomes(passed=2, failed=1)
    row = next(b for b in _doc(toy.path)["benchmarks"] if b["name"] == "toy_he")
    assert (row["verdict"], row["error_kind"]) == ("error", "backend")
    assert row["reason"].startswith("BackendError: toy_he: 8 of 8 requests failed in the backend")
    assert _headline(result) == "pytest-jallm: gate failed — 2/3 benchmarks passed (2 no baseline, 1 error)"


def test_deselected_benchmarks_are_not_rows_and_the_headline_counts_the_selected(toy: pytest.Pytester) -> None:
    _break_data(toy.path, "toy_nli")
    result = toy.runpytest(*base_args(write_script(toy.path), "-k", "toy_nli or toy_mc", *REPORTS))
    result.assert_outcomes(passed=1, failed=1)
    assert set(_rows(result)) == {"toy_nli", "toy_mc"}
    assert _headline(result) == "pytest-jallm: gate failed — 1/2 benchmarks passed (1 error, 1 no baseline)"
    assert {b["name"] for b in _doc(toy.path)["benchmarks"]} == {"toy_nli", "toy_mc"}
    passing = toy.runpytest(*base_args(write_script(toy.path), "-k", "toy_mc or toy_he", *REPORTS))
    assert passing.ret == pytest.ExitCode.OK
    assert _headline(passing) == "pytest-jallm: gate passed — 2/2 benchmarks passed (2 no baseline)"
    assert "**✅ gate passed** — 2/2 benchmarks passed" in (toy.path / "r.md").read_text(encoding="utf-8")


def test_skipped_benchmark_is_a_row_and_does_not_fail_the_gate(toy: pytest.Pytester) -> None:
    toy.makeconftest("""
        import pytest

        def pytest_collection_modifyitems(items):
            for item in items:
                if item.name == "toy_nli":
                    item.add_marker(pytest.mark.skip(reason="no judge configured here"))
    """)
    result = toy.runpytest(*base_args(write_script(toy.path), *REPORTS))
    result.assert_outcomes(passed=2, skipped=1)
    assert result.ret == pytest.ExitCode.OK
    assert _rows(result)["toy_nli"][-1] == "skipped"
    assert _headline(result) == "pytest-jallm: gate passed — 2/3 benchmarks passed (2 no baseline, 1 skipped)"
    row = next(b for b in _doc(toy.path)["benchmarks"] if b["name"] == "toy_nli")
    assert row["verdict"] == "skipped" and row["reason"] == "no judge configured here" and row["outcome"] == "skipped"


def test_benchmarks_a_stopped_session_never_ran_are_rows_too(toy: pytest.Pytester) -> None:
    _break_data(toy.path, "toy_he")  # collected first: -x stops the session there
    result = toy.runpytest(*base_args(write_script(toy.path), "-x", *REPORTS))
    result.assert_outcomes(failed=1)
    rows = _rows(result)
    assert rows["toy_he"][-1] == "error" and rows["toy_mc"][-2:] == ["not", "run"] and rows["toy_nli"][-2:] == ["not", "run"]
    assert _headline(result) == "pytest-jallm: gate failed — 0/3 benchmarks passed (2 not run, 1 error)"
    assert {b["name"]: b["verdict"] for b in _doc(toy.path)["benchmarks"]} == {
        "toy_he": "error", "toy_mc": "not run", "toy_nli": "not run"}


@pytest.mark.slow
def test_benchmarks_an_xdist_run_never_ran_are_rows_too(toy: pytest.Pytester) -> None:
    # The controller collects nothing: it learns the selected benchmarks from its workers' workeroutput.
    _break_data(toy.path, "toy_he")  # collected first: -x stops the session there
    result = toy.runpytest_subprocess(*base_args(write_script(toy.path), "-n", "1", "-x", *REPORTS))
    assert result.ret == pytest.ExitCode.INTERRUPTED  # xdist's -x: its workers are stopped
    assert _headline(result) == "pytest-jallm: gate failed — 0/3 benchmarks passed (2 not run, 1 error)"
    assert {b["name"]: b["verdict"] for b in _doc(toy.path)["benchmarks"]} == {
        "toy_he": "error", "toy_mc": "not run", "toy_nli": "not run"}

def test_failed_per_example_tests_fail_the_headline_as_they_fail_the_run(toy: pytest.Pytester) -> None:
    # No thresholds: every benchmark test passes (no baseline); one per-example test fails, so pytest exits 1.
    result = toy.runpytest(*base_args(write_script(toy.path, wrong={"toy_mc": 1}), "--jallm-items", *REPORTS))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _headline(result) == ("pytest-jallm: gate failed — 3/3 benchmarks passed (3 no baseline); also failed: "
                                 "1 other test(s) (per-example, variants or not pytest-jallm's): "
                                 "benchmarks/toy_mc.yaml::toy_mc[toy_mc-0]")
    assert _doc(toy.path)["other_failures"]["failed_tests"] == ["benchmarks/toy_mc.yaml::toy_mc[toy_mc-0]"]
    assert "**❌ gate failed** — 3/3 benchmarks passed (3 no baseline); also failed: 1 other test(s)" in \
        (toy.path / "r.md").read_text(encoding="utf-8")


def test_per_example_tests_of_a_benchmark_without_data_do_not_interrupt_collection(toy: pytest.Pytester) -> None:
    _break_data(toy.path, "toy_nli")
    result = toy.runpytest(*base_args(write_script(toy.path), "--jallm-items"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # not INTERRUPTED: everything else ran
    result.assert_outcomes(passed=2 + BENCHMARKS["toy_mc"][1] + BENCHMARKS["toy_he"][1], failed=1)
    assert _rows(result)["toy_nli"][-1] == "error"


def test_shards_with_an_erroring_benchmark_merge_into_the_unsharded_run(toy: pytest.Pytester) -> None:
    _break_data(toy.path, "toy_nli")
    script = write_script(toy.path)
    whole = toy.runpytest(*base_args(script, "--jallm-results-json", "whole.json"))
    assert whole.ret == pytest.ExitCode.TESTS_FAILED
    for i in (1, 2, 3):
        toy.runpytest(*base_args(script, "--jallm-shard", f"{i}/3", "--jallm-results-json", f"shard{i}.json"))
    files = [str(toy.path / f"shard{i}.json") for i in (1, 2, 3)]
    merged = toy.path / "merged.json"
    # Before, merge refused these files: the errored benchmark had "no results" in any shard.
    assert cli(["merge", *files, "-o", str(merged), "--markdown", str(toy.path / "merged.md")]) == 1
    assert comparable(_doc(toy.path, "merged.json")) == comparable(_doc(toy.path, "whole.json"))
    assert "**❌ gate failed** — 2/3 benchmarks passed (2 no baseline, 1 error)" in \
        (toy.path / "merged.md").read_text(encoding="utf-8")



def _break_spec(root: Path, name: str) -> None:
    """A hand-edited spec with a misspelt required key: pytest cannot collect the file."""
    spec = root / "benchmarks" / f"{name}.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("category:", "categry:"), encoding="utf-8")


BROKEN_SPEC = "benchmarks/toy_nli.yaml: key 'category': required key is missing"


def test_a_spec_that_cannot_be_collected_fails_every_headline(toy: pytest.Pytester) -> None:
    _break_spec(toy.path, "toy_nli")
    result = toy.runpytest(*base_args(write_script(toy.path), *REPORTS))
    assert result.ret == pytest.ExitCode.INTERRUPTED  # pytest's rule: nothing runs after a collection error
    assert _headline(result).startswith("pytest-jallm: gate failed — 0/2 benchmarks passed (2 not run); also failed: "
                                        f"1 file(s) not collected: {BROKEN_SPEC}")
    assert "1 error(s) during collection; --continue-on-collection-errors runs the rest" in result.stdout.str()
    assert _doc(toy.path)["other_failures"]["collection_errors"][0].startswith(BROKEN_SPEC)


def test_continue_on_collection_errors_runs_the_rest_and_still_fails_the_reports(toy: pytest.Pytester) -> None:
    # Before, the other benchmarks passed and every report said "gate passed" while pytest exited 1.
    _break_spec(toy.path, "toy_nli")
    result = toy.runpytest(*base_args(write_script(toy.path), "--continue-on-collection-errors", *REPORTS))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    assert _headline(result).startswith("pytest-jallm: gate failed — 2/2 benchmarks passed (2 no baseline); also "
                                        f"failed: 1 file(s) not collected: {BROKEN_SPEC}")
    assert "**❌ gate failed** — 2/2 benchmarks passed" in (toy.path / "r.md").read_text(encoding="utf-8")
    assert "gate failed" in (toy.path / "r.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_a_collection_error_reaches_the_reports_from_xdist_workers(toy: pytest.Pytester) -> None:
    _break_spec(toy.path, "toy_nli")
    result = toy.runpytest_subprocess(*base_args(write_script(toy.path), "-n", "2", "--continue-on-collection-errors",
                                                 "--jallm-results-json", "r.json"))
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert _headline(result).startswith("pytest-jallm: gate failed — 2/2 benchmarks passed")
    assert [e.split(" (and")[0] for e in _doc(toy.path)["other_failures"]["collection_errors"]] == [BROKEN_SPEC]


def test_a_collection_error_is_said_in_one_line_naming_the_exception() -> None:
    traceback = ("/venv/_pytest/python.py:528: in importtestmodule\n    mod = import_path(\n"
                 "E     File \"/w/benchmarks/test_bad.py\", line 1\nE       def test_x(:\nE                  ^\n"
                 "E   SyntaxError: invalid syntax")
    assert collection_error_reason(traceback, "benchmarks/test_bad.py") == "SyntaxError: invalid syntax"
    spec = "/home/u/suite/benchmarks/jnli.yaml: key 'metrics.0': unknown metric 'acc'\nsecond line"
    assert collection_error_reason(spec, "benchmarks/jnli.yaml") == "key 'metrics.0': unknown metric 'acc'"
    assert collection_error_reason("other.yaml: broken", "benchmarks/jnli.yaml") == "other.yaml: broken"


def test_shards_report_a_collection_error_once() -> None:
    shard = OtherFailures(collection_errors=["benchmarks/x.yaml: key 'category': required key is missing"])
    merged = OtherFailures.merged([shard, shard, OtherFailures()])
    assert merged.collection_errors == shard.collection_errors
    assert merged.lines() == ["1 file(s) not collected: benchmarks/x.yaml: key 'category': required key is missing"]


# --- the renderings, from records ---------------------------------------------------------


def _row(name: str, cat: str, score: float) -> BenchmarkRecord:
    return BenchmarkRecord(name=name, category=cat, metric="exact_match", n=10, score=score)


def test_averages_say_what_has_no_score_instead_of_leaving_it_out_silently() -> None:
    error = unscored_record("jsquad", "RC", "char_f1", Verdict.ERROR, "jsquad: fewshot.source: mirror not found\nmore",
                            error_kind="data")
    rows = [_row("jnli", "NLI", 60), _row("jcqa", "MC", 80), error]
    av = averages(rows)
    assert av.avg == pytest.approx(70) and av.unscored == ["jsquad"] and "RC" not in av.categories
    note = average_note(av, rows)
    # RC is not "not run": it ran and has no score.
    assert "not run, not counted as 0: QA, EL" in note and "RC," not in note.split("Not the whole run")[0]
    assert "Not the whole run: 1 selected benchmark(s) have no score (1 error)" in note and "(categories affected: RC)" in note
    assert error.reason == "jsquad: fewshot.source: mirror not found"  # one line
    table = [line.split() for line in render_terminal(rows).splitlines()]
    assert ["jsquad", "RC", "char_f1", "-", "-", "-", "-", "-", "-", "error"] in table
    assert ["jsquad", "error", "data", "jsquad:", "fewshot.source:", "mirror", "not", "found"] in table
    assert "**❌ gate failed** — 2/3 benchmarks passed (2 pass, 1 error)" in render_markdown(rows)


def test_a_reason_is_one_bounded_printable_line() -> None:
    record = unscored_record("x", "QA", "char_f1", Verdict.ERROR, "\n  first | line \x1b[31m" + "あ" * 1000 + "\nsecond")
    assert "\n" not in record.reason and "second" not in record.reason and len(record.reason) < 300
    assert "\x1b" not in record.reason
    md = render_markdown([record])
    assert "first \\| line" in md  # a table cell in Markdown, not a broken table


def test_the_result_hook_hears_of_every_benchmark_also_one_with_no_score(toy: pytest.Pytester) -> None:
    toy.makeconftest("""
        import json

        def pytest_jallm_result(result, config):
            with open("heard.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps([result.name, str(result.verdict), result.score, result.reason]) + "\\n")
    """)
    _break_data(toy.path, "toy_nli")
    toy.runpytest(*base_args(write_script(toy.path))).assert_outcomes(passed=2, failed=1)
    heard = {row[0]: row[1:] for row in map(json.loads, (toy.path / "heard.jsonl").read_text(encoding="utf-8").splitlines())}
    assert set(heard) == set(BENCHMARKS)
    verdict, score, reason = heard["toy_nli"]
    assert (verdict, score) == ("error", None) and "data/missing.jsonl" in reason
