"""The search: formats scored on a sample of items, their spread, and shrinking a failing one.

``--jallm-variants N`` draws N formats per benchmark with hypothesis (seeded:
``--hypothesis-seed`` or ``--jallm-seed``), renders a fixed, seeded sample of
items (``--jallm-variant-sample K``) under the canonical format and every drawn
one, and evaluates the prompts of all formats of all selected benchmarks through
:meth:`pytest_jallm.evaluation.Evaluation.generate_and_score`: one backend call, the
generation cache (re-runs are free), the same scoring as the benchmark test.

Shrinking (docs/variants.md): a failing ``name[variants]`` names the worst format and
the smallest change from canonical that still fails. Hypothesis's shrinker would make one
backend call per candidate; a batch of formats costs about what one does, so we revert the
differing features towards canonical greedily and batched: round one tries every
single-feature format at once, then each round reverts one feature at a time, all
candidates of all failing benchmarks in one call, until no revert still fails (1-minimal).
"""

from __future__ import annotations

import random
import statistics
import zlib
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from ..data import Example
from ..evaluation import BenchmarkResult, Evaluation, PreparedBenchmark, render_items
from ..prompt import render
from ..prompt_format import CANONICAL, FEATURES, PromptFormat
from ..spec import BenchmarkSpec
from .strategies import draw_formats


@dataclass
class FormatScore:
    format: PromptFormat
    score: float
    ooc_rate: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format.diff_from_canonical(), "describe": self.format.describe(),
                "score": round(self.score, 4), "ooc_rate": None if self.ooc_rate is None else round(self.ooc_rate, 4)}


@dataclass
class VariantResult:
    name: str
    category: str
    metric: str
    seed: int
    item_ids: list[str]
    scores: list[FormatScore]  # canonical first

    @property
    def canonical(self) -> FormatScore:
        return self.scores[0]

    @property
    def values(self) -> list[float]:
        return [s.score for s in self.scores]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def spread(self) -> float:
        return self.max - self.min

    @property
    def std(self) -> float:
        return statistics.pstdev(self.values) if len(self.values) > 1 else 0.0

    def worst(self) -> FormatScore:
        return min(self.scores, key=lambda s: (s.score, len(s.format.diff_from_canonical())))

    def best(self) -> FormatScore:
        return max(self.scores, key=lambda s: (s.score, -len(s.format.diff_from_canonical())))


@dataclass(frozen=True)
class VariantLimits:
    max_spread: float | None = None
    min_variant_score: float | None = None

    @property
    def active(self) -> bool:
        return self.max_spread is not None or self.min_variant_score is not None

    def fails(self, score: float, reference: float) -> bool:
        """Does a format scoring ``score`` break a limit (``reference``: the best score seen)?"""
        if self.min_variant_score is not None and score < self.min_variant_score:
            return True
        return self.max_spread is not None and reference - score > self.max_spread + 1e-9


def check(result: VariantResult, limits: VariantLimits) -> list[str]:
    failures = []
    if limits.max_spread is not None and result.spread > limits.max_spread + 1e-9:
        best, worst = result.best(), result.worst()
        failures.append(
            f"spread {result.spread:.2f} (max {best.score:.2f} under {best.format.describe()}, min {worst.score:.2f} "
            f"under {worst.format.describe()}) exceeds max_spread {limits.max_spread:.2f}"
        )
    if limits.min_variant_score is not None:
        low = [s for s in result.scores if s.score < limits.min_variant_score]
        if low:
            worst = min(low, key=lambda s: s.score)
            failures.append(
                f"{len(low)} of {len(result.scores)} formats score below min_variant_score "
                f"{limits.min_variant_score:.2f} (lowest {worst.score:.2f} under {worst.format.describe()})"
            )
    return failures


def sample_examples(examples: Sequence[Example], k: int | None, seed: int, name: str) -> list[Example]:
    """A fixed, seeded sample of ``k`` items in their original order."""
    if not k or len(examples) <= k:
        return list(examples)
    rng = random.Random(f"pytest-jallm/variants/{seed}/{name}")
    return [examples[i] for i in sorted(rng.sample(range(len(examples)), k))]


def benchmark_seed(base: int, name: str) -> int:
    return zlib.crc32(f"{base}:{name}".encode("utf-8"))


@dataclass
class _Bench:
    prep: PreparedBenchmark
    sample: list[Example]
    seed: int
    formats: list[PromptFormat]


