"""Parity with the reference evaluator on real models' recorded responses.

../shared/data/m-ifeval holds M-IFEval's Japanese input (172 prompts), real models' responses, and
for 13 of them the reference evaluator's own per-prompt results (eval_results_strict/loose.jsonl,
lightblue-tech/M-IFEval 0bc3143). For every one of those models, prompts and both modes the
verdicts here must equal the reference's instruction by instruction, and the four figures must
equal the figures of its results to 0.01 points -- except for the deviations named in DEVIATIONS
(also listed in docs/catalog.md), which must occur exactly as listed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_jallm.ifeval import evaluate_responses, read_inputs

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "m-ifeval"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DATA / "evaluations").is_dir(),
                       reason=f"M-IFEval's data and reference results not found at {DATA} (see shared/data/README.md)"),
]

MODELS_WITH_RESULTS = [
    "Qwen__Qwen2.5-1.5B-Instruct-GPTQ-Int4", "Qwen__Qwen2.5-14B-Instruct-GPTQ-Int4", "Qwen__Qwen2.5-32B-Instruct-GPTQ-Int4",
    "Qwen__Qwen2.5-3B-Instruct-GPTQ-Int4", "Qwen__Qwen2.5-7B-Instruct-GPTQ-Int4", "claude-3-5-sonnet-20240620",
    "claude-3-haiku-20240307", "deepseek-ai__deepseek-llm-7b-chat", "gpt-4o-2024-08-06", "gpt-4o-mini-2024-07-18",
    "hugging-quants__Meta-Llama-3.1-8B-Instruct-AWQ-INT4", "mistralai__Mistral-7B-Instruct-v0.3", "o1-mini-2024-09-12",
]

# (model, mode, prompt key) -> (our verdicts, why they differ from the reference's recorded ones)
DEVIATIONS: dict[tuple[str, str, int], tuple[list[bool], str]] = {
    ("claude-3-5-sonnet-20240620", "strict", 2): (
        [True],
        "langdetect is random and the reference does not seed it: this Thai e-mail followed by its Japanese "
        "translation comes out th or ja from run to run (seeds 0-7: th 6 times, ja twice; re-running the "
        "reference unseeded gives True where its recorded result says False). Seeded at 0 it is th: followed.",
    ),
}


def _reference(model: str, mode: str) -> list[dict]:
    path = DATA / "evaluations" / f"ja_input_response_data_{model}" / f"eval_results_{mode}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _levels(verdicts: list[list[bool]]) -> tuple[float, float]:
    """print_report's prompt-level and instruction-level accuracy, in percent."""
    prompt = 100 * sum(all(v) for v in verdicts) / len(verdicts)
    instruction = 100 * sum(sum(v) for v in verdicts) / sum(len(v) for v in verdicts)
    return prompt, instruction


@pytest.fixture(scope="module")
def inputs():
    return read_inputs(DATA / "data" / "ja_input_data.jsonl")


def test_the_reference_results_are_all_there() -> None:
    found = sorted(p.name.removeprefix("ja_input_response_data_") for p in (DATA / "evaluations").iterdir())
    assert found == sorted(MODELS_WITH_RESULTS)


@pytest.mark.parametrize("model", MODELS_WITH_RESULTS)
def test_verdicts_and_figures_equal_the_references(model: str, inputs) -> None:
    ours = evaluate_responses(DATA / "data" / f"ja_input_response_data_{model}.jsonl", inputs)
    figures = ours.figures.percent()
    for mode in ("strict", "loose"):
        reference = _reference(model, mode)
        results = getattr(ours, mode)
        assert len(reference) == len(results) == 172
        differences = {}
        expected = []
        for inp, mine, ref in zip(inputs, results, reference, strict=True):
            assert ref["prompt"] == inp.prompt and ref["instruction_id_list"] == list(inp.instruction_id_list)
            assert ref["follow_all_instructions"] == all(ref["follow_instruction_list"])
            if list(mine.follow_instruction_list) != ref["follow_instruction_list"]:
                differences[(model, mode, inp.key)] = list(mine.follow_instruction_list)
            deviation = DEVIATIONS.get((model, mode, inp.key))
            expected.append(deviation[0] if deviation else ref["follow_instruction_list"])
        documented = {k: v[0] for k, v in DEVIATIONS.items() if k[:2] == (model, mode)}
        assert differences == documented  # no silent difference, and no stale deviation either
        prompt_level, instruction_level = _levels(expected)
        assert figures[f"prompt_{mode}"] == pytest.approx(prompt_level, abs=0.01)
        assert figures[f"inst_{mode}"] == pytest.approx(instruction_level, abs=0.01)


def test_the_deviation_moves_the_figures_by_one_prompt_only() -> None:
    """What the documented deviation costs in the reference's own units: one prompt of 172."""
    recorded = [r["follow_instruction_list"] for r in _reference("claude-3-5-sonnet-20240620", "strict")]
    ours = evaluate_responses(DATA / "data" / "ja_input_response_data_claude-3-5-sonnet-20240620.jsonl",
                              DATA / "data" / "ja_input_data.jsonl").figures.percent()
    prompt_level, instruction_level = _levels(recorded)
    assert ours["prompt_strict"] - prompt_level == pytest.approx(100 / 172)
    assert ours["inst_strict"] - instruction_level == pytest.approx(100 / 226)


def test_every_recorded_response_file_evaluates(inputs) -> None:
    """The models without reference results too (aya-23, Qwen2.5-0.5B, claude-3-opus, o1-preview)."""
    files = sorted((DATA / "data").glob("ja_input_response_data_*.jsonl"))
    assert len(files) == 17
    for path in files:
        figures = evaluate_responses(path, inputs).figures
        assert 0 < figures.prompt_strict <= figures.prompt_loose <= 1, path.name
        assert figures.prompt_strict <= figures.inst_strict <= figures.inst_loose <= 1, path.name
