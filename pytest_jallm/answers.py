"""From a model's output to the answer the metrics score: a pipeline of named steps.

    remove reasoning  ->  extract (a preset or the spec's pattern)  ->  normalise

as lm-evaluation-harness's filters chain. Each step can say "nothing here" (an unclosed reasoning
block, a pattern that does not match, JSON that does not parse): the item is then *out of format*,
its answer is ``""``, and the benchmark's out-of-format rate counts it.

The presets are named as llm-jp-eval 2.x names its answer patterns (``answer_tags``,
``choice_only``, ``json_output``, ``code_output``, ``latex_boxed``, ``custom``); each comes with the
sentence a prompt adds to ask for that format (Japanese and English). ``first_paragraph`` is
llm-jp-eval 1.3.0's cut (the default, leaderboard parity) and ``raw`` hands the whole output to
metrics that judge the response itself (instruction following). The regular expressions are this
project's (docs/catalog.md, "Answer extraction"), checked against the examples llm-jp-eval's own
tests give.

Model output is untrusted: patterns run on the ``regex`` engine with a time limit, JSON is parsed
with ``json`` (never evaluated), and nothing here raises on the text it is given.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Callable, Mapping, Sequence

import regex

from .errors import JallmError

__all__ = [
    "ANSWER_PATTERN_TIMEOUT_S",
    "Answer",
    "AnswerPatternTimeout",
    "Extraction",
    "PRESETS",
    "Reasoning",
    "as_str",
    "extract_answer",
    "normalize",
    "out_of_choice",
    "strip_reasoning",
    "strip_think",
]


# --- text ------------------------------------------------------------------------------------

_SURROGATES = re.compile("[\ud800-\udfff]")


def clean_surrogates(text: str) -> str:
    """Join valid surrogate pairs into their code point, replace lone surrogates with U+FFFD."""
    if not _SURROGATES.search(text):
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def as_str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def normalize(text: str) -> str:
    """Unicode NFKC, then ``strip()`` -- llm-jp-eval's normalisation of pred and gold.

    Never raises: lone surrogates (not valid Unicode text, and fatal to UTF-8 encoders such as
    MeCab's or a JSON writer's) become U+FFFD; control characters are kept as they are.
    """
    text = clean_surrogates(as_str(text))
    return unicodedata.normalize("NFKC", text).strip()


# --- bounded patterns ------------------------------------------------------------------------

ANSWER_PATTERN_TIMEOUT_S = 1.0  # per model output; a sane pattern needs microseconds


class AnswerPatternTimeout(JallmError, ValueError):
    """A spec's answer pattern backtracked past :data:`ANSWER_PATTERN_TIMEOUT_S` on one output."""

    def __init__(self, pattern: str, chars: int, where: str = "") -> None:
        self.pattern, self.chars = pattern, chars
        super().__init__(
            f"{where + ': ' if where else ''}answer_pattern {pattern!r} did not finish within "
            f"{ANSWER_PATTERN_TIMEOUT_S:g} s on a model output of {chars} characters (catastrophic "
            "backtracking?): rewrite the pattern without nested quantifiers"
        )


@lru_cache(maxsize=256)
def _compile(pattern: str) -> Any:
    # The `regex` engine (re-compatible syntax) because its matching takes a timeout: a spec's
    # pattern meets untrusted model output, and `re` can backtrack for hours.
    return regex.compile(pattern, regex.DOTALL)


def _search(pattern: str, text: str) -> Any:
    try:
        return _compile(pattern).search(text, timeout=ANSWER_PATTERN_TIMEOUT_S)
    except TimeoutError:
        raise AnswerPatternTimeout(pattern, len(text)) from None


def extract_answer(text: str, pattern: str | None = None) -> str:
    """The answer part of a model's output.

    Without ``pattern``: llm-jp-eval's first paragraph -- split on ``"\\n\\n"``, take the first part,
    strip.  With ``pattern`` (llm-jp-eval v2's ``answer_extract_pattern``): the first match
    (``re.search`` with ``re.DOTALL``) and its group 1, stripped; the whole match when the pattern
    has no group; ``""`` when nothing matches or the group did not take part in the match.
    ``text`` may be anything; an invalid ``pattern`` is a configuration error and raises
    ``regex.error``; matching is bounded: :class:`AnswerPatternTimeout` after
    :data:`ANSWER_PATTERN_TIMEOUT_S` seconds.
    """
    text = as_str(text)
    if pattern is None:
        return text.split("\n\n", 1)[0].strip()
    match = _search(pattern, text)
    if match is None:
        return ""
    value = match.group(1) if match.re.groups >= 1 else match.group(0)
    return (value or "").strip()


