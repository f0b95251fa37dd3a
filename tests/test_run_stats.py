"""Per-benchmark wall time, prompt and generation counts in the results JSON, and a cache line
that counts only real cache hits (a prompt repeated within one run is generated once and
reported as a repeat, also with --jallm-no-cache)."""

from __future__ import annotations

import json

import pytest

from pytest_jallm.reporting.results_json import results_json_schema

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"

SPEC = """\
name: {name}
category: MC
source: {{path: data/{name}.jsonl}}
fields: {{id: qid, answer: label, choices: [c0, c1], question: question}}
instruction: 正しい選択肢の番号で答えてください。
input: "質問：{{question}}\\n選択肢：{{choices}}"
labels: ["0", "1"]
max_new_tokens: 2
metrics: [exact_match]
"""

# "同じ問題" gives the same prompt three times: twice in dup_a, once in dup_b.
QUESTIONS = {"dup_a": ["同じ問題", "同じ問題", "別の問題1"], "dup_b": ["同じ問題", "別の問題2"]}


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    for name, questions in QUESTIONS.items():
        (bench / f"{name}.yaml").write_text(SPEC.format(name=name), encoding="utf-8")
        rows = [{"qid": f"{name}-{i}", "question": q, "c0": "いぬ", "c1": "ねこ", "label": 0} for i, q in enumerate(questions)]
        (bench / "data" / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                      encoding="utf-8")
    (pytester.path / "script.json").write_text(json.dumps({"rules": [], "default": "0"}), encoding="utf-8")
    return pytester


def _run(pytester: pytest.Pytester, *extra: str):
    return pytester.runpytest("benchmarks", "--model", str(pytester.path / "script.json"), "--jallm-backend", SCRIPTED,
                              "--jallm-results-json", "results.json", *extra)


def _run_stats(pytester: pytest.Pytester) -> dict[str, dict]:
    doc = json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))
    return {b["name"]: b["run"] for b in doc["benchmarks"]}


def test_repeated_prompts_are_not_counted_as_cache_hits(suite: pytest.Pytester) -> None:
    result = _run(suite, "--jallm-no-cache")
    result.assert_outcomes(passed=2)
    line = "pytest-jallm: 5 prompts, 3 generated, 0 from the generation cache, 2 repeated in this run (generated once) (*"
    result.stdout.fnmatch_lines([line])
    stats = _run_stats(suite)
    assert {name: {k: s[k] for k in ("prompts", "generated", "cache_hits", "repeated")} for name, s in stats.items()} == {
        "dup_a": {"prompts": 3, "generated": 2, "cache_hits": 0, "repeated": 1},
        "dup_b": {"prompts": 2, "generated": 1, "cache_hits": 0, "repeated": 1},
    }
    for s in stats.values():
        seconds = s["seconds"]
        assert set(seconds) == {"prepare", "generate", "score", "total"}
        assert all(v >= 0 for v in seconds.values())
        assert seconds["total"] == pytest.approx(seconds["prepare"] + seconds["generate"] + seconds["score"])
        assert s["generation_shared_by"] == ["dup_a", "dup_b"]


def test_second_run_counts_real_cache_hits(suite: pytest.Pytester) -> None:
    _run(suite, "--jallm-cache", "gen.sqlite").assert_outcomes(passed=2)
    again = _run(suite, "--jallm-cache", "gen.sqlite")
    again.assert_outcomes(passed=2)
    again.stdout.fnmatch_lines(["pytest-jallm: 5 prompts, 0 generated, 5 from the generation cache (*"])
    stats = _run_stats(suite)
    assert stats["dup_a"]["cache_hits"] == 3 and stats["dup_a"]["generated"] == 0 and stats["dup_a"]["repeated"] == 0
    assert stats["dup_b"]["cache_hits"] == 2


def test_results_schema_describes_the_run_counts() -> None:
    schema = results_json_schema()
    defs = schema["$defs"]
    run = defs["BenchmarkRecord"]["properties"]["run"]
    ref = next(x["$ref"] for x in run["anyOf"] if "$ref" in x).split("/")[-1]
    assert {"prompts", "generated", "cache_hits", "repeated", "seconds", "generation_shared_by"} <= set(defs[ref]["properties"])
