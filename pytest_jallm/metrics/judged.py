"""judge_rating: an LLM judge's 1-10 rating, read as FastChat reads it."""

from __future__ import annotations

from typing import Any, Mapping

from .base import METRICS, Metric, MetricResult, mean

# LLM judge (FastChat's single-answer grading) -----------------------------------------------------


def _judge_rating(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    """The judge's 1-10 rating read from its judgment (``preds``: the judgments) as FastChat reads
    it, /10. The judged flow (chatjudge.flow) leaves out, counts and lists the judgments without a
    rating in 1-10 before it gets here; given one anyway, this scores it 0 (a metric never raises
    on model output)."""
    from ..chatjudge.fastchat import valid_rating

    scores = [(valid_rating(j) or 0.0) / 10 for j in preds]
    return MetricResult(mean(scores), scores)


METRICS.register("judge_rating", Metric("judge_rating", True, False, _judge_rating), origin=__name__)