# --- step 1: reasoning -----------------------------------------------------------------------


@dataclass(frozen=True)
class Reasoning:
    """Where a reasoning model's thinking ends. ``start`` empty: the chat template opened the block
    (or the model never writes one), so everything up to the first ``end`` is reasoning."""

    start: str = "<think>"
    end: str = "</think>"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


THINK = Reasoning()


def strip_reasoning(text: str, reasoning: Reasoning = THINK) -> tuple[str, bool]:
    """``(answer part, ok)``: the output without its leading reasoning block.

    * ``start`` leads the output (after whitespace) and ``end`` follows: what comes after ``end``,
      left-stripped, so the answer that follows is the first paragraph;
    * ``start`` leads but ``end`` never comes: the model never got to an answer: ``("", False)``;
    * ``start`` is empty and ``end`` occurs: what comes after its first occurrence;
    * otherwise the text is returned unchanged (a model that did not think this time).
    """
    text = as_str(text)
    body = text.lstrip()
    if reasoning.start and body.startswith(reasoning.start):
        cut = body.find(reasoning.end, len(reasoning.start)) if reasoning.end else -1
        if cut < 0:
            return "", False
        return body[cut + len(reasoning.end):].lstrip(), True
    if not reasoning.start and reasoning.end:
        cut = text.find(reasoning.end)
        if cut >= 0:
            return text[cut + len(reasoning.end):].lstrip(), True
    return text, True


def strip_think(text: str) -> str:
    """A reasoning model's output without its leading ``<think>…</think>`` block (``""`` when the
    block is never closed); anything else unchanged."""
    return strip_reasoning(text, THINK)[0]


# --- step 2: presets -------------------------------------------------------------------------


def _first_paragraph(text: str, _: "Extraction") -> str | None:
    answer = text.split("\n\n", 1)[0].strip()
    return answer or None


def _raw(text: str, _: "Extraction") -> str | None:
    return text if text.strip() else None


def _custom(text: str, ex: "Extraction") -> str | None:
    assert ex.pattern is not None  # checked when the spec is read
    # Group 1 (the whole match without groups), as extract_answer; llm-jp-eval 2.x joins all groups,
    # which is the same for the one-group patterns its presets use.
    return extract_answer(text, ex.pattern) or None


def _answer_tags(text: str, _: "Extraction") -> str | None:
    match = _search(r"<answer>(.*?)</answer>", text)
    return (match.group(1).strip() or None) if match else None


def _choice_only(text: str, _: "Extraction") -> str | None:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return None


_FENCE = r"```[ \t]*{lang}[^\n]*\n(.*?)```"


def _json_output(text: str, ex: "Extraction") -> str | None:
    candidates = []
    fenced = _search(_FENCE.format(lang="json"), text)
    if fenced:
        candidates.append(fenced.group(1))
    start = text.find("{")
    if start >= 0:
        candidates.append(text[start:])
    for blob in candidates:
        try:
            value, _end = json.JSONDecoder().raw_decode(blob.strip())
        except ValueError:
            continue
        if isinstance(value, dict) and ex.json_key in value:
            found = value[ex.json_key]
            if isinstance(found, list):
                return "\n".join(as_str(v) for v in found) or None
            return (found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)).strip() or None
    return None


def _code_output(text: str, _: "Extraction") -> str | None:
    match = _search(_FENCE.format(lang=r"(?:[\w+#.-]*)"), text)
    return (match.group(1).strip("\n") or None) if match else None


def _latex_boxed(text: str, _: "Extraction") -> str | None:
    start = text.rfind("\\boxed{")  # the last one: a model may box intermediate results
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1:j].strip() or None
    return None


