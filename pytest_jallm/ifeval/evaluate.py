"""Strict and loose evaluation of one prompt's response, and the four figures M-IFEval reports.

Follows lightblue-tech/M-IFEval at 0bc3143a919eef2f9ec64aa26da8a546086653de, ``evaluation_main.py``:
``test_instruction_following_strict`` / ``_loose`` (the verdicts), ``print_report`` (prompt-level
and instruction-level accuracy), ``read_prompt_list`` / ``read_prompt_to_response_dict`` (the
files). Written for this project.

* strict: an instruction is followed when the response is a string that is not blank and its
  check holds on the response as it is.
* loose: followed when the check holds on any non-blank one of eight variants: the response,
  the response without ``*``, without its first line, without its last line, without both (each
  of the three stripped), and those three without ``*``.
* A response that is not a string (the reference's OpenAI client records ``None`` on an API
  error) follows nothing.
* prompt-level accuracy: the share of prompts whose instructions are all followed;
  instruction-level: followed instructions over all instructions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .instructions import Instruction, InstructionArgsError, build
from .text import TooLongToTokenise

__all__ = [
    "Evaluation",
    "Figures",
    "InputError",
    "PromptInput",
    "PromptResult",
    "evaluate",
    "evaluate_responses",
    "figures",
    "loose_variants",
    "read_inputs",
    "read_responses",
    "reference_figures",
]

MODES = ("strict", "loose")


class InputError(ValueError):
    """An M-IFEval input or response file (or row) that is not what the reference reads."""


@dataclass(frozen=True)
class PromptInput:
    """One row of ``ja_input_data.jsonl``, its checkers built (so bad kwargs fail on reading)."""

    key: Any
    prompt: str
    instruction_id_list: tuple[str, ...]
    kwargs: tuple[Mapping[str, Any], ...]
    checkers: tuple[Instruction, ...]

    @classmethod
    def from_row(cls, row: Any, where: str = "row") -> "PromptInput":
        if not isinstance(row, Mapping):
            raise InputError(f"{where}: expected an object with key, prompt, instruction_id_list, kwargs; "
                             f"got {type(row).__name__}")
        for field in ("key", "prompt", "instruction_id_list", "kwargs"):
            if field not in row:
                raise InputError(f"{where}: field {field!r} is missing")
        prompt, ids, kwargs = row["prompt"], row["instruction_id_list"], row["kwargs"]
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError(f"{where}: field 'prompt' must be a non-empty string, got {prompt!r:.80}")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise InputError(f"{where}: field 'instruction_id_list' must be a non-empty list of ids, got {ids!r:.120}")
        if not isinstance(kwargs, list) or len(kwargs) != len(ids):
            raise InputError(f"{where}: field 'kwargs' must be a list with one object per instruction "
                             f"({len(ids)}), got {kwargs!r:.120}")
        checkers = []
        for n, (instruction_id, args) in enumerate(zip(ids, kwargs, strict=True)):
            try:
                checkers.append(build(instruction_id, args))
            except InstructionArgsError as e:
                raise InputError(f"{where}: instruction_id_list[{n}]/kwargs[{n}]: {e}") from None
        return cls(row["key"], prompt, tuple(ids), tuple(dict(a) for a in kwargs), tuple(checkers))

    def row(self) -> dict[str, Any]:
        return {"key": self.key, "prompt": self.prompt, "instruction_id_list": list(self.instruction_id_list),
                "kwargs": [dict(a) for a in self.kwargs]}


@dataclass(frozen=True)
class PromptResult:
    """One prompt's verdicts under one mode (the reference's OutputExample, less the texts)."""

    key: Any
    mode: str
    instruction_id_list: tuple[str, ...]
    follow_instruction_list: tuple[bool, ...]
    # per instruction: why it was not checked ("" when it was); only TooLongToTokenise for now
    notes: tuple[str, ...]

    @property
    def follow_all_instructions(self) -> bool:
        return all(self.follow_instruction_list)

    def failed(self) -> list[str]:
        return [i for i, ok in zip(self.instruction_id_list, self.follow_instruction_list, strict=True) if not ok]

    def explain(self) -> str:
        """One line: which instructions were not followed (the per-item detail of a metric)."""
        n = len(self.instruction_id_list)
        if self.follow_all_instructions:
            return f"{self.mode}: all {n} instruction(s) followed"
        parts = [f"{i} ({note})" if note else i for i, ok, note in
                 zip(self.instruction_id_list, self.follow_instruction_list, self.notes, strict=True) if not ok]
        return f"{self.mode}: {len(parts)} of {n} not followed: {', '.join(parts)}"


def loose_variants(response: str) -> list[str]:
    """The eight texts the loose evaluation tries, in the reference's order."""
    lines = response.split("\n")
    without_first = "\n".join(lines[1:]).strip()
    without_last = "\n".join(lines[:-1]).strip()
    without_both = "\n".join(lines[1:-1]).strip()
    return [
        response,
        response.replace("*", ""),
        without_first,
        without_last,
        without_both,
        without_first.replace("*", ""),
        without_last.replace("*", ""),
        without_both.replace("*", ""),
    ]


