"""How a model's output becomes the answer the metrics see: the template's pipeline (remove reasoning ->
extract by preset or pattern -> normalise), the spec's `answer_extraction`, run modes, out of format."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_jallm.answers import PRESETS, Extraction, Reasoning, strip_reasoning
from pytest_jallm.metrics import METRICS, MetricResult, register_metric
from pytest_jallm.spec import SpecError
from pytest_jallm.specfile import parse_spec

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"
SEEN: list[str] = []

if "test_record_raw" not in METRICS:

    @register_metric("test_record_raw", per_item=True, binary=True)
    def _record_raw(preds, golds, contexts):
        SEEN.extend(preds)
        return MetricResult(1.0, [1.0] * len(preds))


# --- the presets, on outputs real models write ------------------------------------------------


@pytest.mark.parametrize(("preset", "output", "answer"), [
    # llm-jp-eval's own examples for its presets
    ("answer_tags", "説明文です。<answer>A</answer>追加情報", "A"),
    ("choice_only", "A\n追加情報", "A"),
    ("choice_only", "\n\n  B  \n", "B"),
    ("answer_tags", "考察…\n<answer>\n東京都\n</answer>", "東京都"),
    ("answer_tags", "<answer>１</answer> and later <answer>2</answer>", "1"),  # the first, NFKC
    ("json_output", '説明です。\n```json\n{"answer": "ねこ", "reason": "…"}\n```', "ねこ"),
    ("json_output", 'Sure! {"answer": 3} is my answer', "3"),
    ("json_output", '{"answer": ["a", "c"]}', "a\nc"),
    ("code_output", "Here:\n```python\ndef f(x):\n    return x\n```\ndone", "def f(x):\n    return x"),
    ("code_output", "```\nprint(1)\n```", "print(1)"),
    ("latex_boxed", "so $x = \\boxed{\\frac{1}{2}}$ and finally \\boxed{42}.", "42"),
    ("latex_boxed", "\\boxed{\\frac{a}{b}}", "\\frac{a}{b}"),
    ("first_paragraph", "  ＡＢＣ です。\n\n2段落目", "ABC です。"),
])
def test_preset_extracts_the_answer(preset: str, output: str, answer: str) -> None:
    got = Extraction(preset=preset).apply(output)
    assert got.in_format and got.text == answer


@pytest.mark.parametrize(("preset", "output"), [
    ("answer_tags", "答えはAです"),
    ("answer_tags", "<answer></answer>"),
    ("answer_tags", "<answer>A"),  # never closed
    ("json_output", '```json\n{"answer": "a",}\n```'),  # not JSON
    ("json_output", '{"result": "a"}'),  # no answer key
    ("json_output", "[1, 2]"),
    ("code_output", "def f(): pass"),
    ("latex_boxed", "\\boxed{unclosed"),
    ("choice_only", "   \n \n"),
    ("first_paragraph", ""),
    ("raw", "  \n"),
])
def test_no_answer_is_out_of_format_not_a_guess(preset: str, output: str) -> None:
    got = Extraction(preset=preset).apply(output)
    assert not got.in_format and got.text == ""


def test_raw_keeps_the_response_as_written() -> None:
    text = "  ＡＢＣ\n\n* 箇条書き\n"
    assert Extraction(preset="raw", normalize=False).apply(text).text == text


def test_presets_survive_hostile_output() -> None:
    junk = ("{" * 20000) + ("<answer>" * 2000) + ("\\boxed{" * 5000) + ("```" * 3000) + "\ud800"
    for preset in PRESETS:
        if preset == "custom":
            continue
        got = Extraction(preset=preset).apply(junk)
        assert isinstance(got.text, str)
    # A custom pattern's catastrophic backtracking is bounded (AnswerPatternTimeout): tests/reliability/test_hangs.py.


def test_extraction_refuses_a_pattern_it_would_ignore() -> None:
    with pytest.raises(ValueError, match="custom"):
        Extraction(preset="answer_tags", pattern="(x)")
    with pytest.raises(ValueError, match="unknown"):
        Extraction(preset="tags")


# --- reasoning --------------------------------------------------------------------------------


@pytest.mark.parametrize(("reasoning", "output", "expected"), [
    (Reasoning(), "<think>\nA か B か。\n</think>\n\nB", ("B", True)),
    (Reasoning(), "  <think>a</think>b<think>c</think>d", ("b<think>c</think>d", True)),
    (Reasoning(), "<think>考え中で時間切れ", ("", False)),
    (Reasoning(), "B", ("B", True)),  # did not think this time
    # The chat template opened <think> in the prompt: only the end marker is in the output.
    (Reasoning(start=""), "B か C か…\n</think>\n\nC", ("C", True)),
    (Reasoning(start=""), "C", ("C", True)),
    # gpt-oss's harmony channels: the final answer follows its marker.
    (Reasoning(start="", end="<|channel|>final<|message|>"),
     "<|channel|>analysis<|message|>思考<|end|><|start|>assistant<|channel|>final<|message|>A", ("A", True)),
])
def test_reasoning_removal(reasoning: Reasoning, output: str, expected: tuple[str, bool]) -> None:
    assert strip_reasoning(output, reasoning) == expected


def test_unclosed_reasoning_is_out_of_format_whatever_follows() -> None:
    got = Extraction(preset="first_paragraph", reasoning=Reasoning()).apply("<think>answer is 1\n\n1")
    assert (got.text, got.in_format) == ("", False)


# --- the spec ---------------------------------------------------------------------------------


BASE = {
    "name": "t", "category": "MC", "source": {"path": "d.jsonl"},
    "fields": {"answer": "label", "choices": ["c0", "c1"], "question": "q"},
    "instruction": "番号で答えてください。", "input": "質問：{question}\n選択肢：{choices}",
    "labels": ["0", "1"], "max_new_tokens": 4, "metrics": ["exact_match"],
}


def _spec(**more):
    return parse_spec({**BASE, **more}, Path("bench/t.yaml"))


def test_answer_extraction_shorthand_and_mapping() -> None:
    assert _spec().extraction() == Extraction()
    assert _spec(answer_extraction="answer_tags").extraction() == Extraction(preset="answer_tags")
    assert _spec(answer_extraction="raw").extraction() == Extraction(preset="raw", normalize=False)
    custom = _spec(answer_extraction={"preset": "custom", "pattern": "答え：(.)"}).extraction()
    assert custom == Extraction(preset="custom", pattern="答え：(.)")
    assert _spec(answer_pattern="(.)").extraction() == Extraction(preset="custom", pattern="(.)")


@pytest.mark.parametrize(("more", "key", "words"), [
    ({"answer_extraction": "tags"}, "answer_extraction", "unknown preset"),
    ({"answer_extraction": {"preset": "custom"}}, "answer_extraction", "needs a 'pattern'"),
    ({"answer_extraction": {"preset": "answer_tags", "pattern": "(a)"}}, "answer_extraction", "takes none"),
    ({"answer_extraction": {"preset": "custom", "pattern": "a"}}, "answer_extraction", "capturing group"),
    ({"answer_pattern": "(a)", "answer_extraction": "answer_tags"}, "<top level>", "give one of them"),
    ({"modes": {"reasoning": {"input": "{nope}"}}}, "modes.reasoning.input", "{nope}"),
    ({"modes": {"reasoning": {"answer_extraction": "choice"}}}, "modes.reasoning.answer_extraction", "unknown preset"),
])
def test_bad_extraction_or_mode_names_the_key(more, key, words) -> None:
    with pytest.raises(SpecError) as e:
        _spec(**more)
    assert f"key '{key}'" in str(e.value) and words in str(e.value)


def test_a_mode_switching_format_asks_for_it_in_the_instruction() -> None:
    spec = _spec(modes={"reasoning": {"answer_extraction": "answer_tags", "max_new_tokens": 2048}})
    reasoning = spec.in_mode("reasoning")
    assert reasoning.instruction == "番号で答えてください。<answer></answer>タグで囲んで回答してください。"
    assert reasoning.max_new_tokens == 2048 and reasoning.extraction().preset == "answer_tags"
    assert spec.in_mode("other") is spec  # a mode the spec does not define changes nothing
    own = _spec(modes={"reasoning": {"instruction": "考えてから<answer>に番号を。", "answer_extraction": "answer_tags"}})
    assert own.in_mode("reasoning").instruction == "考えてから<answer>に番号を。"


# --- through a pytest run -------------------------------------------------------------------

RAW_SPEC = """\
name: raw_if
category: IF
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


