"""Prompt rendering: one place that turns a spec and an example into text.

Every prompt is a point of the format grammar (:mod:`pytest_jallm.prompt_format`):
a benchmark test renders the canonical point, `--jallm-variants` the others.
The canonical template is llm-jp-eval v1's (see REFERENCE-llm-jp-eval.md):
a fixed preamble, `### 指示:`, few-shot `### 入力:`/`### 応答:` pairs, then
the item's input and an open `### 応答:`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

from .medharness import HARNESS_TEMPLATES, render_harness_prompt
from .prompt_format import CANONICAL, PromptFormat
from .registry import Registry

if TYPE_CHECKING:
    from .data import Example
    from .spec import BenchmarkSpec


@dataclass(frozen=True)
class Template:
    preamble: str
    instruction_header: str
    input_header: str
    response_header: str


_BUILTIN_TEMPLATES: dict[str, Template] = {
    "llm-jp-eval-v1": Template(
        preamble="以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。",
        instruction_header="\n\n### 指示:\n",
        input_header="\n\n### 入力:\n",
        response_header="\n\n### 応答:\n",
    ),
    # Alpaca's Japanese wording, used by Japanese medical QA evaluations.
    "alpaca-ja": Template(
        preamble="以下は、タスクを説明する指示と、追加の文脈を提供する入力の組み合わせです。要求を適切に満たす応答を書きなさい。",
        instruction_header="\n\n### 指示:\n",
        input_header="\n\n### 入力:\n",
        response_header="\n\n### 応答:\n",
    ),
    # Stanford Alpaca's prompt with input, for English tasks (IgakuQA's translation, MMLU).
    "alpaca-en": Template(
        preamble="Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.",
        instruction_header="\n\n### Instruction:\n",
        input_header="\n\n### Input:\n",
        response_header="\n\n### Response:\n",
    ),
    # Zero-shot chain of thought (Kojima et al.'s trigger, in the Japanese wording used by
    # Japanese medical QA evaluations) opening the response; pair with `answer_pattern`.
    "cot-ja": Template(
        preamble="以下は、タスクを説明する指示と、追加の文脈を提供する入力の組み合わせです。要求を適切に満たす応答を書きなさい。",
        instruction_header="\n\n### 指示:\n",
        input_header="\n\n### 入力:\n",
        response_header="\n\n### 応答:\nステップバイステップで考えましょう。\n",
    ),
    "cot-en": Template(
        preamble="Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request.",
        instruction_header="\n\n### Instruction:\n",
        input_header="\n\n### Input:\n",
        response_header="\n\n### Response:\nLet's think step by step.\n",
    ),
    # The item's input alone (no preamble, headers or instruction): prompts that are complete as
    # the dataset gives them (instruction following, chat benchmarks), usually sent with --jallm-chat.
    "plain": Template(preamble="", instruction_header="", input_header="", response_header=""),
}


def _check_template(name: str, obj: object) -> Template:
    if not isinstance(obj, Template):
        raise TypeError(f"expected a pytest_jallm.prompt.Template, got {type(obj).__name__}")
    if name in HARNESS_TEMPLATES:
        raise TypeError(f"{name!r} is a japanese-lm-med-harness template name; choose another")
    return obj


# Every `prompt_template` name besides the harness's: the built-ins and those installed packages
# add through the `pytest_jallm.templates` entry-point group.
TEMPLATES: Registry[Template] = Registry("prompt template", "pytest_jallm.templates", _check_template)


def register_template(name: str, template: Template) -> Template:
    """Make `template` selectable as a spec's `prompt_template: name`."""
    return TEMPLATES.register(name, _check_template(name, template))


for _name, _template in _BUILTIN_TEMPLATES.items():
    register_template(_name, _template)


def render_input(spec: BenchmarkSpec, example: Example, fmt: PromptFormat = CANONICAL) -> str:
    """The example's input block (no instruction, no few-shots) under ``fmt``."""
    return fmt.render_input(spec, example)[0]


