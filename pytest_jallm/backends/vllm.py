"""vLLM backend: in-process offline inference through ``vllm.LLM``.

Thin on purpose. Per call to :meth:`VLLMBackend.generate`:

* requests with ``messages`` go, as a batch of conversations, to ONE
  ``LLM.chat(conversations, sampling_params=[...], use_tqdm=False,
  add_generation_prompt=True)`` call; all other requests go, as raw
  strings, to ONE ``LLM.generate(prompts, sampling_params=[...],
  use_tqdm=False)`` call (vLLM applies no template to raw strings);
* ``sampling_params`` is a list aligned with the prompts (vLLM pairs them
  one by one), holding one shared ``SamplingParams`` object per distinct
  (max_new_tokens, stop, guided choices);
* vLLM returns outputs in input order (it sorts finished requests by
  request id), so output ``i`` belongs to prompt ``i``;
* ``apply_stop`` is applied again as a safety net, then ``on_result``.

``chunk_size`` trades throughput for crash safety: vLLM hands results back
only when a whole ``generate``/``chat`` call returns, so with the default
(``None``: one call per kind) a crash mid-run loses everything of that call.
With ``chunk_size=n`` each call covers at most ``n`` prompts and its
results are reported before the next call starts.

Targets vLLM >= 0.11 (``SamplingParams.structured_outputs``); signatures
checked against vLLM 0.33.0. See docs/vllm.md.
"""

from __future__ import annotations

import gc
import inspect
from typing import Any, Mapping, Sequence

from ..backend_options import VLLM_OPTIONS
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

INSTALL_HINT = "pip install 'pytest-jallm[vllm]'"

# Names the adapter itself passes to vllm.LLM(...). All are keyword
# parameters of LLM.__init__ except pipeline_parallel_size and
# max_model_len, which LLM.__init__ forwards through **kwargs to EngineArgs.
_EXPLICIT_ENGINE_ARGS = (
    "model",
    "tokenizer",
    "revision",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "dtype",
    "quantization",
    "max_model_len",
    "gpu_memory_utilization",
    "seed",
    "trust_remote_code",
)


# vLLM 0.33.0's executors (vllm/config/parallel.py:38); any other string is read as an Executor
# import path (vllm/v1/executor/abstract.py:92-98).
_EXECUTORS = ("mp", "ray", "uni")
SCALING_DOC = "docs/vllm.md, 'Scaling past one GPU'"


def check_parallelism(tensor_parallel_size: Any, pipeline_parallel_size: Any, engine_kwargs: Mapping[str, Any]) -> None:
    """Refuse, before vLLM starts, what one offline engine in one pytest session cannot run.

    Tensor and pipeline parallelism are the engine's own (one machine: its multiprocessing
    executor; several: ``distributed_executor_backend="ray"``). Data parallelism is not:
    ``LLM(data_parallel_size>1)`` raises in vLLM 0.33.0 (vllm/entrypoints/llm.py:281-292)
    unless every rank is a separate copy of the calling program (``external_launcher``), which
    here would be a whole pytest session per rank, each generating, caching and reporting.
    """
    for flag, name, value in (("--jallm-tp", "tensor_parallel_size", tensor_parallel_size),
                              ("--jallm-pp", "pipeline_parallel_size", pipeline_parallel_size),
                              ("--jallm-engine-arg", "data_parallel_size", engine_kwargs.get("data_parallel_size", 1))):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BackendError(f"vllm backend: {flag} {name}={value!r}: expected an integer >= 1")
    dp = engine_kwargs.get("data_parallel_size", 1)
    if dp > 1:
        raise BackendError(
            f"vllm backend: data_parallel_size={dp}: vLLM's offline LLM runs one engine per process and refuses "
            "data parallelism (vllm/entrypoints/llm.py). For several model replicas: on one machine, one engine "
            "per xdist worker (-n N --jallm-gpus-per-worker K); on several, --jallm-shard I/N per machine; or "
            "serve the replicas (vllm serve --data-parallel-size N, or several servers behind one URL) and run "
            f"--jallm-backend openai --jallm-concurrency C. See {SCALING_DOC}"
        )
    executor = engine_kwargs.get("distributed_executor_backend")
    if executor == "external_launcher":
        raise BackendError(
            "vllm backend: distributed_executor_backend='external_launcher' makes every rank a copy of the calling "
            "program (torchrun), so every rank would run the whole pytest session, generating, caching and "
            "reporting on its own. Use 'mp' (the default: one machine) or 'ray' (a Ray cluster across machines). "
            f"See {SCALING_DOC}"
        )
    if isinstance(executor, str) and executor not in _EXECUTORS and "." not in executor:
        raise BackendError(
            f"vllm backend: distributed_executor_backend={executor!r}: expected one of {', '.join(_EXECUTORS)} "
            "or the import path of a vllm Executor subclass"
        )


