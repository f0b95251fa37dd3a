"""The evaluation engine: plain code the pytest hooks call.

It prepares benchmarks (data, few-shots, prompts: :mod:`pytest_jallm.preparation`), generates every
missing completion of all selected benchmarks in one backend call (through the cache and the context
check), and scores them (:mod:`pytest_jallm.scoring`). Nothing here knows about pytest.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .backends.base import (
    Backend,
    BackendError,
    BackendIdentity,
    GenerationRequest,
    RequestErrors,
)
from .context_fit import FittingBackend, keyed_identity
from .filehash import HASHES
from .preparation import (
    REASONING_MODE,
    PreparedBenchmark,
    RunSettings,
    effective_spec,
    prepare,
    reasoning_from_options,
    render_items,
    render_requests,
    request_records,
    resolve_mode,
    shuffle_choices,
)
from .scoring import BenchmarkResult, ItemOutcome, context_stats, run_stats, score_benchmark
from .spec import BenchmarkSpec
from .specfile import check_extensions

__all__ = [
    "REASONING_MODE", "BenchmarkResult", "Evaluation", "ItemOutcome", "PreparedBenchmark", "RunSettings", "effective_spec",
    "prepare", "reasoning_from_options", "render_items", "render_requests", "request_records", "resolve_mode", "score_benchmark",
    "shuffle_choices",
]


ProgressFactory = Callable[[int], Any]


class Evaluation:
    """Session-wide: one backend, one cache, results per benchmark name."""

    def __init__(
        self,
        settings: RunSettings,
        make_backend: Callable[[], Backend],
        *,
        progress: ProgressFactory | None = None,
        judged: Any = None,
    ):
        self.settings = settings
        # Runs the benchmarks with a `judge` section (chatjudge.flow.JudgedRunner): turn 1, turn 2, the judge.
        self.judged = judged
        self._make_backend = make_backend
        self._backend: Backend | None = None
        self._progress = progress
        self._prepared: dict[str, PreparedBenchmark] = {}
        self.results: dict[str, BenchmarkResult] = {}
        self.errors: dict[str, BaseException] = {}
        self.prompts_requested = 0  # across the session, for the summary line
        self.prompts_generated = 0
        self.prompts_from_cache = 0
        self.prompts_repeated = 0  # identical to an earlier prompt of the same run: generated once
        # Seconds per phase across the session: where a run's time went.
        self.timings: dict[str, float] = {"prepare": 0.0, "load": 0.0, "generate": 0.0, "score": 0.0}
        self._cache = None
        self._identity: BackendIdentity | None = None
        self._outputs: Any = None  # recordings.OutputsWriter, opened at the first output

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            started = time.perf_counter()
            self._backend = self._make_backend()
            self.timings["load"] += time.perf_counter() - started
        return self._backend

    @property
    def backend_loaded(self) -> bool:
        return self._backend is not None

    def identity(self) -> BackendIdentity:
        """The backend's identity (as generations are keyed: with a non-default context policy);
        known without loading the model when the backend can say so."""
        if self._backend is not None:
            return keyed_identity(self._backend.identity(), self.settings.context_policy)
        if self._identity is None:
            from .backends import peek_identity

            peeked = peek_identity(self.settings.backend, self.settings.model, self.settings.backend_options)
            self._identity = peeked if peeked is not None else self.backend.identity()
        return keyed_identity(self._identity, self.settings.context_policy)

    def cache(self):
        if self._cache is None and self.settings.cache_path is not None:
            from .cache import GenerationCache

            self._cache = GenerationCache(self.settings.cache_path)
        return self._cache

    def _prepared_cache(self):
        if self.settings.prepared_dir is None:
            return None
        from .prepcache import PreparedCache

        return PreparedCache(self.settings.prepared_dir)

    def prepared(self, spec: BenchmarkSpec, spec_path: Path) -> PreparedBenchmark:
        if spec.name not in self._prepared:
            started = time.perf_counter()
            try:
                check_extensions(effective_spec(spec, self.settings), spec_path)  # a broken one fails this benchmark alone
                self._prepared[spec.name] = prepare(spec, spec_path, self.settings, self._prepared_cache())
            finally:
                HASHES.flush()  # the data files hashed (pins, the prepared cache's checks): not hashed again next run
                self.timings["prepare"] += time.perf_counter() - started
            self._prepared[spec.name].seconds = time.perf_counter() - started
        return self._prepared[spec.name]

    def run(self, benchmarks: Sequence[tuple[BenchmarkSpec, Path]]) -> None:
        """Generate and score every benchmark not yet done, in one backend call."""
        todo: list[PreparedBenchmark] = []
        for spec, path in benchmarks:
            if spec.name in self.results or spec.name in self.errors or any(p.spec.name == spec.name for p in todo):
                continue
            try:
                todo.append(self.prepared(spec, path))
            except Exception as e:  # data errors belong to that benchmark only
                self.errors[spec.name] = e
        staged = [p for p in todo if p.spec.judge is not None]
        todo = [p for p in todo if p.spec.judge is None]
        for p in staged:
            self._run_judged(p)
        if not todo:
            return
        outcomes: list[BenchmarkResult | BaseException]
        try:
            outcomes = list(self.generate_and_score(todo))
        except BaseException as e:  # KeyboardInterrupt: the cache already holds what finished
            outcomes = [e] * len(todo)
            raise
        finally:
            for p, outcome in zip(todo, outcomes, strict=True):
                if isinstance(outcome, BenchmarkResult):
                    self.results[p.spec.name] = outcome
                else:
                    self.errors[p.spec.name] = outcome

    def generate_and_score(self, todo: Sequence[PreparedBenchmark], *, tally: bool = True) -> list[BenchmarkResult | Exception]:
        """Every prompt of ``todo`` generated in one backend call through the cache, then each benchmark's
        result or its own error (a failed call is all of theirs). ``tally``: count prompts and seconds
        in the session's totals (the variants search reports its own table)."""
        from .generation import cached_generate

        requests = [r for p in todo for r in p.requests]
        owner = {id(r): (p, j) for p in todo for j, r in enumerate(p.requests)}
        fitting: list[FittingBackend] = []

        def fitted_backend() -> FittingBackend:
            """The session's backend behind the context check (loaded only when something is missing)."""
            fitting.append(FittingBackend(
                self.backend, self.settings.context_policy,
                reshot=lambda r, k: owner[id(r)][0].with_fewer_shots(owner[id(r)][1], k, self.settings.chat),
                shots_of=lambda r: len(owner[id(r)][0].shots)))
            return fitting[0]

        started = time.perf_counter()
        load_before = self.timings["load"]
        try:
            # With a cache the identity is peeked, so a fully cached run never loads the model.
            identity = self.identity() if self.cache() is not None else None
            bar = self._progress(len(requests)) if self._progress else None
            origins: list[str] = []
            failed: dict[int, str] = {}
            save = self._output_saver(requests)
            try:
                texts, generated = cached_generate(
                    fitted_backend,
                    requests,
                    self.settings.sampling,
                    self.cache(),
                    on_progress=(bar.update if bar is not None else None),
                    identity=identity,
                    origins=origins,
                    on_text=save,
                )
            except RequestErrors as e:  # some requests failed on their own: only their benchmarks may fail
                texts, generated, failed = e.texts, e.generated, e.failures  # type: ignore[assignment]
            finally:
                if bar is not None:
                    bar.close()
        except BaseException as e:
            if not isinstance(e, Exception):
                raise
            return [e] * len(todo)
        generate_seconds = time.perf_counter() - started - (self.timings["load"] - load_before)
        if tally:
            self.timings["generate"] += generate_seconds
            self.prompts_requested += len(requests)
            self.prompts_generated += generated
            self.prompts_from_cache += origins.count("cache")
            self.prompts_repeated += origins.count("repeated")
        identity = self.identity()
        started = time.perf_counter()
        offset = 0
        shared_by = [p.spec.name for p in todo]
        outcomes: list[BenchmarkResult | Exception] = []
        for whole in todo:
            p = whole
            outputs = texts[offset : offset + len(p.requests)]
            mine = origins[offset : offset + len(p.requests)]
            offset += len(p.requests)
            scoring_started = time.perf_counter()
            start = offset - len(p.requests)
            mine_failed = {i - start: cause for i, cause in failed.items() if start <= i < offset}
            try:
                if mine_failed:
                    p, outputs, backend_errors = self._without_failed(p, outputs, mine_failed)
                    mine = [o for i, o in enumerate(mine) if i not in mine_failed]  # counts match the scored items
                result = score_benchmark(p, outputs, identity, self.settings)
            except Exception as e:
                outcomes.append(e)
                continue
            if mine_failed:
                result.backend_errors = backend_errors
            result.run = run_stats(p, mine, generate_seconds, time.perf_counter() - scoring_started, shared_by)
            if fitting:
                result.run["context"] = context_stats(fitting[0].report, whole)
            outcomes.append(result)
        if tally:
            self.timings["score"] += time.perf_counter() - started
        return outcomes

    def _without_failed(
        self, prep: PreparedBenchmark, outputs: Sequence[str | None], failed: Mapping[int, str]
    ) -> tuple[PreparedBenchmark, list[str], dict[str, str]]:
        """The benchmark without the items whose request failed in the backend, or a BackendError
        when their share is above --jallm-max-backend-errors."""
        n = len(prep.requests)
        allowed = self.settings.max_backend_error_pct
        first = min(failed)
        if 100 * len(failed) / n > allowed:
            raise BackendError(
                f"{prep.spec.name}: {len(failed)} of {n} requests failed in the backend (allowed: {allowed:g}%, "
                f"--jallm-max-backend-errors); first: item {prep.examples[first].id}: {failed[first]}"
            )
        keep = [i for i in range(n) if i not in failed]
        kept = replace(prep, examples=[prep.examples[i] for i in keep], requests=[prep.requests[i] for i in keep],
                       inputs=None if prep.inputs is None else [prep.inputs[i] for i in keep])
        return kept, [outputs[i] for i in keep], {prep.examples[i].id: cause for i, cause in failed.items()}  # type: ignore[misc]

    def _run_judged(self, prep: PreparedBenchmark) -> None:
        """A benchmark answered over several calls and scored by an LLM judge (chatjudge.flow)."""
        try:
            if self.judged is None:
                raise BackendError(f"{prep.spec.name} is scored by an LLM judge, and this evaluation has none")
            self.results[prep.spec.name] = self.judged.run(self, prep)
        except Exception as e:
            self.errors[prep.spec.name] = e

    def _output_saver(self, requests: Sequence[GenerationRequest]) -> Callable[[int, str], None] | None:
        """``on_text`` for cached_generate: appends each output to --jallm-save-outputs' file."""
        if self.settings.save_outputs is None:
            return None
        if self._outputs is None:
            from .recordings import OutputsWriter

            self._outputs = OutputsWriter(self.settings.save_outputs)
        writer = self._outputs
        return lambda i, text: writer.write(requests[i], text)

    def close(self) -> None:
        if self.judged is not None:
            self.judged.close()
        if self._outputs is not None:
            self._outputs.close()
        if self._backend is not None:
            self._backend.close()
        if self._cache is not None:
            self._cache.close()
