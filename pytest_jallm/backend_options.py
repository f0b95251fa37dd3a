"""The command-line options backends take, declared without importing any backend.

pytest registers every option at start-up, in every session of an environment where the plugin is
installed, most of which run no benchmark. So the built-in backends' options live here, in a table
the plugin reads without importing `pytest_jallm.backends` (or pydantic, torch, transformers …),
and each built-in backend class takes its ``cli_options`` from it (`BUILTIN_BACKEND_OPTIONS`;
tests/test_startup.py checks that they agree). An installed backend declares its own
``cli_options`` on its class; the plugin registers them when a run selects that backend
(``--jallm-backend NAME``, ``--jallm-judge-backend NAME``) and for ``--help``.

The judge of an LLM-judged benchmark takes a copy of each flag, ``--jallm-X`` -> ``--jallm-judge-X``
(`judge_flag`).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from .errors import JallmError


@dataclass(frozen=True)
class BackendOption:
    """One keyword argument of a backend's constructor, set from a command-line option.

    A backend class lists them in ``cli_options``; the plugin adds each ``flag`` to pytest's
    options (once, however many backends share it) and passes the value as ``kwarg``. With
    ``flag=None`` the value comes from an option declared elsewhere (``dest``, e.g. ``jallm_seed``).
    """

    kwarg: str
    flag: str | None = None
    dest: str | None = None  # default: from the flag, "--jallm-tp" -> "jallm_tp"
    help: str = ""
    default: Any = None
    type: Callable[[str], Any] | None = None
    action: Any = None  # "store_true", argparse.BooleanOptionalAction, ...
    metavar: str | None = None
    required: str | None = None  # when the option must be given: an example value for the message
    convert: Callable[[Any], Any] | None = None  # option value -> keyword value

    @property
    def option_dest(self) -> str:
        if self.dest:
            return self.dest
        if not self.flag:
            raise ValueError(f"backend option {self.kwarg!r}: give a flag or a dest")
        return self.flag.lstrip("-").replace("-", "_")

    def addoption_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for pytest's ``addoption(self.flag, ...)``."""
        kwargs: dict[str, Any] = {"dest": self.option_dest, "default": self.default, "help": self.help}
        for name in ("type", "action", "metavar"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        return kwargs


class BackendOptionError(JallmError, ValueError):
    """A backend's required option is missing; the message names the option."""


def parse_engine_args(pairs: Sequence[str]) -> dict[str, Any]:
    """``--jallm-engine-arg KEY=VALUE`` (repeatable) -> keywords; VALUE is JSON when it parses."""
    import json

    out: dict[str, Any] = {}
    for pair in pairs or ():
        if "=" not in pair:
            raise BackendOptionError(
                f"--jallm-engine-arg {pair!r}: expected KEY=VALUE (VALUE parsed as JSON when it can be)"
            )
        key, _, raw = pair.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def flagged(options: Iterable[BackendOption]) -> list[BackendOption]:
    """The options that have a flag, each flag once (the first declaration wins)."""
    seen: dict[str, BackendOption] = {}
    for option in options:
        if option.flag and option.flag not in seen:
            seen[option.flag] = option
    return list(seen.values())


def add_flags(group: Any, options: Iterable[BackendOption]) -> None:
    """Each option's flag in pytest's option group (options without a flag have none to add)."""
    for option in options:
        if option.flag:
            group.addoption(option.flag, **option.addoption_kwargs())


def judge_flag(flag: str) -> str:
    """``--jallm-base-url`` -> ``--jallm-judge-base-url`` (another package's ``--x`` -> ``--jallm-judge-x``)."""
    name = flag[len("--jallm-"):] if flag.startswith("--jallm-") else flag.lstrip("-")
    return "--jallm-judge-" + name


def judge_dest(option: BackendOption) -> str:
    return judge_flag(option.flag).lstrip("-").replace("-", "_") if option.flag else option.option_dest


# --- the built-in backends' options --------------------------------------------------------------

# Shared by several backends (declared once; each backend lists the ones it takes).
REVISION = BackendOption("revision", dest="jallm_revision")  # --jallm-revision is a general option
DTYPE = BackendOption("dtype", "--jallm-dtype", default="auto", help="model dtype: auto, float32, bfloat16, float16")
TRUST_REMOTE_CODE = BackendOption("trust_remote_code", "--jallm-trust-remote-code", action="store_true",
                                  default=False, help="allow model repositories' custom code")

HF_OPTIONS = (
    REVISION,
    BackendOption("device", "--jallm-device", default="auto", help="hf backend device: auto, cpu, cuda, cuda:1 …"),
    DTYPE,
    BackendOption("batch_size", "--jallm-batch-size", type=int, default=32, help="hf backend batch size"),
    TRUST_REMOTE_CODE,
    BackendOption("add_special_tokens", "--jallm-add-special-tokens", action=argparse.BooleanOptionalAction,
                  default=True,
                  help="tokenize prompts with the tokenizer's special tokens (BOS); recorded with the run"),
)

VLLM_OPTIONS = (
    REVISION,
    BackendOption("tensor_parallel_size", "--jallm-tp", type=int, default=1, help="vllm tensor_parallel_size"),
    BackendOption("pipeline_parallel_size", "--jallm-pp", type=int, default=1, help="vllm pipeline_parallel_size"),
    DTYPE,
    BackendOption("max_model_len", "--jallm-max-model-len", type=int, default=None, help="vllm max_model_len"),
    BackendOption("gpu_memory_utilization", "--jallm-gpu-memory-utilization", type=float, default=0.9,
                  help="vllm gpu_memory_utilization"),
    BackendOption("quantization", "--jallm-quantization", default=None,
                  help="vllm quantization method (awq, gptq, fp8 …)"),
    TRUST_REMOTE_CODE,
    BackendOption("seed", dest="jallm_seed"),
    BackendOption("engine_kwargs", dest="jallm_engine_arg", convert=parse_engine_args),
    BackendOption("guided_choice", "--jallm-guided-choice", action="store_true", default=False,
                  help="vllm: constrain closed-label answers to the label set (hides OoC; reported separately)"),
)


def _openai_mode(chat: bool) -> str:
    return "chat" if chat else "completions"


OPENAI_OPTIONS = (
    BackendOption("base_url", "--jallm-base-url", required="http://127.0.0.1:8000/v1",
                  help="openai backend: server base URL, e.g. http://127.0.0.1:8000/v1"),
    BackendOption("api_key_env", "--jallm-api-key-env", default="OPENAI_API_KEY",
                  help="openai backend: environment variable holding the API key"),
    BackendOption("mode", dest="jallm_chat", convert=_openai_mode),
    BackendOption("max_concurrency", "--jallm-concurrency", type=int, default=8,
                  help="openai backend: requests in flight"),
    BackendOption("timeout_s", "--jallm-timeout", type=float, default=120.0,
                  help="openai backend: seconds one request may take in all (connect, headers and body)"),
    REVISION,
)

REPLAY_OPTIONS = (
    BackendOption("benchmark", "--jallm-replay-benchmark", default=None, metavar="NAME",
                  help="replay backend: the benchmark whose items recordings that name none answer by their ids "
                       "(FastChat model_answer files, outputs files without 'benchmark'); unbound, they answer none"),
    BackendOption("judged_model", "--jallm-replay-judged-model", default=None, metavar="NAME",
                  help="replay backend: of FastChat model_judgment files, serve only the judgments of this model's "
                       "answers (their 'model' field); for a judge: --jallm-judge-replay-judged-model"),
)

# name -> its class's cli_options, in the order --help and error messages list the backends.
BUILTIN_BACKEND_OPTIONS: dict[str, tuple[BackendOption, ...]] = {
    "hf": HF_OPTIONS,
    "vllm": VLLM_OPTIONS,
    "openai": OPENAI_OPTIONS,
    "replay": REPLAY_OPTIONS,
}


def builtin_cli_options() -> list[BackendOption]:
    """Every built-in backend's flagged options, each flag once (what pytest_addoption registers)."""
    return flagged(option for options in BUILTIN_BACKEND_OPTIONS.values() for option in options)


def is_installed_backend_name(name: str | None) -> bool:
    """A `--jallm-backend` value that names an installed (entry-point) backend: not a built-in,
    not `auto`, not `package.module:Factory`."""
    return bool(name) and name != "auto" and ":" not in name and name not in BUILTIN_BACKEND_OPTIONS  # type: ignore[operator]
