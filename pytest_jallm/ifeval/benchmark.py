"""M-IFEval as a benchmark of this plugin: the ``m-ifeval`` loader and the ``ifeval_*`` metrics.

Registered through the public decorators, as an installed extension would register them; the
metric and loader registries import this module at their first lookup (``builtin_modules``).
``benchmarks/m_ifeval_ja.yaml`` uses them with ``answer_extraction: raw``, so a metric gets each
whole response, untouched, and each item's context is its input row (instruction ids, kwargs).

* ``ifeval_prompt_strict`` (per item, binary: the outcome the paired McNemar gate uses) and
  ``ifeval_prompt_loose``: 1 when every instruction of the prompt is followed.
* ``ifeval_inst_strict`` / ``ifeval_inst_loose``: followed instructions over all instructions of
  the run -- a corpus figure, not a mean over prompts, so they have no per-item scores.

Each metric's ``details`` say per item which instructions were not followed, so a regression
report shows why an item flipped.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Mapping, Sequence

from ..errors import DataError
from ..loaders import register_loader
from ..loaders.files import Rows, json_lines, postprocess
from ..metrics import MetricResult, register_metric
from .evaluate import InputError, PromptInput, PromptResult, evaluate

__all__ = ["load_m_ifeval"]


@register_loader("m-ifeval")
def load_m_ifeval(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """M-IFEval input JSON lines (``key``, ``prompt``, ``instruction_id_list``, ``kwargs``): one row
    per prompt, checked as the evaluator will read it (known ids, every kwarg each needs)."""
    rows: Rows = []
    for path in files:
        for n, raw in json_lines(path):
            try:
                rows.append(PromptInput.from_row(raw, f"{path}: line {n}").row())
            except InputError as e:
                raise DataError(str(e)) from None
    return postprocess(rows, options)


@functools.lru_cache(maxsize=512)
def _judge(row: str, response: str, mode: str) -> PromptResult:
    # Keyed by the row's JSON: the prompt-level and instruction-level metrics of a mode share it.
    return evaluate(PromptInput.from_row(json.loads(row)), response, mode)


def _results(metric: str, preds: Sequence[str], contexts: Sequence[Mapping[str, Any]], mode: str) -> list[PromptResult]:
    results = []
    for i, (pred, ctx) in enumerate(zip(preds, contexts, strict=True)):
        fields = {k: ctx[k] for k in ("key", "prompt", "instruction_id_list", "kwargs") if k in ctx}
        try:
            row = json.dumps(fields, ensure_ascii=False, sort_keys=True)
            PromptInput.from_row(fields, f"{metric}: item {i}")  # a clear error before the cache
        except (InputError, TypeError) as e:
            raise ValueError(f"{e} (the item's context must be an M-IFEval input row: use the m-ifeval loader)") from None
        results.append(_judge(row, pred, mode))
    return results


def _prompt_level(mode: str):
    def metric(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
        results = _results(f"ifeval_prompt_{mode}", preds, contexts, mode)
        per_item = [1.0 if r.follow_all_instructions else 0.0 for r in results]
        score = sum(per_item) / len(per_item) if per_item else 0.0
        return MetricResult(score, per_item, [r.explain() for r in results])

    return metric


def _instruction_level(mode: str):
    def metric(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
        results = _results(f"ifeval_inst_{mode}", preds, contexts, mode)
        total = sum(len(r.follow_instruction_list) for r in results)
        followed = sum(sum(r.follow_instruction_list) for r in results)
        return MetricResult(followed / total if total else 0.0, None, [r.explain() for r in results])

    return metric


ifeval_prompt_strict = register_metric("ifeval_prompt_strict", per_item=True, binary=True)(_prompt_level("strict"))
ifeval_inst_strict = register_metric("ifeval_inst_strict", per_item=False, binary=False)(_instruction_level("strict"))
ifeval_prompt_loose = register_metric("ifeval_prompt_loose", per_item=True, binary=True)(_prompt_level("loose"))
ifeval_inst_loose = register_metric("ifeval_inst_loose", per_item=False, binary=False)(_instruction_level("loose"))
