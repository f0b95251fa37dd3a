"""The one small interface every inference backend implements.

The runner hands a backend *all* prompts of a session at once; the backend
batches them as it sees fit and reports each finished generation through
``on_result`` as soon as it is available, so the caller can persist it
(a crash then loses only what was still in flight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

ResultCallback = Callable[[int, str], None]
"""Called as ``on_result(index_in_requests, generated_text)``."""


@dataclass(frozen=True)
class SamplingSettings:
    """Decoding settings shared by a whole run. Greedy and seeded by default."""

    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "repetition_penalty": self.repetition_penalty,
            "seed": self.seed,
        }


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete.

    ``prompt`` is the fully rendered raw text. When ``messages`` is set the
    backend applies the model's chat template to it instead of using
    ``prompt`` (``prompt`` then holds a readable rendering for reports).
    """

    prompt: str
    max_new_tokens: int
    stop: tuple[str, ...] = ()
    messages: tuple[Mapping[str, str], ...] | None = None
    # Closed label set for optional guided (constrained) decoding.
    guided_choices: tuple[str, ...] | None = None


@dataclass(frozen=True)
class BackendIdentity:
    """What produced a generation: part of the cache key and of every baseline."""

    backend: str
    backend_version: str
    model: str
    model_revision: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "backend_version": self.backend_version,
            "model": self.model,
            "model_revision": self.model_revision,
            "settings": dict(self.settings),
        }


class BackendError(RuntimeError):
    """A backend could not be created or failed while generating."""


class RequestErrors(BackendError):
    """Some requests failed on their own (a malformed response, a request the server rejected) after
    their retries; every other request's text was delivered. Raised by ``generate`` at the end.

    ``failures`` maps a request index to a one-line cause; ``texts`` holds the delivered texts
    (None where the request failed); ``generated`` is how many were actually generated."""

    def __init__(self, failures: Mapping[int, str], texts: Sequence[str | None], generated: int | None = None):
        self.failures = dict(sorted(failures.items()))
        self.texts = list(texts)
        self.generated = len(self.texts) - len(self.failures) if generated is None else generated
        first = next(iter(self.failures))
        super().__init__(
            f"{len(self.failures)} of {len(self.texts)} requests failed; first: request {first}: {self.failures[first]}"
        )


@runtime_checkable
class Backend(Protocol):
    """An inference engine loaded once per session."""

    def identity(self) -> BackendIdentity: ...

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingSettings,
        on_result: ResultCallback | None = None,
    ) -> list[str]:
        """Return one completion per request, in request order.

        Implementations must call ``on_result(i, text)`` for each request as
        soon as its text is final (any order), and must never call the model
        once per request when the engine can batch.
        """
        ...

    def close(self) -> None: ...


def apply_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the earliest stop sequence (engines may overshoot)."""
    cut = len(text)
    for s in stop:
        if s:
            i = text.find(s)
            if i != -1:
                cut = min(cut, i)
    return text[:cut]
