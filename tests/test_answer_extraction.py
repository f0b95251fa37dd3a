"""How a model's output becomes the answer the metrics see (the spec's `answer_extraction`)."""

from __future__ import annotations

import json

import pytest

from pytest_jallm.metrics import METRICS, MetricResult, register_metric

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"
SEEN: list[str] = []

if "test_record_raw" not in METRICS:

    @register_metric("test_record_raw", per_item=True, binary=True)
    def _record_raw(preds, golds, contexts):
        SEEN.extend(preds)
        return MetricResult(1.0, [1.0] * len(preds))


SPEC = """\
name: raw_if
category: QA
source: {{path: data/raw_if.jsonl}}
fields: {{id: key, answer: key, prompt: prompt}}
prompt_template: plain
instruction: ""
input: "{{prompt}}"
answer_extraction: {extraction}
max_new_tokens: 64
metrics: [test_record_raw]
"""

OUTPUT = "  ＡＢＣ です。\n\n2段落目\n"


def _suite(pytester: pytest.Pytester, extraction: str) -> None:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "raw_if.yaml").write_text(SPEC.format(extraction=extraction), encoding="utf-8")
    (bench / "data" / "raw_if.jsonl").write_text(json.dumps({"key": "k1", "prompt": "300字以上で書いてください。"},
                                                            ensure_ascii=False) + "\n", encoding="utf-8")
    rules = [{"contains": "300字以上", "output": OUTPUT}]
    (pytester.path / "script.json").write_text(json.dumps({"rules": rules}, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize(("extraction", "seen"), [("raw", OUTPUT), ("first-paragraph", "ABC です。")])
def test_raw_extraction_hands_the_whole_output_to_the_metric(pytester: pytest.Pytester, extraction: str, seen: str) -> None:
    _suite(pytester, extraction)
    SEEN.clear()
    log = pytester.path / "requests.jsonl"
    pytester._monkeypatch.setenv("JALLM_SCRIPTED_REQUESTS", str(log))
    result = pytester.runpytest("benchmarks", "--model", str(pytester.path / "script.json"), "--jallm-backend", SCRIPTED,
                                "--jallm-no-cache", "--jallm-chat")
    result.assert_outcomes(passed=1)
    assert SEEN == [seen]
    request = json.loads(log.read_text(encoding="utf-8").splitlines()[0])
    # The plain template sends the dataset's prompt as it is: no preamble, no headers, no instruction.
    assert request["prompt"] == "300字以上で書いてください。"
    assert request["messages"] == [{"role": "user", "content": "300字以上で書いてください。"}]


def test_raw_extraction_refuses_an_answer_pattern(pytester: pytest.Pytester) -> None:
    _suite(pytester, "raw")
    spec = pytester.path / "benchmarks" / "raw_if.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "answer_pattern: '(.*)'\n", encoding="utf-8")
    result = pytester.runpytest("benchmarks", "--model", str(pytester.path / "script.json"), "--jallm-backend", SCRIPTED,
                                "--jallm-no-cache")
    result.stdout.fnmatch_lines(["*raw_if.yaml*answer_pattern*"])
    assert result.ret != 0
