"""The evaluation engine: plain code the pytest hooks call.

It prepares benchmarks (data, few-shots, prompts), generates every missing
completion of all selected benchmarks in one backend call, and scores them.
Nothing here knows about pytest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from . import __version__
from .answers import AnswerPatternTimeout, Extraction, Reasoning, out_of_choice
from .backends.base import (
    Backend,
    BackendError,
    BackendIdentity,
    GenerationRequest,
    ItemRef,
    RequestErrors,
    SamplingSettings,
)
from .context_fit import DEFAULT_POLICY, FitReport, FittingBackend, keyed_identity
from .data import DataError, Example, fingerprint, load_examples, load_fewshots
from .medharness import shuffle_permutations
from .metrics import get_metric
from .prompt import prompt_hash, render, render_input, render_messages, template_of
from .prompt_format import CANONICAL, PromptFormat
from .sources import DataConfig
from .spec import BenchmarkSpec


@dataclass
class RunSettings:
    model: str
    backend: str = "auto"
    backend_options: dict[str, Any] = field(default_factory=dict)
    data_dir: Path | None = None
    data_config: DataConfig | None = None  # download cache, URL map, progress bars
    limit: int | None = None
    chat: bool = False
    num_fewshot: int | None = None
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    cache_path: Path | None = None
    # Scoring only (generations, and so the cache, are unaffected): remove a reasoning model's
    # reasoning before answer extraction (--jallm-strip-think, --jallm-reasoning-start/-end).
    reasoning: Reasoning | None = None
    answer_preset: str | None = None  # --jallm-answer-preset: every spec's extraction preset for this run
    mode: str | None = None  # --jallm-mode: the specs' `modes.<name>` overrides (reasoning: chat, 0-shot)
    # --jallm-mode reasoning: the least max_new_tokens a spec gets when its mode block sets none (a model
    # that thinks first needs room; a 1-token budget would leave every answer inside the reasoning).
    reasoning_max_new_tokens: int = 4096
    # --jallm-shuffle-choices SEED: every item's choices in a seeded random order (gold follows).
    shuffle_choices: int | None = None
    # --jallm-max-backend-errors: the share of a benchmark's requests (percent) that may fail in the
    # backend on their own (scored without them); above it the benchmark fails.
    max_backend_error_pct: float = 0.0
    context_policy: str = DEFAULT_POLICY  # --jallm-context-policy: a prompt longer than the model's context
    # --jallm-save-outputs FILE: every request's raw output appended as a JSON line as it arrives
    # (recordings.OutputsWriter), for `--jallm-backend replay`.
    save_outputs: Path | None = None


REASONING_MODE = "reasoning"


def resolve_mode(mode: str | None, *, chat: bool, num_fewshot: int | None,
                 reasoning: Reasoning | None) -> tuple[bool, int | None, Reasoning | None]:
    """``--jallm-mode reasoning`` evaluates as the current leaderboards do reasoning models: through the
    chat template, zero-shot, the reasoning removed before scoring (unless the run says otherwise).
    Any mode also applies the specs' ``modes.<mode>`` overrides (``effective_spec``)."""
    if mode == REASONING_MODE:
        return True, 0 if num_fewshot is None else num_fewshot, reasoning or Reasoning()
    return chat, num_fewshot, reasoning


def reasoning_from_options(strip_think: bool, start: str | None, end: str | None) -> Reasoning | None:
    """--jallm-strip-think and --jallm-reasoning-start/-end: None when none is given."""
    if not strip_think and start is None and end is None:
        return None
    default = Reasoning()
    return Reasoning(start=default.start if start is None else start, end=default.end if end is None else end)


@dataclass
class PreparedBenchmark:
    spec: BenchmarkSpec
    spec_path: Path
    examples: list[Example]
    shots: list[Example]
    requests: list[GenerationRequest]
    prompt_hash: str
    data_fingerprint: str
    seconds: float = 0.0  # loading data and rendering prompts
    fmt: PromptFormat = CANONICAL  # the prompt format the requests were rendered in (variants: another)

    def with_fewer_shots(self, index: int, shots: int, chat: bool) -> GenerationRequest:
        """Item ``index``'s request rendered with only the first ``shots`` few-shot examples."""
        return render_requests(self.spec, [self.examples[index]], self.shots[:shots], chat, self.fmt)[1][0]


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


def effective_spec(spec: BenchmarkSpec, settings: RunSettings) -> BenchmarkSpec:
    if settings.mode is not None:
        own = spec.modes.get(settings.mode)
        spec = spec.in_mode(settings.mode)
        if settings.mode == REASONING_MODE:
            # Room to think and no stop sequence inside the thinking, unless the spec's mode block says otherwise.
            update: dict[str, Any] = {}
            if own is None or own.max_new_tokens is None:
                update["max_new_tokens"] = max(spec.max_new_tokens, settings.reasoning_max_new_tokens)
            if own is None or own.stop is None:
                update["stop"] = []
            spec = spec.model_copy(update=update)
    if settings.num_fewshot is None or settings.num_fewshot == spec.fewshot.count:
        return spec
    if settings.num_fewshot > 0 and spec.fewshot.source is None:
        return spec  # a spec without a few-shot pool stays 0-shot (MBPP, XL-Sum)
    return spec.model_copy(update={"fewshot": spec.fewshot.model_copy(update={"count": settings.num_fewshot})})