def _raw_suite(pytester: pytest.Pytester, extraction: str) -> None:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "raw_if.yaml").write_text(RAW_SPEC.format(extraction=extraction), encoding="utf-8")
    (bench / "data" / "raw_if.jsonl").write_text(json.dumps({"key": "k1", "prompt": "300字以上で書いてください。"},
                                                            ensure_ascii=False) + "\n", encoding="utf-8")
    rules = [{"contains": "300字以上", "output": OUTPUT}]
    (pytester.path / "script.json").write_text(json.dumps({"rules": rules}, ensure_ascii=False), encoding="utf-8")


@pytest.mark.parametrize(("extraction", "seen"), [("raw", OUTPUT), ("first_paragraph", "ABC です。")])
def test_raw_extraction_hands_the_whole_output_to_the_metric(pytester: pytest.Pytester, extraction: str, seen: str) -> None:
    _raw_suite(pytester, extraction)
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


MC_SPEC = """\
name: think_mc
category: MC
source: {path: data/think_mc.jsonl}
fields: {id: qid, answer: label, choices: [c0, c1], question: question}
fewshot: {count: 1, source: {path: data/shots.jsonl}}
instruction: 正しい選択肢の番号で答えてください。
input: "質問：{question}\\n選択肢：{choices}"
labels: ["0", "1"]
max_new_tokens: 4
metrics: [exact_match]
modes:
  reasoning:
    answer_extraction: answer_tags
    max_new_tokens: 1024
"""

