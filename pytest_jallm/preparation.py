"""Preparing a benchmark for a run: the run's settings, the spec as the run mode changes it, the data
and few-shots, and the requests the backend will get (see :mod:`pytest_jallm.evaluation`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from .answers import Reasoning
from .backends.base import (
    GenerationRequest,
    ItemRef,
    SamplingSettings,
)
from .context_fit import DEFAULT_POLICY
from .data import DataError, Example, fingerprint, load_examples, load_fewshots
from .medharness import shuffle_permutations
from .prompt import prompt_hash, template_of
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
    # Prepared benchmarks cached on disk (pytest_jallm.prepcache: Evaluation.prepared), beside the
    # generation cache; None with --jallm-no-cache.
    prepared_dir: Path | None = None


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
    # Each example's input block in the canonical format, rendered with its prompt (ItemOutcome.input);
    # None: scoring renders them.
    inputs: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.requests) != len(self.examples) or (self.inputs is not None and len(self.inputs) != len(self.examples)):
            raise ValueError(f"{self.spec.name}: {len(self.examples)} examples, {len(self.requests)} requests and "
                             f"{'no' if self.inputs is None else len(self.inputs)} inputs: they must correspond")

    def with_fewer_shots(self, index: int, shots: int, chat: bool) -> GenerationRequest:
        """Item ``index``'s request rendered with only the first ``shots`` few-shot examples."""
        return render_requests(self.spec, [self.examples[index]], self.shots[:shots], chat, self.fmt)[1][0]


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
    for ex, order in zip(examples, perms, strict=True):
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


def render_items(
    spec: BenchmarkSpec, examples: Sequence[Example], shots: Sequence[Example], chat: bool, fmt: PromptFormat = CANONICAL
) -> tuple[list[Example], list[GenerationRequest], list[str]]:
    """The backend requests of ``examples`` under the prompt format ``fmt``, the examples with the
    gold that format gives them (a label moves with its choice; canonical: unchanged), and each
    example's canonical input block; what the items share (instruction, few-shots) is rendered once."""
    labels = fmt.labels(spec)
    guided = tuple(labels) if labels else None
    stop = tuple(spec.stop)
    render_item = template_of(spec).item_renderer(spec, shots, fmt, chat)
    out, requests, inputs = [], [], []
    for ex in examples:
        item = render_item(ex)
        out.append(ex if item.gold == ex.gold else replace(ex, gold=item.gold))
        requests.append(GenerationRequest(prompt=item.prompt, max_new_tokens=spec.max_new_tokens, stop=stop,
                                          messages=item.messages, guided_choices=guided, item=ItemRef(spec.name, ex.id)))
        inputs.append(item.input)
    return out, requests, inputs


def render_requests(
    spec: BenchmarkSpec, examples: Sequence[Example], shots: Sequence[Example], chat: bool, fmt: PromptFormat = CANONICAL
) -> tuple[list[Example], list[GenerationRequest]]:
    """:func:`render_items` without the input blocks."""
    out, requests, _ = render_items(spec, examples, shots, chat, fmt)
    return out, requests


def prepare(spec: BenchmarkSpec, spec_path: Path, settings: RunSettings, cache: Any = None) -> PreparedBenchmark:
    """The benchmark as this run evaluates it. ``cache`` (a :class:`pytest_jallm.prepcache.PreparedCache`)
    gives it from disk when it holds it for the same spec, data files, settings and code."""
    spec = effective_spec(spec, settings)
    if spec.judge is not None:  # a judged chat benchmark is a conversation: always through the chat template
        settings = replace(settings, chat=True)
    if cache is not None:
        return cache.prepare(spec, spec_path, settings)
    examples, data_fingerprint = load_items(spec, spec_path, settings)
    return assemble(spec, spec_path, settings, examples, load_shots(spec, spec_path, settings), data_fingerprint)


def load_items(spec: BenchmarkSpec, spec_path: Path, settings: RunSettings,
               data_fingerprint: str | None = None) -> tuple[list[Example], str]:
    """The examples this run evaluates (the first ``limit``, choices shuffled as the run says) and the
    fingerprint of the full data. Given the full data's fingerprint (``data_fingerprint``: known from an
    earlier read of the same files), a source read in order is read no further than the limit."""
    spec_dir = spec_path.parent
    if data_fingerprint is not None and settings.limit:
        examples = load_examples(spec, spec_dir, settings.data_dir, settings.limit, settings.data_config,
                                 read_limit=settings.limit)
    else:
        # The fingerprint covers the full data even on a --jallm-limit smoke run, so a limited run
        # still pairs with (is not "stale" against) a baseline of the whole benchmark.
        examples = load_examples(spec, spec_dir, settings.data_dir, None, settings.data_config)
    if settings.shuffle_choices is not None:
        # One draw per item, in order: the first items' draws do not depend on the rest.
        examples = shuffle_choices(spec, examples, settings.shuffle_choices)
    if data_fingerprint is None:
        data_fingerprint = fingerprint(examples)
    return (examples if settings.limit is None else examples[: settings.limit]), data_fingerprint


def load_shots(spec: BenchmarkSpec, spec_path: Path, settings: RunSettings) -> list[Example]:
    return load_fewshots(spec, spec_path.parent, settings.data_dir, settings.data_config)


def assemble(spec: BenchmarkSpec, spec_path: Path, settings: RunSettings, examples: list[Example],
             shots: list[Example], data_fingerprint: str) -> PreparedBenchmark:
    examples, requests, inputs = render_items(spec, examples, shots, settings.chat)
    return PreparedBenchmark(
        spec=spec,
        spec_path=spec_path,
        examples=examples,
        shots=shots,
        requests=requests,
        prompt_hash=prompt_hash(spec, shots, settings.chat, settings.shuffle_choices),
        data_fingerprint=data_fingerprint,
        inputs=inputs,
    )


def request_records(prep: PreparedBenchmark) -> list[dict[str, Any]]:
    """What `python -m pytest_jallm prompts` writes: one record per request, in evaluation order."""
    records = []
    for ex, req in zip(prep.examples, prep.requests, strict=True):
        record: dict[str, Any] = {"benchmark": prep.spec.name, "id": ex.id, "prompt": req.prompt, "gold": ex.gold}
        if req.messages is not None:
            record["messages"] = [dict(m) for m in req.messages]
        record.update(max_new_tokens=req.max_new_tokens, stop=list(req.stop), num_fewshot=len(prep.shots))
        records.append(record)
    return records


