"""Prompt templates: one protocol, several kinds, one registry.

A template owns everything between a spec's example and a scored answer: rendering it as text and
as chat messages (under a :class:`~pytest_jallm.prompt_format.PromptFormat`; a benchmark test renders
the canonical one, ``--jallm-variants`` the others), the payload of the prompt hash, the default
answer extraction (:mod:`pytest_jallm.answers`) and its gold, and the checks it needs on a spec.

Kinds:

* :class:`Template` -- sections: a preamble, ``### 指示:``, few-shot ``### 入力:``/``### 応答:`` pairs,
  then the item and an open response header. llm-jp-eval v1's is the default (see
  REFERENCE-llm-jp-eval.md); ``plain`` (all sections empty) sends the dataset's prompt as it is.
* :class:`HarnessTemplate` -- japanese-lm-med-harness's templates, verbatim (zero-shot, question and
  choices only, its own answer cut and raw gold; :mod:`pytest_jallm.medharness`).

Installed packages add templates through the ``pytest_jallm.templates`` entry-point group.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Sequence

from .answers import Answer, Extraction, normalize
from .medharness import HARNESS_TEMPLATES, harness_response, render_harness_prompt
from .prompt_format import CANONICAL, PromptFormat
from .registry import Registry

if TYPE_CHECKING:
    from .data import Example
    from .spec import BenchmarkSpec

Messages = tuple[Mapping[str, str], ...]


class RenderedItem(NamedTuple):
    """One example as a backend request needs it, and the input block reports show."""

    prompt: str
    gold: str  # moved with its choice where the format reorders or relabels choices
    messages: Messages | None  # with chat only
    input: str  # the example's input block in the canonical format (ItemOutcome.input)


ItemRenderer = Callable[["Example"], RenderedItem]


class TemplateSpecError(ValueError):
    """A spec asks a template for something it cannot do: ``key`` names the spec key."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


class PromptTemplate:
    """The protocol every template kind implements (defaults for the common case)."""

    variants = True  # can --jallm-variants rewrite its prompts?

    def render(self, spec: BenchmarkSpec, example: Example, shots: Sequence[Example],
               fmt: PromptFormat = CANONICAL) -> tuple[str, str]:
        """``(prompt, gold)``; the gold moves with its choice when ``fmt`` reorders or relabels choices."""
        raise NotImplementedError

    def render_messages(self, spec: BenchmarkSpec, example: Example, shots: Sequence[Example],
                        fmt: PromptFormat = CANONICAL) -> Messages:
        messages: list[dict[str, str]] = []
        if spec.system_prompt:
            messages.append({"role": "system", "content": spec.system_prompt})
        messages.append({"role": "user", "content": self.render(spec, example, shots, fmt)[0]})
        return tuple(messages)

    def item_renderer(self, spec: BenchmarkSpec, shots: Sequence[Example], fmt: PromptFormat = CANONICAL,
                      chat: bool = False) -> ItemRenderer:
        """Renders one example after another under the same spec, few-shots and format. A template
        whose prompts share a head (instruction, few-shots) renders it once here, not per item."""

        def render_item(example: Example) -> RenderedItem:
            text, gold = self.render(spec, example, shots, fmt)
            messages = self.render_messages(spec, example, shots, fmt) if chat else None
            return RenderedItem(text, gold, messages, CANONICAL.render_input(spec, example)[0])

        return render_item

    def hash_payload(self) -> list[str]:
        """The template's own part of the prompt hash (its texts)."""
        raise NotImplementedError

    def spec_defaults(self) -> dict[str, Any]:
        """Spec keys this template fills in when a spec leaves them out."""
        return {}

    def check_spec(self, spec: BenchmarkSpec) -> None:
        """Raise :class:`TemplateSpecError` when ``spec`` asks for what this template cannot do."""

    def extraction(self, spec: BenchmarkSpec) -> Extraction:
        """The answer extraction of ``spec`` under this template (before a run's reasoning removal)."""
        return spec.extraction()

    def answer(self, extraction: Extraction, prompt: str, output: str) -> Answer:
        return extraction.apply(output)

    def gold(self, extraction: Extraction, example: Example) -> str:
        return normalize(example.gold) if extraction.normalize else example.gold