def _holds(checker: Instruction, text: str, notes: list[str]) -> bool:
    try:
        return checker.check(text)
    except TooLongToTokenise as e:  # not checked: counts as not followed, and says so
        notes.append(str(e))
        return False


def evaluate(inp: PromptInput, response: Any, mode: str) -> PromptResult:
    """The verdict on each of the prompt's instructions, strict or loose."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not isinstance(response, str):
        texts: list[str] = []
    elif mode == "strict":
        texts = [response]
    else:
        texts = loose_variants(response)
    follows, notes = [], []
    for checker in inp.checkers:
        why: list[str] = []
        followed = any(t.strip() and _holds(checker, t, why) for t in texts)
        follows.append(followed)
        notes.append("" if followed or not why else why[0])
    return PromptResult(inp.key, mode, inp.instruction_id_list, tuple(follows), tuple(notes))


@dataclass(frozen=True)
class Figures:
    """The four figures, as fractions (the reference prints them so); ``percent()`` for x100."""

    prompt_strict: float
    inst_strict: float
    prompt_loose: float
    inst_loose: float
    prompts: int
    instructions: int

    def percent(self) -> dict[str, float]:
        return {k: 100 * getattr(self, k) for k in ("prompt_strict", "inst_strict", "prompt_loose", "inst_loose")}


def _levels(results: Sequence[PromptResult]) -> tuple[float, float]:
    if not results:
        return 0.0, 0.0
    prompt = sum(r.follow_all_instructions for r in results) / len(results)
    total = sum(len(r.follow_instruction_list) for r in results)
    followed = sum(sum(r.follow_instruction_list) for r in results)
    return prompt, (followed / total if total else 0.0)


def figures(strict: Sequence[PromptResult], loose: Sequence[PromptResult]) -> Figures:
    """print_report's prompt-level and instruction-level accuracy of both evaluations."""
    if len(strict) != len(loose):
        raise ValueError(f"{len(strict)} strict results but {len(loose)} loose ones")
    ps, is_ = _levels(strict)
    pl, il = _levels(loose)
    return Figures(ps, is_, pl, il, len(strict), sum(len(r.instruction_id_list) for r in strict))


# -- files -----------------------------------------------------------------------------------------


def _jsonl(path: Path) -> Iterable[tuple[int, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"{path}: line {n}: not JSON: {e}") from None


def read_inputs(source: str | Path | Iterable[Mapping[str, Any]]) -> list[PromptInput]:
    """``ja_input_data.jsonl`` (a path) or its rows, checked; prompts must be unique (the
    reference matches responses to inputs by prompt)."""
    if isinstance(source, (str, Path)):
        rows = [(f"{source}: line {n}", row) for n, row in _jsonl(Path(source))]
    else:
        rows = [(f"row {n}", row) for n, row in enumerate(source)]
    inputs: list[Any] = []
    seen: dict[Any, Any] = {}
    for where, row in rows:
        inp = PromptInput.from_row(row, where)
        if inp.prompt in seen:
            raise InputError(f"{where}: the same prompt as {seen[inp.prompt]}: responses are matched by prompt")
        seen[inp.prompt] = where
        inputs.append(inp)
    return inputs


def read_responses(source: str | Path | Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """prompt -> response: ``ja_input_response_data_<model>.jsonl`` (a path), its rows
    (``{"prompt", "response"}``), or such a mapping already. A later row for the same prompt
    wins, as in the reference's dict."""
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (str, Path)):
        rows = [(f"{source}: line {n}", row) for n, row in _jsonl(Path(source))]
    else:
        rows = [(f"row {n}", row) for n, row in enumerate(source)]
    out: dict[str, Any] = {}
    for where, row in rows:
        if not isinstance(row, Mapping) or not isinstance(row.get("prompt"), str) or "response" not in row:
            raise InputError(f"{where}: expected an object with 'prompt' (a string) and 'response'")
        out[row["prompt"]] = row["response"]
    return out


@dataclass(frozen=True)
class Evaluation:
    strict: list[PromptResult]
    loose: list[PromptResult]
    figures: Figures


def evaluate_responses(responses: Any, inputs: Any) -> Evaluation:
    """Every input prompt's strict and loose verdicts on its response, and the four figures.

    ``responses``: a response file, its rows or a prompt -> response mapping; ``inputs``: the
    input file or its rows (or :class:`PromptInput` objects). A prompt without a response is an
    error naming it (the reference fails with a KeyError)."""
    prompts = inputs if isinstance(inputs, list) and all(isinstance(i, PromptInput) for i in inputs) \
        else read_inputs(inputs)
    answers = read_responses(responses)
    missing = [inp.key for inp in prompts if inp.prompt not in answers]
    if missing:
        raise InputError(f"no response for {len(missing)} of {len(prompts)} prompts (keys {missing[:10]})")
    strict = [evaluate(inp, answers[inp.prompt], "strict") for inp in prompts]
    loose = [evaluate(inp, answers[inp.prompt], "loose") for inp in prompts]
    return Evaluation(strict, loose, figures(strict, loose))


def reference_figures(responses: Any, inputs: Any) -> Figures:
    """The four figures the reference prints for a (responses, input) pair, as fractions."""
    return evaluate_responses(responses, inputs).figures
