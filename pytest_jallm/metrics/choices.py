"""Answers among choices: Gestalt similarity, IgakuQA's answer sets, japanese-lm-med-harness's
evaluate()."""

from __future__ import annotations

import difflib
import math
import re
from typing import Any, Callable, Mapping, Sequence

from ..answers import as_str, normalize
from .base import METRICS, Metric, MetricResult, mean, per_item

# Gestalt (Ratcliff/Obershelp) ------------------------------------------------------------------


def gestalt_ratio(a: str, b: str) -> float:
    """Ratcliff/Obershelp similarity 2*M/(|a|+|b|) (difflib, default autojunk); 1.0 for two empties."""
    return difflib.SequenceMatcher(None, as_str(a), as_str(b)).ratio()


def _answer_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _most_similar(choices: list[str], text: str) -> str:
    """The choice most similar to ``text`` (the first on ties, as ``max`` gives)."""
    return max(choices, key=lambda c: gestalt_ratio(text, c))


def _gestalt_accuracy(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    scores: list[float] = []
    for i, (pred, gold, ctx) in enumerate(zip(preds, golds, contexts, strict=True)):
        normed = _context_choices("gestalt_accuracy", i, ctx, "(use gestalt_score for the plain similarity)")
        gold_lines = _answer_lines(gold)
        if len(gold_lines) <= 1:
            best = max(normed, key=lambda c: gestalt_ratio(pred, c))
            scores.append(1.0 if best == gold else 0.0)
            continue
        # Several correct choices: each answer line is mapped to its most similar choice.
        mapped = {_most_similar(normed, line) for line in _answer_lines(pred)}
        scores.append(1.0 if mapped == set(gold_lines) else 0.0)
    return MetricResult(mean(scores), scores)


# choice sets (IgakuQA) -------------------------------------------------------------------------

_LETTER_LIST = re.compile(r"^[a-z](?:\s*[,、]\s*[a-z])*$")
_LABELLED = re.compile(r"^([a-z])\s*[.)]\s*(.+)$")


def _context_choices(metric: str, i: int, ctx: Mapping[str, Any], hint: str = "") -> list[str]:
    choices = ctx.get("choices")
    if not isinstance(choices, (list, tuple)) or not choices:
        raise ValueError(
            f"{metric}: item {i} has no 'choices' in its context; the metric maps the answer to the "
            f"choices {hint}".rstrip()
        )
    return [normalize(as_str(c)) for c in choices]


def choice_letters(pred: str, choices: Sequence[str]) -> list[str]:
    """The answer letters of a (normalised) response, sorted; a line naming no choice stays as text.

    A response is IgakuQA's own form (``"b,e"``) or one answer per line, each the choice's text,
    ``"b. text"`` (the prompt's label and the text) or a lone letter.
    """
    letters = [chr(ord("a") + k) for k in range(len(choices))]
    lines = _answer_lines(pred)
    if len(lines) == 1 and _LETTER_LIST.match(lines[0].lower()):
        return sorted(re.split(r"\s*[,、]\s*", lines[0].lower()))
    out = []
    for line in lines:
        if line in choices:
            out.append(letters[choices.index(line)])
            continue
        labelled = _LABELLED.match(line)
        low = line.lower()
        if labelled and labelled.group(1).lower() in letters and normalize(labelled.group(2)) == choices[letters.index(labelled.group(1).lower())]:
            out.append(labelled.group(1).lower())
        elif low in letters:
            out.append(low)
        else:
            out.append("\x00" + line)  # names no choice: never equal to a gold letter
    return sorted(out)


def _gold_letters(i: int, gold: str, ctx: Mapping[str, Any], choices: list[str]) -> list[list[str]]:
    """Every accepted answer (a sorted letter list): the gold, then any alternative the data allows."""
    accepted = ctx.get("accepted_answers")
    if isinstance(accepted, (list, tuple)) and accepted:
        return [sorted(str(a).lower() for a in alt) for alt in accepted]
    letters = ctx.get("answer_letters")
    if isinstance(letters, (list, tuple)) and letters:
        return [sorted(str(a).lower() for a in letters)]
    return [choice_letters(gold, choices)]


def _choice_set(partial: bool) -> Callable[..., MetricResult]:
    name = "choice_set_f1" if partial else "choice_set_accuracy"

    def run(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
        scores: list[float] = []
        for i, (pred, gold, ctx) in enumerate(zip(preds, golds, contexts, strict=True)):
            choices = _context_choices(name, i, ctx, "to read it as answer letters")
            if ctx.get("any_answer_correct"):
                scores.append(1.0)
                continue
            answer = choice_letters(pred, choices)
            best = 0.0
            for accepted in _gold_letters(i, gold, ctx, choices):
                if answer == accepted:
                    best = 1.0
                elif partial and answer:
                    hits = len(set(answer) & set(accepted))
                    best = max(best, 2 * hits / (len(set(answer)) + len(set(accepted))))
            scores.append(best)
        return MetricResult(mean(scores), scores)

    return run


def _choice_set_points(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    right = _choice_set(partial=False)(preds, golds, contexts).per_item or []
    points = [float(ctx.get("points", 1)) for ctx in contexts]
    total = math.fsum(points)
    return MetricResult(math.fsum(p * r for p, r in zip(points, right, strict=True)) / total if total else 0.0, None)


# japanese-lm-med-harness's evaluate() ------------------------------------------------------------


def _harness_gestalt_match(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    from ..medharness import gestalt_match_item, harness_gold

    scores: list[float] = []
    for i, (pred, gold, ctx) in enumerate(zip(preds, golds, contexts, strict=True)):
        choices = ctx.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ValueError(f"gestalt_match: item {i} has no 'choices' in its context (the harness picks among them)")
        scores.append(gestalt_match_item(pred, harness_gold(gold, ctx), [as_str(c) for c in choices]))
    return MetricResult(mean(scores), scores)


def _harness_exact(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    from ..medharness import harness_exact_match_item, harness_gold

    scores = [harness_exact_match_item(p, harness_gold(g, c)) for p, g, c in zip(preds, golds, contexts, strict=True)]
    return MetricResult(mean(scores), scores)


METRICS.register("gestalt_score", Metric("gestalt_score", True, False, per_item(gestalt_ratio)), origin=__name__)
METRICS.register("gestalt_accuracy", Metric("gestalt_accuracy", True, True, _gestalt_accuracy), origin=__name__)
METRICS.register("choice_set_accuracy", Metric("choice_set_accuracy", True, True, _choice_set(partial=False)), origin=__name__)
METRICS.register("choice_set_f1", Metric("choice_set_f1", True, False, _choice_set(partial=True)), origin=__name__)
METRICS.register("choice_set_points", Metric("choice_set_points", False, False, _choice_set_points), origin=__name__)
METRICS.register("gestalt_match", Metric("gestalt_match", True, True, _harness_gestalt_match), origin=__name__)
METRICS.register("harness_exact_match", Metric("harness_exact_match", True, True, _harness_exact), origin=__name__)
