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
from .prompt import prompt_hash, render, render_messages
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
    for ex, req in zip(prep.examples, prep.requests, strict=True):
        record: dict[str, Any] = {"benchmark": prep.spec.name, "id": ex.id, "prompt": req.prompt, "gold": ex.gold}
        if req.messages is not None:
            record["messages"] = [dict(m) for m in req.messages]
        record.update(max_new_tokens=req.max_new_tokens, stop=list(req.stop), num_fewshot=len(prep.shots))
        records.append(record)
    return records