# Item 0..3 answered as a reasoning model would; gold is always 0.
REASONING_OUTPUTS = [
    "<think>\nいぬだ。\n</think>\n<answer>0</answer>",  # right
    "<think>ねこかな</think>\n答えは0です",  # right answer, wrong format: out of format
    "<think>考えているうちに時間切れ",  # never finished: out of format
    "<think>x</think><answer>1</answer>",  # in format, wrong
]


@pytest.fixture
def reasoning_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "think_mc.yaml").write_text(MC_SPEC, encoding="utf-8")
    rows = [{"qid": f"t{i}", "question": f"問題{i}番", "c0": "いぬ", "c1": "ねこ", "label": 0} for i in range(4)]
    (bench / "data" / "think_mc.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                   encoding="utf-8")
    shot = {"qid": "s0", "question": "見本の問題", "c0": "いぬ", "c1": "ねこ", "label": 0}
    (bench / "data" / "shots.jsonl").write_text(json.dumps(shot, ensure_ascii=False) + "\n", encoding="utf-8")
    rules = [{"contains": f"問題{i}番", "output": out} for i, out in enumerate(REASONING_OUTPUTS)]
    (pytester.path / "script.json").write_text(json.dumps({"rules": rules}, ensure_ascii=False), encoding="utf-8")
    return pytester


def test_reasoning_mode_runs_chat_zero_shot_with_the_modes_prompt_and_counts_out_of_format(
    reasoning_suite: pytest.Pytester,
) -> None:
    log = reasoning_suite.path / "requests.jsonl"
    reasoning_suite._monkeypatch.setenv("JALLM_SCRIPTED_REQUESTS", str(log))
    result = reasoning_suite.runpytest("benchmarks", "--model", "script.json", "--jallm-backend", SCRIPTED,
                                       "--jallm-no-cache", "--jallm-mode", "reasoning", "--jallm-results-json", "r.json")
    result.assert_outcomes(passed=1)
    requests = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    first = requests[0]
    # Chat template, zero-shot (one user turn, no few-shot turn), the mode's instruction and token budget.
    assert [m["role"] for m in first["messages"]] == ["user"]
    assert first["messages"][0]["content"].startswith(
        "正しい選択肢の番号で答えてください。<answer></answer>タグで囲んで回答してください。\n\n質問：問題0番")
    assert first["max_new_tokens"] == 1024
    row = json.loads((reasoning_suite.path / "r.json").read_text(encoding="utf-8"))["benchmarks"][0]
    assert row["score"] == 25.0  # only item 0: item 1's right answer is not in the asked format
    produced = row["extra"]["produced_by"]
    assert produced["mode"] == "reasoning" and produced["num_fewshot"] == 0 and produced["chat"] is True
    assert produced["scoring"] == {"strip_think": True, "extraction": {"preset": "answer_tags", "normalize": True}}


def test_the_same_outputs_scored_the_default_way_read_the_think_block_as_the_answer(
    reasoning_suite: pytest.Pytester,
) -> None:
    result = reasoning_suite.runpytest("benchmarks", "--model", "script.json", "--jallm-backend", SCRIPTED,
                                       "--jallm-no-cache", "--jallm-results-json", "r.json")
    row = json.loads((reasoning_suite.path / "r.json").read_text(encoding="utf-8"))["benchmarks"][0]
    assert row["score"] == 0.0  # every first paragraph starts with <think>
    assert row["extra"]["produced_by"]["scoring"] == {"strip_think": False}  # as older baselines record it
    assert result.ret == 0 or "no baseline" in result.stdout.str()


def test_run_preset_and_reasoning_end_marker(reasoning_suite: pytest.Pytester) -> None:
    """--jallm-answer-preset applies to every spec; --jallm-reasoning-start '' cuts up to the end marker."""
    result = reasoning_suite.runpytest("benchmarks", "--model", "script.json", "--jallm-backend", SCRIPTED,
                                       "--jallm-no-cache", "--jallm-answer-preset", "answer_tags",
                                       "--jallm-reasoning-start=", "--jallm-results-json", "r.json")
    row = json.loads((reasoning_suite.path / "r.json").read_text(encoding="utf-8"))["benchmarks"][0]
    # item 0 and 3 are in format; item 2 has no end marker: unchanged text, no tags: out of format.
    assert row["score"] == 25.0
    scoring = row["extra"]["produced_by"]["scoring"]
    assert scoring["reasoning"] == {"start": "", "end": "</think>"} and scoring["extraction"]["preset"] == "answer_tags"
    assert result.ret in (0, 1)


def test_bad_answer_preset_is_a_usage_error(reasoning_suite: pytest.Pytester) -> None:
    result = reasoning_suite.runpytest("benchmarks", "--model", "script.json", "--jallm-backend", SCRIPTED,
                                       "--jallm-answer-preset", "tags")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jallm-answer-preset 'tags': expected one of*answer_tags*"])


def test_reasoning_a_server_returns_apart_is_not_the_answer(reasoning_suite: pytest.Pytester) -> None:
    """vLLM's and other OpenAI-compatible servers' reasoning parsers return the thinking in
    `reasoning_content` (or `reasoning`) beside `content`: the answer is the content alone, and a
    response whose budget ran out while thinking (content null) is out of format, not a guess."""
    from tests.fakes.openai_stub import OpenAIStub, Reply

    def handler(req):
        question = req.text
        if "問題0番" in question:
            message = {"role": "assistant", "reasoning_content": "<answer>1</answer>と言いかけたが", "content": "<answer>0</answer>"}
        elif "問題1番" in question:
            message = {"role": "assistant", "reasoning": "ずっと考えて…", "content": None}
        else:
            message = {"role": "assistant", "content": "<answer>0</answer>"}
        return Reply(json={"id": "x", "object": "chat.completion", "model": "m",
                           "choices": [{"index": 0, "message": message, "finish_reason": "length"}]})

    with OpenAIStub(handler) as stub:
        result = reasoning_suite.runpytest("benchmarks", "--model", "m", "--jallm-backend", "openai",
                                           "--jallm-base-url", stub.base_url + "/v1", "--jallm-no-cache",
                                           "--jallm-mode", "reasoning", "--jallm-results-json", "r.json")
    row = json.loads((reasoning_suite.path / "r.json").read_text(encoding="utf-8"))["benchmarks"][0]
    assert row["score"] == 75.0  # items 0, 2 and 3 answer 0; item 1 has no answer
    assert result.ret in (0, 1)
    posts = [r for r in stub.requests if r.body and r.path != "/tokenize"]  # not the context check's question
    assert len(posts) == 4 and all(r.path.endswith("/chat/completions") for r in posts)  # the mode's chat requests


CATALOG = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("*.yaml"))


