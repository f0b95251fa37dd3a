"""FastChat's single-answer grading, as Stability-AI/FastChat's jp-stable branch runs Japanese MT-Bench.

Followed (read, not copied): `fastchat/llm_judge/gen_judgment.py`, `common.py` and `show_result.py`
of Stability-AI/FastChat at commit e37eb28ee490480f6f4989274ed47c55f7dfce82 (branch jp-stable):

* Questions of the categories math, reasoning and coding (`NEED_REF_CATS`) are judged against a
  reference answer with `single-math-v1` (turn 1) and `single-math-v1-multi-turn` (turn 2); every
  other category with `single-v1` and `single-v1-multi-turn` (`make_judge_single`, `make_match_single`).
* A turn-1 judge prompt is the template formatted with `question` (the first user turn) and
  `answer` (the model's first answer); a turn-2 prompt with `question_1`, `question_2`,
  `answer_1`, `answer_2`; reference-based ones also get `ref_answer_1`, `ref_answer_2`
  (`run_judge_single`). The template's `system_prompt` is the system message, the rendered
  prompt the user message; temperature 0 and at most 2048 new tokens.
* The rating is the number in the first `[[n]]` of the judgment, else in the first `[n]`
  (`one_score_pattern`, `one_score_pattern_backup`); no match is -1. show_result drops -1 and
  averages the rest: per model, per turn and over both turns.

Two facts of that branch shape the spec: its Japanese prompt file `judge_ja_prompts.jsonl` holds
only `single-v1` and `single-math-v1`, so the turn-2 (`*-multi-turn`) prompts exist only in
FastChat's English `judge_prompts.jsonl`; and gen_judgment's `if 1 in turns … elif 2 in turns`
judges turn 2 only when turn 1 is not asked for, which is why every recorded judgment of the
branch is a turn-1 judgment.

Where this differs from FastChat, on judgments FastChat itself mishandles: a rating outside 1-10
("[[0]]", "[[100]]") is unscorable here, where FastChat would average it; and the number is read
with float(), so "[[07]]" or full-width digits give 7 where FastChat's ast.literal_eval raises.

This module imports nothing from the project: the metric, the loaders and the flow use it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import string
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import JallmError

NEED_REF_CATS = ("math", "reasoning", "coding")
# The leaderboards' radar order (FastChat's MT-Bench radar): axes clockwise from the top.
CATEGORY_ORDER = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
JUDGE_MAX_NEW_TOKENS = 2048  # chat_compeletion_openai(..., temperature=0, max_tokens=2048)
RATING_FORMATS = ("[[rating]]", "[[評価]]")  # the output formats FastChat parses with the patterns below
UNSCORABLE = -1  # FastChat's rating when no pattern matches

# (turn, judged against a reference) -> the judge prompt's name in FastChat's prompt files
PROMPT_NAMES = {
    (1, False): "single-v1",
    (1, True): "single-math-v1",
    (2, False): "single-v1-multi-turn",
    (2, True): "single-math-v1-multi-turn",
}

_RATING = re.compile(r"\[\[(\d+\.?\d*)\]\]")
_RATING_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")

_FIELDS = {
    1: {"question", "answer", "ref_answer_1", "ref_answer_2"},
    2: {"question_1", "question_2", "answer_1", "answer_2", "ref_answer_1", "ref_answer_2"},
}


class JudgePromptError(JallmError, ValueError):
    """A judge prompt file or template that cannot be used; the message names the file and prompt."""


@dataclass(frozen=True)
class JudgePrompt:
    """One entry of a FastChat judge prompt file (JSON Lines)."""

    name: str
    system_prompt: str
    template: str
    output_format: str
    where: str = ""  # the file it came from, for messages

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "system_prompt": self.system_prompt, "prompt_template": self.template,
                "output_format": self.output_format}


def judge_prompts_from_rows(rows: Sequence[Mapping[str, Any]], where: str) -> dict[str, JudgePrompt]:
    """The prompts of one file by name; a missing field or a repeated name is an error naming the row."""
    out: dict[str, JudgePrompt] = {}
    for i, row in enumerate(rows):
        name = row.get("name")
        if not isinstance(name, str) or not name:
            raise JudgePromptError(f"{where}: row {i}: no 'name' (a FastChat judge prompt has name, type, "
                                   "system_prompt, prompt_template, output_format)")
        values = {}
        for key in ("system_prompt", "prompt_template", "output_format"):
            value = row.get(key)
            if not isinstance(value, str):
                raise JudgePromptError(f"{where}: judge prompt {name!r}: '{key}' is missing or not text")
            values[key] = value
        if name in out:
            raise JudgePromptError(f"{where}: judge prompt {name!r} appears twice (rows {out[name].where} and {i})")
        out[name] = JudgePrompt(name, values["system_prompt"], values["prompt_template"], values["output_format"],
                                where=f"{where}, row {i}")
    return out


def uses_reference(category: str, reference_categories: Sequence[str] = NEED_REF_CATS) -> bool:
    return category in reference_categories


def select_prompt(prompts: Mapping[str, JudgePrompt], turn: int, with_reference: bool, where: str) -> JudgePrompt:
    """The prompt gen_judgment uses for ``turn`` (1 or 2), checked to be one FastChat can rate with."""
    name = PROMPT_NAMES[(turn, with_reference)]
    if name not in prompts:
        raise JudgePromptError(f"{where}: has no judge prompt {name!r}, which turn {turn} of "
                               f"{'reference-based' if with_reference else 'general'} questions needs "
                               f"(it has: {', '.join(sorted(prompts)) or 'none'})")
    prompt = prompts[name]
    if prompt.output_format not in RATING_FORMATS:
        raise JudgePromptError(f"{prompt.where}: judge prompt {name!r} has output_format {prompt.output_format!r}; "
                               f"single-answer grading reads a rating in one of {', '.join(RATING_FORMATS)}")
    check_template(prompt, turn, with_reference)
    return prompt


def check_template(prompt: JudgePrompt, turn: int, with_reference: bool) -> None:
    """Every placeholder is one of the names FastChat fills for that turn (no attribute or index
    access: the template comes from a file), and a reference-based one asks for the reference."""
    allowed = _FIELDS[turn] if with_reference else _FIELDS[turn] - {"ref_answer_1", "ref_answer_2"}
    try:
        parsed = list(string.Formatter().parse(prompt.template))
    except ValueError as e:
        raise JudgePromptError(f"{prompt.where}: judge prompt {prompt.name!r}: not a format template ({e})") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in allowed or spec or conversion:
            raise JudgePromptError(
                f"{prompt.where}: judge prompt {prompt.name!r}: placeholder {{{field}}} is not one FastChat fills "
                f"for turn {turn}{' with a reference' if with_reference else ''} (allowed: {', '.join(sorted(allowed))})")


def render_judge_prompt(prompt: JudgePrompt, questions: Sequence[str], answers: Sequence[str],
                        references: Sequence[str] | None, turn: int) -> str:
    """The user message FastChat's run_judge_single sends for ``turn`` (1: single, 2: multi-turn)."""
    values: dict[str, str] = {}
    if references is not None:
        for i, ref in enumerate(references[:2], 1):
            values[f"ref_answer_{i}"] = ref
    if turn == 1:
        values.update(question=questions[0], answer=answers[0])
    else:
        values.update(question_1=questions[0], question_2=questions[1], answer_1=answers[0], answer_2=answers[1])
    parts = []
    for literal, field, _, _ in string.Formatter().parse(prompt.template):
        parts.append(literal)
        if field is not None:
            if field not in values:
                raise JudgePromptError(f"{prompt.where}: judge prompt {prompt.name!r} needs {{{field}}}, "
                                       "which this question has no text for")
            parts.append(values[field])
    return "".join(parts)


