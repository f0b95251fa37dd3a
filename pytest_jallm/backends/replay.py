"""Serve generations from recorded outputs: `--jallm-backend replay --model FILE_OR_DIR`.

Gates outputs produced elsewhere (an API model, another harness, an earlier run's
``--jallm-save-outputs``) without a model. The formats are in :mod:`pytest_jallm.recordings`.

A request is answered by the first of these that has a recorded output for it:

1. **its item and prompt**: records of the same benchmark, item id and turn that recorded the
   same prompt (``--jallm-save-outputs``: the same chat messages, or the same raw prompt), or
   no prompt at all (FastChat answers, and outputs files with ids but no benchmark, bound to the
   benchmark by ``--jallm-replay-benchmark``). Unbound, such records answer no item by its id:
   a question id is a number that other benchmarks' items have too (JNLI's item 1 is not
   MT-Bench's question 1), so the request fails and says to bind the file;
2. **its prompt**: for a raw completion, records of the same raw prompt (``--jallm-save-outputs``
   without ``--jallm-chat``, and M-IFEval, which records only the user's prompt); for a chat
   request, records of the same chat messages, else M-IFEval's whose prompt is its last user turn;
3. **its item id and turn** in a FastChat judgment file (bound or not: a judge request whose
   prompt was rendered from other question, prompt or reference files than the recorded one; it
   warns, since a judgment is only that of the same answer when the model side replays the
   answers FastChat judged);
4. **its item id** in a baseline file (turn 1): the extracted answer, capped at 200 characters
   (a fallback: it warns).

FastChat judgment files hold several models' judgments: ``--jallm-replay-judged-model NAME``
(for a judge, ``--jallm-judge-replay-judged-model``) keeps only those of one model's answers, so
that question Q, turn N names one judgment.

When the records of the first step that matches hold *different* outputs (a prompt recorded
twice with different responses), the request fails instead of picking one. A request nothing
answers fails on its own, naming the benchmark, the item and the files searched: the per-request
failure path (`RequestErrors`, ``--jallm-max-backend-errors``), not the run. Matching by item is
why the identity sets ``outputs_per_item``: the cache keys and de-duplicates requests per item,
so two items with the same prompt keep their own recorded outputs. The recorded text is served
as recorded, cut at the request's stop sequences as every backend's is; ``max_new_tokens``
cannot be applied (there is no tokenizer).
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from .. import __version__
from ..backend_options import REPLAY_OPTIONS
from ..recordings import (
    USER_PROMPT_KINDS,
    Recording,
    RecordingError,
    content_sha256,
    messages_key,
    read_recordings,
    recording_files,
)
from .base import (
    BackendIdentity,
    GenerationRequest,
    RequestErrors,
    ResultCallback,
    SamplingSettings,
    apply_stop,
    register_backend,
)

JUDGMENT_BY_ITEM = "question id and turn"  # how a FastChat judgment matched a judge prompt it was not recorded for
MATCHING_VERSION = "2"  # bump when the matching rules change: cached replays then stop matching
_LISTED = 5  # file names listed in a failure message


class ReplayWarning(UserWarning):
    """A replay served something less than a recorded raw output for the same request (baseline
    predictions; judgments recorded for another judge prompt)."""


def _distinct(records: Sequence[Recording]) -> list[Recording]:
    """One record per distinct output, in file order."""
    seen: dict[str, Recording] = {}
    for r in records:
        seen.setdefault(r.output, r)
    return list(seen.values())


def _last_user_turn(request: GenerationRequest) -> str | None:
    """The user's message a format that records only it (M-IFEval, FastChat judgments) recorded:
    a chat request's last user turn, a raw request's prompt."""
    if request.messages is None:
        return request.prompt
    user = [m["content"] for m in request.messages if m.get("role") == "user"]
    return user[-1] if user else None


@register_backend("replay")
class ReplayBackend:
    """Recorded outputs as a backend; ``model`` is a recorded-outputs file or a directory of them."""

    cli_options = REPLAY_OPTIONS  # declared in backend_options.py, so that start-up imports no backend

    def __init__(self, model: str, *, benchmark: str | None = None, judged_model: str | None = None):
        self.model = model
        self.benchmark = benchmark
        self.judged_model = judged_model
        self.files = recording_files(model)
        self.kinds: dict[str, str | None] = {}
        by_item: dict[tuple, list[Recording]] = defaultdict(list)
        by_item_any: dict[tuple, list[Recording]] = defaultdict(list)
        by_messages: dict[tuple, list[Recording]] = defaultdict(list)
        by_prompt: dict[str, list[Recording]] = defaultdict(list)
        by_user_prompt: dict[str, list[Recording]] = defaultdict(list)
        from_baselines: dict[tuple, list[Recording]] = defaultdict(list)
        count = 0
        judged_models: set[str] = set()
        for path in self.files:
            kind, records = read_recordings(path, benchmark)
            self.kinds[path.name] = kind
            if kind == "fastchat-judgment":
                judged_models.update(r.judged_model for r in records if r.judged_model is not None)
                if judged_model is not None:
                    records = [r for r in records if r.judged_model == judged_model]
            count += len(records)
            for r in records:
                if r.kind == "baseline":
                    from_baselines[(r.benchmark, r.item_id)].append(r)
                    continue
                if r.item_id is not None:
                    if r.benchmark is None:
                        by_item_any[(r.item_id, r.turn)].append(r)
                    else:
                        by_item[(r.benchmark, r.item_id, r.turn)].append(r)
                if r.kind in USER_PROMPT_KINDS:
                    by_user_prompt[r.prompt].append(r)  # type: ignore[index]
                elif r.messages is not None:
                    by_messages[r.messages].append(r)
                elif r.prompt is not None:
                    by_prompt[r.prompt].append(r)
        if judged_model is not None and judged_model not in judged_models:
            listed = ", ".join(sorted(judged_models)[:_LISTED]) + (" …" if len(judged_models) > _LISTED else "")
            raise RecordingError(f"replay backend: --jallm-replay-judged-model {judged_model}: no FastChat judgment of "
                                 f"that model's answers in {self._searched()}"
                                 + (f" (judged models: {listed})" if judged_models else " (no model_judgment file)"))
        if not count:
            raise RecordingError(f"replay backend: --model {model}: no recorded outputs in {self._searched()}")
        self.count = count
        self._by_item, self._by_item_any, self._from_baselines = by_item, by_item_any, from_baselines
        self._by_messages, self._by_prompt, self._by_user_prompt = by_messages, by_prompt, by_user_prompt
        self._sha256 = content_sha256(self.files)

    # ----- identity -----

    def identity(self) -> BackendIdentity:
        settings: dict = {"files": [p.name for p in self.files]}
        if self.benchmark is not None:
            settings["benchmark"] = self.benchmark
        if self.judged_model is not None:
            settings["judged_model"] = self.judged_model
        return BackendIdentity(
            backend="replay",
            backend_version=f"pytest-jallm {__version__}; matching {MATCHING_VERSION}",
            model=self.model,
            model_revision=f"recorded-sha256:{self._sha256[:16]}",  # the files' content: two recordings never mix
            settings=settings,
            outputs_per_item=True,
        )

    # ----- matching -----

    def _searched(self) -> str:
        names = [p.name for p in self.files]
        listed = ", ".join(names[:_LISTED]) + (f" and {len(names) - _LISTED} more" if len(names) > _LISTED else "")
        where = Path(self.model) if Path(self.model).is_dir() else Path(self.model).parent
        return f"{listed} (in {where})"

    @staticmethod
    def _agrees(record: Recording, request: GenerationRequest) -> bool:
        """Whether a record of the request's item recorded the request's prompt (or none)."""
        if record.kind in USER_PROMPT_KINDS:
            return record.prompt == _last_user_turn(request)
        if record.messages is not None:
            return request.messages is not None and record.messages == messages_key(request.messages)
        if record.prompt is not None:
            return request.messages is None and record.prompt == request.prompt
        return True

    def candidates(self, request: GenerationRequest) -> tuple[str, list[Recording]]:
        """``(how, records)`` of the first matching step (see the module docstring); ``("", [])`` if none."""
        item = request.item
        if item is not None:
            mine = [r for r in self._by_item.get((item.benchmark, item.item_id, item.turn), ()) if self._agrees(r, request)]
            if mine:
                return "item and prompt", mine
        if request.messages is None:  # a raw completion: records of that raw prompt, or of that user prompt
            found = self._by_prompt.get(request.prompt, []) + self._by_user_prompt.get(request.prompt, [])
            if found:
                return "prompt", found
        else:  # chat: records of the same conversation, else (M-IFEval) of its last user turn
            found = self._by_messages.get(messages_key(request.messages), [])
            if found:
                return "chat messages", found
            user = _last_user_turn(request)
            found = self._by_user_prompt.get(user, []) if user is not None else []
            if found:
                return "last user turn", found
        if item is not None:
            found = [r for r in self._by_item_any.get((item.item_id, item.turn), ()) if r.kind == "fastchat-judgment"] or [
                r for r in self._by_item.get((item.benchmark, item.item_id, item.turn), ()) if r.kind == "fastchat-judgment"]
            if found:
                return JUDGMENT_BY_ITEM, found
            if item.turn == 1:
                from_baseline = self._from_baselines.get((item.benchmark, item.item_id))
                if from_baseline:
                    return "baseline prediction", from_baseline
        return "", []

    def _missing(self, request: GenerationRequest) -> str:
        item = request.item
        what = "this request" if item is None else (
            f"{item.benchmark} item {item.item_id!r}" + (f" turn {item.turn}" if item.turn != 1 else ""))
        cause = f"no recorded output for {what} in {self._searched()}: neither its item id nor its prompt " \
                f"{request.prompt[:60]!r}{'…' if len(request.prompt) > 60 else ''} is recorded"
        if item is not None:
            unbound = [r for r in self._by_item_any.get((item.item_id, item.turn), ()) if r.kind != "fastchat-judgment"]
            if unbound:
                cause += (f"; {unbound[0].where} records item {item.item_id!r}" + (f" turn {item.turn}" if item.turn != 1
                                                                                  else "")
                          + " but names no benchmark, and other benchmarks have items of that id too: bind the file "
                            f"with --jallm-replay-benchmark {item.benchmark} if it answers {item.benchmark}")
            other = self._by_item.get((item.benchmark, item.item_id, item.turn))
            if other:
                cause += (f"; {other[0].where} records this item for another prompt (recorded with other options: "
                          "--jallm-chat, --jallm-num-fewshot, another prompt template?)")
        return cause

    def answer(self, request: GenerationRequest) -> tuple[str | None, str]:
        """``(text, how)``, or ``(None, why not)``."""
        how, found = self.candidates(request)
        if not found:
            return None, self._missing(request)
        distinct = _distinct(found)
        if len(distinct) > 1:
            item = request.item
            what = "this request" if item is None else f"{item.benchmark} item {item.item_id!r}"
            places = ", ".join(r.where for r in distinct[:3]) + (" …" if len(distinct) > 3 else "")
            judged = sorted({r.judged_model for r in distinct if r.judged_model is not None})
            if len(judged) > 1:
                remedy = (f"judgments of {len(judged)} models ({', '.join(judged[:3])}{' …' if len(judged) > 3 else ''}): "
                          "choose one with --jallm-replay-judged-model")
            elif all(r.kind == "fastchat-judgment" for r in distinct):  # one model's answer, judged twice
                remedy = "FastChat judged this answer more than once (it appends re-runs to the file): keep one"
            else:
                remedy = "keep one, or record item ids (--jallm-save-outputs does) so each item gets its own"
            return None, f"{what}: {len(distinct)} different recorded outputs match its {how} ({places}); {remedy}"
        return apply_stop(distinct[0].output, request.stop), how

    # ----- the Backend protocol -----

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingSettings,
        on_result: ResultCallback | None = None,
    ) -> list[str]:
        texts: list[str | None] = []
        failures: dict[int, str] = {}
        from_baseline = judged_by_item = 0
        for i, request in enumerate(requests):
            text, how = self.answer(request)
            texts.append(text)
            if text is None:
                failures[i] = how
                continue
            from_baseline += how == "baseline prediction"
            judged_by_item += how == JUDGMENT_BY_ITEM
            if on_result is not None:
                on_result(i, text)
        if from_baseline:
            warnings.warn(f"replay backend: {from_baseline} of {len(requests)} outputs are baseline predictions from "
                          f"{self._searched()}: extracted, normalised answers capped at 200 characters, not raw outputs; "
                          "scores may differ from the recorded run's", ReplayWarning, stacklevel=2)
        if judged_by_item:
            warnings.warn(f"replay backend: {judged_by_item} of {len(requests)} outputs are FastChat judgments matched by "
                          f"question id and turn, not by their judge prompt (recorded with other question, prompt or "
                          f"reference files) from {self._searched()}: each is the judgment of the answer FastChat judged, "
                          "valid only where the model side replays that model's recorded answers", ReplayWarning,
                          stacklevel=2)
        if failures:
            raise RequestErrors(failures, texts)
        return texts  # type: ignore[return-value]

    def close(self) -> None:
        pass
