"""The vllm backend, against a stand-in ``vllm`` package (tests/fakes/fake_vllm).

vLLM is CUDA-only, so these tests never import the real thing. The stand-in
is only worth something if it has the real signatures, so the first tests
pin it to literal lists of the real vLLM 0.33.0 parameter names (read from
the wheel; file:line references in docs/vllm.md) and check that the
adapter passes no name outside them.
"""

from __future__ import annotations

import gc
import inspect
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from pytest_jallm.backends.base import (
    Backend,
    BackendError,
    GenerationRequest,
    SamplingSettings,
)

# Same as tests.fakes.FAKE_VLLM_ROOT, without needing `tests` importable.
FAKE_VLLM_ROOT = Path(__file__).resolve().parent / "fakes" / "fake_vllm"

# --------------------------------------------------------------------------
# The real API, vLLM 0.33.0 (vllm-0.33.0-cp38-abi3-manylinux_2_28_x86_64.whl)
# --------------------------------------------------------------------------

# vllm/entrypoints/llm.py:177-222 -- model positional, the rest keyword-only, **kwargs -> EngineArgs
REAL_LLM_INIT_POSITIONAL = ["model"]
REAL_LLM_INIT_KWONLY = [
    "runner", "convert", "tokenizer", "tokenizer_mode", "skip_tokenizer_init",
    "trust_remote_code", "allowed_local_media_path", "allowed_media_domains",
    "tensor_parallel_size", "dtype", "quantization", "revision", "tokenizer_revision",
    "chat_template", "seed", "gpu_memory_utilization", "cpu_offload_gb",
    "offload_group_size", "offload_num_in_group", "offload_prefetch_step",
    "offload_params", "enforce_eager", "enable_return_routed_experts",
    "return_sampling_mask", "disable_custom_all_reduce", "hf_token", "hf_overrides",
    "mm_processor_kwargs", "pooler_config", "structured_outputs_config",
    "profiler_config", "attention_config", "kv_cache_memory_bytes",
    "compilation_config", "quantization_config", "logits_processors",
    "spec_method", "spec_model", "spec_tokens",
]  # fmt: skip
# EngineArgs fields the adapter reaches through LLM(**kwargs): vllm/engine/arg_utils.py:535, :520
REAL_ENGINE_ARGS_USED = ["pipeline_parallel_size", "max_model_len"]
# EngineArgs fields a user scaling out sets with --jallm-engine-arg, annotations as written in
# vllm/engine/arg_utils.py (line numbers in the stand-in), and the Literal aliases they use
# (vllm/config/parallel.py:38-39). tensor_parallel_size is an LLM.__init__ keyword: `int` (llm.py:189).
REAL_SCALING_ENGINE_ARGS = {
    "distributed_executor_backend": "str | DistributedExecutorBackend | type[Executor] | None",
    "pipeline_parallel_size": "int",
    "master_addr": "str",
    "master_port": "int",
    "nnodes": "int",
    "node_rank": "int",
    "data_parallel_size": "int",
    "data_parallel_backend": "DataParallelBackend",
}
REAL_PARALLEL_LITERALS = {
    "DistributedExecutorBackend": ("ray", "mp", "uni", "external_launcher"),
    "DataParallelBackend": ("ray", "mp"),
}

# vllm/entrypoints/llm.py:417-427
REAL_GENERATE_POSITIONAL = ["prompts", "sampling_params"]
REAL_GENERATE_KWONLY = ["use_tqdm", "lora_request", "priority", "tokenization_kwargs", "mm_processor_kwargs"]

# vllm/entrypoints/llm.py:616-632 (no keyword-only marker in the real chat())
REAL_CHAT_POSITIONAL = [
    "messages", "sampling_params", "use_tqdm", "lora_request", "priority",
    "chat_template", "chat_template_content_format", "add_generation_prompt",
    "continue_final_message", "tools", "chat_template_kwargs",
    "tokenization_kwargs", "mm_processor_kwargs",
]  # fmt: skip