@dataclass(frozen=True)
class Preset:
    extract: Callable[[str, "Extraction"], "str | None"]
    ask_ja: str = ""  # the sentence a prompt adds to ask for this format
    ask_en: str = ""


PRESETS: dict[str, Preset] = {
    "first_paragraph": Preset(_first_paragraph),
    "raw": Preset(_raw),
    "custom": Preset(_custom),
    "answer_tags": Preset(_answer_tags, "<answer></answer>タグで囲んで回答してください。",
                          "Enclose your final answer in <answer></answer> tags."),
    "choice_only": Preset(_choice_only, "選択肢の番号または文字のみで回答してください。",
                          "Answer with the number or letter of the choice only."),
    "json_output": Preset(_json_output, '回答は {"answer": "..."} の形式のJSONで出力してください。',
                          'Output your answer as JSON of the form {"answer": "..."}.'),
    "code_output": Preset(_code_output, "回答のコードは```で囲んだコードブロックに書いてください。",
                          "Write your code in a fenced code block (```)."),
    "latex_boxed": Preset(_latex_boxed, "最終的な答えを \\boxed{} に入れてください。",
                          "Put your final answer in \\boxed{}."),
}


# --- the pipeline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    text: str  # what the metrics score ("" when out of format)
    in_format: bool  # False: no answer could be extracted


@dataclass(frozen=True)
class Extraction:
    """One benchmark's steps from output to answer (see the module docstring)."""

    preset: str = "first_paragraph"
    pattern: str | None = None  # the `custom` preset's regex (group 1 or the groups joined)
    json_key: str = "answer"
    normalize: bool = True  # NFKC + strip, as llm-jp-eval; off for metrics that read the response as written
    reasoning: Reasoning | None = None  # None: no reasoning removal

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ValueError(f"unknown answer extraction preset {self.preset!r}; expected one of {', '.join(PRESETS)}")
        if (self.preset == "custom") != (self.pattern is not None):
            raise ValueError("the 'custom' preset needs a pattern, and only it takes one")

    def steps(self) -> list[str]:
        """The pipeline as names, for reports and docs."""
        out = [f"remove reasoning ({self.reasoning.start or '…'}…{self.reasoning.end})"] if self.reasoning else []
        out.append(self.preset if self.preset != "custom" else f"custom {self.pattern!r}")
        if self.normalize:
            out.append("NFKC")
        return out

    def apply(self, output: Any) -> Answer:
        text = clean_surrogates(as_str(output))
        if self.reasoning is not None:
            text, ok = strip_reasoning(text, self.reasoning)
            if not ok:
                return Answer("", False)
        value = PRESETS[self.preset].extract(text, self)
        if value is None:
            return Answer("", False)
        return Answer(normalize(value) if self.normalize else value, True)

    def provenance(self) -> dict[str, Any]:
        """How outputs became answers, as results and baselines record it (a change makes a baseline
        stale; generation, and so the cache, is unaffected)."""
        out: dict[str, Any] = {"preset": self.preset, "normalize": self.normalize}
        if self.pattern is not None:
            out["pattern"] = self.pattern
        if self.preset == "json_output":
            out["json_key"] = self.json_key
        if self.reasoning is not None:
            out["reasoning"] = self.reasoning.as_dict()
        return out


# --- out of choice ---------------------------------------------------------------------------


def out_of_choice(preds: Sequence[str], labels: Sequence[str] | None) -> list[bool]:
    """Per item: is the answer outside the label set (llm-jp-eval's ``<dataset>_ool``)?

    With labels: the normalised prediction is not among the normalised labels.  With no labels
    (``None`` or empty): an empty prediction counts as out of choice.
    """
    if labels:
        allowed = {normalize(label) for label in labels}
        return [normalize(p) not in allowed for p in preds]
    return [normalize(p) == "" for p in preds]


def preset_names() -> list[str]:
    return list(PRESETS)


def ask_for(preset: str, language: str) -> str:
    """The sentence that asks for ``preset``'s format in ``language`` ("" when it has none)."""
    p = PRESETS[preset]
    return p.ask_en if language == "en" else p.ask_ja


def extraction_from(config: Mapping[str, Any]) -> Extraction:
    return Extraction(**config)
