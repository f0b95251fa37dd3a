"""japanese-lm-med-harness compatibility: its prompt templates, answer extraction and scoring.

The reference is github stardust-coder/japanese-lm-med-harness at commit ef9544a (the
JMedLLM paper's evaluation): ``template.py`` (prompt texts), ``eval_bench.py`` (how a prompt is
filled, how the answer is cut out of the generation, and ``evaluate()``'s Gestalt match).
Everything here is written for this project from reading those files; the template *texts*
are reproduced character for character because a prompt must be the same to compare scores.

What the harness does, and what this module reproduces:

* **Prompt.** A template has two slots, ``{{instruction}}`` (the question) and ``{{input}}``
  (the choices). The input is ``",".join(choices)`` (no space), except for a template whose
  name contains ``meditron_five_choice``: ``"(A)c0\\n(B)c1\\n(C)c2\\n(D)c3\\n(E)c4"``. The
  harness's ``meditron_four_choice`` branch is overwritten by the ``else`` of the following
  ``if``, so ``meditron_four_choice`` is filled with the comma-joined choices too; we do the same.
  Values are inserted verbatim (Liquid does not escape or re-render them).
* **Names.** Every template defined in ``template.py`` is selectable by its variable name.
  Note: the harness's own ``prepare_prompt_template`` does not list
  ``medpalm_four_choice_cot``/``medpalm_four_choice_cot_ja``, so ``--prompt`` with those names
  gives it Alpaca (``alpaca``/``alpaca_ja`` by its "ja in name" fallback); here they give the
  texts defined under those names.
* **Response.** The harness (transformers path, which its leaderboard used: ``use_vllm: off``)
  decodes prompt + generation, splits on the first marker found of ``"### 応答：\\n"``,
  ``"### Answer:"``, ``"### Response:"`` (in that order of preference), takes the part after the
  first occurrence, strips, keeps the first line, strips. :func:`harness_response` does that on
  ``prompt + output``. (The meditron templates contain none of these markers: the harness then
  keeps the first line of the whole decoded text, i.e. of the prompt. That is reproduced, not
  fixed: it is what the harness scores.)
* **Gestalt match.** See :func:`gestalt_match_item`.
* **Shuffled choices.** ``--shuffle`` calls ``random.shuffle(choices)`` per item, after the gold
  answer text has been taken, unseeded. :func:`shuffle_permutation` is the permutation
  ``random.Random(seed)`` gives, one call per item in order: the harness's behaviour had it
  called ``random.seed(seed)`` once before its loop.
"""

from __future__ import annotations

import difflib
import random
import re
from typing import Any, Mapping, Sequence

# --- templates ---------------------------------------------------------------------------------

_ALPACA_EN = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n"
    "### Instruction:\n{{instruction}}\n### Input:\n{{input}}\n### Response:\n"
)
_ALPACA_JA = (
    # "で" is written decomposed in template.py (て + U+3099 combining dakuten): kept, since the
    # model sees those code points.
    "以下は，タスクを説明する指示と，文脈のある入力の組み合わせて\u3099す。要求を適切に満たす応答を書きなさい。\n"
    "### 指示：\n{{instruction}}\n### 入力：\n{{input}}\n### 応答：\n"
)
_MEDPALM_EN = (
    "### Instruction:\n"
    "The following are multiple choice questions about medical knowledge. Solve them in a step-by-step fashion, "
    "starting by summarizing the available information. Output a single option from the {n} options as the final answer.\n"
    "### Input:\n{{instruction}}\n{{input}}\n### Response:\n"
)
_MEDPALM_JA = (
    "### 指示：\n"
    "以下は医学知識に関する多肢選択問題です。利用可能な情報を要約してから、段階的に解決してください。"
    "最終的な答えとして{n}つの選択肢のうちの1つを出力してください。\n"
    "### 入力：\n{{instruction}}\n{{input}}\n### 応答：\n"
)
_ALPACA_MED_EN = (
    "The following are multiple choice questions about medical knowledge. Solve them in a step-by-step fashion, "
    "starting by summarizing the available information. Output a single option from the five options as the final answer.\n"
    "### Instruction:\n{{instruction}}\n### Input:\n{{input}}\n### Response:\n"
)
_ALPACA_MED_JA = (
    "以下は医学知識に関する多肢選択問題です。利用可能な情報を要約してから、段階的に解決してください。"
    "最終的な答えとして5つの選択肢のうちの1つを出力してください。\n"
    "### 指示：\n{{instruction}}\n### 入力：\n{{input}}\n### 応答：\n"
)
_MEDITRON_SYSTEM = (
    "You are a medical doctor answering real-world medical entrance exam questions. Based on your understanding "
    "of basic and clinical science, medical knowledge, and mechanisms underlying health, disease, patient care, "
    "and modes of therapy, answer the following multiple-choice question. Select one correct answer from A to {last}. "
    "Base your answer on the current and standard practices referenced in medical guidelines."
)
_MEDITRON_FOUR = (
    "\n<|im_start|> system\n" + _MEDITRON_SYSTEM.replace("{last}", "D") + "<|im_end|>\n"
    "<|im_start|> question\nQuestion: {{instruction}}\nOptions:\n{{input}}\n<|im_start|> answer\n\n"
)
_MEDITRON_FIVE = (
    "\n<|im_start|> system\n" + _MEDITRON_SYSTEM.replace("{last}", "E") + "<|im_end|>\n"
    "<|im_start|> question\nQuestion: {{instruction}}\nOptions:\n{{input}}<|im_end|>\n<|im_start|> answer\n\n"
)