# vllm/sampling_params.py:285-446 (public fields, declaration order)
REAL_SAMPLING_PARAMS_FIELDS = [
    "n", "presence_penalty", "frequency_penalty", "repetition_penalty", "temperature",
    "watermarking", "top_p", "top_k", "min_p", "seed", "stop", "stop_token_ids",
    "ignore_eos", "max_tokens", "min_tokens", "logprobs", "prompt_logprobs",
    "prompt_logprob_token_ids", "prompt_logprob_start", "logprob_token_ids",
    "flat_logprobs", "detokenize", "skip_special_tokens",
    "spaces_between_special_tokens", "include_stop_str_in_output", "output_kind",
    "stream_interval", "skip_clone", "output_text_buffer_length",
    "structured_outputs", "logit_bias", "allowed_token_ids", "extra_args",
    "bad_words", "skip_reading_prefix_cache", "thinking_token_budget",
    "repetition_detection", "routed_experts_prompt_start", "trace_decode_token_ids",
]  # fmt: skip

# vllm/sampling_params.py:102-113
REAL_STRUCTURED_OUTPUTS_FIELDS = [
    "json", "regex", "choice", "grammar", "json_object", "disable_any_whitespace",
    "disable_additional_properties", "whitespace_pattern", "structural_tag",
]  # fmt: skip

# vllm/outputs.py:169-189 and :87-98
REAL_REQUEST_OUTPUT_POSITIONAL = [
    "request_id", "prompt", "prompt_token_ids", "prompt_logprobs", "outputs", "finished",
    "metrics", "lora_request", "encoder_prompt", "encoder_prompt_token_ids",
    "num_cached_tokens", "num_cache_creation_tokens",
]  # fmt: skip
REAL_COMPLETION_OUTPUT_FIELDS = [
    "index", "text", "token_ids", "cumulative_logprob", "logprobs", "routed_experts",
    "finish_reason", "stop_reason", "lora_request", "sampling_mask",
    "spec_decode_metrics", "weight_versions",
]  # fmt: skip

# Defaults the adapter's behaviour depends on (it passes all of these explicitly
# except use_tqdm/add_generation_prompt defaults, which it overrides/asserts).
REAL_DEFAULTS = {
    ("SamplingParams", "max_tokens"): 16,  # sampling_params.py:337
    ("SamplingParams", "temperature"): 1.0,  # :308
    ("SamplingParams", "seed"): None,  # :325
    ("SamplingParams", "include_stop_str_in_output"): False,  # :384
    ("generate", "use_tqdm"): True,  # llm.py:422
    ("chat", "use_tqdm"): True,  # llm.py:621
    ("chat", "add_generation_prompt"): True,  # llm.py:626
    ("LLM", "seed"): 0,  # llm.py:195
    ("LLM", "gpu_memory_utilization"): 0.92,  # llm.py:196
}


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------


def _drop_vllm_modules() -> None:
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch):
    """Import the stand-in as ``vllm`` for one test, then forget it."""
    _drop_vllm_modules()
    monkeypatch.syspath_prepend(str(FAKE_VLLM_ROOT))
    import vllm
    import vllm.entrypoints.llm as fake_llm

    assert vllm.__version__.endswith("+standin"), "a real vllm shadowed the stand-in"
    monkeypatch.setattr(fake_llm, "INSTANCES", [])
    monkeypatch.setattr(fake_llm, "FAIL_ON_CALL", None)
    monkeypatch.setattr(fake_llm, "IGNORE_STOP", False)
    yield vllm
    _drop_vllm_modules()


def make_backend(**kwargs: Any):
    from pytest_jallm.backends.vllm import VLLMBackend

    kwargs.setdefault("model", "org/tiny-ja")
    return VLLMBackend(**kwargs)


def llm_of(backend) -> Any:
    return backend._llm


GREEDY = SamplingSettings()


def req(prompt: str, max_new_tokens: int = 64, stop: tuple[str, ...] = (), **kw: Any) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_new_tokens=max_new_tokens, stop=stop, **kw)


def chat_req(content: str, max_new_tokens: int = 64, stop: tuple[str, ...] = (), **kw: Any) -> GenerationRequest:
    messages = ({"role": "system", "content": "あなたは誠実なアシスタントです。"}, {"role": "user", "content": content})
    return GenerationRequest(
        prompt=f"user: {content}", max_new_tokens=max_new_tokens, stop=stop, messages=messages, **kw
    )


