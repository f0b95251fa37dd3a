"""Prompts that fit the model: every prompt's token length is checked against the model's context
before it is generated, so one overlong prompt never fails a batch (vLLM refuses a prompt longer than
``max_model_len`` and takes the whole call down; transformers only warns and the model reads garbage
positions).

The budget is the context the backend reports (``context_window()``: vLLM's ``max_model_len``,
transformers' ``max_position_embeddings``, a server's ``max_model_len``) minus the request's
``max_new_tokens``. What happens to a prompt over budget is the run's policy (``--jallm-context-policy``),
recorded in every result's provenance:

* ``fewer-shots`` (default): the item is rendered again with one few-shot example less, until it
  fits; an item that does not fit even zero-shot fails alone;
* ``error``: the item fails alone (counted like any request the backend failed:
  ``--jallm-max-backend-errors``).

The check needs the backend loaded (its tokenizer), so it runs on cache misses only: the cache keys
stay those of the canonical prompts, and a fully cached re-run loads no model. Backends that cannot
count tokens (no ``count_prompt_tokens``) or report no context are passed through unchanged, and the
run says so once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from .backends.base import (
    Backend,
    BackendIdentity,
    GenerationRequest,
    RequestErrors,
    ResultCallback,
    SamplingSettings,
)

POLICIES = ("fewer-shots", "error")
DEFAULT_POLICY = "fewer-shots"

# request -> the same item rendered with k few-shot examples (k below the request's own count), or None
Reshot = Callable[[GenerationRequest, int], "GenerationRequest | None"]


@dataclass
class FitReport:
    """What the check did in one generation call, by the id of the original request."""

    window: int | None = None
    checked: bool = False
    shortened: dict[int, tuple[int, int]] = field(default_factory=dict)  # id -> (shots kept, shots before)
    too_long: dict[int, str] = field(default_factory=dict)  # id -> why


def keyed_identity(identity: BackendIdentity, policy: str) -> BackendIdentity:
    """The identity generations are cached under: the default policy leaves it as it is (existing
    caches stay valid); another policy answers overlong prompts differently, so it is part of the key."""
    if policy == DEFAULT_POLICY:
        return identity
    return replace(identity, settings={**identity.settings, "context_policy": policy})


def context_window(backend: Any) -> int | None:
    fn = getattr(backend, "context_window", None)
    return fn() if callable(fn) else None


class FittingBackend:
    """Wraps the session's backend for one generation call: prompts over budget are shortened or
    failed on their own, as the policy says; everything else passes through untouched."""

    def __init__(self, backend: Backend, policy: str, reshot: Reshot, shots_of: Callable[[GenerationRequest], int]):
        if policy not in POLICIES:
            raise ValueError(f"context policy {policy!r}: expected one of {', '.join(POLICIES)}")
        self.backend, self.policy, self.reshot, self.shots_of = backend, policy, reshot, shots_of
        self.report = FitReport()

    def identity(self) -> BackendIdentity:
        return keyed_identity(self.backend.identity(), self.policy)

    def close(self) -> None:  # the session closes the real backend
        pass

    def _fits(self, requests: Sequence[GenerationRequest], window: int) -> list[bool]:
        counts = self.backend.count_prompt_tokens(requests)  # type: ignore[attr-defined]
        return [n + r.max_new_tokens <= window for n, r in zip(counts, requests, strict=True)]

    def fit(self, requests: Sequence[GenerationRequest]) -> tuple[list[GenerationRequest], dict[int, str]]:
        """The requests to send (index-aligned) and the indexes that cannot be sent, with why."""
        window = context_window(self.backend)
        self.report.window = window
        if window is None or not callable(getattr(self.backend, "count_prompt_tokens", None)):
            return list(requests), {}
        self.report.checked = True
        out = list(requests)
        failed: dict[int, str] = {}
        pending = [i for i, ok in enumerate(self._fits(out, window)) if not ok]
        for i in pending:
            original = requests[i]
            shots = self.shots_of(original)
            fitted = None
            if self.policy == "fewer-shots":
                for k in range(shots - 1, -1, -1):
                    candidate = self.reshot(original, k)
                    if candidate is not None and self._fits([candidate], window)[0]:
                        fitted, kept = candidate, k
                        break
            if fitted is None:
                n = self.backend.count_prompt_tokens([original])[0]  # type: ignore[attr-defined]
                why = (f"prompt of {n} tokens + max_new_tokens {original.max_new_tokens} exceeds the model's context "
                       f"of {window} tokens")
                why += (" even with no few-shot example (--jallm-context-policy fewer-shots)" if self.policy == "fewer-shots"
                        else " (--jallm-context-policy error)")
                failed[i] = why
                self.report.too_long[id(original)] = why
            else:
                out[i] = fitted
                self.report.shortened[id(original)] = (kept, shots)
        return out, failed

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingSettings,
                 on_result: ResultCallback | None = None) -> list[str]:
        fitted, failed = self.fit(requests)
        send = [i for i in range(len(fitted)) if i not in failed]
        texts: list[str | None] = [None] * len(fitted)

        def relay(j: int, text: str) -> None:
            texts[send[j]] = text
            if on_result is not None:
                on_result(send[j], text)

        try:
            out = self.backend.generate([fitted[i] for i in send], sampling, relay) if send else []
        except RequestErrors as e:  # the backend's own per-request failures, in our indexes
            for j, text in enumerate(e.texts):
                if text is not None:
                    texts[send[j]] = text
            failed.update({send[j]: why for j, why in e.failures.items()})
            raise RequestErrors(failed, texts, generated=len(send) - len(e.failures)) from None
        for j, text in enumerate(out):
            texts[send[j]] = text
        if failed:
            raise RequestErrors(failed, texts, generated=len(send))
        return [t if t is not None else "" for t in texts]