HARNESS_TEMPLATES: dict[str, str] = {
    "alpaca": _ALPACA_EN,
    "alpaca_ja": _ALPACA_JA,
    "medpalm_four_choice_cot": _MEDPALM_EN.replace("{n}", "four"),
    "medpalm_four_choice_cot_ja": _MEDPALM_JA.replace("{n}", "4"),
    "medpalm_five_choice_cot": _MEDPALM_EN.replace("{n}", "five"),
    "medpalm_five_choice_cot_ja": _MEDPALM_JA.replace("{n}", "5"),
    "alpaca_med_five_choice_cot": _ALPACA_MED_EN,
    "alpaca_med_five_choice_cot_ja": _ALPACA_MED_JA,
    "meditron_four_choice": _MEDITRON_FOUR,
    "meditron_five_choice": _MEDITRON_FIVE,
}

_SLOT = re.compile(r"\{\{(instruction|input)\}\}")


def harness_input(template: str, choices: Sequence[str]) -> str:
    """The ``{{input}}`` text the harness builds from the choices for this template name."""
    if "meditron_five_choice" in template:
        if len(choices) < 5:
            raise ValueError(
                f"template {template!r} lists choices (A)-(E) and needs 5 choices, got {len(choices)} "
                "(the harness fails with IndexError on such items)"
            )
        return "\n".join(f"({letter}){choice}" for letter, choice in zip("ABCDE", choices, strict=False))
    return ",".join(choices)


def render_harness_prompt(template: str, question: str, choices: Sequence[str]) -> str:
    """The prompt text the harness renders for one item (template looked up by name)."""
    text = HARNESS_TEMPLATES[template]
    values = {"instruction": question, "input": harness_input(template, choices)}
    # One pass: a question that itself contains "{{input}}" is not filled again.
    return _SLOT.sub(lambda m: values[m.group(1)], text)


# --- response extraction -----------------------------------------------------------------------

_MARKERS = ("### 応答：\n", "### Answer:", "### Response:")


def harness_response(full_response: str) -> str:
    """The answer the harness cuts out of the decoded text (prompt + generation)."""
    response = full_response
    for marker in _MARKERS:
        if marker in full_response:
            response = full_response.split(marker)[1]
            break
    return response.strip().split("\n")[0].strip()


# --- scoring -----------------------------------------------------------------------------------


def gestalt_distance(a: str, b: str) -> float:
    """difflib's SequenceMatcher ratio (what the harness calls gestalt_dist): not symmetric."""
    return difflib.SequenceMatcher(None, a, b).ratio()


def gestalt_choice_scores(response: str, choices: Sequence[str]) -> list[float]:
    """Per choice: the mean of the ratio taken both ways, after the harness's cleaning of the
    response (every "." removed, stripped)."""
    cleaned = response.replace(".", "").strip()
    return [(gestalt_distance(c, cleaned) + gestalt_distance(cleaned, c)) / 2 for c in choices]


def gestalt_match_item(response: str, answer: str, choices: Sequence[str]) -> float:
    """1.0 when the harness's ``evaluate()`` counts the item as a Gestalt match, else 0.0.

    ``answer`` is the gold as the harness stores it: the correct choice texts joined by ","
    (IgakuQA's multi-answer items) or the dataset's answer text. The harness splits it on ","
    to get k gold answers, then picks k choices greedily: the highest score first (the first
    such choice on a tie, as ``list.index(max(...))``), removing each picked choice from the list
    with ``list.remove`` (the first equal text) and its score by position; the item matches when
    the sorted picks equal the sorted gold parts. A gold text containing "," therefore splits
    into parts that are not choices and can never match; when there are more parts than choices
    the harness raises, catches it and counts the item as not matched -- both kept as they are.
    """
    gold_parts = answer.split(",")
    remaining = list(choices)
    scores = gestalt_choice_scores(response, remaining)
    picked: list[str] = []
    for _ in range(len(gold_parts)):
        if not scores:
            return 0.0
        best = scores.index(max(scores))
        choice = remaining[best]
        remaining.remove(choice)
        scores.pop(best)
        picked.append(choice)
    return 1.0 if sorted(gold_parts) == sorted(picked) else 0.0


def harness_exact_match_item(response: str, answer: str) -> float:
    """The harness's exact match: equal after removing every "." and stripping both."""
    return 1.0 if answer.replace(".", "").strip() == response.replace(".", "").strip() else 0.0


def harness_answer(gold: str) -> str:
    """The harness's answer string for one of our golds (multi-answer golds are one per line)."""
    return ",".join(gold.split("\n"))


def harness_gold(gold: str, ctx: Mapping[str, Any]) -> str:
    """The gold as the harness stores it: the loader's ``harness_answer`` when it gives one (the
    choice texts joined by ","), else our gold with its lines joined by ","."""
    given = ctx.get("harness_answer")
    return given if isinstance(given, str) else harness_answer(gold)


# --- shuffled choices --------------------------------------------------------------------------


def shuffle_permutations(seed: int, sizes: Sequence[int]) -> list[list[int]]:
    """For each item in order, the new order of its choices as old indices.

    ``random.shuffle`` draws depend only on the list's length, so shuffling indices gives the
    same arrangement as shuffling the choice texts themselves with the same generator.
    """
    rng = random.Random(seed)
    out = []
    for n in sizes:
        order = list(range(n))
        rng.shuffle(order)
        out.append(order)
    return out
