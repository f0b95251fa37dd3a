"""Scoring a benchmark's outputs: the template's answer extraction, the spec's metrics, the
out-of-choice and out-of-format rates, and what produced the result (see :mod:`pytest_jallm.evaluation`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from . import __version__
from .answers import AnswerPatternTimeout, Extraction, Reasoning, out_of_choice
from .backends.base import (
    BackendIdentity,
)
from .context_fit import FitReport
from .metrics import get_metric
from .preparation import PreparedBenchmark, RunSettings
from .prompt import render_input, template_of
from .spec import BenchmarkSpec


@dataclass
class ItemOutcome:
    id: str
    prompt: str
    gold: str
    output: str
    prediction: str
    score: float | None  # primary metric, 0..1, None for corpus-level metrics
    ooc: bool
    in_format: bool = True  # False: no answer could be extracted (out of format)
    input: str = ""  # the item's own input block (no instruction, no few-shots), for diffs
    detail: str = ""  # the primary metric's word on this item (MetricResult.details), e.g. what failed


@dataclass
class BenchmarkResult:
    name: str
    category: str
    in_average: bool
    metric: str
    score: float  # primary metric, 0-100
    scores: dict[str, float]  # every metric, 0-100
    ooc_rate: float | None  # percent; None when the benchmark has no closed label set
    n: int
    binary: bool
    items: list[ItemOutcome]
    produced_by: dict[str, Any]
    oof_rate: float | None = None  # percent of items from which no answer could be extracted
    # Where this benchmark's prompts were answered from, and where its time went (see RunStats).
    run: dict[str, Any] = field(default_factory=dict)
    # Items whose request failed in the backend (id -> cause): not scored, not counted in n.
    backend_errors: dict[str, str] = field(default_factory=dict)
    # An LLM-judged benchmark's own figures (chatjudge: FastChat's 1-10 averages, unscorable judgments).
    judged: dict[str, Any] | None = None
    _by_id: dict[str, ItemOutcome] | None = field(default=None, init=False, repr=False, compare=False)

    def item(self, item_id: str) -> ItemOutcome:
        """One example's outcome; an index, since per-item tests ask once per example."""
        if self._by_id is None:
            self._by_id = {it.id: it for it in self.items}
        return self._by_id[item_id]

    def item_scores(self) -> dict[str, float] | None:
        if any(it.score is None for it in self.items):
            return None
        return {it.id: float(it.score) for it in self.items}  # type: ignore[arg-type]


def extraction_for(spec: BenchmarkSpec, settings: RunSettings) -> Extraction:
    """The steps from output to answer for ``spec`` in this run: the template's (from the spec),
    the run's preset where it sets one, the run's reasoning removal."""
    extraction = template_of(spec).extraction(spec)
    if settings.answer_preset is not None and extraction.preset != "raw":  # raw: the metric reads the response
        extraction = replace(extraction, preset=settings.answer_preset, pattern=None)
    return replace(extraction, reasoning=settings.reasoning)


def scoring_provenance(extraction: Extraction, settings: RunSettings) -> dict[str, Any]:
    """How outputs became answers, as `produced_by.scoring` records it: a baseline scored another way is
    stale. Only what differs from llm-jp-eval's default is written, so older baselines stay comparable."""
    out: dict[str, Any] = {"strip_think": settings.reasoning is not None}
    if settings.reasoning is not None and settings.reasoning != Reasoning():
        out["reasoning"] = settings.reasoning.as_dict()
    plain = extraction.provenance()
    plain.pop("reasoning", None)
    if plain != {"preset": "first_paragraph", "normalize": True} and plain.get("preset") != "custom":
        out["extraction"] = plain  # a custom pattern is the spec's answer_pattern, already in the prompt hash
    return out


