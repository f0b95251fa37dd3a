"""The run's settings from pytest's options: each option read, checked (a bad value is a usage error
naming the option) and turned into the :class:`~pytest_jallm.evaluation.RunSettings` the evaluation
runs with."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from .backends import BackendOptionError, backend_kwargs
from .backends.base import SamplingSettings
from .data import data_dir_from_env
from .preparation import RunSettings, reasoning_from_options, resolve_mode
from .progress import TerminalProgress


def run_settings(config: pytest.Config, root: Path, *, progress: TerminalProgress) -> RunSettings:
    opt = config.getoption
    cache_path = None
    if not opt("jallm_no_cache"):
        cache_path = Path(opt("jallm_cache") or os.environ.get("JALLM_CACHE") or root / ".jallm" / "generations.sqlite")
    chat, num_fewshot, reasoning = resolve_mode(
        opt("jallm_mode"), chat=opt("jallm_chat"), num_fewshot=opt("jallm_num_fewshot"),
        reasoning=reasoning_from_options(opt("jallm_strip_think"), opt("jallm_reasoning_start"), opt("jallm_reasoning_end")))
    return RunSettings(
        model=opt("jallm_model") or "",
        backend=opt("jallm_backend"),
        backend_options=backend_options(config),
        data_dir=data_dir_from_env(opt("jallm_data_dir")),
        data_config=data_config(config, progress),
        limit=opt("jallm_limit"),
        chat=chat,
        num_fewshot=num_fewshot,
        sampling=SamplingSettings(seed=opt("jallm_seed")),
        cache_path=cache_path,
        # Prepared benchmarks beside the generation cache (.jallm/prepared/), bypassed with it.
        prepared_dir=None if cache_path is None else cache_path.parent / "prepared",
        reasoning=reasoning,
        answer_preset=answer_preset(opt("jallm_answer_preset")),
        mode=opt("jallm_mode"),
        reasoning_max_new_tokens=opt("jallm_reasoning_max_new_tokens"),
        context_policy=opt("jallm_context_policy"),
        shuffle_choices=opt("jallm_shuffle_choices"),
        max_backend_error_pct=percent(opt("jallm_max_backend_errors"), "--jallm-max-backend-errors"),
        save_outputs=Path(opt("jallm_save_outputs")) if opt("jallm_save_outputs") else None,
    )


def backend_options(config: pytest.Config) -> dict[str, Any]:
    """What the selected backend declares it takes (its `cli_options`), read from the options."""
    try:
        return backend_kwargs(config.getoption("jallm_backend"), config.getoption)
    except BackendOptionError as e:
        raise pytest.UsageError(str(e)) from None


def answer_preset(preset: str | None) -> str | None:
    from .answers import PRESETS

    if preset is not None and (preset not in PRESETS or preset in ("custom", "raw")):
        choices = ", ".join(p for p in PRESETS if p not in ("custom", "raw"))
        raise pytest.UsageError(f"--jallm-answer-preset {preset!r}: expected one of {choices}")
    return preset


def data_config(config: pytest.Config, progress: TerminalProgress):
    from .sources import DataConfig

    opt = config.getoption
    try:
        return DataConfig.from_options(
            None, opt("jallm_data_cache"), opt("jallm_url_map"), progress=progress.downloading,
            download_timeout_s=opt("jallm_download_timeout"), stall_timeout_s=opt("jallm_download_stall_timeout"),
            max_download_mb=opt("jallm_download_max_mb"), allow_file_urls=opt("jallm_allow_file_urls"))
    except ValueError as e:
        raise pytest.UsageError(str(e)) from None


def percent(value: float, option: str) -> float:
    if not 0 <= value <= 100:  # also NaN
        raise pytest.UsageError(f"{option} must be a percentage between 0 and 100, got {value}")
    return float(value)


def start_outputs_file(path: Path) -> None:
    """--jallm-save-outputs: the file started afresh by the controlling process (workers append)."""
    from .recordings import start_outputs_file as start

    try:
        start(path)
    except OSError as e:
        raise pytest.UsageError(f"--jallm-save-outputs {path}: cannot create the file ({e.strerror or e})") from None