class VariantSearch:
    """Session-wide: draws formats, generates all of them in one backend call, scores, shrinks."""

    def __init__(self, evaluation: Evaluation, *, n: int, sample: int | None, seed: int):
        self.evaluation = evaluation  # its backend, cache, progress bar and scoring
        self.n = n
        self.sample = sample
        self.seed = seed
        self.benches: dict[str, _Bench] = {}
        self.results: dict[str, VariantResult] = {}
        self.errors: dict[str, BaseException] = {}
        self.shrunk: dict[str, FormatScore] = {}
        self._scores: dict[tuple[str, PromptFormat], FormatScore] = {}
        self.shrink_rounds = 0

    # -- evaluation ---------------------------------------------------------------

    def prepared(self, name: str, fmt: PromptFormat) -> PreparedBenchmark:
        """The benchmark's sample under ``fmt``, prepared as the benchmark test prepares its items."""
        b = self.benches[name]
        spec = b.prep.spec
        examples, requests, inputs = render_items(spec, b.sample, b.prep.shots, self.evaluation.settings.chat, fmt)
        labels = fmt.labels(spec)  # scored against the labels the format's choices carry
        scoring_spec = spec if labels == spec.labels else spec.model_copy(update={"labels": labels})
        return replace(b.prep, spec=scoring_spec, examples=examples, requests=requests, fmt=fmt, inputs=inputs)

    def evaluate(self, pairs: Sequence[tuple[str, PromptFormat]]) -> dict[tuple[str, PromptFormat], FormatScore]:
        """Scores of (benchmark, format) pairs; every missing one generated in one backend call."""
        todo = [p for p in dict.fromkeys(pairs) if p not in self._scores]
        if todo:
            outcomes = self.evaluation.generate_and_score([self.prepared(*p) for p in todo], tally=False)
            for (name, fmt), outcome in zip(todo, outcomes, strict=True):
                if not isinstance(outcome, BenchmarkResult):
                    raise outcome
                self._scores[(name, fmt)] = FormatScore(fmt, outcome.score, outcome.ooc_rate, outcome.n)
        return {p: self._scores[p] for p in pairs}

    # -- the search ---------------------------------------------------------------

    def run(self, benchmarks: Sequence[tuple[BenchmarkSpec, Any]]) -> None:
        new: list[str] = []
        for spec, path in benchmarks:
            name = spec.name
            if name in self.results or name in self.errors or name in self.benches:
                continue
            try:
                prep = self.evaluation.prepared(spec, path)
                seed = benchmark_seed(self.seed, name)
                sample = sample_examples(prep.examples, self.sample, self.seed, name)
                self.benches[name] = _Bench(prep, sample, seed, [CANONICAL, *draw_formats(prep.spec, self.n, seed)])
                new.append(name)
            except Exception as e:
                self.errors[name] = e
        if not new:
            return
        pairs = [(name, fmt) for name in new for fmt in self.benches[name].formats]
        try:
            scores = self.evaluate(pairs)
        except BaseException as e:
            for name in new:
                self.errors[name] = e
            if not isinstance(e, Exception):
                raise
            return
        for name in new:
            b = self.benches[name]
            self.results[name] = VariantResult(
                name=name, category=b.prep.spec.category, metric=b.prep.spec.primary_metric, seed=b.seed,
                item_ids=[ex.id for ex in b.sample], scores=[scores[(name, f)] for f in b.formats],
            )

    def shrink(self, limits: Mapping[str, VariantLimits], max_rounds: int | None = None) -> None:
        """Minimise the worst format of every failing benchmark (batched greedy, see the module docstring)."""
        cases: dict[str, tuple[PromptFormat, float, VariantLimits]] = {}
        for name, lim in limits.items():
            res = self.results.get(name)
            if res is None or name in self.shrunk or not check(res, lim):
                continue
            worst = res.worst()
            if worst.format == CANONICAL or not lim.fails(worst.score, res.best().score):
                self.shrunk[name] = worst
                continue
            cases[name] = (worst.format, res.best().score, lim)
        if not cases:
            return
        max_rounds = max_rounds if max_rounds is not None else len(FEATURES)
        current = {name: self.results[name].worst() for name in cases}
        # Round one: canonical plus one feature of the worst format.
        singles = {name: [CANONICAL.with_features(fmt, [f]) for f in fmt.diff_from_canonical()]
                   for name, (fmt, _, _) in cases.items()}
        scores = self.evaluate([(name, c) for name, cands in singles.items() for c in cands])
        self.shrink_rounds = 1
        open_cases = []
        for name, (_, ref, lim) in cases.items():
            failing = [scores[(name, c)] for c in singles[name] if lim.fails(scores[(name, c)].score, ref)]
            if failing:
                current[name] = min(failing, key=lambda s: s.score)
            elif len(singles[name]) > 1:
                open_cases.append(name)
        # Then: revert one feature at a time, all candidates of all benchmarks in one batch per round.
        while open_cases and self.shrink_rounds < max_rounds:
            reverts = {name: [replace(current[name].format, **{f: getattr(CANONICAL, f)})
                              for f in current[name].format.diff_from_canonical()] for name in open_cases}
            scores = self.evaluate([(name, c) for name, cands in reverts.items() for c in cands])
            self.shrink_rounds += 1
            still = []
            for name in open_cases:
                _, ref, lim = cases[name]
                failing = [scores[(name, c)] for c in reverts[name] if lim.fails(scores[(name, c)].score, ref)]
                if failing:
                    current[name] = failing[0]  # the first feature that can go, as hypothesis would
                    if len(current[name].format.diff_from_canonical()) > 1:
                        still.append(name)
            open_cases = still
        self.shrunk.update(current)

    def prompt_of(self, name: str, fmt: PromptFormat, index: int = 0) -> tuple[str, str, str]:
        b = self.benches[name]
        ex = b.sample[index]
        text, gold = render(b.prep.spec, ex, b.prep.shots, fmt)
        return ex.id, text, gold
