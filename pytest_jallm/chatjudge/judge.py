"""The judge model of an LLM-judged benchmark: its command-line options and settings.

`--jallm-judge-model M` names the judge and `--jallm-judge-backend NAME` (default: openai, an
OpenAI-compatible server) how it runs; any registered backend works, a local hf or vllm judge too.
The judge's backend takes the same keyword arguments as the model's: every option a backend
declares with a flag has a judge copy, `--jallm-X` -> `--jallm-judge-X` (`--jallm-judge-base-url`,
`--jallm-judge-api-key-env`, `--jallm-judge-dtype`, …): the built-ins' always, an installed
backend's when the run selects it (for the model or the judge) and in --help. Of the options a
backend declares without a flag, the revision and the engine arguments get judge copies
(`--jallm-judge-revision`, `--jallm-judge-engine-arg`), the judge is always asked through its chat
template, and the rest (the seed) are the run's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

# Declarations only: the plugin adds the judge's options at every pytest start-up, which imports no
# backend (the backends are imported by the functions that create a judge).
from ..backend_options import BackendOption, BackendOptionError, judge_dest, judge_flag, parse_engine_args

if TYPE_CHECKING:
    from ..backends.base import Backend, BackendIdentity

DEFAULT_JUDGE_BACKEND = "openai"
_OWN_COPIES = {"jallm_revision": "jallm_judge_revision", "jallm_engine_arg": "jallm_judge_engine_arg"}
_ALWAYS = {"jallm_chat": True}  # a judge prompt is a system and a user message


def add_judge_options(group: Any, backend_options: Sequence[BackendOption]) -> None:
    """The judge's options, in pytest's option group of the plugin, with a copy of each of
    `backend_options` (the backends' flags)."""
    group.addoption("--jallm-judge-model", default=None, metavar="MODEL",
                    help="the LLM judge of judged benchmarks (Japanese MT-Bench), e.g. gpt-4o; without it they are skipped")
    group.addoption("--jallm-judge-backend", default=None, metavar="NAME",
                    help=f"how the judge runs: {DEFAULT_JUDGE_BACKEND} (default: an OpenAI-compatible server), hf, vllm "
                         "or package.module:Factory; its options are the backend's own with --jallm-judge- in front "
                         "(--jallm-judge-base-url, --jallm-judge-api-key-env, --jallm-judge-dtype …)")
    group.addoption("--jallm-judge-revision", default=None, help="the judge model's revision (hub branch, tag or commit)")
    group.addoption("--jallm-judge-engine-arg", action="append", default=[], metavar="KEY=VALUE",
                    help="extra engine argument passed through to the judge's backend (repeatable)")
    add_judge_copies(group, backend_options)


def add_judge_copies(group: Any, backend_options: Sequence[BackendOption]) -> None:
    """``--jallm-judge-X`` for each flag ``--jallm-X`` of `backend_options`."""
    for option in backend_options:
        if option.flag:
            kwargs = option.addoption_kwargs()
            kwargs.update(dest=judge_dest(option), help=f"judge: {option.help}" if option.help else "judge's copy")
            group.addoption(judge_flag(option.flag), **kwargs)


@dataclass(frozen=True)
class JudgeSettings:
    """Which judge runs, and its backend's keyword arguments."""

    backend: str
    model: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def create(self) -> Backend:
        from ..backends import backend_factory

        return backend_factory(self.backend)(self.model, **self.options)

    def peek_identity(self) -> BackendIdentity | None:
        """The identity the judge will report, when its backend can tell without loading it."""
        from ..backends import peek_identity

        return peek_identity(self.backend, self.model, dict(self.options))


def judge_settings(getoption: Callable[..., Any]) -> JudgeSettings | None:
    """The judge the options ask for, or None when no --jallm-judge-model is given.

    Raises BackendOptionError naming the judge option that is missing or malformed."""
    model = getoption("jallm_judge_model")
    backend = getoption("jallm_judge_backend")
    if not model:
        if backend:
            raise BackendOptionError(f"--jallm-judge-backend {backend}: name the judge with --jallm-judge-model")
        return None
    backend = backend or DEFAULT_JUDGE_BACKEND
    from ..backends import backend_class, resolve_backend_name

    try:
        factory = backend_class(backend)
    except Exception as e:  # an unknown name or a factory that does not import
        raise BackendOptionError(str(e).replace("--jallm-backend", "--jallm-judge-backend")) from None
    declared = getattr(factory, "cli_options", None)
    try:
        engine_args = parse_engine_args(getoption("jallm_judge_engine_arg"))
    except BackendOptionError as e:
        raise BackendOptionError(str(e).replace("--jallm-engine-arg", "--jallm-judge-engine-arg")) from None
    if declared is None:
        return JudgeSettings(backend, model, engine_args)
    kwargs: dict[str, Any] = {}
    for option in declared:
        dest = option.option_dest
        if dest in _ALWAYS:
            value = _ALWAYS[dest]
        else:
            value = getoption(_OWN_COPIES.get(dest) or judge_dest(option))
        if option.required is not None and not value:
            raise BackendOptionError(f"--jallm-judge-backend {resolve_backend_name(backend)} needs "
                                     f"{judge_flag(option.flag or dest)} (e.g. {option.required})")
        kwargs[option.kwarg] = option.convert(value) if option.convert else value
    if getattr(factory, "engine_args_as_keywords", False):
        kwargs.update(engine_args)
    return JudgeSettings(backend, model, kwargs)
