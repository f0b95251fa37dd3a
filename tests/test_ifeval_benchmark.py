"""M-IFEval as a benchmark: the m-ifeval loader, the ifeval_* metrics and a whole run of
benchmarks/m_ifeval_ja.yaml, on the real-format slice in tests/fixtures/real-slices/m-ifeval/
(20 prompts covering all 33 instruction ids, two Qwen2.5 models' recorded responses and the
reference evaluator's results on them), so a plain clone tests them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pytest_jallm.data import DataError, load_examples
from pytest_jallm.evaluation import ItemOutcome
from pytest_jallm.ifeval import INSTRUCTIONS
from pytest_jallm.loaders import LOADERS
from pytest_jallm.metrics import METRICS, MetricResult, get_metric
from pytest_jallm.specfile import load_spec
from real_slices import SLICES, for_slices

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "benchmarks" / "m_ifeval_ja.yaml"
SLICE = SLICES / "m-ifeval"
SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"
MODELS = ["Qwen__Qwen2.5-3B-Instruct-GPTQ-Int4", "Qwen__Qwen2.5-14B-Instruct-GPTQ-Int4"]
METRIC_NAMES = ["ifeval_prompt_strict", "ifeval_inst_strict", "ifeval_prompt_loose", "ifeval_inst_loose"]
pytestmark = pytest.mark.filterwarnings("ignore::pytest_jallm.sources.UnpinnedDataWarning")


def _jsonl(rel: str) -> list[dict]:
    return [json.loads(line) for line in (SLICE / rel).read_text(encoding="utf-8").splitlines()]


def _responses(model: str) -> dict[str, str]:
    return {r["prompt"]: r["response"] for r in _jsonl(f"data/ja_input_response_data_{model}.jsonl")}


def _reference(model: str, mode: str) -> list[dict]:
    return _jsonl(f"evaluations/ja_input_response_data_{model}/eval_results_{mode}.jsonl")


def _reference_figures(model: str) -> dict[str, float]:
    """print_report's four figures of the reference's results on the slice, x100."""
    out = {}
    for mode in ("strict", "loose"):
        verdicts = [r["follow_instruction_list"] for r in _reference(model, mode)]
        out[f"ifeval_prompt_{mode}"] = 100 * sum(all(v) for v in verdicts) / len(verdicts)
        out[f"ifeval_inst_{mode}"] = 100 * sum(sum(v) for v in verdicts) / sum(len(v) for v in verdicts)
    return out


def _examples():
    return load_examples(for_slices(load_spec(SPEC)), SPEC.parent, SLICES)


def test_the_slice_covers_every_instruction_and_the_spec_reads_it() -> None:
    examples = _examples()
    assert len(examples) == 20
    assert {i for ex in examples for i in ex.gold.split("\n")} == set(INSTRUCTIONS)
    ex = next(e for e in examples if e.id == "162")
    assert ex.gold == "ja:length_constraints:number_sentences\nja:startend:sentence_unified_end"
    assert ex.context["kwargs"] == [{"relation": "未満", "num_sentences": 5}, {"ending": "ます"}]
    assert ex.fields["prompt"] == ex.context["prompt"]


def test_the_loader_names_the_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "input.jsonl"
    good = {"key": 1, "prompt": "p", "instruction_id_list": ["ja:letters:kanji"],
            "kwargs": [{"relation": "以上", "kanji_limit": 3}]}
    bad.write_text(json.dumps(good) + "\n" + json.dumps({**good, "kwargs": [{"relation": "以上"}]}) + "\n",
                   encoding="utf-8")
    with pytest.raises(DataError, match=r"input.jsonl: line 2: instruction_id_list\[0\]/kwargs\[0\]: ja:letters:kanji: "
                                        r"kwarg 'kanji_limit' must be an integer"):
        LOADERS["m-ifeval"]([str(bad)], {})
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="input.jsonl: line 1: not valid JSON"):
        LOADERS["m-ifeval"]([str(bad)], {})


def test_metrics_are_registered_as_the_gate_needs_them() -> None:
    assert (METRICS["ifeval_prompt_strict"].per_item, METRICS["ifeval_prompt_strict"].binary) == (True, True)
    assert (METRICS["ifeval_prompt_loose"].per_item, METRICS["ifeval_prompt_loose"].binary) == (True, True)
    assert METRICS["ifeval_inst_strict"].per_item is False  # a share of all instructions, not a mean of items
    assert METRICS.origin("ifeval_inst_loose") == "pytest_jallm.ifeval.benchmark"


@pytest.mark.parametrize("model", MODELS)
def test_metrics_give_the_references_figures_and_say_what_failed(model: str) -> None:
    examples = _examples()
    answers = _responses(model)
    preds = [answers[ex.fields["prompt"]] for ex in examples]
    contexts = [ex.context for ex in examples]
    results = {name: get_metric(name)(preds, [ex.gold for ex in examples], contexts) for name in METRIC_NAMES}
    expected = _reference_figures(model)
    for name in METRIC_NAMES:
        assert 100 * results[name].score == pytest.approx(expected[name], abs=0.01), name
    by_prompt = {r["prompt"]: r for r in _reference(model, "strict")}
    strict = results["ifeval_prompt_strict"]
    for ex, score, detail in zip(examples, strict.per_item, strict.details, strict=True):
        ref = by_prompt[ex.fields["prompt"]]
        assert score == float(ref["follow_all_instructions"])
        failed = [i for i, ok in zip(ref["instruction_id_list"], ref["follow_instruction_list"], strict=True) if not ok]
        assert detail == (f"strict: {len(failed)} of {len(ref['instruction_id_list'])} not followed: {', '.join(failed)}"
                          if failed else f"strict: all {len(failed) + len(ref['instruction_id_list'])} instruction(s) followed")


def test_a_context_that_is_not_an_input_row_is_named() -> None:
    with pytest.raises(ValueError, match="ifeval_prompt_strict: item 0: field 'instruction_id_list' is missing.*m-ifeval loader"):
        get_metric("ifeval_prompt_strict")(["x"], ["g"], [{"key": 1, "prompt": "p"}])
    assert get_metric("ifeval_prompt_strict")([], [], []) == MetricResult(0.0, [], [])


def test_a_flipped_item_says_which_instructions_failed() -> None:
    from pytest_jallm.baseline import Baseline
    from pytest_jallm.gate.decision import render_flips
    from pytest_jallm.gate.record import GateDetails, GateLimits
    from pytest_jallm.gate.run import flipped_item

    class Result:
        def item(self, item_id):
            return ItemOutcome(id=item_id, prompt="p", gold="ja:startend:quotation", output="o", prediction="o",
                               score=0.0, ooc=False, detail="strict: 1 of 1 not followed: ja:startend:quotation")

    baseline = Baseline(benchmark="m_ifeval_ja", metric="ifeval_prompt_strict", score=100.0, ooc_rate=None, n=1,
                        binary=True, produced_by={"prompt_hash": "p"}, items={"112": 1.0}, predictions={"112": "ok"})
    flip = flipped_item(Result(), baseline, "112")
    assert flip.why == "strict: 1 of 1 not followed: ja:startend:quotation"
    details = GateDetails(score=0.0, n=1, limits=GateLimits(max_drop=2.0, alpha=0.05), flips=[flip], diff_items=5)
    assert render_flips(details).splitlines()[1].endswith("| strict: 1 of 1 not followed: ja:startend:quotation")


def _suite(pytester: pytest.Pytester, model: str) -> Path:
    """The spec as shipped (less its pin: the slice is not the pinned file), the model's recorded
    responses served by prompt, and a hook that writes every metric's score."""
    bench = pytester.mkdir("benchmarks")
    raw = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    raw["source"].pop("sha256")
    (bench / SPEC.name).write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    rules = [{"contains": prompt, "output": response} for prompt, response in _responses(model).items()]
    script = pytester.path / f"{model}.json"
    script.write_text(json.dumps({"rules": rules, "default": ""}, ensure_ascii=False), encoding="utf-8")
    pytester.makeconftest(
        "import json\n"
        "def pytest_jallm_result(result, config):\n"
        "    with open('scores.json', 'w') as fh:\n"
        "        json.dump(result.extra['scores'], fh)\n"
    )
    return script


def test_a_run_of_the_spec_gives_the_references_four_figures(pytester: pytest.Pytester) -> None:
    model = MODELS[0]
    script = _suite(pytester, model)
    result = pytester.runpytest("benchmarks", "--model", str(script), "--jallm-backend", SCRIPTED, "--jallm-no-cache",
                                "--jallm-chat", "--jallm-data-dir", str(SLICES), "--jallm-items",
                                "--jallm-thresholds-dir", str(pytester.path / "none"), "-p", "no:cacheprovider")
    scores = json.loads((pytester.path / "scores.json").read_text(encoding="utf-8"))
    expected = _reference_figures(model)
    assert scores == pytest.approx(expected, abs=0.01)
    failing = sum(1 for r in _reference(model, "strict") if not r["follow_all_instructions"])
    result.assert_outcomes(passed=1 + 20 - failing, failed=failing)  # the benchmark, then one test per prompt
    # A failing prompt's test says which of its instructions were not followed.
    result.stdout.fnmatch_lines(["*m_ifeval_ja[[]81[]]*ifeval_prompt_strict=0.000*", "*--- why ---*",
                                 "strict: 2 of 2 not followed: ja:keywords:letter_frequency, ja:letters:furigana"])
