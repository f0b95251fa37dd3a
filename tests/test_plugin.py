"""The plugin end to end, through pytest's own `pytester`, with a scripted backend."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"

TOY_MC = """\
name: toy_mc
category: MC
source: {path: data/toy_mc.jsonl}
fields: {id: qid, answer: label, choices: [c0, c1, c2], question: question}
instruction: 正しい選択肢の番号で答えてください。
input: "質問：{question}\\n選択肢：{choices}"
labels: ["0", "1", "2"]
max_new_tokens: 2
metrics: [exact_match]
"""

TOY_NLI = """\
name: toy_nli
category: NLI
source: {path: data/toy_nli.jsonl}
fields: {id: pid, answer: label, premise: s1, hypothesis: s2}
instruction: 関係を答えてください。
input: "前提：{premise}\\n仮説：{hypothesis}"
labels: [entailment, contradiction, neutral]
max_new_tokens: 3
metrics: [exact_match]
"""

N_MC = 10
N_NLI = 6


def _write_suite(pytester: pytest.Pytester) -> None:
    bench = pytester.mkdir("benchmarks")
    data = bench / "data"
    data.mkdir()
    (bench / "toy_mc.yaml").write_text(TOY_MC, encoding="utf-8")
    (bench / "toy_nli.yaml").write_text(TOY_NLI, encoding="utf-8")
    mc_rows = [
        {"qid": f"m{i}", "question": f"問題{i}番", "c0": "いぬ", "c1": "ねこ", "c2": "とり", "label": i % 3}
        for i in range(N_MC)
    ]
    nli_labels = ["entailment", "contradiction", "neutral"]
    nli_rows = [
        {"pid": f"n{i}", "s1": f"前提{i}です。", "s2": f"仮説{i}です。", "label": nli_labels[i % 3]}
        for i in range(N_NLI)
    ]
    with open(data / "toy_mc.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in mc_rows)
    with open(data / "toy_nli.jsonl", "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in nli_rows)


def _script(pytester: pytest.Pytester, mc_wrong: int = 0, nli_wrong: int = 0, ooc: int = 0, name="script.json") -> str:
    """Answers all items right except the first `*_wrong` of each; the first `ooc` MC answers are off-label."""
    rules = []
    for i in range(N_MC):
        right = str(i % 3)
        out = str((i + 1) % 3) if i < mc_wrong else right
        if i < ooc:
            out = "わかりません"
        rules.append({"contains": f"問題{i}番", "output": out})
    labels = ["entailment", "contradiction", "neutral"]
    for i in range(N_NLI):
        out = labels[(i + 1) % 3] if i < nli_wrong else labels[i % 3]
        rules.append({"contains": f"前提{i}です。", "output": out})
    path = pytester.path / name
    path.write_text(json.dumps({"rules": rules, "default": ""}, ensure_ascii=False), encoding="utf-8")
    return str(path)


def _thresholds(pytester: pytest.Pytester, name: str, data: dict) -> None:
    d = pytester.path / "thresholds"
    d.mkdir(exist_ok=True)
    (d / f"{name}.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")


def _run(pytester: pytest.Pytester, script: str, *args: str) -> pytest.RunResult:
    return pytester.runpytest("benchmarks", "--jallm-backend", SCRIPTED, "--model", script, "--jallm-no-cache", *args)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    _write_suite(pytester)
    return pytester


def test_collects_one_test_per_benchmark(suite: pytest.Pytester) -> None:
    result = suite.runpytest("benchmarks", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["benchmarks/toy_mc.yaml::toy_mc", "benchmarks/toy_nli.yaml::toy_nli", "2 tests collected*"])


def test_per_item_mode_collects_every_example(suite: pytest.Pytester) -> None:
    result = suite.runpytest("benchmarks", "--collect-only", "-q", "--jallm-items")
    result.stdout.fnmatch_lines(["benchmarks/toy_mc.yaml::toy_mc[[]m0[]]", f"{2 + N_MC + N_NLI} tests collected*"])


def test_category_markers_and_keyword_select(suite: pytest.Pytester) -> None:
    by_marker = suite.runpytest("benchmarks", "--collect-only", "-q", "-m", "nli")
    by_marker.stdout.fnmatch_lines(["benchmarks/toy_nli.yaml::toy_nli", "1/2 tests collected (1 deselected)*"])
    by_keyword = suite.runpytest("benchmarks", "--collect-only", "-q", "-k", "toy_mc")
    by_keyword.stdout.fnmatch_lines(["benchmarks/toy_mc.yaml::toy_mc", "1/2 tests collected (1 deselected)*"])


def test_all_prompts_generated_in_one_backend_call(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    log = suite.path / "calls.jsonl"
    monkeypatch.setenv("JALLM_SCRIPTED_LOG", str(log))
    result = _run(suite, _script(suite), "--jallm-items")
    result.assert_outcomes(passed=2 + N_MC + N_NLI)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    assert calls == [{"prompts": N_MC + N_NLI}]


def test_summary_table_has_rows_categories_and_avg(suite: pytest.Pytester) -> None:
    result = _run(suite, _script(suite, mc_wrong=2, nli_wrong=3))
    result.assert_outcomes(passed=2)
    out = result.stdout.str()
    assert "pytest-jallm:" in out
    mc_line = next(line for line in out.splitlines() if line.startswith("toy_mc "))
    nli_line = next(line for line in out.splitlines() if line.startswith("toy_nli "))
    assert "80.00" in mc_line and "MC" in mc_line
    assert "50.00" in nli_line and "NLI" in nli_line
    # AVG is the mean of the category means: (80 + 50) / 2.
    result.stdout.fnmatch_lines(["*AVG*NLI*MC*", "*65.00*50.00*80.00*"])
    assert "AVG over 2 of 11 leaderboard categories" in out
    assert "not counted as 0" in out


def test_min_score_threshold_fails_with_message(suite: pytest.Pytester) -> None:
    _thresholds(suite, "script", {"benchmarks": {"toy_mc": {"min_score": 90}}})
    result = _run(suite, _script(suite, mc_wrong=3))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["toy_mc (MC, exact_match, n=10):", "  - score 70.00 is below min_score 90.00"])


def test_ooc_rate_is_reported_and_gated(suite: pytest.Pytester) -> None:
    _thresholds(suite, "script", {"benchmarks": {"toy_mc": {"max_ooc_rate": 10}}})
    result = _run(suite, _script(suite, ooc=3))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*out-of-choice rate 30.00% exceeds max_ooc_rate 10.00%*"])
    mc_row = next(line for line in result.stdout.lines if line.split()[:3] == ["toy_mc", "MC", "exact_match"])
    assert mc_row.split()[5] == "30.00"  # the OoC % column


def test_item_failure_shows_prompt_expected_and_output(suite: pytest.Pytester) -> None:
    result = _run(suite, _script(suite, mc_wrong=1), "--jallm-items", "-k", "toy_mc")
    result.assert_outcomes(passed=N_MC, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*toy_mc[[]m0[]] exact_match=0.000*",
            "--- prompt ---",
            "*質問：問題0番*",
            "--- expected ---",
            "0",
            "--- model output ---",
            "1",
        ]
    )


def test_update_baseline_then_regression_lists_flipped_items(suite: pytest.Pytester) -> None:
    good = _script(suite, name="model.json")
    accepted = _run(suite, good, "--jallm-update-baseline")
    accepted.assert_outcomes(passed=2)
    assert not (suite.path / "thresholds" / "model.yaml").exists()  # the hand-written file is never created
    lines = (suite.path / "thresholds" / "model" / "toy_mc.baseline.jsonl").read_text(encoding="utf-8").splitlines()
    header, provenance, items = json.loads(lines[0]), json.loads(lines[1]), [json.loads(x) for x in lines[2:]]
    assert header["score"] == 100.0 and header["n"] == N_MC and header["metric"] == "exact_match"
    assert items == [{"id": f"m{i}", "score": 1.0, "pred": str(i % 3)} for i in range(N_MC)]  # one item per line
    for key in ("model", "model_revision", "backend", "backend_version", "prompt_hash", "data_fingerprint", "sampling"):
        assert key in provenance["produced_by"], key

    # Same file name, worse answers: 6 of 10 MC items flip.
    _script(suite, mc_wrong=6, name="model.json")
    regressed = _run(suite, good)
    regressed.assert_outcomes(passed=1, failed=1)
    regressed.stdout.fnmatch_lines(["*regression vs baseline: 100.00 -> 40.00*mcnemar-exact*6 flipped worse: m0, m1, m2, m3, m4, m5*"])
    assert any(line.startswith("toy_mc") and "regressed" in line for line in regressed.stdout.lines)


def test_small_drop_within_tolerance_passes(suite: pytest.Pytester) -> None:
    good = _script(suite, name="model.json")
    _run(suite, good, "--jallm-update-baseline").assert_outcomes(passed=2)
    # One flip out of ten is a 10-point drop but not significant (p = 0.5).
    _script(suite, mc_wrong=1, name="model.json")
    result = _run(suite, good)
    result.assert_outcomes(passed=2)


def test_stale_baseline_is_reported_not_compared(suite: pytest.Pytester) -> None:
    script = _script(suite, name="model.json")
    _run(suite, script, "--jallm-update-baseline").assert_outcomes(passed=2)
    spec = suite.path / "benchmarks" / "toy_mc.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace("正しい選択肢", "最も適切な選択肢"), encoding="utf-8")
    _script(suite, mc_wrong=6, name="model.json")
    result = _run(suite, script)
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*toy_mc: baseline is stale, not compared: prompt template changed*"])
    assert any(line.startswith("toy_mc") and "stale" in line for line in result.stdout.lines)


def test_junit_xml_carries_scores(suite: pytest.Pytester) -> None:
    result = _run(suite, _script(suite, mc_wrong=2), "--junitxml", "out.xml")
    result.assert_outcomes(passed=2)
    root = ET.parse(suite.path / "out.xml").getroot()
    props = {
        (tc.get("name"), p.get("name")): p.get("value")
        for tc in root.iter("testcase")
        for p in tc.iter("property")
    }
    assert props[("toy_mc", "jallm_score")] == "80.0000"
    assert props[("toy_nli", "jallm_ooc_rate")] == "0.0000"


def test_missing_model_is_a_usage_error(suite: pytest.Pytester) -> None:
    result = suite.runpytest("benchmarks")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*no model was given: pass --model*"])


def test_backend_failure_errors_every_benchmark_clearly(suite: pytest.Pytester) -> None:
    path = suite.path / "broken.json"
    path.write_text(json.dumps({"rules": [], "default": "0", "fail_after": 3}), encoding="utf-8")
    result = _run(suite, str(path))
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*scripted failure after 3 generations*"])


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda s: s.replace("max_new_tokens: 2", "max_new_tokens: 2\ntemprature: 0"), "*toy_mc.yaml: key 'temprature': unknown key*"),
        (lambda s: s.replace("metrics: [exact_match]", "metrics: [exact_matc]"), "*toy_mc.yaml: key 'metrics.0': unknown metric 'exact_matc'*"),
        (lambda s: s.replace("category: MC", "category: XYZ"), "*toy_mc.yaml: key 'category': *unknown category 'XYZ'*"),
        (lambda s: s.replace("max_new_tokens: 2", "max_new_tokens: two"), "*toy_mc.yaml: key 'max_new_tokens': *integer*"),
        (lambda s: s.replace("{question}", "{questoin}"), "*toy_mc.yaml: key 'input': placeholder {questoin} is not mapped*"),
        (lambda s: s + "  - oops: [\n", "*toy_mc.yaml: key '<yaml>': malformed YAML*"),
    ],
    # A missing local data file is no spec error: its benchmark fails alone when it runs
    # (tests/test_every_benchmark_reported.py).
    ids=["unknown-key", "unknown-metric", "bad-category", "wrong-type", "unmapped-placeholder", "bad-yaml"],
)
def test_bad_spec_fails_collection_naming_file_and_key(suite: pytest.Pytester, edit, expected: str) -> None:
    spec = suite.path / "benchmarks" / "toy_mc.yaml"
    spec.write_text(edit(spec.read_text(encoding="utf-8")), encoding="utf-8")
    result = suite.runpytest("benchmarks", "--collect-only")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting benchmarks/toy_mc.yaml*", expected])


def test_bad_threshold_file_names_key(suite: pytest.Pytester) -> None:
    _thresholds(suite, "script", {"benchmarks": {"toy_mc": {"min_score": 150}}})
    result = _run(suite, _script(suite))
    result.stdout.fnmatch_lines(["*script.yaml: key 'benchmarks.toy_mc.min_score': *less than or equal to 100*"])
    assert result.ret != 0