# --------------------------------------------------------------------------
# the stand-in mirrors the real signatures
# --------------------------------------------------------------------------


def _split(fn) -> tuple[list[str], list[str], bool]:
    params = list(inspect.signature(fn).parameters.values())
    pos = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "self"]
    kwonly = [p.name for p in params if p.kind == p.KEYWORD_ONLY]
    varkw = any(p.kind == p.VAR_KEYWORD for p in params)
    return pos, kwonly, varkw


def test_standin_llm_signatures_match_real(fake_vllm):
    assert _split(fake_vllm.LLM.__init__) == (REAL_LLM_INIT_POSITIONAL, REAL_LLM_INIT_KWONLY, True)
    assert _split(fake_vllm.LLM.generate) == (REAL_GENERATE_POSITIONAL, REAL_GENERATE_KWONLY, False)
    assert _split(fake_vllm.LLM.chat) == (REAL_CHAT_POSITIONAL, [], False)


def test_standin_params_and_outputs_match_real(fake_vllm):
    from vllm.sampling_params import StructuredOutputsParams

    assert [f.name for f in fields(fake_vllm.SamplingParams)] == REAL_SAMPLING_PARAMS_FIELDS
    assert [f.name for f in fields(StructuredOutputsParams) if f.init] == REAL_STRUCTURED_OUTPUTS_FIELDS
    assert [f.name for f in fields(fake_vllm.CompletionOutput)] == REAL_COMPLETION_OUTPUT_FIELDS
    pos, kwonly, varkw = _split(fake_vllm.RequestOutput.__init__)
    assert pos == REAL_REQUEST_OUTPUT_POSITIONAL and varkw
    assert kwonly == ["prompt_token_id_logprobs", "kv_transfer_params", "ec_transfer_params"]


def test_standin_defaults_match_real(fake_vllm):
    sp_defaults = {f.name: f.default for f in fields(fake_vllm.SamplingParams)}
    sigs = {
        "generate": inspect.signature(fake_vllm.LLM.generate).parameters,
        "chat": inspect.signature(fake_vllm.LLM.chat).parameters,
        "LLM": inspect.signature(fake_vllm.LLM.__init__).parameters,
    }
    for (where, name), value in REAL_DEFAULTS.items():
        got = sp_defaults[name] if where == "SamplingParams" else sigs[where][name].default
        assert got == value, (where, name)


def test_adapter_passes_only_real_names(fake_vllm, monkeypatch):
    seen: dict[str, set[str]] = {"LLM": set(), "SamplingParams": set(), "StructuredOutputsParams": set()}
    from vllm.sampling_params import StructuredOutputsParams

    real_llm, real_sp = fake_vllm.LLM, fake_vllm.SamplingParams

    class RecordingLLM(real_llm):
        def __init__(self, model, **kwargs):
            seen["LLM"] |= set(kwargs)
            super().__init__(model, **kwargs)

        def generate(self, prompts, sampling_params=None, **kwargs):
            seen["generate"] = set(kwargs) | {"sampling_params"}
            return super().generate(prompts, sampling_params, **kwargs)

        def chat(self, messages, sampling_params=None, **kwargs):
            seen["chat"] = set(kwargs) | {"sampling_params"}
            return super().chat(messages, sampling_params, **kwargs)

    monkeypatch.setattr(fake_vllm, "LLM", RecordingLLM)
    backend = make_backend(max_model_len=4096, pipeline_parallel_size=2, quantization="fp8", guided_choice=True)

    def sp(**kw):
        seen["SamplingParams"] |= set(kw)
        return real_sp(**kw)

    def so(**kw):
        seen["StructuredOutputsParams"] |= set(kw)
        return StructuredOutputsParams(**kw)

    backend._sampling_params_cls = sp
    backend._structured_outputs_params = so
    backend.generate(
        [req("a", stop=("\n",)), req("b", guided_choices=("x", "y")), chat_req("c")],
        SamplingSettings(temperature=0.0, top_p=0.9, repetition_penalty=1.1, seed=7),
    )
    assert seen["LLM"] <= set(REAL_LLM_INIT_KWONLY) | set(REAL_ENGINE_ARGS_USED)
    assert set(REAL_ENGINE_ARGS_USED) <= seen["LLM"]
    assert seen["generate"] <= set(REAL_GENERATE_POSITIONAL + REAL_GENERATE_KWONLY)
    assert seen["chat"] <= set(REAL_CHAT_POSITIONAL)
    assert seen["SamplingParams"] <= set(REAL_SAMPLING_PARAMS_FIELDS)
    assert seen["StructuredOutputsParams"] == {"choice"}


