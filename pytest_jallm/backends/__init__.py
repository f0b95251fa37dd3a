"""Backend selection: `--jallm-backend hf|vllm|openai|auto` or `package.module:Factory`."""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable

from .base import Backend, BackendError, BackendIdentity, GenerationRequest, SamplingSettings

BUILTIN = ("hf", "vllm", "openai")


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


def backend_factory(name: str) -> Callable[..., Backend]:
    name = resolve_backend_name(name)
    if name == "hf":
        from .hf import HFBackend

        return HFBackend
    if name == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise BackendError("--jallm-backend vllm: vLLM is not installed; pip install 'pytest-jallm[vllm]'")
        from .vllm import VLLMBackend

        return VLLMBackend
    if name == "openai":
        from .openai import OpenAIBackend

        return OpenAIBackend
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
            return getattr(module, attr)
        except (ImportError, AttributeError) as e:
            raise BackendError(f"--jallm-backend {name!r}: cannot import {attr!r} from {module_name!r}: {e}") from e
    raise BackendError(
        f"--jallm-backend {name!r}: expected one of auto, {', '.join(BUILTIN)}, or 'package.module:Factory'"
    )


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
    "Backend",
    "BackendError",
    "BackendIdentity",
    "GenerationRequest",
    "SamplingSettings",
    "backend_factory",
    "peek_identity",
    "resolve_backend_name",
]
