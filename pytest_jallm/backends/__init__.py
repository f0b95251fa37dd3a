"""Backend selection: `--jallm-backend hf|vllm|openai|replay|auto` or `package.module:Factory`."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable, Mapping

from ..backend_options import BUILTIN_BACKEND_OPTIONS, flagged, is_installed_backend_name
from ..registry import ExtensionError
from .base import (
    BACKENDS,
    Backend,
    BackendError,
    BackendIdentity,
    BackendOption,
    BackendOptionError,
    GenerationRequest,
    SamplingSettings,
    parse_engine_args,
    register_backend,
)

# Importing the built-in backends registers them (their engines are imported only when created),
# in this order, which is the order --help and error messages list them in: not sorted.
# isort: off
from . import hf as _hf  # noqa: F401
from . import vllm as _vllm  # noqa: F401
from . import openai as _openai  # noqa: F401
from . import replay as _replay  # noqa: F401
# isort: on

BUILTIN = tuple(BUILTIN_BACKEND_OPTIONS)


def _gpu_present() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def resolve_backend_name(name: str) -> str:
    """`auto` means vllm when it is importable and a GPU is present, else hf."""
    if name != "auto":
        return name
    if importlib.util.find_spec("vllm") is not None and _gpu_present():
        return "vllm"
    return "hf"


def backend_class(name: str) -> Callable[..., Backend]:
    """The registered class (or `package.module:Factory`) a backend name selects; whether its
    engine is installed is checked by `backend_factory`."""
    name = resolve_backend_name(name)
    if name in BACKENDS:
        return BACKENDS[name]
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        except (ImportError, AttributeError) as e:
            raise BackendError(f"--jallm-backend {name!r}: cannot import {attr!r} from {module_name!r}: {e}") from e
    raise BackendError(
        f"--jallm-backend {name!r}: expected one of auto, {', '.join(BACKENDS)}, or 'package.module:Factory'"
    )


def backend_factory(name: str) -> Callable[..., Backend]:
    factory = backend_class(name)
    if resolve_backend_name(name) == "vllm" and importlib.util.find_spec("vllm") is None:
        raise BackendError("--jallm-backend vllm: vLLM is not installed; pip install 'pytest-jallm[vllm]'")
    return factory


def cli_options() -> list[BackendOption]:
    """Every registered backend's command-line options, each flag once. Imports every installed
    backend (one that cannot be imported is left out): pytest_addoption reads the built-ins' from
    `backend_options.BUILTIN_BACKEND_OPTIONS` instead, and an installed one's when it is selected
    (`installed_cli_options`)."""
    return flagged(option for name in BACKENDS for option in getattr(BACKENDS[name], "cli_options", ()))


def installed_cli_options(selected: Mapping[str, str | None], every: bool = False) -> list[BackendOption]:
    """The command-line options of the installed backends a run selects (``{"--jallm-backend": name,
    ...}``), and with ``every`` (--help) those of every installed backend that can be imported.

    A selected one that cannot be imported is a BackendOptionError naming the option, the entry
    point and its package; an unknown name is left to the run (creating the backend says so)."""
    found: list[BackendOption] = []
    for flag, name in selected.items():
        if not is_installed_backend_name(name):
            continue
        try:
            factory = BACKENDS[name]  # type: ignore[index]
        except KeyError:
            continue
        except ExtensionError as e:
            raise BackendOptionError(f"{flag} {name}: {e}") from None
        found += getattr(factory, "cli_options", ())
    if every:
        for name in BACKENDS:
            if name not in BUILTIN_BACKEND_OPTIONS:
                found += getattr(BACKENDS[name], "cli_options", ())
    return flagged(found)


def backend_kwargs(name: str, getoption: Callable[[str], Any]) -> dict[str, Any]:
    """The keyword arguments the selected backend is created with, read from the options it
    declares. A backend that cannot be resolved gets the engine arguments only: creating it
    reports the error."""
    try:
        factory = backend_class(name)
    except BackendError:
        return parse_engine_args(getoption("jallm_engine_arg"))
    declared = getattr(factory, "cli_options", None)
    if declared is None:
        return parse_engine_args(getoption("jallm_engine_arg"))
    kwargs: dict[str, Any] = {}
    for option in declared:
        value = getoption(option.option_dest)
        if option.required is not None and not value:
            raise BackendOptionError(
                f"--jallm-backend {resolve_backend_name(name)} needs {option.flag} (e.g. {option.required})"
            )
        kwargs[option.kwarg] = option.convert(value) if option.convert else value
    if getattr(factory, "engine_args_as_keywords", False):
        kwargs.update(parse_engine_args(getoption("jallm_engine_arg")))
    return kwargs


def peek_identity(name: str, model: str, options: dict[str, Any]) -> BackendIdentity | None:
    """What the backend will report as its identity, if it can say so without loading the
    model (a `peek_identity` classmethod); None otherwise, or on any doubt."""
    try:
        factory = backend_factory(name)
    except BackendError:
        return None  # the real load reports the error
    peek = getattr(factory, "peek_identity", None)
    if peek is None:
        return None
    try:
        return peek(model, **options)
    except Exception:
        return None


__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendIdentity",
    "BackendOption",
    "BackendOptionError",
    "GenerationRequest",
    "SamplingSettings",
    "backend_class",
    "backend_factory",
    "backend_kwargs",
    "cli_options",
    "installed_cli_options",
    "register_backend",
    "peek_identity",
    "resolve_backend_name",
]