def test_standin_engine_args_carry_the_real_annotations(fake_vllm):
    import vllm.entrypoints.llm as fake_llm

    recorded = fake_llm.ENGINE_ARGS_VIA_KWARGS
    assert {name: recorded[name] for name in REAL_SCALING_ENGINE_ARGS} == REAL_SCALING_ENGINE_ARGS
    assert fake_llm.LITERALS == REAL_PARALLEL_LITERALS
    assert inspect.signature(fake_vllm.LLM.__init__).parameters["tensor_parallel_size"].annotation == "int"


@pytest.mark.parametrize(("kwargs", "complaint"), [
    ({"pipeline_parallel_size": "2"}, "pipeline_parallel_size"),
    ({"data_parallel_size": True}, "data_parallel_size"),
    ({"distributed_executor_backend": 2}, "distributed_executor_backend"),
    ({"data_parallel_backend": "nccl"}, "data_parallel_backend"),
    ({"tensor_parallel_size": 2.0}, "tensor_parallel_size"),
])
def test_standin_type_checks_engine_args(fake_vllm, kwargs, complaint):
    # The checks the scaling tests below rely on can fail.
    with pytest.raises(TypeError, match=complaint):
        fake_vllm.LLM("m", **kwargs)


def test_standin_refuses_data_parallel_like_real_llm(fake_vllm):
    # vllm/entrypoints/llm.py:281-292: only external_launcher (a process per rank) may ask for it.
    with pytest.raises(ValueError, match=r"data_parallel_size=2\) is not supported for single-process"):
        fake_vllm.LLM("m", data_parallel_size=2)
    fake_vllm.LLM("m", data_parallel_size=2, distributed_executor_backend="external_launcher")


# --------------------------------------------------------------------------
# scaling: what each way of scaling out asks of the engine (docs/vllm.md)
# --------------------------------------------------------------------------


def engine_args_from_flags(pytester: pytest.Pytester, *flags: str) -> dict[str, Any]:
    """The plugin's own option parsing, then the backend, then the kwargs vllm.LLM received."""
    from pytest_jallm.backends import backend_kwargs
    from pytest_jallm.backends.vllm import VLLMBackend

    config = pytester.parseconfig("--jallm-backend", "vllm", *flags)
    VLLMBackend("org/model", **backend_kwargs("vllm", config.getoption))
    import vllm.entrypoints.llm as fake_llm

    (llm,) = fake_llm.INSTANCES
    return llm.engine_args


def test_tensor_and_pipeline_parallel_in_one_engine(fake_vllm, pytester):
    args = engine_args_from_flags(pytester, "--jallm-tp", "4", "--jallm-pp", "2")
    assert (args["tensor_parallel_size"], args["pipeline_parallel_size"]) == (4, 2)
    assert "distributed_executor_backend" not in args  # vLLM picks its own: mp on one machine


def test_several_nodes_through_vllms_ray_executor(fake_vllm, pytester):
    args = engine_args_from_flags(pytester, "--jallm-tp", "8", "--jallm-pp", "2",
                                  "--jallm-engine-arg", "distributed_executor_backend=ray")
    assert (args["tensor_parallel_size"], args["pipeline_parallel_size"]) == (8, 2)
    assert args["distributed_executor_backend"] == "ray"  # a str, as the real annotation allows


def test_an_executor_import_path_passes_through(fake_vllm):
    b = make_backend(engine_kwargs={"distributed_executor_backend": "my_cluster.executors.SlurmExecutor"})
    assert llm_of(b).engine_args["distributed_executor_backend"] == "my_cluster.executors.SlurmExecutor"