def parse_rating(judgment: str) -> float | None:
    """The judge's rating as FastChat reads it: the first ``[[n]]``, else the first ``[n]``; None when
    neither is there (FastChat's -1). The number is read with float(), never evaluated."""
    match = _RATING.search(judgment) or _RATING_BACKUP.search(judgment)
    if match is None:
        return None
    try:
        return float(match.group(1))
    except ValueError:  # pragma: no cover - the pattern only matches digits
        return None


RATING_RANGE = (1.0, 10.0)


def valid_rating(judgment: str) -> float | None:
    """:func:`parse_rating`, or None when the number is outside the 1-10 scale the prompts ask for
    (FastChat would average a "[[0]]" or a "[[100]]"; here they are unscorable, counted and listed)."""
    rating = parse_rating(judgment)
    if rating is None or not RATING_RANGE[0] <= rating <= RATING_RANGE[1]:
        return None
    return rating


def unscorable_reason(judgment: str) -> str | None:
    """Why a judgment gives no rating, or None when it gives one."""
    rating = parse_rating(judgment)
    if rating is None:
        return "no [[rating]] in the judgment"
    if not RATING_RANGE[0] <= rating <= RATING_RANGE[1]:
        return f"rating {rating:g} is outside 1-10"
    return None


def prompts_version(prompts: Iterable[JudgePrompt]) -> str:
    """sha256 (16 hex digits) of the judge prompts used: their names, system prompts, templates
    and output formats. Any edit to them makes a baseline stale."""
    payload = sorted((p.as_dict() for p in prompts), key=lambda d: d["name"])
    blob = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def show_result(ratings: Iterable[tuple[str, int, float]]) -> dict[str, Any]:
    """The averages FastChat reports from (category, turn, rating) of the scored judgments: over
    both turns (show_result's "Average"), per turn, and per category over both turns (the radar),
    on FastChat's 1-10 scale. Unscorable judgments must not be passed in."""
    rows = list(ratings)
    turns = sorted({t for _, t, _ in rows})
    cats = [c for c in CATEGORY_ORDER if any(r[0] == c for r in rows)]
    cats += sorted({c for c, _, _ in rows} - set(cats))
    return {
        "average": mean([s for _, _, s in rows]),
        "turns": {str(t): mean([s for _, tt, s in rows if tt == t]) for t in turns},
        "categories": {c: mean([s for cc, _, s in rows if cc == c]) for c in cats},
    }