def shuffle_choices(spec: BenchmarkSpec, examples: Sequence[Example], seed: int) -> list[Example]:
    """Examples with their choices reordered as japanese-lm-med-harness's `--shuffle` does
    (one `random.shuffle` per item, in order, from `random.Random(seed)`), the gold remapped.

    A gold that is the text of its choice(s) stays as it is; a gold that is a label (the spec's
    `labels`, one per choice position, e.g. A-D or 0-4) moves with its choice. Items without
    choices are left alone.
    """
    perms = shuffle_permutations(seed, [len(ex.choices) for ex in examples])
    labels = list(spec.labels or [])
    out = []
    for ex, order in zip(examples, perms):
        if not ex.choices:
            out.append(ex)
            continue
        choices = tuple(ex.choices[i] for i in order)
        golds = ex.gold.split("\n")
        if all(g in ex.choices for g in golds):
            gold = ex.gold
        elif len(labels) == len(ex.choices) and all(g in labels for g in golds):
            gold = "\n".join(labels[order.index(labels.index(g))] for g in golds)
        else:
            raise DataError(
                f"{spec.name}: item {ex.id!r}: --jallm-shuffle-choices cannot move the gold {ex.gold!r}: it is neither "
                f"the text of a choice nor one of the spec's labels ({', '.join(labels) or 'none'}) naming a position"
            )
        context = {**ex.context, "choices": list(choices)}
        out.append(Example(id=ex.id, fields=ex.fields, choices=choices, gold=gold, context=context))
    return out


def render_requests(
    spec: BenchmarkSpec, examples: Sequence[Example], shots: Sequence[Example], chat: bool, fmt: PromptFormat = CANONICAL
) -> tuple[list[Example], list[GenerationRequest]]:
    """The backend requests of ``examples`` under the prompt format ``fmt``, and the examples with the
    gold that format gives them (a label moves with its choice; canonical: unchanged)."""
    labels = fmt.labels(spec)
    guided = tuple(labels) if labels else None
    out, requests = [], []
    for ex in examples:
        text, gold = render(spec, ex, shots, fmt)
        out.append(ex if gold == ex.gold else replace(ex, gold=gold))
        messages = render_messages(spec, ex, shots, fmt) if chat else None
        requests.append(GenerationRequest(prompt=text, max_new_tokens=spec.max_new_tokens, stop=tuple(spec.stop),
                                          messages=messages, guided_choices=guided, item=ItemRef(spec.name, ex.id)))
    return out, requests


def prepare(spec: BenchmarkSpec, spec_path: Path, settings: RunSettings) -> PreparedBenchmark:
    spec = effective_spec(spec, settings)
    if spec.judge is not None:  # a judged chat benchmark is a conversation: always through the chat template
        settings = replace(settings, chat=True)
    spec_dir = spec_path.parent
    # The fingerprint covers the full data even on a --jallm-limit smoke run, so a limited run
    # still pairs with (is not "stale" against) a baseline of the whole benchmark.
    all_examples = load_examples(spec, spec_dir, settings.data_dir, None, settings.data_config)
    if settings.shuffle_choices is not None:
        all_examples = shuffle_choices(spec, all_examples, settings.shuffle_choices)  # one draw per item, in order
    examples = all_examples if settings.limit is None else all_examples[: settings.limit]
    shots = load_fewshots(spec, spec_dir, settings.data_dir, settings.data_config)
    examples, requests = render_requests(spec, examples, shots, settings.chat)
    return PreparedBenchmark(
        spec=spec,
        spec_path=spec_path,
        examples=examples,
        shots=shots,
        requests=requests,
        prompt_hash=prompt_hash(spec, shots, settings.chat, settings.shuffle_choices),
        data_fingerprint=fingerprint(all_examples),
    )


def request_records(prep: PreparedBenchmark) -> list[dict[str, Any]]:
    """What `python -m pytest_jallm prompts` writes: one record per request, in evaluation order."""
    records = []
    for ex, req in zip(prep.examples, prep.requests):
        record: dict[str, Any] = {"benchmark": prep.spec.name, "id": ex.id, "prompt": req.prompt, "gold": ex.gold}
        if req.messages is not None:
            record["messages"] = [dict(m) for m in req.messages]
        record.update(max_new_tokens=req.max_new_tokens, stop=list(req.stop), num_fewshot=len(prep.shots))
        records.append(record)
    return records


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
            input=render_input(spec, ex),
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
        self._outputs = None  # recordings.OutputsWriter, opened at the first output

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

    def prepared(self, spec: BenchmarkSpec, spec_path: Path) -> PreparedBenchmark:
        if spec.name not in self._prepared:
            started = time.perf_counter()
            try:
                self._prepared[spec.name] = prepare(spec, spec_path, self.settings)
            finally:
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
        try:
            outcomes = self.generate_and_score(todo)
        except BaseException as e:  # KeyboardInterrupt: the cache already holds what finished
            outcomes = [e] * len(todo)
            raise
        finally:
            for p, outcome in zip(todo, outcomes):
                (self.results if isinstance(outcome, BenchmarkResult) else self.errors)[p.spec.name] = outcome

    def generate_and_score(self, todo: Sequence[PreparedBenchmark], *, tally: bool = True) -> list[BenchmarkResult | Exception]:
        """Every prompt of ``todo`` generated in one backend call through the cache, then each benchmark's
        result or its own error (a failed call is all of theirs). ``tally``: count prompts and seconds
        in the session's totals (the variants search reports its own table)."""
        from .cache import cached_generate

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
        kept = replace(prep, examples=[prep.examples[i] for i in keep], requests=[prep.requests[i] for i in keep])
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
