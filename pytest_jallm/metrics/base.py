"""The metric protocol and registry: what a metric returns, how one is registered and looked up.

A metric takes the extracted, normalised predictions, the golds and each item's context and returns
a :class:`MetricResult` on a 0-1 scale (see :mod:`pytest_jallm.metrics` for every built-in's definition).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..answers import as_str
from ..errors import JallmError
from ..registry import Registry


@dataclass(frozen=True)
class MetricResult:
    score: float
    per_item: list[float] | None
    # Optional, one line per item saying why it scored what it did (ifeval: the instructions not
    # followed); the primary metric's line becomes the item's `detail` in reports.
    details: list[str] | None = None


class UnknownMetricError(JallmError, KeyError):
    """A metric name that this module does not define."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown metric {self.name!r}; known metrics: {', '.join(sorted(METRICS))}"


class MissingDependencyError(JallmError, ImportError):
    """An optional scorer's package is not installed; the message says what to install."""


@dataclass(frozen=True)
class Metric:
    name: str
    per_item: bool
    binary: bool
    _fn: Callable[[list[str], list[str], list[Mapping[str, Any]]], MetricResult]

    def __call__(
        self,
        preds: Sequence[str],
        golds: Sequence[str],
        contexts: Sequence[Mapping[str, Any]] | None = None,
    ) -> MetricResult:
        p = [as_str(x) for x in preds]
        g = [as_str(x) for x in golds]
        if len(p) != len(g):
            raise ValueError(f"{self.name}: {len(p)} predictions but {len(g)} golds")
        if contexts is None:
            ctx: list[Mapping[str, Any]] = [{} for _ in p]
        else:
            ctx = [c if c is not None else {} for c in contexts]
            if len(ctx) != len(p):
                raise ValueError(f"{self.name}: {len(p)} predictions but {len(ctx)} contexts")
        return self._fn(p, g, ctx)


def mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def per_item(fn: Callable[[str, str], float]) -> Callable[..., MetricResult]:
    def run(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
        scores = [float(fn(p, g)) for p, g in zip(preds, golds, strict=True)]
        return MetricResult(mean(scores), scores)

    return run


def _check_metric(name: str, obj: Any) -> Metric:
    if not isinstance(obj, Metric):
        raise TypeError(f"expected a Metric (made with @register_metric), got {type(obj).__name__}")
    if obj.name != name:
        raise TypeError(f"the Metric is named {obj.name!r}; register it under that name")
    return obj


# Every metric a spec may name: the built-ins and those installed packages add through the
# `pytest_jallm.metrics` entry-point group.
METRICS: Registry[Metric] = Registry("metric", "pytest_jallm.metrics", _check_metric,
                                     builtin_modules=("pytest_jallm.ifeval.benchmark",))


def register_metric(name: str, *, per_item: bool, binary: bool) -> Callable[[Callable[..., MetricResult]], Metric]:
    """Decorator: `fn(preds, golds, contexts) -> MetricResult` becomes the metric `name`.

    `per_item`: the result carries one score per item (paired significance tests need them);
    `binary`: those scores are 0 or 1 (McNemar's test instead of a paired t-test). The
    decorated name is the `Metric` itself, callable as before."""

    def deco(fn: Callable[..., MetricResult]) -> Metric:
        metric = Metric(name, per_item, binary, fn)
        METRICS.register(name, metric, origin=getattr(fn, "__module__", None))
        return metric

    return deco


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise UnknownMetricError(name) from None
