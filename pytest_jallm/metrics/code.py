"""code_exec: the item's tests run against generated code in the sandbox (pytest_jallm.sandbox)."""

from __future__ import annotations

import ast
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Mapping

from ..answers import as_str
from .base import METRICS, Metric, MetricResult, mean

# code_exec -------------------------------------------------------------------------------------


def _tests_for(gold: str, ctx: Mapping[str, Any]) -> str:
    code = ctx.get("test_code")
    if isinstance(code, str) and code.strip():
        return code
    for key in ("tests", "test_list"):
        tests = ctx.get(key)
        if isinstance(tests, (list, tuple)) and tests:
            return "\n".join(as_str(t) for t in tests)
    try:
        parsed = ast.literal_eval(gold)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return gold
    if isinstance(parsed, (list, tuple)) and all(isinstance(t, str) for t in parsed):
        return "\n".join(parsed)
    return gold


def _code_exec(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    from .. import code_check, sandbox

    jobs = [(pred, _tests_for(gold, ctx)) for pred, gold, ctx in zip(preds, golds, contexts, strict=True)]
    for i, (_, tests) in enumerate(jobs):  # tests that cannot be checked are the data's fault: say which item
        try:
            code_check.plan(tests, "")
        except code_check.TestsNotCheckable as e:
            ident = contexts[i].get("task_id", contexts[i].get("id"))
            where = f"item {i + 1}" + (f" (id {ident})" if ident is not None else "")
            raise code_check.TestsNotCheckable(f"code_exec: {where}: {e}") from None

    def one(job: tuple[str, str]) -> float:
        return 1.0 if sandbox.run_python(job[0], tests=job[1]).passed else 0.0

    workers = max(1, min(4, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        scores = list(pool.map(one, jobs))
    return MetricResult(mean(scores), scores)


METRICS.register("code_exec", Metric("code_exec", True, True, _code_exec), origin=__name__)
