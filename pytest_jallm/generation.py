"""Generation through the cache: every request looked up first, the misses generated in one backend
call (de-duplicated), each result written to the cache the moment the backend reports it, so a run
killed half-way keeps what finished (see :mod:`pytest_jallm.cache` for the file's guarantees)."""

from __future__ import annotations

import threading
import warnings
from typing import Any, Callable, Sequence

from .backends.base import (
    Backend,
    BackendError,
    BackendIdentity,
    GenerationRequest,
    RequestErrors,
    SamplingSettings,
    bound_output,
    cut_warning,
)
from .cache import GenerationCache

__all__ = ["cached_generate"]


def cached_generate(
    backend: Backend | Callable[[], Backend],
    requests: Sequence[GenerationRequest],
    sampling: SamplingSettings,
    cache: GenerationCache | None,
    *,
    on_progress: Callable[[int], Any] | None = None,
    identity: BackendIdentity | None = None,
    origins: list[str] | None = None,
    on_text: Callable[[int, str], Any] | None = None,
) -> tuple[list[str], int]:
    """Return ``(texts in request order, number of requests actually generated)``.

    When ``origins`` (a list) is given it is filled with one word per request: ``"cache"``
    (answered from the cache), ``"generated"`` or ``"repeated"`` (a request identical to an
    earlier one of this call, which shares its generation).

    All keys are looked up first; only the misses go to ``backend.generate``,
    in one call, de-duplicated (identical requests are generated once and
    share the text, also when ``cache`` is None). Each result is written to the
    cache from ``on_result`` as it arrives, so a killed run keeps everything
    that had finished. ``on_progress(n)`` is called with the number of request
    slots just completed (hits in one call up front, then per result), which
    fits ``tqdm.update``. ``on_text(i, text)`` is called once per request (its index in
    ``requests``) as soon as its text is known: cache hits right after the lookup, generated
    texts, and the requests repeating them, as they arrive (``--jallm-save-outputs``).

    ``backend`` may be a zero-argument loader, called only when something is
    missing; with ``identity`` (what the backend will report, known without
    loading it) a fully cached run never loads the model. Should the loaded
    backend report another identity, the lookup is redone with the real one.

    When the backend reports requests that failed on their own (:class:`RequestErrors`), every
    other text is still delivered and cached, and ``RequestErrors`` is raised with request indexes
    of this call (every slot sharing a failed generation) and the texts (None where failed).

    Whatever the backend, a text longer than its request's ``max_new_tokens`` allows is cut (and
    marked) here, before it is scored or cached (:func:`~pytest_jallm.backends.base.bound_output`),
    with one :class:`OutputCutWarning` counting them.
    """
    requests = list(requests)
    if not requests:
        return [], 0
    loaded: list[Backend] = []

    def get_backend() -> Backend:
        if not loaded:
            loaded.append(backend() if (callable(backend) and not hasattr(backend, "generate")) else backend)  # type: ignore[operator,arg-type]
        return loaded[0]

    if identity is None or cache is None:
        identity = get_backend().identity()
    texts, slots, misses = _lookup(requests, identity, sampling, cache)
    if misses and not loaded:
        real = get_backend().identity()
        if real != identity:  # the hint was wrong: never serve another model's text
            identity = real
            texts, slots, misses = _lookup(requests, identity, sampling, cache)
    n_hit = sum(t is not None for t in texts)
    if origins is not None:
        origins[:] = ["cache" if t is not None else "repeated" for t in texts]
        for k in misses:
            origins[slots[k][0]] = "generated"
    if n_hit and on_progress is not None:
        on_progress(n_hit)
    if on_text is not None:
        for i, t in enumerate(texts):
            if t is not None:
                on_text(i, t)

    if misses:
        meta = {"backend": identity.backend, "backend_version": identity.backend_version, "model_revision": identity.model_revision}
        done = [False] * len(misses)
        lock = threading.Lock()
        model = identity.model

        cut: list[int] = []

        def on_result(j: int, text: str) -> None:
            k = misses[j]
            text, was_cut = bound_output(text, requests[slots[k][0]].max_new_tokens)
            with lock:
                if done[j]:
                    return
                done[j] = True
                for i in slots[k]:
                    texts[i] = text
                if was_cut:
                    cut.append(j)
            if cache is not None:
                cache.put(k, text, model=model, meta=meta)
            if on_text is not None:
                for i in slots[k]:
                    on_text(i, text)
            if on_progress is not None:
                on_progress(len(slots[k]))

        failed: dict[int, str] = {}
        try:
            try:
                out: Sequence[str | None] = get_backend().generate([requests[slots[k][0]] for k in misses], sampling,
                                                                   on_result)
            except RequestErrors as e:  # some requests failed on their own: keep every other text
                out, failed = e.texts, e.failures
            if out is None or len(out) != len(misses):
                raise BackendError(
                    f"backend returned {0 if out is None else len(out)} completions for {len(misses)} requests"
                )
            for j, text in enumerate(out):
                if not done[j] and j not in failed:  # a backend that skipped the callback for some
                    on_result(j, text)  # type: ignore[arg-type]
        finally:
            if cut:
                warnings.warn(cut_warning(len(cut), len(misses)), stacklevel=2)
        if failed:
            raise RequestErrors(
                {i: cause for j, cause in failed.items() for i in slots[misses[j]]}, texts, len(misses) - len(failed)
            )
    return texts, len(misses)  # type: ignore[return-value]


def _lookup(
    requests: Sequence[GenerationRequest],
    identity: BackendIdentity,
    sampling: SamplingSettings,
    cache: GenerationCache | None,
) -> tuple[list[str | None], dict[str, list[int]], list[str]]:
    """Texts found in the cache (None where missing), request slots per key, and the missing keys."""
    key = GenerationCache.keyer(identity, sampling)
    slots: dict[str, list[int]] = {}
    for i, r in enumerate(requests):
        slots.setdefault(key(r), []).append(i)
    texts: list[str | None] = [None] * len(requests)
    hits = cache.get_many(list(slots)) if cache is not None else {}
    for k, text in hits.items():
        text = bound_output(text, requests[slots[k][0]].max_new_tokens)[0]  # rows stored whole before the bound
        for i in slots[k]:
            texts[i] = text
    return texts, slots, [k for k in slots if k not in hits]
