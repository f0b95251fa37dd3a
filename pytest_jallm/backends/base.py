"""The one small interface every inference backend implements.

The runner hands a backend *all* prompts of a session at once; the backend
batches them as it sees fit and reports each finished generation through
``on_result`` as soon as it is available, so the caller can persist it
(a crash then loses only what was still in flight).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

from ..backend_options import (  # noqa: F401 - declared without the backends (start-up); importable from here too
    DTYPE,
    REVISION,
    TRUST_REMOTE_CODE,
    BackendOption,
    BackendOptionError,
    parse_engine_args,
)
from ..errors import JallmError
from ..registry import Registry

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
class ItemRef:
    """Which benchmark item (and which turn of a multi-turn conversation, from 1) a request asks
    for. Not part of the cache key: backends that serve recorded outputs match on it."""

    benchmark: str
    item_id: str
    turn: int = 1


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
    item: ItemRef | None = None


@dataclass(frozen=True)
class BackendIdentity:
    """What produced a generation: part of the cache key and of every baseline.

    ``outputs_per_item``: the output depends on which item asks, not only on the request (a
    backend serving recorded outputs): the cache then keys, and de-duplicates, requests per
    ``GenerationRequest.item``, so two items with the same prompt keep their own outputs."""

    backend: str
    backend_version: str
    model: str
    model_revision: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    outputs_per_item: bool = False

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backend": self.backend,
            "backend_version": self.backend_version,
            "model": self.model,
            "model_revision": self.model_revision,
            "settings": dict(self.settings),
        }
        if self.outputs_per_item:  # only when set, so every other backend's cache keys stay as they were
            out["outputs_per_item"] = True
        return out


class BackendError(JallmError, RuntimeError):
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


# A completion cannot be longer than its tokens allow. 64 characters per token is generous (the
# longest tokens of common vocabularies are runs of spaces or punctuation, and Japanese text takes
# one or two characters per token); more means a server that ignored max_tokens, or a hostile one.
CHARS_PER_TOKEN = 64
MIN_OUTPUT_CHARS = 4096
CUT_MARKER = "…[cut by pytest-jallm: longer than max_new_tokens allows]"  # no digits: answer extraction ignores it


class OutputCutWarning(UserWarning):
    """Completions longer than their max_new_tokens allows were cut before scoring and caching."""


def cut_warning(cut: int, total: int) -> OutputCutWarning:
    return OutputCutWarning(
        f"{cut} of {total} completions were longer than max_new_tokens allows (more than {CHARS_PER_TOKEN} characters "
        f"per token) and were cut before scoring and caching; each ends with {CUT_MARKER!r}")


def bound_output(text: str, max_new_tokens: int) -> tuple[str, bool]:
    """``text`` cut to what ``max_new_tokens`` allows, marked with CUT_MARKER; and whether it was cut."""
    limit = max(MIN_OUTPUT_CHARS, CHARS_PER_TOKEN * int(max_new_tokens))
    if len(text) <= limit:
        return text, False
    return text[:limit] + CUT_MARKER, True


# --- declaring and registering backends ------------------------------------------------------


def _check_backend(name: str, obj: Any) -> Any:
    if not callable(obj):
        raise TypeError(f"expected a backend class or factory (model, **options) -> Backend, got {type(obj).__name__}")
    for option in getattr(obj, "cli_options", ()):
        if not isinstance(option, BackendOption):
            raise TypeError(f"cli_options must hold BackendOption, got {type(option).__name__}")
    return obj


# `--jallm-backend NAME`: the built-ins (hf, vllm, openai) and those installed packages add
# through the `pytest_jallm.backends` entry-point group.
BACKENDS: Registry[Callable[..., Backend]] = Registry("backend", "pytest_jallm.backends", _check_backend)


def register_backend(name: str) -> Callable[[Any], Any]:
    """Class decorator: the class becomes ``--jallm-backend name``.

    It is called as ``cls(model, **options)``; its ``cli_options`` (a sequence of
    `BackendOption`) declare the command-line options those keyword arguments come from.
    A backend that sets ``engine_args_as_keywords = True``, or declares no ``cli_options`` at
    all, also receives every ``--jallm-engine-arg KEY=VALUE`` as a keyword argument."""

    def deco(cls: Any) -> Any:
        return BACKENDS.register(name, _check_backend(name, cls))

    return deco
