"""transformers backend: batched, left-padded greedy generation on CPU or one GPU."""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..backend_options import HF_OPTIONS
from .base import (
    BackendError,
    BackendIdentity,
    GenerationRequest,
    ResultCallback,
    SamplingSettings,
    apply_stop,
    register_backend,
)
from .revision import resolve_revision


def _versions() -> str:
    from importlib.metadata import version

    return f"transformers {version('transformers')}, torch {version('torch')}"


def _configured_dtype(model_dir: str) -> str | None:
    """The dtype `dtype="auto"` loads, read from config.json; None when that is not certain."""
    import json

    try:
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as fh:
            config = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or "quantization_config" in config:
        return None  # quantized weights load in a dtype of the quantizer's choosing
    dtype = config.get("dtype") or config.get("torch_dtype")
    return dtype if dtype in ("float32", "float16", "bfloat16") else None


@register_backend("hf")
class HFBackend:
    cli_options = HF_OPTIONS  # declared in backend_options.py, so that start-up imports no backend

    @classmethod
    def peek_identity(
        cls,
        model: str,
        *,
        revision: str | None = None,
        dtype: str = "auto",
        add_special_tokens: bool = True,
        trust_remote_code: bool = False,
        **_options: Any,
    ) -> BackendIdentity | None:
        """The identity this backend will report, without importing torch or loading weights,
        so a fully cached re-run never loads the model. None when it cannot be known for sure
        (a hub id, remote code, dtype left to a config that does not name one)."""
        if not os.path.isdir(model) or trust_remote_code:
            return None
        resolved = _configured_dtype(model) if dtype == "auto" else dtype
        if resolved not in ("float32", "float16", "bfloat16"):  # aliases like "half" load as one of these
            return None
        return BackendIdentity(
            backend="hf",
            backend_version=_versions(),
            model=model,
            model_revision=resolve_revision(model, revision, default="main"),
            settings={"dtype": resolved, "add_special_tokens": add_special_tokens},
        )

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        batch_size: int = 32,
        trust_remote_code: bool = False,
        add_special_tokens: bool = True,
        progress: Any = None,
    ):
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:  # pragma: no cover - torch is a core dependency
            raise BackendError(f"the hf backend needs torch and transformers: {e}") from e
        self._torch = torch
        self.model_name = model
        self.revision = resolve_revision(model, revision, default="main")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.batch_size = batch_size
        self.add_special_tokens = add_special_tokens
        self.progress = progress
        torch_dtype: Any = "auto" if dtype == "auto" else getattr(torch, dtype, None)
        if torch_dtype is None:
            raise BackendError(f"--jallm-dtype {dtype!r} is not a torch dtype (try float32, bfloat16, float16, auto)")
        hub_rev = revision if not os.path.isdir(model) else None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                model, revision=hub_rev, trust_remote_code=trust_remote_code
            )
            self.model = AutoModelForCausalLM.from_pretrained(
                model, revision=hub_rev, dtype=torch_dtype, trust_remote_code=trust_remote_code
            )
        except OSError as e:
            raise BackendError(f"could not load model {model!r}: {e}") from e
        self.model.to(device)  # type: ignore[arg-type]  # transformers' stubs type .to() for modules, not devices
        self.model.eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.dtype = str(self.model.dtype).replace("torch.", "")

    def identity(self) -> BackendIdentity:
        return BackendIdentity(
            backend="hf",
            backend_version=_versions(),
            model=self.model_name,
            model_revision=self.revision,
            settings={"dtype": self.dtype, "add_special_tokens": self.add_special_tokens},
        )

    def _texts(self, requests: Sequence[GenerationRequest]) -> list[str]:
        texts = []
        for r in requests:
            if r.messages is not None:
                if not getattr(self.tokenizer, "chat_template", None):
                    raise BackendError(
                        f"chat mode was requested but {self.model_name!r} has no chat template; "
                        "drop --jallm-chat or use a chat model"
                    )
                rendered = self.tokenizer.apply_chat_template(
                    [dict(m) for m in r.messages], tokenize=False, add_generation_prompt=True
                )
                texts.append(str(rendered))
            else:
                texts.append(r.prompt)
        return texts

    def context_window(self) -> int | None:
        """The model's positions (``max_position_embeddings``; GPT-2 style configs call it ``n_positions``)."""
        config = self.model.config
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(config, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    def count_prompt_tokens(self, requests: Sequence[GenerationRequest]) -> list[int]:
        """Each request's prompt length in tokens, as `generate` tokenizes it (chat template applied)."""
        texts = self._texts(requests)
        # verbose=False: an overlong prompt is what this check is for, not a warning to print.
        ids = self.tokenizer(texts, add_special_tokens=self.add_special_tokens, verbose=False)["input_ids"]
        return [len(x) for x in ids]

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingSettings,
        on_result: ResultCallback | None = None,
    ) -> list[str]:
        torch = self._torch
        texts = self._texts(requests)
        results: list[str | None] = [None] * len(requests)
        # Batch requests that share decoding limits; within a group sort by length
        # so padding (wasted compute) is small.
        groups: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault((r.max_new_tokens, r.stop), []).append(i)
        lengths = [len(t) for t in texts]
        torch.manual_seed(sampling.seed)
        greedy = sampling.temperature == 0
        gen_kwargs: dict[str, Any] = {"do_sample": not greedy, "pad_token_id": self.tokenizer.pad_token_id}
        if not greedy:
            gen_kwargs.update(temperature=sampling.temperature, top_p=sampling.top_p)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        if sampling.repetition_penalty != 1.0:
            gen_kwargs["repetition_penalty"] = sampling.repetition_penalty
        for (max_new, stop), idxs in groups.items():
            idxs.sort(key=lambda i: -lengths[i])
            for start in range(0, len(idxs), self.batch_size):
                batch = idxs[start : start + self.batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in batch],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=self.add_special_tokens,
                ).to(self.device)
                extra: dict[str, Any] = {}
                if stop:
                    extra = {"stop_strings": list(stop), "tokenizer": self.tokenizer}
                with torch.inference_mode():
                    out = self.model.generate(**enc, max_new_tokens=max_new, **gen_kwargs, **extra)
                new_tokens = out[:, enc["input_ids"].shape[1] :]
                decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
                for i, text in zip(batch, decoded, strict=True):
                    text = apply_stop(text, stop)
                    results[i] = text
                    if on_result is not None:
                        on_result(i, text)
                if self.progress is not None:
                    self.progress(len(batch))
        return [r if r is not None else "" for r in results]

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