def score_benchmark(
    prep: PreparedBenchmark,
    outputs: Sequence[str],
    identity: BackendIdentity,
    settings: RunSettings,
) -> BenchmarkResult:
    spec = prep.spec
    template = template_of(spec)
    extraction = extraction_for(spec, settings)
    try:
        answers = [template.answer(extraction, req.prompt, o) for req, o in zip(prep.requests, outputs, strict=True)]
    except AnswerPatternTimeout as e:  # the spec's fault: name it
        raise AnswerPatternTimeout(e.pattern, e.chars, where=f"{spec.name} ({prep.spec_path.name})") from None
    preds = [a.text for a in answers]
    golds = [template.gold(extraction, ex) for ex in prep.examples]
    contexts = [ex.context for ex in prep.examples]
    scores: dict[str, float] = {}
    primary = None
    for name in spec.metrics:
        metric = get_metric(name)
        result = metric(preds, golds, contexts)
        scores[name] = result.score * 100
        if primary is None:
            primary = (metric, result)
    assert primary is not None
    metric, result = primary
    ooc_flags = out_of_choice(preds, spec.labels)
    ooc_rate = 100 * sum(ooc_flags) / len(ooc_flags) if (spec.labels and ooc_flags) else None
    oof_rate = 100 * sum(not a.in_format for a in answers) / len(answers) if answers else None
    per_item, details = result.per_item, result.details
    inputs = prep.inputs if prep.inputs is not None else [render_input(spec, ex) for ex in prep.examples]
    items = [
        ItemOutcome(
            id=ex.id,
            prompt=req.prompt,
            gold=ex.gold,
            output=out,
            prediction=pred,
            score=None if per_item is None else float(per_item[i]),
            ooc=ooc_flags[i],
            in_format=answers[i].in_format,
            input=inputs[i],
            detail=details[i] if details else "",
        )
        for i, (ex, req, out, pred) in enumerate(zip(prep.examples, prep.requests, outputs, preds, strict=True))
    ]
    produced_by = {
        **identity.as_dict(),
        "sampling": settings.sampling.as_dict(),
        "prompt_hash": prep.prompt_hash,
        "data_fingerprint": prep.data_fingerprint,
        "num_fewshot": len(prep.shots),
        "chat": settings.chat,
        "limit": settings.limit,
        # How outputs became answers; not part of the cache key (generation is unchanged).
        "scoring": scoring_provenance(extraction, settings),
        "pytest_jallm": __version__,
    }
    if settings.shuffle_choices is not None:
        produced_by["shuffle_choices"] = settings.shuffle_choices
    if settings.mode is not None:
        produced_by["mode"] = settings.mode
    produced_by["context_policy"] = settings.context_policy
    return BenchmarkResult(
        name=spec.name,
        category=spec.category,
        in_average=spec.counts_in_average,
        metric=spec.primary_metric,
        score=scores[spec.primary_metric],
        scores=scores,
        ooc_rate=ooc_rate,
        oof_rate=oof_rate,
        n=len(items),
        binary=bool(getattr(metric, "binary", False)),
        items=items,
        produced_by=produced_by,
    )


def run_stats(
    prep: PreparedBenchmark, origins: Sequence[str], generate_seconds: float, score_seconds: float, shared_by: list[str]
) -> dict[str, Any]:
    """One benchmark's counts and seconds, as the results JSON records them (`RunStats`).

    Generation is one backend call for every benchmark prepared together: its wall time
    (model loading excluded) is the same for each of them, and `generation_shared_by` names them.
    """
    seconds = {"prepare": prep.seconds, "generate": generate_seconds, "score": score_seconds}
    seconds = {k: round(v, 6) for k, v in seconds.items()}
    seconds["total"] = round(sum(seconds.values()), 6)
    return {
        "prompts": len(prep.requests),
        "generated": sum(o == "generated" for o in origins),
        "cache_hits": sum(o == "cache" for o in origins),
        "repeated": sum(o == "repeated" for o in origins),
        "seconds": seconds,
        "generation_shared_by": list(shared_by),
    }


def context_stats(report: FitReport, prep: PreparedBenchmark) -> dict[str, Any]:
    """What the context check did to one benchmark's prompts (generated ones; cached ones were
    checked when they were generated)."""
    ids = [id(r) for r in prep.requests]
    shortened = {prep.examples[i].id: report.shortened[k][0] for i, k in enumerate(ids) if k in report.shortened}
    too_long = [prep.examples[i].id for i, k in enumerate(ids) if k in report.too_long]
    return {"window": report.window, "checked": report.checked, "shortened": shortened, "too_long": too_long}



