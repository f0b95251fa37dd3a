"""An LLM-judged chat benchmark, stage by stage: turn 1, turn 2, then the judge.

1. Turn 1 of every question in one batched call of the model's backend (the prepared requests:
   the question as the user message, through the model's chat template).
2. Turn 2 in a second batched call: user q1, assistant a1, user q2 (a question whose first turn
   failed in the backend is not asked again).
3. Every turn's judge prompt (chatjudge.fastchat) in one batched call of the judge's backend,
   temperature 0; the rating read from each judgment.

All three go through the generation cache (the judge's calls keyed by the judge's identity), and
each request names its item and turn (`ItemRef`). The scored unit is the question × turn
(`<question id>-turn<n>`), its score the rating / 10, so the benchmark's score is the mean rating
× 10 (0-100, like every other score) and FastChat's 1-10 figures are in the result's `judged`
summary. A judgment without a rating is left out of the score, as FastChat leaves out its -1,
and counted and listed in that summary (never scored 0).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .. import __version__
from ..answers import Reasoning, strip_reasoning
from ..backends.base import (
    Backend,
    BackendError,
    BackendIdentity,
    GenerationRequest,
    ItemRef,
    RequestErrors,
    SamplingSettings,
)
from ..data import DataError, load_source
from ..evaluation import BenchmarkResult, Evaluation, ItemOutcome, PreparedBenchmark
from ..generation import cached_generate
from ..metrics import get_metric
from ..spec import JUDGE_METRIC, JudgeSpec
from . import fastchat, item_id
from .judge import JudgeSettings

MAX_LISTED_UNSCORABLE = 50  # causes kept in the summary; the count is always complete


class JudgeNotConfigured(BackendError):
    """A judged benchmark ran without --jallm-judge-model."""


@dataclass(frozen=True)
class JudgeMaterial:
    """What the judge reads besides the answers: its prompts and the reference answers."""

    prompts: Mapping[tuple[int, bool], fastchat.JudgePrompt]  # (turn, with reference) -> prompt
    references: Mapping[str, tuple[str, str]]  # question id -> reference answer of turn 1, turn 2
    reference_file: str
    reference_hash: str

    @property
    def prompts_version(self) -> str:
        return fastchat.prompts_version(self.prompts.values())


def load_material(spec_path: Path, judge: JudgeSpec, ev: Evaluation, where: str) -> JudgeMaterial:
    spec_dir, settings = spec_path.parent, ev.settings

    def rows(source, key):
        try:
            return load_source(source, spec_dir, settings.data_dir, f"{where}: {key}", settings.data_config)[:2]
        except DataError as e:
            raise DataError(f"{where}: {key}: {e}") from None

    loaded = {}
    for key, source in (("judge.prompts", judge.prompts), ("judge.multi_turn_prompts", judge.multi_turn_prompts)):
        if source is not None:
            found, origin = rows(source, key)
            try:
                loaded[key] = (fastchat.judge_prompts_from_rows(found, origin), origin)
            except fastchat.JudgePromptError as e:
                raise DataError(f"{where}: {key}: {e}") from None
    prompts = {}
    for turn in range(1, judge.turns + 1):
        key = "judge.multi_turn_prompts" if turn == 2 and "judge.multi_turn_prompts" in loaded else "judge.prompts"
        by_name, origin = loaded[key]
        for with_reference in (False, True):
            try:
                prompts[(turn, with_reference)] = fastchat.select_prompt(by_name, turn, with_reference, origin)
            except fastchat.JudgePromptError as e:
                raise DataError(f"{where}: {key}: {e}") from None
    found, origin = rows(judge.reference_answers, "judge.reference_answers")
    references = {str(r["question_id"]): (r["turn_1"], r["turn_2"]) for r in found}
    blob = json.dumps(sorted(references.items()), ensure_ascii=False).encode("utf-8")
    return JudgeMaterial(prompts, references, Path(origin.split(" (+")[0]).name, hashlib.sha256(blob).hexdigest()[:16])


def readable(messages: Sequence[Mapping[str, str]]) -> str:
    """A conversation as text, for reports (backends send the messages)."""
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


@dataclass
class _Turns:
    """The model's answers by (question id, turn), the prompts that asked for them, what failed."""

    answers: dict[tuple[str, int], str] = field(default_factory=dict)
    prompts: dict[tuple[str, int], str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # item id -> cause
    calls: list[_Call] = field(default_factory=list)


@dataclass
class _Call:
    texts: list[str | None]
    origins: list[str]
    failed: dict[int, str]
    seconds: float

    def count(self, word: str) -> int:
        return self.origins.count(word)


class JudgedRunner:
    """Runs the session's judged benchmarks; holds the judge's backend (loaded once, when needed)."""

    def __init__(self, judge: JudgeSettings | None, *, make_judge: Callable[[], Backend] | None = None,
                 progress: Callable[[int], Any] | None = None, judge_progress: Callable[[int], Any] | None = None):
        self.judge = judge
        self._make_judge = make_judge or (judge.create if judge is not None else None)
        self._progress = progress  # progress bars of the model's calls, then of the judge's
        self._judge_progress = judge_progress or progress
        self._backend: Backend | None = None
        self._identity: BackendIdentity | None = None
        self.load_seconds = 0.0

    # -- the judge --------------------------------------------------------------------------

    def backend(self) -> Backend:
        if self._backend is None:
            if self._make_judge is None:
                raise JudgeNotConfigured("no judge: pass --jallm-judge-model (and --jallm-judge-backend, "
                                         "--jallm-judge-base-url …) to run LLM-judged benchmarks")
            started = time.perf_counter()
            self._backend = self._make_judge()
            self.load_seconds += time.perf_counter() - started
        return self._backend

    def identity(self, peek: bool) -> BackendIdentity:
        """The judge's identity; with ``peek``, without loading a judge whose backend can tell."""
        if self._backend is not None:
            return self._backend.identity()
        if self._identity is None:
            peeked = self.judge.peek_identity() if (peek and self.judge is not None) else None
            self._identity = peeked if peeked is not None else self.backend().identity()
        return self._identity

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # -- one benchmark -------------------------------------------------------------------------

    def _call(self, get_backend: Callable[[], Backend], requests: list[GenerationRequest], sampling: SamplingSettings,
              ev: Evaluation, identity: BackendIdentity | None, progress: Callable[[int], Any] | None) -> _Call:
        bar = progress(len(requests)) if (progress and requests) else None
        origins: list[str] = []
        failed: dict[int, str] = {}
        texts: Sequence[str | None]
        started = time.perf_counter()
        try:
            texts, _ = cached_generate(get_backend, requests, sampling, ev.cache(), identity=identity, origins=origins,
                                       on_progress=bar.update if bar is not None else None)
        except RequestErrors as e:  # some requests failed on their own: the others are kept
            texts, failed = e.texts, e.failures
        finally:
            if bar is not None:
                bar.close()
        return _Call(list(texts), origins, failed, time.perf_counter() - started)

    def _model_call(self, ev: Evaluation, requests: list[GenerationRequest]) -> _Call:
        load_before = ev.timings["load"]
        identity = ev.identity() if ev.cache() is not None else None
        call = self._call(lambda: ev.backend, requests, ev.settings.sampling, ev, identity, self._progress)
        call.seconds -= ev.timings["load"] - load_before
        ev.timings["generate"] += call.seconds
        ev.prompts_requested += len(requests)
        ev.prompts_generated += call.count("generated")
        ev.prompts_from_cache += call.count("cache")
        ev.prompts_repeated += call.count("repeated")
        return call

    def run(self, ev: Evaluation, prep: PreparedBenchmark) -> BenchmarkResult:
        spec, judge_spec = prep.spec, prep.spec.judge
        assert judge_spec is not None
        if self._make_judge is None:
            self.backend()  # raises JudgeNotConfigured before the model answers anything
        material = load_material(prep.spec_path, judge_spec, ev, f"{spec.name} ({prep.spec_path.name})")
        self._check_questions(prep, judge_spec, material)
        turns = self._answer(ev, prep, judge_spec.turns)
        started, load_before = time.perf_counter(), self.load_seconds
        judged = [(ex.id, t) for ex in prep.examples for t in range(1, judge_spec.turns + 1) if (ex.id, t) in turns.answers]
        judge_sampling = SamplingSettings(temperature=0.0, top_p=1.0, repetition_penalty=1.0, seed=ev.settings.sampling.seed)
        by_id = {ex.id: ex for ex in prep.examples}
        judge_requests = [self._judge_request(spec.name, judge_spec, material, by_id[qid], turn, turns.answers, ev)
                          for qid, turn in judged]
        verdicts = self._call(self.backend, judge_requests, judge_sampling, ev, self.identity(peek=ev.cache() is not None),
                              self._judge_progress)
        judge_identity = self.identity(peek=self._backend is None)
        ev.timings["load"] += self.load_seconds - load_before

        unscorable: dict[str, str] = {}
        scored: list[tuple[str, int, str]] = []
        for j, (qid, turn) in enumerate(judged):
            judgment = verdicts.texts[j]
            reason = (f"the judge request failed: {verdicts.failed.get(j, 'no text')}" if judgment is None
                      else fastchat.unscorable_reason(judgment))
            if reason is None:
                scored.append((qid, turn, judgment))  # type: ignore[arg-type]
            else:
                unscorable[item_id(qid, turn)] = reason if judgment is None else f"{reason}: {_tail(judgment)}"
        rated = get_metric(JUDGE_METRIC)([j for _, _, j in scored], ["" for _ in scored], [{} for _ in scored])
        per_item = rated.per_item or []
        score = 100 * rated.score if per_item else 0.0
        items = [ItemOutcome(id=item_id(qid, turn), prompt=turns.prompts[(qid, turn)],
                             gold=_reference(judge_spec, material, by_id[qid], turn), output=turns.answers[(qid, turn)],
                             prediction=judgment, score=float(item_score), ooc=False, input=by_id[qid].fields[f"turn_{turn}"])
                 for (qid, turn, judgment), item_score in zip(scored, per_item, strict=True)]
        score_seconds = time.perf_counter() - started - (self.load_seconds - load_before)
        ev.timings["score"] += score_seconds
        result = BenchmarkResult(
            name=spec.name, category=spec.category, in_average=spec.counts_in_average, metric=JUDGE_METRIC, score=score,
            scores={JUDGE_METRIC: score}, ooc_rate=None, n=len(items), binary=False, items=items,
            produced_by=_produced_by(prep, ev, judge_spec, material, judge_identity, judge_sampling),
            backend_errors={**turns.failed, **unscorable})
        ratings = [(by_id[qid].fields["category"], turn, 10 * s) for (qid, turn, _), s in zip(scored, per_item, strict=True)]
        result.judged = {
            "scale": "1-10", **fastchat.show_result(ratings), "asked": len(prep.examples) * judge_spec.turns,
            "judged": len(judged), "scored": len(scored), "unscorable_count": len(unscorable),
            "unscorable": dict(list(unscorable.items())[:MAX_LISTED_UNSCORABLE]), "backend_errors": len(turns.failed),
            "judge": f"{judge_identity.backend} {judge_identity.model}",
        }
        model_calls = turns.calls
        result.run = {
            "prompts": sum(len(c.texts) for c in model_calls), "generated": sum(c.count("generated") for c in model_calls),
            "cache_hits": sum(c.count("cache") for c in model_calls), "repeated": sum(c.count("repeated") for c in model_calls),
            "seconds": _seconds(prep.seconds, sum(c.seconds for c in model_calls), score_seconds),
            "generation_shared_by": [spec.name],
            "judge": {"prompts": len(judge_requests), "generated": verdicts.count("generated"),
                      "cache_hits": verdicts.count("cache"), "repeated": verdicts.count("repeated")},
        }
        return result

    @staticmethod
    def _check_questions(prep: PreparedBenchmark, judge_spec: JudgeSpec, material: JudgeMaterial) -> None:
        where = f"{prep.spec.name} ({prep.spec_path.name})"
        for ex in prep.examples:
            if judge_spec.turns == 2 and int(ex.context.get("turns", 2)) < 2:
                raise DataError(f"{where}: question {ex.id} has one turn; judge.turns is 2")
            if ex.fields["category"] in judge_spec.reference_categories and ex.id not in material.references:
                raise DataError(f"{where}: question {ex.id} ({ex.fields['category']}) is judged against a reference "
                                f"answer, but {material.reference_file} has none for it")

    def _answer(self, ev: Evaluation, prep: PreparedBenchmark, n_turns: int) -> _Turns:
        """Turn 1 of every question in one call, then turn 2 of those whose first answer came back."""
        spec = prep.spec
        out = _Turns()
        first = self._model_call(ev, list(prep.requests))
        out.calls.append(first)
        second_requests: list[GenerationRequest] = []
        for i, (ex, req, text) in enumerate(zip(prep.examples, prep.requests, first.texts, strict=True)):
            if i in first.failed:
                out.failed[item_id(ex.id, 1)] = first.failed[i]
                if n_turns == 2:
                    out.failed[item_id(ex.id, 2)] = "not asked: turn 1 failed in the backend"
                continue
            out.answers[(ex.id, 1)], out.prompts[(ex.id, 1)] = text or "", req.prompt
            if n_turns == 2:
                messages = (*(req.messages or ()), {"role": "assistant", "content": text or ""},
                            {"role": "user", "content": ex.fields["turn_2"]})
                second_requests.append(GenerationRequest(
                    prompt=readable(messages), max_new_tokens=spec.max_new_tokens, stop=tuple(spec.stop),
                    messages=messages, item=ItemRef(spec.name, ex.id, 2)))
        if n_turns == 2:
            second = self._model_call(ev, second_requests)
            out.calls.append(second)
            for j, (req, text) in enumerate(zip(second_requests, second.texts, strict=True)):
                qid = req.item.item_id  # type: ignore[union-attr]
                if j in second.failed:
                    out.failed[item_id(qid, 2)] = second.failed[j]
                else:
                    out.answers[(qid, 2)], out.prompts[(qid, 2)] = text or "", req.prompt
        asked = len(prep.examples) * n_turns
        if out.failed and 100 * len(out.failed) / asked > ev.settings.max_backend_error_pct:
            first_id = next(iter(out.failed))
            raise BackendError(
                f"{spec.name}: {len(out.failed)} of {asked} answers failed in the backend (allowed: "
                f"{ev.settings.max_backend_error_pct:g}%, --jallm-max-backend-errors); first: {first_id}: {out.failed[first_id]}")
        return out

    def _judge_request(self, benchmark: str, judge_spec: JudgeSpec, material: JudgeMaterial, ex: Any, turn: int,
                       answers: Mapping[tuple[str, int], str], ev: Evaluation) -> GenerationRequest:
        with_reference = ex.fields["category"] in judge_spec.reference_categories
        prompt = material.prompts[(turn, with_reference)]
        shown = [answers[(ex.id, t)] for t in range(1, turn + 1)]
        if ev.settings.reasoning is not None:  # the judge rates the answer, not the reasoning before it
            shown = [strip_reasoning(a, ev.settings.reasoning)[0] for a in shown]
        user = fastchat.render_judge_prompt(prompt, [ex.fields["turn_1"], ex.fields["turn_2"]], shown,
                                            material.references.get(ex.id) if with_reference else None, turn)
        messages = ({"role": "system", "content": prompt.system_prompt}, {"role": "user", "content": user})
        return GenerationRequest(prompt=readable(messages), max_new_tokens=judge_spec.max_new_tokens,
                                 messages=messages, item=ItemRef(benchmark, ex.id, turn))



def _reference(judge_spec: JudgeSpec, material: JudgeMaterial, ex: Any, turn: int) -> str:
    """The reference answer the judge saw for this turn ("" when the category is judged without one)."""
    if ex.fields["category"] not in judge_spec.reference_categories:
        return ""
    return material.references[ex.id][turn - 1]


def _produced_by(prep: PreparedBenchmark, ev: Evaluation, judge_spec: JudgeSpec, material: JudgeMaterial,
                 identity: BackendIdentity, sampling: SamplingSettings) -> dict[str, Any]:
    settings = ev.settings
    return {
        **ev.identity().as_dict(),
        "sampling": settings.sampling.as_dict(),
        "prompt_hash": prep.prompt_hash,
        "data_fingerprint": prep.data_fingerprint,
        "num_fewshot": 0,
        "chat": True,
        "limit": settings.limit,
        # The judge reads the answers with the reasoning removed (--jallm-mode reasoning, --jallm-strip-think).
        "scoring": {"strip_think": settings.reasoning is not None,
                    **({"reasoning": settings.reasoning.as_dict()} if settings.reasoning not in (None, Reasoning()) else {})},
        "context_policy": settings.context_policy,
        **({"mode": settings.mode} if settings.mode is not None else {}),
        # What makes one judge's ratings comparable with another's: a baseline judged otherwise is stale.
        "judge": {
            "model": identity.model, "model_revision": identity.model_revision,
            "prompts": material.prompts_version, "reference_answers": material.reference_hash,
            "reference_file": material.reference_file, "reference_categories": list(judge_spec.reference_categories),
            "turns": judge_spec.turns, "max_new_tokens": judge_spec.max_new_tokens,
            "temperature": sampling.temperature,
        },
        "judge_identity": identity.as_dict(),  # provenance only: a server's version does not stale a baseline
        "pytest_jallm": __version__,
    }


def _tail(text: str, n: int = 120) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= n else "…" + text[-n:])


def _seconds(prepare: float, generate: float, score: float) -> dict[str, float]:
    out = {"prepare": round(prepare, 6), "generate": round(generate, 6), "score": round(score, 6)}
    out["total"] = round(sum(out.values()), 6)
    return out
