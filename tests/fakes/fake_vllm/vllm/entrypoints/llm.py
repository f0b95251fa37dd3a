"""Stand-in for vllm/entrypoints/llm.py (vLLM 0.33.0).

``LLM.__init__`` (llm.py:177-222), ``LLM.generate`` (llm.py:417-427) and
``LLM.chat`` (llm.py:616-632) have the real parameter names, kinds and
defaults. Behaviour mirrored from the real code:

* one str prompt or a list of them (renderers/inputs/preprocess.py:46-54);
* one conversation (a list whose first item is a dict) or a list of
  conversations (preprocess.py:57-66);
* ``sampling_params``: one value for all, or a sequence of the same length
  as the prompts, paired one by one (entrypoints/common/offline.py:253-267);
* outputs come back in input order (sorted by request id, offline.py:642);
* ``**kwargs`` go to EngineArgs; unknown names raise TypeError as the real
  EngineArgs dataclass would, and values are checked against the real
  annotations (``ENGINE_ARGS_VIA_KWARGS``);
* ``data_parallel_size > 1`` is refused unless the executor is
  ``external_launcher`` (llm.py:281-292).

Test hooks (module globals, set with monkeypatch):

* ``INSTANCES``: every LLM created, in order;
* ``FAIL_ON_CALL``: 0-based index of the generate/chat call (per instance)
  that raises RuntimeError, simulating a crash (e.g. CUDA OOM);
* ``IGNORE_STOP``: when true, stop strings are not applied (an engine
  that overshoots), to exercise the backend's safety net.

Context: ``LLM.model_config.max_model_len`` (llm.py:344; the ``max_model_len``
engine arg, else ``DEFAULT_MAX_MODEL_LEN``) and ``LLM.get_tokenizer()``
(llm.py:385); the stand-in's tokenizer makes one token per character. As the
real engine does, a prompt longer than ``max_model_len`` fails the whole call
with ValueError ("The decoder prompt (length N) is longer than the maximum
model length of M").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..outputs import CompletionOutput, RequestOutput
from ..sampling_params import SamplingParams, VLLMValidationError

INSTANCES: list["LLM"] = []
DEFAULT_MAX_MODEL_LEN = 4096
FAIL_ON_CALL: int | None = None
IGNORE_STOP: bool = False

# A subset of real EngineArgs fields (vllm/engine/arg_utils.py:489ff) with their annotations as
# written there; the real LLM forwards **kwargs to EngineArgs(...). Values are type-checked
# against these annotations (_check_type), so a test sees what the real dataclass was declared to take.
ENGINE_ARGS_VIA_KWARGS: dict[str, str] = {
    "tokenizer_mode": "TokenizerMode | str",  # arg_utils.py:505
    "download_dir": "str | None",  # :509
    "load_format": "str | LoadFormats",  # :515
    "kv_cache_dtype": "CacheDType | str",  # :518
    "max_model_len": "int",  # :520
    "distributed_executor_backend": "str | DistributedExecutorBackend | type[Executor] | None",  # :531-533
    "pipeline_parallel_size": "int",  # :535
    "master_addr": "str",  # :536
    "master_port": "int",  # :537
    "nnodes": "int",  # :538
    "node_rank": "int",  # :539
    "data_parallel_size": "int",  # :555
    "data_parallel_backend": "DataParallelBackend",  # :564
    "block_size": "int | None",  # :597
    "enable_prefix_caching": "bool | None",  # :598
    "max_num_batched_tokens": "int | None",  # :616
    "max_num_seqs": "int | None",  # :622
    "disable_log_stats": "bool",  # :630
    "enforce_eager": "bool",  # :648
    "enable_chunked_prefill": "bool | None",  # :713
    "generation_config": "str",  # :798
    "override_generation_config": "dict[str, Any]",  # :807
    "async_scheduling": "bool | None",  # :844
}
# Literal aliases of vllm/config/parallel.py:38-39.
LITERALS: dict[str, tuple[str, ...]] = {
    "DistributedExecutorBackend": ("ray", "mp", "uni", "external_launcher"),
    "DataParallelBackend": ("ray", "mp"),
}
_SIMPLE = {"int": int, "float": (int, float), "bool": bool, "str": str}


def _check_type(name: str, value: Any, annotation: str) -> None:
    """TypeError unless ``value`` fits one member of the union ``annotation``. Aliases the
    stand-in does not model (TokenizerMode, LoadFormats, CacheDType) accept any value."""
    for member in (m.strip() for m in annotation.split("|")):
        if member == "None":
            ok = value is None
        elif member in _SIMPLE:
            ok = isinstance(value, _SIMPLE[member]) and (member == "bool" or not isinstance(value, bool))
        elif member in LITERALS:
            ok = value in LITERALS[member]
        elif member.startswith("dict["):
            ok = isinstance(value, dict)
        elif member.startswith("type["):
            ok = isinstance(value, type)
        else:
            ok = True
        if ok:
            return
    raise TypeError(f"EngineArgs.{name}: {value!r} is not {annotation}")


@dataclass
class ModelConfig:
    max_model_len: int


class CharTokenizer:
    """One token per character; the chat template is the stand-in's role:content lines."""

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return [ord(c) for c in text]

    def apply_chat_template(self, conversation: list[dict[str, Any]], tokenize: bool = True,
                            add_generation_prompt: bool = False, **kwargs: Any) -> Any:
        text = "\n".join(f"{m['role']}:{m.get('content', '')}" for m in conversation)
        return {"input_ids": self.encode(text)} if tokenize else text