def test_data_parallel_is_refused_before_vllm_starts_naming_what_works(fake_vllm, pytester):
    import vllm.entrypoints.llm as fake_llm

    with pytest.raises(BackendError) as info:
        engine_args_from_flags(pytester, "--jallm-engine-arg", "data_parallel_size=2",
                               "--jallm-engine-arg", "distributed_executor_backend=ray")
    message = str(info.value)
    assert "data_parallel_size=2" in message
    for remedy in ("--jallm-gpus-per-worker", "--jallm-shard", "vllm serve --data-parallel-size",
                   "--jallm-backend openai", "--jallm-concurrency"):
        assert remedy in message
    assert fake_llm.INSTANCES == []  # the engine was never asked
    make_backend(engine_kwargs={"data_parallel_size": 1})  # 1 is the default, and fine


@pytest.mark.parametrize(("options", "complaint"), [
    ({"engine_kwargs": {"distributed_executor_backend": "external_launcher"}}, "every rank would run the whole pytest"),
    ({"engine_kwargs": {"distributed_executor_backend": "rey"}}, r"'rey': expected one of mp, ray, uni"),
    ({"tensor_parallel_size": 0}, r"--jallm-tp tensor_parallel_size=0: expected an integer >= 1"),
    ({"pipeline_parallel_size": "2"}, r"--jallm-pp pipeline_parallel_size='2'"),
    ({"engine_kwargs": {"data_parallel_size": "2"}}, r"--jallm-engine-arg data_parallel_size='2'"),
])
def test_combinations_that_cannot_work_are_named(fake_vllm, options, complaint):
    import vllm.entrypoints.llm as fake_llm

    with pytest.raises(BackendError, match=complaint):
        make_backend(**options)
    assert fake_llm.INSTANCES == []


# --------------------------------------------------------------------------
# construction, identity, missing vllm
# --------------------------------------------------------------------------


def test_missing_vllm_raises_backend_error_with_install_hint(monkeypatch):
    _drop_vllm_modules()
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    from pytest_jallm.backends.vllm import VLLMBackend

    with pytest.raises(BackendError, match=r"pip install 'pytest-jallm\[vllm\]'"):
        VLLMBackend("org/tiny-ja")


def test_engine_args_reach_llm(fake_vllm):
    b = make_backend(
        model="llm-jp/llm-jp-3-1.8b",
        revision="abc123",
        tokenizer="llm-jp/tok",
        tensor_parallel_size=2,
        pipeline_parallel_size=2,
        dtype="bfloat16",
        max_model_len=2048,
        gpu_memory_utilization=0.8,
        quantization="awq",
        trust_remote_code=True,
        seed=42,
        engine_kwargs={"enforce_eager": True, "max_num_seqs": 64},
    )
    (llm,) = fake_vllm.entrypoints.llm.INSTANCES
    assert llm is llm_of(b)
    assert llm.engine_args == {
        "model": "llm-jp/llm-jp-3-1.8b",
        "revision": "abc123",
        "tokenizer": "llm-jp/tok",
        "tensor_parallel_size": 2,
        "pipeline_parallel_size": 2,
        "dtype": "bfloat16",
        "max_model_len": 2048,
        "gpu_memory_utilization": 0.8,
        "quantization": "awq",
        "trust_remote_code": True,
        "seed": 42,
        "enforce_eager": True,
        "max_num_seqs": 64,
        "chat_template": None,
    }
    assert isinstance(b, Backend)


def test_max_model_len_none_is_left_to_vllm(fake_vllm):
    b = make_backend()
    assert "max_model_len" not in llm_of(b).engine_args


def test_engine_kwargs_may_not_shadow_named_args(fake_vllm):
    with pytest.raises(BackendError, match="dtype"):
        make_backend(engine_kwargs={"dtype": "float16"})


def test_unknown_engine_kwarg_surfaces_as_backend_error(fake_vllm):
    with pytest.raises(BackendError, match="could not load model"):
        make_backend(engine_kwargs={"no_such_engine_arg": 1})


def test_bad_chunk_size(fake_vllm):
    with pytest.raises(BackendError, match="chunk_size"):
        make_backend(chunk_size=0)


