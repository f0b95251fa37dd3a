"""Per-pytest-session state: settings from options, the evaluation, pending baselines."""

from __future__ import annotations

import gc
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from .backends import BackendOptionError, backend_factory, backend_kwargs
from .backends.base import SamplingSettings
from .baseline import (
    Baseline,
    BaselineError,
    ThresholdFileModel,
    atomic_write_baseline,
    baseline_path,
    limits_for,
    load_threshold_file,
    read_baseline,
)
from .data import data_dir_from_env
from .evaluation import BenchmarkResult, Evaluation, RunSettings, reasoning_from_options, resolve_mode
from .gate import Assessment, assess
from .items import _JallmItem
from .reporting.record import BenchmarkRecord


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
        self.summaries: list[BenchmarkRecord] = []
        self._thresholds: ThresholdFileModel | None = None
        self._baselines: dict[str, Baseline | BaselineError | None] = {}
        self._assessments: dict[str, Assessment] = {}
        self._adjusted: dict[str, float] | None = None
        self.strict: bool = bool(opt("jallm_strict") or _ini_bool(config, "jallm_strict"))
        self.family: str = opt("jallm_family") or config.getini("jallm_family") or "holm"
        from .stats import FAMILY_METHODS

        if self.family not in FAMILY_METHODS:
            raise pytest.UsageError(f"jallm_family = {self.family!r}: expected one of {', '.join(FAMILY_METHODS)}")
        self.enforce_min_score: bool = opt("jallm_enforce_min_score")
        self.diff_items: int = opt("jallm_diff_items")
        cache_path = None
        if not opt("jallm_no_cache"):
            cache_path = Path(opt("jallm_cache") or os.environ.get("JALLM_CACHE") or root / ".jallm" / "generations.sqlite")
        chat, num_fewshot, reasoning = resolve_mode(
            opt("jallm_mode"), chat=opt("jallm_chat"), num_fewshot=opt("jallm_num_fewshot"),
            reasoning=reasoning_from_options(opt("jallm_strip_think"), opt("jallm_reasoning_start"),
                                             opt("jallm_reasoning_end")))
        self.settings = RunSettings(
            model=self.model or "",
            backend=opt("jallm_backend"),
            backend_options=self._backend_options(),
            data_dir=data_dir_from_env(opt("jallm_data_dir")),
            data_config=self._data_config(),
            limit=opt("jallm_limit"),
            chat=chat,
            num_fewshot=num_fewshot,
            sampling=SamplingSettings(seed=opt("jallm_seed")),
            cache_path=cache_path,
            reasoning=reasoning,
            answer_preset=self._answer_preset(),
            mode=opt("jallm_mode"),
            reasoning_max_new_tokens=opt("jallm_reasoning_max_new_tokens"),
            shuffle_choices=opt("jallm_shuffle_choices"),
            max_backend_error_pct=_percent(opt("jallm_max_backend_errors"), "--jallm-max-backend-errors"),
        )
        self.med_template: str | None = opt("jallm_med_template")
        if self.med_template is not None:
            from .prompt import harness_template_names

            if self.med_template not in harness_template_names():
                raise pytest.UsageError(f"--jallm-med-template {self.med_template!r}: expected one of "
                                        f"{', '.join(harness_template_names())} (japanese-lm-med-harness's template.py)")
        self.evaluation = Evaluation(self.settings, self._make_backend, progress=self._progress)

    # --- backend -------------------------------------------------------------

    def _backend_options(self) -> dict[str, Any]:
        """What the selected backend declares it takes (its `cli_options`), read from the options."""
        try:
            return backend_kwargs(self.config.getoption("jallm_backend"), self.config.getoption)
        except BackendOptionError as e:
            raise pytest.UsageError(str(e)) from None

    def _answer_preset(self) -> str | None:
        from .answers import PRESETS

        preset = self.config.getoption("jallm_answer_preset")
        if preset is not None and (preset not in PRESETS or preset in ("custom", "raw")):
            choices = ", ".join(p for p in PRESETS if p not in ("custom", "raw"))
            raise pytest.UsageError(f"--jallm-answer-preset {preset!r}: expected one of {choices}")
        return preset

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
        backend = factory(self.settings.model, **self.settings.backend_options)
        # The model and the libraries it imported (torch: ~380k objects) live as long as the session.
        # Frozen, they are left out of the cyclic collector's full passes, which otherwise take ~0.2 s
        # each: pytest runs two at session end, more come while outputs are scored (docs/performance.md).
        gc.freeze()
        return backend

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

    def baseline_file(self, name: str) -> Path:
        return baseline_path(self.threshold_path, name)

    def baseline(self, name: str) -> Baseline | BaselineError | None:
        """The accepted baseline of one benchmark (validated), None, or why it cannot be used."""
        if name not in self._baselines:
            try:
                self._baselines[name] = read_baseline(self.baseline_file(name))
            except BaselineError as e:
                self._baselines[name] = e
        return self._baselines[name]

    def limits(self, spec):
        return limits_for(self.threshold_file(), spec.name, spec.thresholds)

    def assessment(self, spec, result: BenchmarkResult) -> Assessment:
        if spec.name not in self._assessments:
            self._assessments[spec.name] = assess(
                self.baseline(spec.name), metric=result.metric, item_scores=result.item_scores(),
                binary=result.binary, produced_by=result.produced_by,
            )
        return self._assessments[spec.name]

    def adjusted_p(self, item) -> float | None:
        """The benchmark's p-value corrected over the session's family of paired tests.

        All generation happens before the first assertion, so in one process every p-value is
        known here and Holm's procedure applies. An xdist worker sees only its own benchmarks:
        it uses Bonferroni over every selected benchmark (a valid, slightly stricter bound)."""
        if self.family == "none" or self.update_baseline:
            return None
        from .stats import adjust

        name = item.spec.name
        own = self.assessment(item.spec, self.evaluation.results[name])
        if not own.testable(self.limits(item.spec).min_paired):
            return None
        assert own.comparison is not None
        if self.is_worker:
            size = len(self._selected_benchmarks(item.session))
            return adjust({name: own.comparison.p_value}, "bonferroni" if size > 1 else self.family, size)[name]
        return self._family(item.session).get(name)

    def _family(self, session: pytest.Session) -> dict[str, float]:
        """Holm-adjusted p-values of every selected benchmark whose paired test counts."""
        if self._adjusted is None:
            from .stats import adjust

            raw: dict[str, float] = {}
            for spec, _path in self._selected_benchmarks(session):
                result = self.evaluation.results.get(spec.name)
                if result is None:
                    continue
                a = self.assessment(spec, result)
                if a.testable(self.limits(spec).min_paired) and a.comparison is not None:
                    raw[spec.name] = a.comparison.p_value
            self._adjusted = adjust(raw, self.family)
        return self._adjusted

    def family_size(self, session: pytest.Session) -> int:
        """How many paired tests share the family-wise α (for the minimum detectable drop)."""
        if self.family == "none" or self.update_baseline:
            return 1
        if self.is_worker:
            return max(1, len(self._selected_benchmarks(session)))
        return max(1, len(self._family(session)))

    def unused_thresholds(self) -> list[str]:
        """Threshold entries and baseline files that name no benchmark collected in this run."""
        if not self.spec_paths or self.baseline_name is None:
            return []  # an xdist controller collects nothing: the workers know the specs
        from .baseline import BASELINE_SUFFIX, unused_entries

        try:
            entries = unused_entries(self.threshold_file(), list(self.spec_paths))
        except Exception:
            entries = []
        out = [f"{self.threshold_path}: benchmarks.{name}" for name in entries]
        folder = self.threshold_path.with_suffix("")
        if folder.is_dir():
            for f in sorted(folder.glob("*" + BASELINE_SUFFIX)):
                if f.name[: -len(BASELINE_SUFFIX)] not in self.spec_paths:
                    out.append(str(f))
        return out

    def accept_baseline(self, result: BenchmarkResult) -> tuple[Path, bool]:
        """Write this benchmark's baseline file atomically; (path, whether its content changed)."""
        path = self.baseline_file(result.name)
        record = Baseline(
            benchmark=result.name,
            metric=result.metric,
            score=round(result.score, 6),
            ooc_rate=None if result.ooc_rate is None else round(result.ooc_rate, 6),
            n=result.n,
            binary=result.binary,
            produced_by=result.produced_by,
            items=result.item_scores() or {},
            predictions={it.id: it.prediction for it in result.items} if result.item_scores() is not None else {},
        )
        return path, atomic_write_baseline(path, record)


def _ini_bool(config: pytest.Config, name: str) -> bool:
    value = config.getini(name)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")