@pytest.mark.parametrize("path", CATALOG, ids=[p.stem for p in CATALOG])
def test_every_catalog_spec_has_a_reasoning_mode_as_docs_say(path: Path) -> None:
    """docs/catalog.md's "Reasoning mode" table: which specs ask for a format, which keep their own."""
    from pytest_jallm.evaluation import RunSettings, effective_spec
    from pytest_jallm.specfile import load_spec

    spec = load_spec(path)
    run = effective_spec(spec, RunSettings(model="m", mode="reasoning"))
    assert run.max_new_tokens >= 4096 and run.stop == []  # room to think, no stop inside the thinking
    keeps_own = (spec.answer_pattern is not None or spec.judge is not None or spec.answer_extraction.preset == "raw"
                 or spec.prompt_template in ("medpalm_five_choice_cot", "medpalm_five_choice_cot_ja"))
    if keeps_own:
        assert "reasoning" not in spec.modes and run.extraction() == spec.extraction()
    else:
        preset = "code_output" if spec.category == "CG" else "answer_tags"
        assert run.extraction().preset == preset
        assert run.instruction.startswith(spec.instruction) and run.instruction.endswith(("ください。", "tags."))
    assert effective_spec(spec, RunSettings(model="m")) == spec  # the default run is llm-jp-eval 1.3.0's


def test_out_of_format_rate_is_reported_and_gated_like_the_out_of_choice_rate(reasoning_suite: pytest.Pytester) -> None:
    (reasoning_suite.path / "thresholds").mkdir()
    (reasoning_suite.path / "thresholds" / "script.yaml").write_text("benchmarks:\n  think_mc: {max_oof_rate: 25}\n",
                                                                     encoding="utf-8")
    result = reasoning_suite.runpytest("benchmarks", "--model", "script.json", "--jallm-backend", SCRIPTED,
                                       "--jallm-no-cache", "--jallm-mode", "reasoning", "--jallm-results-json", "r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*out-of-format rate 50.00% (no answer could be extracted) exceeds max_oof_rate 25.00%*"])
    result.stdout.fnmatch_lines(["*OoC %*OoF %*", "think_mc*25.00*50.00*50.00*"])
    row = json.loads((reasoning_suite.path / "r.json").read_text(encoding="utf-8"))["benchmarks"][0]
    assert row["oof_rate"] == 50.0 and row["gate"]["limits"]["max_oof_rate"] == 25.0