def test_identity(fake_vllm):
    b = make_backend(
        model="tokyotech-llm/Llama-3.1-Swallow-8B-Instruct-v0.3",
        revision="deadbeef",
        dtype="bfloat16",
        max_model_len=4096,
        quantization="fp8",
        tensor_parallel_size=2,
        guided_choice=True,
        engine_kwargs={"kv_cache_dtype": "fp8", "enforce_eager": True},
        gpu_memory_utilization=0.7,
        chunk_size=100,
    )
    ident = b.identity().as_dict()
    assert ident["backend"] == "vllm"
    assert ident["backend_version"] == fake_vllm.__version__ == "0.33.0+standin"
    assert ident["model"] == "tokyotech-llm/Llama-3.1-Swallow-8B-Instruct-v0.3"
    assert ident["model_revision"] == "deadbeef"
    assert ident["settings"] == {
        "tokenizer": None,
        "dtype": "bfloat16",
        "quantization": "fp8",
        "max_model_len": 4096,
        "trust_remote_code": False,
        "seed": 0,
        "guided_choice": True,
        "tensor_parallel_size": 2,
        "pipeline_parallel_size": 1,
        "engine_kwargs": {"enforce_eager": True, "kv_cache_dtype": "fp8"},
    }
    # capacity / scheduling knobs are deliberately not part of the identity
    assert "gpu_memory_utilization" not in ident["settings"]
    assert "chunk_size" not in ident["settings"]


@pytest.mark.parametrize("options", [
    {},
    {"revision": "deadbeef", "dtype": "bfloat16", "max_model_len": 4096, "quantization": "fp8",
     "tensor_parallel_size": 2, "guided_choice": True, "engine_kwargs": {"kv_cache_dtype": "fp8"},
     "gpu_memory_utilization": 0.7, "chunk_size": 100},
])
def test_peeked_identity_is_the_engines_identity(fake_vllm, monkeypatch, options):
    # A fully cached re-run picks rows by the peeked identity and never starts
    # the engine, so it must equal what a started engine reports.
    import importlib.metadata

    real_version = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: fake_vllm.__version__ if name == "vllm" else real_version(name))
    from pytest_jallm.backends.vllm import VLLMBackend

    peeked = VLLMBackend.peek_identity("org/model", **options)
    assert peeked == make_backend(model="org/model", **options).identity()


def test_peek_declines_without_an_installed_vllm(monkeypatch):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    from pytest_jallm.backends.vllm import VLLMBackend

    assert VLLMBackend.peek_identity("org/model") is None


def test_identity_without_revision(fake_vllm):
    assert make_backend().identity().model_revision == "unspecified"


def test_guided_choice_needs_structured_outputs_api(fake_vllm, monkeypatch):
    # vLLM < 0.11 had no vllm.sampling_params.StructuredOutputsParams
    import vllm.sampling_params as sp

    monkeypatch.delattr(sp, "StructuredOutputsParams")
    with pytest.raises(BackendError, match=r"0\.11"):
        make_backend(guided_choice=True)
    make_backend(guided_choice=False)  # fine without it


# --------------------------------------------------------------------------
# generate(): batching, sampling params, order, callbacks
# --------------------------------------------------------------------------


def test_one_generate_call_for_all_raw_prompts(fake_vllm):
    b = make_backend()
    prompts = [f"問題{i}:" for i in range(25)]
    out = b.generate([req(p) for p in prompts], GREEDY)
    assert out == ["ECHO:" + p for p in prompts]
    (call,) = llm_of(b).calls
    assert call.method == "generate"
    assert call.inputs == prompts  # raw strings, in request order
    assert len(call.sampling_params) == len(prompts)
    assert call.kwargs["use_tqdm"] is False


