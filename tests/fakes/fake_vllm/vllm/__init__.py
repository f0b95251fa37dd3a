"""Stand-in for the ``vllm`` package (CPU-only, deterministic, records calls).

NOT vLLM. It mirrors the signatures of vLLM 0.33.0 that pytest-jallm's
vllm backend touches, so tests can run where vLLM (CUDA-only) cannot:

* ``vllm.__version__``                        (real: vllm/_version.py)
* ``vllm.LLM``                                (real: vllm/entrypoints/llm.py)
* ``vllm.SamplingParams``, ``vllm.sampling_params.StructuredOutputsParams``
                                              (real: vllm/sampling_params.py)
* ``vllm.RequestOutput``, ``vllm.CompletionOutput`` (real: vllm/outputs.py)

Deterministic "model" (one character = one token):

* a raw prompt ``p`` completes to ``"ECHO:" + p``;
* a conversation completes to ``"CHAT:" + <content of its last message>``;
* then ``max_tokens`` characters are kept and the text is cut before the
  first stop string (vLLM's ``include_stop_str_in_output=False``);
* with ``structured_outputs.choice`` the completion is the first choice that
  occurs in the prompt text, else the first choice.

Put ``tests/fakes/fake_vllm`` first on ``sys.path`` to import it as ``vllm``.
"""

from .entrypoints.llm import LLM
from .outputs import CompletionOutput, RequestOutput
from .sampling_params import SamplingParams
from .version import __version__, __version_tuple__

__all__ = [
    "LLM",
    "CompletionOutput",
    "RequestOutput",
    "SamplingParams",
    "__version__",
    "__version_tuple__",
]