@dataclass(frozen=True)
class Template(PromptTemplate):
    """Sections (llm-jp-eval's shape): preamble, instruction, few-shot pairs, the item, response header."""

    preamble: str
    instruction_header: str
    input_header: str
    response_header: str

    def render(self, spec, example, shots, fmt=CANONICAL):
        return self.item_renderer(spec, shots, fmt)(example)[:2]

    def render_messages(self, spec, example, shots, fmt=CANONICAL):
        """The instruction leads each user turn (follows it under ``instruction_after``); shots become
        prior turns."""
        return self.item_renderer(spec, shots, fmt, chat=True)(example).messages

    def item_renderer(self, spec, shots, fmt=CANONICAL, chat=False):
        t = fmt.headers(self)
        instruction = fmt.instruction(spec)
        shot_blocks = [fmt.render_input(spec, shot) for shot in shots]
        head = [t.preamble]
        if not fmt.instruction_after:
            head += [t.instruction_header, instruction]
        for text, gold in shot_blocks:
            head += [t.input_header, text, t.response_header, gold]
        head.append(t.input_header)
        tail = [t.instruction_header, instruction] if fmt.instruction_after else []
        tail.append(t.response_header)
        prefix, suffix = "".join(head), "".join(tail)

        def user(text: str) -> dict[str, str]:
            if not instruction:  # a prompt complete in itself (the `plain` template): the turn is the input
                return {"role": "user", "content": text}
            content = f"{text}\n\n{instruction}" if fmt.instruction_after else f"{instruction}\n\n{text}"
            return {"role": "user", "content": content}

        turns: list[dict[str, str]] = [{"role": "system", "content": spec.system_prompt}] if spec.system_prompt else []
        for text, gold in shot_blocks:
            turns += [user(text), {"role": "assistant", "content": gold}]
        canonical = fmt == CANONICAL

        def render_item(example):
            text, gold = fmt.render_input(spec, example)
            messages = (*(dict(m) for m in turns), user(text)) if chat else None  # fresh dicts per request
            shown = text if canonical else CANONICAL.render_input(spec, example)[0]
            return RenderedItem(prefix + text + suffix, gold, messages, shown)

        return render_item

    def hash_payload(self):
        return [self.preamble, self.instruction_header, self.input_header, self.response_header]

    def check_spec(self, spec):
        import re

        known = set(spec.fields.variables()) | {"choices"}
        for var in re.findall(r"{(\w+)}", spec.input):
            if var not in known:
                raise TemplateSpecError("input", f"placeholder {{{var}}} is not mapped under 'fields' "
                                                 f"(mapped: {', '.join(sorted(known))})")
        if "{choices}" in spec.input and spec.fields.choices is None:
            raise TemplateSpecError("fields.choices", "the input uses {choices} but no choice columns are mapped")