@dataclass
class Call:
    """One recorded generate/chat call."""

    method: str
    inputs: list[Any]
    sampling_params: list[SamplingParams]
    kwargs: dict[str, Any] = field(default_factory=dict)


def _is_list_of(value: object, typ: type) -> bool:
    # vllm/utils/collection_utils.py:53-67 with check="first"
    return isinstance(value, list) and (len(value) == 0 or isinstance(value[0], typ))


def _complete(source: str, params: SamplingParams) -> tuple[str, str]:
    so = params.structured_outputs
    if so is not None and so.choice is not None:
        if not so.choice:
            raise VLLMValidationError(f"Choice '{so.choice}' cannot be an empty list")
        for c in so.choice:
            if c in source:
                return c, "stop"
        return so.choice[0], "stop"
    text = source
    reason = "stop"
    if params.max_tokens is not None and len(text) > params.max_tokens:
        text, reason = text[: params.max_tokens], "length"
    if not IGNORE_STOP:
        cuts = [text.find(s) for s in params.stop or [] if s and s in text]
        if cuts:
            text, reason = text[: min(cuts)], "stop"
    return text, reason


class LLM:
    def __init__(
        self,
        model: str,
        *,
        runner: Any = "auto",
        convert: Any = "auto",
        tokenizer: str | None = None,
        tokenizer_mode: Any = "auto",
        skip_tokenizer_init: bool = False,
        trust_remote_code: bool = False,
        allowed_local_media_path: str = "",
        allowed_media_domains: list[str] | None = None,
        tensor_parallel_size: int = 1,
        dtype: Any = "auto",
        quantization: Any = None,
        revision: str | None = None,
        tokenizer_revision: str | None = None,
        chat_template: Path | str | None = None,
        seed: int = 0,
        gpu_memory_utilization: float = 0.92,
        cpu_offload_gb: float = 0,
        offload_group_size: int = 0,
        offload_num_in_group: int = 1,
        offload_prefetch_step: int = 1,
        offload_params: set[str] | None = None,
        enforce_eager: bool = False,
        enable_return_routed_experts: bool = False,
        return_sampling_mask: bool = False,
        disable_custom_all_reduce: bool = False,
        hf_token: bool | str | None = None,
        hf_overrides: Any = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
        pooler_config: Any = None,
        structured_outputs_config: Any = None,
        profiler_config: Any = None,
        attention_config: Any = None,
        kv_cache_memory_bytes: int | None = None,
        compilation_config: Any = None,
        quantization_config: Any = None,
        logits_processors: Any = None,
        spec_method: str | None = None,
        spec_model: str | None = None,
        spec_tokens: int | None = None,
        **kwargs: Any,
    ) -> None:
        unknown = sorted(set(kwargs) - set(ENGINE_ARGS_VIA_KWARGS))
        if unknown:
            raise TypeError(f"EngineArgs.__init__() got unexpected keyword argument(s) {unknown}")
        _check_type("tensor_parallel_size", tensor_parallel_size, "int")  # llm.py:189
        for name, value in kwargs.items():
            _check_type(name, value, ENGINE_ARGS_VIA_KWARGS[name])
        # llm.py:281-292: data parallelism needs a process per rank.
        dp_size = int(kwargs.get("data_parallel_size", 1))
        if dp_size > 1 and kwargs.get("distributed_executor_backend") != "external_launcher":
            raise ValueError(
                f"LLM(data_parallel_size={dp_size}) is not supported for single-process usage and may hang. "
                "Please use the explicit multi-process data-parallel example at "
                "'examples/features/data_parallel/data_parallel_offline.py'."
            )
        self.model = model
        self.engine_args: dict[str, Any] = {
            "model": model,
            "tokenizer": tokenizer,
            "trust_remote_code": trust_remote_code,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "quantization": quantization,
            "revision": revision,
            "chat_template": chat_template,
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
            **kwargs,
        }
        self.calls: list[Call] = []
        self._request_counter = 0
        self.model_config = ModelConfig(kwargs.get("max_model_len") or DEFAULT_MAX_MODEL_LEN)
        INSTANCES.append(self)

    def get_tokenizer(self) -> CharTokenizer:
        return CharTokenizer()

    def _check_lengths(self, prompts: Sequence[str]) -> None:
        for p in prompts:
            if len(p) > self.model_config.max_model_len:
                raise ValueError(f"The decoder prompt (length {len(p)}) is longer than the maximum model length "
                                 f"of {self.model_config.max_model_len}.")

    # -- helpers mirroring entrypoints/common/offline.py ---------------------

    def _params_to_seq(self, params: Any, num_requests: int) -> Sequence[SamplingParams]:
        if isinstance(params, Sequence):
            if len(params) != num_requests:
                raise VLLMValidationError(
                    f"The lengths of prompts ({num_requests}) and params ({len(params)}) must be the same."
                )
            seq = params
        else:
            seq = [params] * num_requests
        for p in seq:
            if not isinstance(p, SamplingParams):
                raise TypeError(f"expected SamplingParams, got {type(p).__name__}")
        return seq

    def _maybe_fail(self) -> None:
        if FAIL_ON_CALL is not None and len(self.calls) - 1 == FAIL_ON_CALL:
            raise RuntimeError("CUDA out of memory (stand-in failure)")

    def _run(self, sources: list[str], prompts: list[str | None], params: Sequence[SamplingParams]) -> list[RequestOutput]:
        outputs = []
        for source, prompt, p in zip(sources, prompts, params, strict=True):
            text, reason = _complete(source, p)
            outputs.append(
                RequestOutput(
                    request_id=str(self._request_counter),
                    prompt=prompt,
                    prompt_token_ids=[ord(c) for c in source],
                    prompt_logprobs=None,
                    outputs=[
                        CompletionOutput(
                            index=0,
                            text=text,
                            token_ids=[ord(c) for c in text],
                            cumulative_logprob=None,
                            logprobs=None,
                            finish_reason=reason,
                        )
                    ],
                    finished=True,
                )
            )
            self._request_counter += 1
        return sorted(outputs, key=lambda x: int(x.request_id))

    # -- public API ------------------------------------------------------------

    def generate(
        self,
        prompts: Any,
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        use_tqdm: bool | Callable[..., Any] = True,
        lora_request: Any = None,
        priority: int | Sequence[int] | None = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
    ) -> list[RequestOutput]:
        seq = [prompts] if isinstance(prompts, (dict, str, bytes)) else list(prompts)
        texts = [p["prompt"] if isinstance(p, dict) else p for p in seq]
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(f"stand-in supports text prompts only, got {type(t).__name__}")
        if sampling_params is None:
            sampling_params = SamplingParams()
        params = self._params_to_seq(sampling_params, len(texts))
        self.calls.append(
            Call(
                "generate",
                list(texts),
                list(params),
                {"use_tqdm": use_tqdm, "lora_request": lora_request, "priority": priority},
            )
        )
        self._maybe_fail()
        self._check_lengths(texts)
        return self._run(["ECHO:" + t for t in texts], list(texts), params)

    def chat(
        self,
        messages: Any,
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        use_tqdm: bool | Callable[..., Any] = True,
        lora_request: Any = None,
        priority: int | Sequence[int] | None = None,
        chat_template: str | None = None,
        chat_template_content_format: Any = "auto",
        add_generation_prompt: bool = True,
        continue_final_message: bool = False,
        tools: list[dict[str, Any]] | None = None,
        chat_template_kwargs: dict[str, Any] | None = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
    ) -> list[RequestOutput]:
        convs = [messages] if (len(messages) > 0 and _is_list_of(messages, dict)) else messages
        for conv in convs:
            if not _is_list_of(conv, dict) or not all(isinstance(m, dict) and "role" in m for m in conv):
                raise TypeError(f"a conversation must be a list of message dicts, got {conv!r}")
        if sampling_params is None:
            sampling_params = SamplingParams()
        params = self._params_to_seq(sampling_params, len(convs))
        self.calls.append(
            Call(
                "chat",
                [list(c) for c in convs],
                list(params),
                {
                    "use_tqdm": use_tqdm,
                    "chat_template": chat_template,
                    "add_generation_prompt": add_generation_prompt,
                    "continue_final_message": continue_final_message,
                },
            )
        )
        self._maybe_fail()
        # RequestOutput.prompt is the rendered prompt in real vLLM; the stand-in
        # "template" is role:content lines.
        rendered = ["\n".join(f"{m['role']}:{m.get('content', '')}" for m in c) for c in convs]
        self._check_lengths(rendered)
        sources = ["CHAT:" + (c[-1].get("content", "") if c else "") for c in convs]
        return self._run(sources, rendered, params)