def template_names() -> list[str]:
    """Every name `prompt_template` accepts: ours, then japanese-lm-med-harness's."""
    return list(TEMPLATES) + list(HARNESS_TEMPLATES)


def render(
    spec: BenchmarkSpec, example: Example, shots: Sequence[Example], fmt: PromptFormat = CANONICAL
) -> tuple[str, str]:
    """``(prompt, gold)`` of ``example`` under ``fmt``; the gold moves with its choice when the format
    reorders or relabels choices and the answer is a label (canonical: the example's own gold)."""
    if spec.prompt_template in HARNESS_TEMPLATES:
        # The harness's templates are zero-shot and take the question and the choices only
        # (spec checks refuse few-shots and require a `question` field for them; no variants are drawn).
        return render_harness_prompt(spec.prompt_template, example.fields["question"], example.choices), example.gold
    t = fmt.headers(TEMPLATES[spec.prompt_template])
    instruction = fmt.instruction(spec)
    parts = [t.preamble]
    if not fmt.instruction_after:
        parts += [t.instruction_header, instruction]
    for shot in shots:
        text, gold = fmt.render_input(spec, shot)
        parts += [t.input_header, text, t.response_header, gold]
    text, gold = fmt.render_input(spec, example)
    parts += [t.input_header, text]
    if fmt.instruction_after:
        parts += [t.instruction_header, instruction]
    parts.append(t.response_header)
    return "".join(parts), gold


def render_prompt(spec: BenchmarkSpec, example: Example, shots: Sequence[Example], fmt: PromptFormat = CANONICAL) -> str:
    return render(spec, example, shots, fmt)[0]


def render_messages(
    spec: BenchmarkSpec, example: Example, shots: Sequence[Example], fmt: PromptFormat = CANONICAL
) -> tuple[Mapping[str, str], ...]:
    """Chat form: the instruction leads each user turn (follows it under ``instruction_after``);
    shots become prior turns."""
    messages: list[dict[str, str]] = []
    if spec.system_prompt:
        messages.append({"role": "system", "content": spec.system_prompt})
    if spec.prompt_template in HARNESS_TEMPLATES:  # the harness has no chat form: its prompt is the turn
        messages.append({"role": "user", "content": render_prompt(spec, example, shots)})
        return tuple(messages)
    instruction = fmt.instruction(spec)

    def user(text: str) -> dict[str, str]:
        if not instruction:  # a prompt complete in itself (the `plain` template): the turn is the input
            return {"role": "user", "content": text}
        return {"role": "user", "content": f"{text}\n\n{instruction}" if fmt.instruction_after else f"{instruction}\n\n{text}"}

    for shot in shots:
        text, gold = fmt.render_input(spec, shot)
        messages += [user(text), {"role": "assistant", "content": gold}]
    messages.append(user(fmt.render_input(spec, example)[0]))
    return tuple(messages)


def prompt_hash(
    spec: BenchmarkSpec, shots: Sequence[Example], chat: bool, shuffle_choices: int | None = None
) -> str:
    """Identifies everything about the prompt except the item itself."""
    if spec.prompt_template in HARNESS_TEMPLATES:
        template: list[str] = [spec.prompt_template, HARNESS_TEMPLATES[spec.prompt_template]]
    else:
        t = TEMPLATES[spec.prompt_template]
        template = [t.preamble, t.instruction_header, t.input_header, t.response_header]
    payload = {
        "template": template,
        "instruction": spec.instruction,
        "input": spec.input,
        "choice_format": spec.choice_format.model_dump(),
        "system_prompt": spec.system_prompt,
        "shots": [render_input(spec, s) + "\x00" + s.gold for s in shots],
        "chat": chat,
        "max_new_tokens": spec.max_new_tokens,
        "stop": spec.stop,
        "answer_pattern": spec.answer_pattern,
    }
    if spec.answer_extraction != "first-paragraph":  # only when set, so existing baselines keep their hashes
        payload["answer_extraction"] = spec.answer_extraction
    if shuffle_choices is not None:  # only when set, so unshuffled runs keep their stored hashes
        payload["shuffle_choices"] = shuffle_choices
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]