@dataclass(frozen=True)
class HarnessTemplate(PromptTemplate):
    """One of japanese-lm-med-harness's templates: its text verbatim, zero-shot, the question and the
    choices only, its answer cut (first line after the response marker) and its raw gold."""

    name: str
    text: str
    variants = False

    def render(self, spec, example, shots, fmt=CANONICAL):
        return render_harness_prompt(self.name, example.fields["question"], example.choices), example.gold

    def hash_payload(self):
        return [self.name, self.text]

    def spec_defaults(self):
        return {"instruction": "", "input": "{question}"}  # the template fills in question and choices

    def check_spec(self, spec):
        what = f"template {self.name!r} (japanese-lm-med-harness)"
        if "question" not in spec.fields.variables():
            raise TemplateSpecError("fields.question", f"{what} puts the question in its instruction slot: map a 'question' field")
        if spec.fields.choices is None:
            raise TemplateSpecError("fields.choices", f"{what} lists the choices: map 'choices'")
        if spec.fewshot.count:
            raise TemplateSpecError("fewshot.count", f"{what} is zero-shot; set 0")
        if spec.answer_pattern or spec.answer_extraction.preset != "first_paragraph":
            raise TemplateSpecError("answer_pattern" if spec.answer_pattern else "answer_extraction",
                                    f"{what} cuts the answer out as the harness does; remove it")

    def extraction(self, spec):
        return Extraction(preset="raw", normalize=False)  # the cut happens in `answer`

    def answer(self, extraction, prompt, output):
        # The harness decodes prompt + generation and cuts after its response marker.
        if extraction.reasoning is not None:
            stripped = extraction.apply(output)
            if not stripped.in_format:
                return stripped
            output = stripped.text
        text = harness_response(prompt + output)
        return Answer(text, bool(text))

    def gold(self, extraction, example):
        return example.gold  # the harness compares with its raw gold text


_BUILTIN_TEMPLATES: dict[str, PromptTemplate] = {
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
    **{name: HarnessTemplate(name, text) for name, text in HARNESS_TEMPLATES.items()},
}


def _check_template(name: str, obj: object) -> PromptTemplate:
    if not isinstance(obj, PromptTemplate):
        raise TypeError(f"expected a pytest_jallm.prompt.PromptTemplate (e.g. a Template), got {type(obj).__name__}")
    return obj


# Every `prompt_template` name: the built-ins and those installed packages add through the
# `pytest_jallm.templates` entry-point group.
TEMPLATES: Registry[PromptTemplate] = Registry("prompt template", "pytest_jallm.templates", _check_template)


def register_template(name: str, template: PromptTemplate) -> PromptTemplate:
    """Make `template` selectable as a spec's `prompt_template: name`."""
    return TEMPLATES.register(name, _check_template(name, template))


for _name, _template in _BUILTIN_TEMPLATES.items():
    register_template(_name, _template)


def template_names() -> list[str]:
    return list(TEMPLATES)


def harness_template_names() -> list[str]:
    """The names `--jallm-med-template` takes."""
    return [name for name in TEMPLATES if isinstance(TEMPLATES[name], HarnessTemplate)]


def template_of(spec: BenchmarkSpec) -> PromptTemplate:
    return TEMPLATES[spec.prompt_template]


# --- rendering (what the evaluation and the prompts command call) -----------------------------


def render_input(spec: BenchmarkSpec, example: Example, fmt: PromptFormat = CANONICAL) -> str:
    """The example's input block (no instruction, no few-shots) under ``fmt``."""
    return fmt.render_input(spec, example)[0]


def render(spec: BenchmarkSpec, example: Example, shots: Sequence[Example],
           fmt: PromptFormat = CANONICAL) -> tuple[str, str]:
    """``(prompt, gold)`` of ``example`` under ``fmt``."""
    return template_of(spec).render(spec, example, shots, fmt)


def render_prompt(spec: BenchmarkSpec, example: Example, shots: Sequence[Example], fmt: PromptFormat = CANONICAL) -> str:
    return render(spec, example, shots, fmt)[0]


def render_messages(spec: BenchmarkSpec, example: Example, shots: Sequence[Example],
                    fmt: PromptFormat = CANONICAL) -> Messages:
    return template_of(spec).render_messages(spec, example, shots, fmt)


def prompt_hash(
    spec: BenchmarkSpec, shots: Sequence[Example], chat: bool, shuffle_choices: int | None = None
) -> str:
    """Identifies everything about the prompt except the item itself."""
    payload = {
        "template": template_of(spec).hash_payload(),
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
    if shuffle_choices is not None:  # only when set, so unshuffled runs keep their stored hashes
        payload["shuffle_choices"] = shuffle_choices
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]