def test_sampling_params_per_request(fake_vllm):
    b = make_backend()
    reqs = [
        req("a", max_new_tokens=5, stop=("\n", "。")),
        req("b", max_new_tokens=32),
        req("c", max_new_tokens=5, stop=("\n", "。")),
    ]
    b.generate(reqs, SamplingSettings(temperature=0.0, top_p=0.95, repetition_penalty=1.05, seed=1234))
    (call,) = llm_of(b).calls
    p0, p1, p2 = call.sampling_params
    assert p0.max_tokens == 5 and p0.stop == ["\n", "。"]
    assert p1.max_tokens == 32 and p1.stop == []
    assert p0 is p2  # one SamplingParams per distinct (max tokens, stop, choices)
    assert p0 is not p1
    for p in (p0, p1):
        assert p.temperature == 0.0  # greedy
        assert p.top_p == 1.0  # vLLM resets top_p under greedy
        assert p.seed == 1234
        assert p.repetition_penalty == 1.05
        assert p.n == 1
        assert p.structured_outputs is None
        assert p.include_stop_str_in_output is False


def test_non_greedy_settings_pass_through(fake_vllm):
    b = make_backend()
    b.generate([req("a")], SamplingSettings(temperature=0.7, top_p=0.9, seed=3))
    (p,) = llm_of(b).calls[0].sampling_params
    assert (p.temperature, p.top_p, p.seed) == (0.7, 0.9, 3)


def test_max_tokens_and_stop_applied(fake_vllm):
    b = make_backend()
    out = b.generate([req("abcdefghij", max_new_tokens=8), req("東京\n大阪", stop=("\n",))], GREEDY)
    assert out == ["ECHO:abc", "ECHO:東京"]


def test_apply_stop_is_a_safety_net(fake_vllm, monkeypatch):
    monkeypatch.setattr(fake_vllm.entrypoints.llm, "IGNORE_STOP", True)
    b = make_backend()
    got: list[tuple[int, str]] = []
    out = b.generate(
        [req("答え: はい\n次の問題", stop=("\n",)), chat_req("いいえ。以上", stop=("。",))],
        GREEDY,
        on_result=lambda i, t: got.append((i, t)),
    )
    assert out == ["ECHO:答え: はい", "CHAT:いいえ"]
    assert sorted(got) == [(0, "ECHO:答え: はい"), (1, "CHAT:いいえ")]


def test_guided_choice_only_when_enabled_and_requested(fake_vllm):
    labels = ("肯定", "否定", "中立")
    reqs = [req("この映画は否定的だ", guided_choices=labels), req("自由回答"), req("これは中立", guided_choices=labels)]

    b = make_backend(guided_choice=True)
    out = b.generate(reqs, GREEDY)
    assert out == ["否定", "ECHO:自由回答", "中立"]
    p0, p1, p2 = llm_of(b).calls[0].sampling_params
    assert p0.structured_outputs.choice == list(labels)
    assert p1.structured_outputs is None
    assert p0 is p2

    off = make_backend(guided_choice=False)
    off.generate(reqs, GREEDY)
    assert all(p.structured_outputs is None for p in llm_of(off).calls[0].sampling_params)


def test_empty_guided_choices_means_unconstrained(fake_vllm):
    b = make_backend(guided_choice=True)
    assert b.generate([req("x", guided_choices=())], GREEDY) == ["ECHO:x"]
    assert llm_of(b).calls[0].sampling_params[0].structured_outputs is None


def test_chat_requests_go_to_one_chat_call(fake_vllm):
    b = make_backend()
    reqs = [chat_req(f"質問{i}") for i in range(7)]
    out = b.generate(reqs, GREEDY)
    assert out == [f"CHAT:質問{i}" for i in range(7)]
    (call,) = llm_of(b).calls
    assert call.method == "chat"
    assert len(call.inputs) == 7
    assert all(type(conv) is list and all(type(m) is dict for m in conv) for conv in call.inputs)
    assert call.inputs[3] == [dict(m) for m in reqs[3].messages]
    assert call.kwargs["add_generation_prompt"] is True
    assert call.kwargs["use_tqdm"] is False
    assert call.kwargs["chat_template"] is None  # the model's own template


def test_single_chat_request_is_still_a_batch(fake_vllm):
    # vLLM treats a list whose first item is a dict as ONE conversation; the
    # adapter must always send a list of conversations.
    b = make_backend()
    assert b.generate([chat_req("一つだけ")], GREEDY) == ["CHAT:一つだけ"]
    assert len(llm_of(b).calls[0].inputs) == 1


