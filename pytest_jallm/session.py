"""Per-pytest-session state: settings from options, the evaluation, pending baselines."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from .backends import backend_factory, resolve_backend_name
from .backends.base import SamplingSettings
from .baseline import BaselineRecord, ThresholdFileModel, load_threshold_file, write_baselines
from .data import data_dir_from_env
from .report import SummaryRow
from .runner import BenchmarkResult, Evaluation, RunSettings

SESSION_KEY = pytest.StashKey["JallmSession"]()


def model_slug(model: str) -> str:
    """`org/name` -> `org__name`; a local directory -> its name; a local file -> its stem."""
    if os.path.isdir(model):
        model = Path(model).resolve().name
    elif os.path.isfile(model):
        model = Path(model).stem
    return re.sub(r"[^A-Za-z0-9_.\-]+", "__", model).strip("_") or "model"


def _percent(value: float, option: str) -> float:
    if not 0 <= value <= 100:  # also NaN
        raise pytest.UsageError(f"{option} must be a percentage between 0 and 100, got {value}")
    return float(value)


def _engine_args(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise pytest.UsageError(f"--jallm-engine-arg {pair!r}: expected KEY=VALUE (VALUE parsed as JSON when it can be)")
        key, _, raw = pair.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


class JallmSession:
    def __init__(self, config: pytest.Config):
        self.config = config
        opt = config.getoption
        self.model: str | None = opt("jallm_model")
        self.per_item: bool = opt("jallm_items")
        self.update_baseline: bool = opt("jallm_update_baseline")
        self.is_worker = hasattr(config, "workerinput")
        root = Path(config.rootpath)
        thresholds_dir = Path(opt("jallm_thresholds_dir") or config.getini("jallm_thresholds_dir"))
        self.thresholds_dir = thresholds_dir if thresholds_dir.is_absolute() else root / thresholds_dir
        self.baseline_name: str | None = opt("jallm_baseline") or (model_slug(self.model) if self.model else None)
        self.spec_paths: dict[str, Path] = {}
        self.summaries: list[SummaryRow] = []
        self._pending: dict[str, BaselineRecord] = {}
        self._thresholds: ThresholdFileModel | None = None
        cache_path = None
        if not opt("jallm_no_cache"):
            cache_path = Path(opt("jallm_cache") or os.environ.get("JALLM_CACHE") or root / ".jallm" / "generations.sqlite")
        self.settings = RunSettings(
            model=self.model or "",
            backend=opt("jallm_backend"),
            backend_options=self._backend_options(),
            data_dir=data_dir_from_env(opt("jallm_data_dir")),
            data_config=self._data_config(),
            limit=opt("jallm_limit"),
            chat=opt("jallm_chat"),
            num_fewshot=opt("jallm_num_fewshot"),
            sampling=SamplingSettings(seed=opt("jallm_seed")),
            cache_path=cache_path,
            strip_think=opt("jallm_strip_think"),
            shuffle_choices=opt("jallm_shuffle_choices"),
            max_backend_error_pct=_percent(opt("jallm_max_backend_errors"), "--jallm-max-backend-errors"),
        )
        self.med_template: str | None = opt("jallm_med_template")
        if self.med_template is not None:
            from .medharness import HARNESS_TEMPLATES

            if self.med_template not in HARNESS_TEMPLATES:
                raise pytest.UsageError(f"--jallm-med-template {self.med_template!r}: expected one of "
                                        f"{', '.join(HARNESS_TEMPLATES)} (japanese-lm-med-harness's template.py)")
        self.evaluation = Evaluation(self.settings, self._make_backend, progress=self._progress)

    # --- backend -------------------------------------------------------------

    def _backend_options(self) -> dict[str, Any]:
        opt = self.config.getoption
        name = resolve_backend_name(opt("jallm_backend"))
        revision = opt("jallm_revision")
        if name == "hf":
            return {
                "revision": revision,
                "device": opt("jallm_device"),
                "dtype": opt("jallm_dtype"),
                "batch_size": opt("jallm_batch_size"),
                "trust_remote_code": opt("jallm_trust_remote_code"),
                "add_special_tokens": opt("jallm_add_special_tokens"),
            }
        if name == "vllm":
            return {
                "revision": revision,
                "tensor_parallel_size": opt("jallm_tp"),
                "pipeline_parallel_size": opt("jallm_pp"),
                "dtype": opt("jallm_dtype"),
                "max_model_len": opt("jallm_max_model_len"),
                "gpu_memory_utilization": opt("jallm_gpu_memory_utilization"),
                "quantization": opt("jallm_quantization"),
                "trust_remote_code": opt("jallm_trust_remote_code"),
                "seed": opt("jallm_seed"),
                "engine_kwargs": _engine_args(opt("jallm_engine_arg") or []),
                "guided_choice": opt("jallm_guided_choice"),
            }
        if name == "openai":
            if not opt("jallm_base_url"):
                raise pytest.UsageError("--jallm-backend openai needs --jallm-base-url (e.g. http://127.0.0.1:8000/v1)")
            return {
                "base_url": opt("jallm_base_url"),
                "api_key_env": opt("jallm_api_key_env"),
                "mode": "chat" if opt("jallm_chat") else "completions",
                "max_concurrency": opt("jallm_concurrency"),
                "timeout_s": opt("jallm_timeout"),
                "revision": revision,
                **_engine_args(opt("jallm_engine_arg") or []),  # e.g. max_retries=1, extra_body={...}
            }
        return _engine_args(opt("jallm_engine_arg") or [])

    def _data_config(self):
        from .fetch import DataConfig

        opt = self.config.getoption
        try:
            return DataConfig.from_options(None, opt("jallm_data_cache"), opt("jallm_url_map"),
                                           progress=self._download_progress)
        except ValueError as e:
            raise pytest.UsageError(str(e)) from None

    def _download_progress(self, desc: str, total: int | None):
        return self._bar(desc, total, unit="B", unit_scale=True, unit_divisor=1024)

    def _make_backend(self):
        factory = backend_factory(self.settings.backend)
        return factory(self.settings.model, **self.settings.backend_options)

    def _progress(self, total: int):
        """A progress bar on the real terminal while the model generates."""
        # xdist workers inherit the terminal's stderr: name the worker so interleaved bars can be told apart.
        worker = getattr(self.config, "workerinput", {}).get("workerid")
        desc = f"pytest-jallm generating [{worker}]" if worker else "pytest-jallm generating"
        return self._bar(desc, total, unit="prompt")

    def _bar(self, desc: str, total: int | None, **kwargs: Any):
        """A tqdm bar on the real terminal (output capture suspended while it is open)."""
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm ships with transformers
            return None
        capman = self.config.pluginmanager.getplugin("capturemanager")
        ctx = capman.global_and_fixture_disabled() if capman else None
        if ctx is not None:
            ctx.__enter__()
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()  # don't draw the bar after "file.yaml " on the same line
        bar = tqdm(total=total, desc=desc, file=sys.stderr, mininterval=1.0,
                   disable=self.config.getoption("verbose") < 0, **kwargs)
        original_close = bar.close

        def close() -> None:
            original_close()
            if ctx is not None:
                ctx.__exit__(None, None, None)

        bar.close = close  # type: ignore[method-assign]
        return bar

    # --- results -------------------------------------------------------------

    def result_for(self, item) -> BenchmarkResult:
        name = item.spec.name
        ev = self.evaluation
        if name not in ev.results and name not in ev.errors:
            if self.is_worker:
                # xdist hands a worker whole benchmarks (xdist_group), one at a time.
                batch = [(item.spec, item.path)]
            else:
                batch = self._selected_benchmarks(item.session)
            ev.run(batch)
        if name in ev.errors:
            raise ev.errors[name]
        return ev.results[name]

    def _selected_benchmarks(self, session: pytest.Session):
        from .items import _JallmItem

        seen: dict[str, Any] = {}
        for it in session.items:
            if isinstance(it, _JallmItem) and it.spec.name not in seen:
                seen[it.spec.name] = (it.spec, it.path)
        return list(seen.values())

    # --- thresholds and baselines -------------------------------------------

    @property
    def threshold_path(self) -> Path:
        return self.thresholds_dir / f"{self.baseline_name}.yaml"

    def threshold_file(self) -> ThresholdFileModel:
        if self._thresholds is None:
            self._thresholds = load_threshold_file(self.threshold_path)
        return self._thresholds

    def queue_baseline(self, result: BenchmarkResult) -> None:
        self._pending[result.name] = BaselineRecord(
            score=round(result.score, 6),
            ooc_rate=round(result.ooc_rate or 0.0, 6),
            n=result.n,
            metric=result.metric,
            binary=result.binary,
            produced_by=result.produced_by,
            items=result.item_scores() or {},
        )

    def flush_baselines(self) -> Path | None:
        if not self._pending:
            return None
        write_baselines(self.threshold_path, self._pending, model=self.model)
        self._pending.clear()
        return self.threshold_path