def _jsonable(value: Any) -> Any:
    """Best-effort JSON-safe form of an engine kwarg for the identity."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    return repr(value)


_IDENTITY_ARGS = (
    "revision", "tokenizer", "tensor_parallel_size", "pipeline_parallel_size", "dtype", "max_model_len",
    "quantization", "trust_remote_code", "seed", "engine_kwargs", "guided_choice",
)


def _identity(vllm_version: str, model: str, args: Mapping[str, Any]) -> BackendIdentity:
    """The identity of an engine made with these `_IDENTITY_ARGS` values."""
    settings: dict[str, Any] = {
        "tokenizer": args["tokenizer"],
        "dtype": args["dtype"],
        "quantization": args["quantization"],
        "max_model_len": args["max_model_len"],
        "trust_remote_code": args["trust_remote_code"],
        "seed": args["seed"],
        "guided_choice": args["guided_choice"],
        # Do not change greedy outputs in theory; recorded anyway.
        "tensor_parallel_size": args["tensor_parallel_size"],
        "pipeline_parallel_size": args["pipeline_parallel_size"],
    }
    if args["engine_kwargs"]:
        settings["engine_kwargs"] = _jsonable(dict(args["engine_kwargs"]))
    return BackendIdentity(
        backend="vllm",
        backend_version=vllm_version,
        model=model,
        model_revision=resolve_revision(model, args["revision"], default="unspecified"),
        settings=settings,
    )


@register_backend("vllm")
class VLLMBackend:
    """Backend over ``vllm.LLM`` (offline, in-process, GPU)."""

    cli_options = VLLM_OPTIONS  # declared in backend_options.py, so that start-up imports no backend

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        tokenizer: str | None = None,
        tensor_parallel_size: int = 1,
        pipeline_parallel_size: int = 1,
        dtype: str = "auto",
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        quantization: str | None = None,
        trust_remote_code: bool = False,
        seed: int = 0,
        engine_kwargs: Mapping[str, Any] | None = None,
        guided_choice: bool = False,
        chunk_size: int | None = None,
    ):
        if chunk_size is not None and chunk_size < 1:
            raise BackendError(f"vllm backend: chunk_size must be >= 1 or None, got {chunk_size!r}")
        extra = dict(engine_kwargs or {})
        clash = sorted(set(extra) & set(_EXPLICIT_ENGINE_ARGS))
        if clash:
            raise BackendError(
                f"vllm backend: engine_kwargs {clash} duplicate named VLLMBackend arguments; pass them directly"
            )
        check_parallelism(tensor_parallel_size, pipeline_parallel_size, extra)
        try:
            import vllm
        except ImportError as e:
            raise BackendError(f"the vllm backend needs vLLM, which is not importable ({e}); {INSTALL_HINT}") from e

        self._structured_outputs_params: Any = None
        if guided_choice:
            try:
                from vllm.sampling_params import StructuredOutputsParams
            except ImportError as e:
                raise BackendError(
                    "vllm backend: guided_choice needs vllm.sampling_params.StructuredOutputsParams "
                    f"(vLLM >= 0.11.0); installed vLLM is {getattr(vllm, '__version__', '?')}"
                ) from e
            self._structured_outputs_params = StructuredOutputsParams

        self._vllm = vllm
        self._sampling_params_cls = vllm.SamplingParams
        self.model_name = model
        self.revision = revision
        self.tokenizer = tokenizer
        self.tensor_parallel_size = tensor_parallel_size
        self.pipeline_parallel_size = pipeline_parallel_size
        self.dtype = dtype
        self.max_model_len = max_model_len
        self.gpu_memory_utilization = gpu_memory_utilization
        self.quantization = quantization
        self.trust_remote_code = trust_remote_code
        self.seed = seed
        self.engine_kwargs = extra
        self.guided_choice = guided_choice
        self.chunk_size = chunk_size

        llm_kwargs: dict[str, Any] = {
            "tokenizer": tokenizer,
            "revision": revision,
            "tensor_parallel_size": tensor_parallel_size,
            "pipeline_parallel_size": pipeline_parallel_size,  # -> EngineArgs via **kwargs
            "dtype": dtype,
            "quantization": quantization,
            "gpu_memory_utilization": gpu_memory_utilization,
            "seed": seed,
            "trust_remote_code": trust_remote_code,
        }
        if max_model_len is not None:
            llm_kwargs["max_model_len"] = max_model_len  # -> EngineArgs via **kwargs
        llm_kwargs.update(extra)
        try:
            self._llm: Any = vllm.LLM(model, **llm_kwargs)
        except Exception as e:
            raise BackendError(f"vllm backend: could not load model {model!r}: {type(e).__name__}: {e}") from e

    # ------------------------------------------------------------------ identity

    def identity(self) -> BackendIdentity:
        args = {name: getattr(self, name) for name in _IDENTITY_ARGS}
        return _identity(str(getattr(self._vllm, "__version__", "unknown")), self.model_name, args)

    @classmethod
    def peek_identity(cls, model: str, **options: Any) -> BackendIdentity | None:
        """The identity :meth:`identity` will report, without starting the engine (which takes
        minutes for a large model), so a fully cached re-run never starts it. It depends only
        on the arguments and vLLM's version, read from the installed package's metadata."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("vllm")
        except PackageNotFoundError:
            return None
        defaults = inspect.signature(cls.__init__).parameters  # one place for the defaults
        args = {name: options.get(name, defaults[name].default) for name in _IDENTITY_ARGS}
        return _identity(installed, model, args)

    # ------------------------------------------------------------------ requests

    def _sampling_params(
        self, requests: Sequence[GenerationRequest], sampling: SamplingSettings
    ) -> list[Any]:
        """One SamplingParams per request, shared between equal (max tokens, stop, choices)."""
        cache: dict[tuple[Any, ...], Any] = {}
        out = []
        for r in requests:
            choices = tuple(r.guided_choices) if (self.guided_choice and r.guided_choices) else None
            key = (r.max_new_tokens, tuple(r.stop), choices)
            params = cache.get(key)
            if params is None:
                kwargs: dict[str, Any] = {
                    "n": 1,
                    "temperature": sampling.temperature,
                    "top_p": sampling.top_p,
                    "repetition_penalty": sampling.repetition_penalty,
                    "seed": sampling.seed,
                    "max_tokens": r.max_new_tokens,
                    "stop": [s for s in r.stop if s],
                }
                try:
                    if choices is not None:
                        kwargs["structured_outputs"] = self._structured_outputs_params(choice=list(choices))
                    params = self._sampling_params_cls(**kwargs)
                except Exception as e:
                    raise BackendError(
                        f"vllm backend: invalid sampling parameters {kwargs}: {type(e).__name__}: {e}"
                    ) from e
                cache[key] = params
            out.append(params)
        return out

    @staticmethod
    def _conversation(request: GenerationRequest) -> list[dict[str, Any]]:
        # vLLM tells one conversation from a batch by "list whose first item is
        # a dict", so conversations must be real lists of real dicts.
        return [dict(m) for m in request.messages or ()]

    def _chunks(self, indices: list[int]) -> list[list[int]]:
        if not indices:
            return []
        size = self.chunk_size or len(indices)
        return [indices[i : i + size] for i in range(0, len(indices), size)]

    def _run(self, kind: str, batch: list[Any], params: list[Any]) -> list[str]:
        try:
            if kind == "chat":
                outputs = self._llm.chat(batch, sampling_params=params, use_tqdm=False, add_generation_prompt=True)
            else:
                outputs = self._llm.generate(batch, sampling_params=params, use_tqdm=False)
        except Exception as e:
            raise BackendError(f"vllm backend: LLM.{kind} failed on {len(batch)} prompts: {type(e).__name__}: {e}") from e
        if len(outputs) != len(batch):
            raise BackendError(f"vllm backend: LLM.{kind} returned {len(outputs)} outputs for {len(batch)} prompts")
        texts = []
        for o in outputs:
            if not o.outputs:
                raise BackendError(f"vllm backend: request {getattr(o, 'request_id', '?')} returned no completion")
            texts.append(o.outputs[0].text)
        return texts

    def context_window(self) -> int | None:
        """The engine's ``max_model_len`` (``LLM.model_config``, vLLM 0.33 entrypoints/llm.py:344): vLLM
        refuses a longer prompt and fails the whole call."""
        value = getattr(getattr(self._llm, "model_config", None), "max_model_len", None)
        return value if isinstance(value, int) and value > 0 else None

    def count_prompt_tokens(self, requests: Sequence[GenerationRequest]) -> list[int]:
        """Each prompt's length with the engine's own tokenizer (``LLM.get_tokenizer()``): raw prompts as
        ``generate`` encodes them, conversations through the chat template as ``chat`` renders them."""
        tokenizer = self._llm.get_tokenizer()
        out = []
        for r in requests:
            if r.messages is not None:
                # Rendered, then encoded without special tokens (the template writes them), as vLLM's chat
                # does; tokenize=True would return a dict under transformers 5.
                text = tokenizer.apply_chat_template(self._conversation(r), tokenize=False, add_generation_prompt=True)
                ids = tokenizer.encode(text, add_special_tokens=False)
            else:
                ids = tokenizer.encode(r.prompt)
            out.append(len(ids))
        return out

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingSettings,
        on_result: ResultCallback | None = None,
    ) -> list[str]:
        if self._llm is None:
            raise BackendError("vllm backend: generate() after close()")
        params = self._sampling_params(requests, sampling)
        raw = [i for i, r in enumerate(requests) if r.messages is None]
        chat = [i for i, r in enumerate(requests) if r.messages is not None]
        results: list[str | None] = [None] * len(requests)
        for kind, indices in (("generate", raw), ("chat", chat)):
            for chunk in self._chunks(indices):
                if kind == "chat":
                    batch: list[Any] = [self._conversation(requests[i]) for i in chunk]
                else:
                    batch = [requests[i].prompt for i in chunk]
                texts = self._run(kind, batch, [params[i] for i in chunk])
                for i, text in zip(chunk, texts, strict=True):
                    text = apply_stop(text, requests[i].stop)
                    results[i] = text
                    if on_result is not None:
                        on_result(i, text)
        return [t if t is not None else "" for t in results]

    def close(self) -> None:
        # vLLM's engine shuts its workers down when it is garbage-collected; the session froze the
        # heap after loading it (session.py), so unfreeze it or a cycle holding the engine stays.
        gc.unfreeze()
        self._llm = None
        gc.collect()