def test_mixed_requests_map_back_to_request_order(fake_vllm):
    b = make_backend()
    reqs = [req("r0"), chat_req("c1"), req("r2", max_new_tokens=6), chat_req("c3"), chat_req("c4"), req("r5")]
    got: dict[int, str] = {}
    out = b.generate(reqs, GREEDY, on_result=lambda i, t: got.__setitem__(i, t))
    expected = ["ECHO:r0", "CHAT:c1", "ECHO:r", "CHAT:c3", "CHAT:c4", "ECHO:r5"]
    assert out == expected
    assert got == dict(enumerate(expected))  # on_result once per request, right index
    calls = llm_of(b).calls
    assert [c.method for c in calls] == ["generate", "chat"]
    assert calls[0].inputs == ["r0", "r2", "r5"]
    assert [c[-1]["content"] for c in calls[1].inputs] == ["c1", "c3", "c4"]
    assert [p.max_tokens for p in calls[0].sampling_params] == [64, 6, 64]


def test_on_result_called_exactly_once_per_request(fake_vllm):
    b = make_backend()
    calls: list[int] = []
    b.generate([req(str(i)) for i in range(10)], GREEDY, on_result=lambda i, t: calls.append(i))
    assert sorted(calls) == list(range(10))


def test_empty_request_list(fake_vllm):
    b = make_backend()
    assert b.generate([], GREEDY) == []
    assert llm_of(b).calls == []


def test_invalid_sampling_becomes_backend_error(fake_vllm):
    b = make_backend()
    with pytest.raises(BackendError, match="max_tokens"):
        b.generate([req("x", max_new_tokens=0)], GREEDY)


# --------------------------------------------------------------------------
# chunking
# --------------------------------------------------------------------------


def test_chunk_size_splits_calls(fake_vllm):
    b = make_backend(chunk_size=4)
    reqs = [req(f"r{i}") for i in range(10)] + [chat_req(f"c{i}") for i in range(5)]
    out = b.generate(reqs, GREEDY)
    assert out == [f"ECHO:r{i}" for i in range(10)] + [f"CHAT:c{i}" for i in range(5)]
    calls = llm_of(b).calls
    assert [(c.method, len(c.inputs)) for c in calls] == [
        ("generate", 4),
        ("generate", 4),
        ("generate", 2),
        ("chat", 4),
        ("chat", 1),
    ]


def test_crash_loses_at_most_one_chunk(fake_vllm, monkeypatch):
    monkeypatch.setattr(fake_vllm.entrypoints.llm, "FAIL_ON_CALL", 2)
    b = make_backend(chunk_size=3)
    saved: dict[int, str] = {}
    with pytest.raises(BackendError, match="LLM.generate failed on 3 prompts"):
        b.generate([req(f"p{i}") for i in range(12)], GREEDY, on_result=lambda i, t: saved.__setitem__(i, t))
    assert saved == {i: f"ECHO:p{i}" for i in range(6)}  # the two finished chunks were reported


def test_without_chunking_a_crash_reports_nothing(fake_vllm, monkeypatch):
    monkeypatch.setattr(fake_vllm.entrypoints.llm, "FAIL_ON_CALL", 0)
    b = make_backend()
    saved: list[int] = []
    with pytest.raises(BackendError, match="CUDA out of memory"):
        b.generate([req(f"p{i}") for i in range(12)], GREEDY, on_result=lambda i, t: saved.append(i))
    assert saved == []


def test_close_lets_an_engine_held_in_a_cycle_be_collected_from_a_frozen_heap(fake_vllm):
    # The session freezes the heap after loading the model (session.py); vLLM shuts its workers
    # down when the engine is collected, so close() must unfreeze before it collects.
    import weakref

    import vllm.entrypoints.llm as fake_llm

    b = make_backend()
    engine = llm_of(b)
    engine.cycle = engine
    alive = weakref.ref(engine)
    fake_llm.INSTANCES.clear()
    del engine
    gc.freeze()
    try:
        b.close()
        assert alive() is None
    finally:
        gc.unfreeze()


def test_close(fake_vllm):
    b = make_backend()
    b.close()
    assert b._llm is None
    with pytest.raises(BackendError, match="close"):
        b.generate([req("x")], GREEDY)
    b.close()  # idempotent
