"""--jallm-strip-think: a reasoning model's leading <think>…</think> block is removed before
answer extraction. It is scoring, not generation: the cache is reused, and the recorded
scoring provenance (results and baseline) says it was on."""

from __future__ import annotations

import json

import pytest

from pytest_jallm.answers import strip_think
from pytest_jallm.baseline import read_baseline

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"

SPEC = """\
name: think_mc
category: MC
source: {path: data/think_mc.jsonl}
fields: {id: qid, answer: label, choices: [c0, c1], question: question}
instruction: 正しい選択肢の番号で答えてください。
input: "質問：{question}\\n選択肢：{choices}"
labels: ["0", "1"]
max_new_tokens: 64
metrics: [exact_match]
"""

OUTPUTS = [
    "<think>\n問題を読む。\n\n答えは1ではない。\n</think>\n\n0",  # closed block, right answer after it
    "<think>いぬかな</think>0",
    "0",  # no block: unchanged
    "<think>考えているうちに時間切れ\n\n0",  # unclosed: no answer at all
]


def test_strip_think_unit() -> None:
    assert strip_think("<think>a\n\nb</think>\n\n答え") == "答え"
    assert strip_think("  \n<think>x</think>y") == "y"
    assert strip_think("<think>never closed\n\n1") == ""
    assert strip_think("1 <think>not leading</think>") == "1 <think>not leading</think>"
    assert strip_think("答え") == "答え"
    assert strip_think("<think>a</think>b<think>c</think>d") == "b<think>c</think>d"  # only the leading block


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "think_mc.yaml").write_text(SPEC, encoding="utf-8")
    rows = [{"qid": f"t{i}", "question": f"問題{i}番", "c0": "いぬ", "c1": "ねこ", "label": 0} for i in range(len(OUTPUTS))]
    (bench / "data" / "think_mc.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    rules = [{"contains": f"問題{i}番", "output": out} for i, out in enumerate(OUTPUTS)]
    (pytester.path / "script.json").write_text(json.dumps({"rules": rules}, ensure_ascii=False), encoding="utf-8")
    return pytester


def _run(pytester: pytest.Pytester, *extra: str):
    return pytester.runpytest("benchmarks", "--model", str(pytester.path / "script.json"), "--jallm-backend", SCRIPTED,
                              "--jallm-cache", "gen.sqlite", "--jallm-results-json", "results.json", *extra)


def _bench(pytester: pytest.Pytester) -> dict:
    return json.loads((pytester.path / "results.json").read_text(encoding="utf-8"))["benchmarks"][0]


def test_strip_think_changes_the_score_not_the_generations(suite: pytest.Pytester) -> None:
    _run(suite).assert_outcomes(passed=1)
    plain = _bench(suite)
    assert plain["score"] == 25.0  # only the bare "0"
    assert plain["extra"]["produced_by"]["scoring"] == {"strip_think": False}

    again = _run(suite, "--jallm-strip-think", "--jallm-update-baseline", "--jallm-baseline", "think")
    again.assert_outcomes(passed=1)
    stripped = _bench(suite)
    assert stripped["score"] == 75.0  # the unclosed block has no answer
    assert stripped["run"]["generated"] == 0 and stripped["run"]["cache_hits"] == len(OUTPUTS)
    assert stripped["extra"]["produced_by"]["scoring"] == {"strip_think": True}
    assert stripped["extra"]["produced_by"]["prompt_hash"] == plain["extra"]["produced_by"]["prompt_hash"]
    baseline = read_baseline(suite.path / "thresholds" / "think" / "think_mc.baseline.jsonl")
    assert baseline is not None and baseline.produced_by["scoring"] == {"strip_think": True}


def test_a_baseline_scored_otherwise_is_stale_not_compared(suite: pytest.Pytester) -> None:
    _run(suite, "--jallm-update-baseline", "--jallm-baseline", "think").assert_outcomes(passed=1)
    result = _run(suite, "--jallm-strip-think", "--jallm-baseline", "think")
    result.assert_outcomes(passed=1)  # said once at the end of the run, not as a pytest warning
    result.stdout.fnmatch_lines(["pytest-jallm: WARNING: 1 baseline(s) not compared: think_mc: baseline is stale*answer "
                                 "scoring changed*"])
