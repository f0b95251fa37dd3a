"""Per-pytest-session state: the evaluation, thresholds and baselines, the gate (the run's settings come
from options.py, its progress bars from progress.py)."""

from __future__ import annotations

import gc
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from .backends import BackendOptionError, backend_factory
from .baseline import (
    Baseline,
    BaselineError,
    ThresholdFileModel,
    atomic_write_baseline,
    baseline_path,
    limits_for,
    load_threshold_file,
    read_baseline,
    with_rerun,
)
from .evaluation import BenchmarkResult, Evaluation
from .gate import Acceptance, BenchmarkRecord, Gate, GateOptions, Judgement, Verdict, unscored_record
from .gate.family import FAMILY_METHODS
from .keys import SESSION_KEY  # noqa: F401 - the run's session, which plugin.py sets up; importable from here too
from .options import run_settings, start_outputs_file
from .progress import TerminalProgress
from .reporting.record import OtherFailures


def model_slug(model: str) -> str:
    """`org/name` -> `org__name`; a local directory -> its name; a local file -> its stem."""
    if os.path.isdir(model):
        model = Path(model).resolve().name
    elif os.path.isfile(model):
        model = Path(model).stem
    return re.sub(r"[^A-Za-z0-9_.\-]+", "__", model).strip("_") or "model"


class SelectedBenchmark(NamedTuple):
    """A selected benchmark test, as much as its report row needs when the test never ran."""

    name: str
    category: str
    metric: str
    in_average: bool

    @classmethod
    def of(cls, spec: Any) -> SelectedBenchmark:
        return cls(spec.name, spec.category, spec.primary_metric, spec.counts_in_average)


class JallmSession:
    def __init__(self, config: pytest.Config):
        self.config = config
        opt = config.getoption
        self.model: str | None = opt("jallm_model")
        self.per_item: bool = opt("jallm_items")
        self.update_baseline: bool = opt("jallm_update_baseline")
        self.is_worker = hasattr(config, "workerinput")
        root = Path(config.rootpath)
        # A relative --jallm-thresholds-dir is the caller's (pytest may take `/` as the rootdir: without an
        # ini file, option values such as --model's path count among the arguments); the ini's, the rootdir's.
        given = opt("jallm_thresholds_dir")
        thresholds_dir = Path(given or config.getini("jallm_thresholds_dir"))
        relative_to = Path(config.invocation_params.dir) if given else root
        self.thresholds_dir = thresholds_dir if thresholds_dir.is_absolute() else relative_to / thresholds_dir
        self.baseline_name: str | None = opt("jallm_baseline") or (model_slug(self.model) if self.model else None)
        self.spec_paths: dict[str, Path] = {}  # every benchmark collected (before -k/-m/shards deselect)
        self.selected: list[tuple[Any, Path]] = []  # (spec, spec file) of every selected benchmark; plugin.py sets it
        self.worker_collected: set[str] = set()  # under xdist, the controller learns from the workers what they collected
        self.unused: list[str] = []  # threshold entries and baseline files matching no collected benchmark (at the end)
        self.summaries: list[BenchmarkRecord] = []
        self.benchmark_tests: list[SelectedBenchmark] = []  # every selected benchmark test (each is a report row)
        self.other_failed: list[str] = []  # node ids of failed tests that are not benchmark tests (per-example …)
        self.collection_errors: dict[str, str] = {}  # node id -> one-line reason, of files that could not be collected
        self.unpinned: list[str] = []  # messages of the run's UnpinnedDataWarnings, said in one line at the end
        self._thresholds: ThresholdFileModel | None = None
        self._baselines: dict[str, Baseline | BaselineError | None] = {}
        self._gate: Gate | None = None
        self.strict: bool = bool(opt("jallm_strict") or _ini_bool(config, "jallm_strict"))
        self.family: str = opt("jallm_family") or config.getini("jallm_family") or "holm"
        if self.family not in FAMILY_METHODS:
            raise pytest.UsageError(f"jallm_family = {self.family!r}: expected one of {', '.join(FAMILY_METHODS)}")
        self.enforce_min_score: bool = opt("jallm_enforce_min_score")
        self.diff_items: int = opt("jallm_diff_items")
        if self.update_baseline and opt("jallm_limit") is not None and not opt("jallm_accept_partial"):
            raise pytest.UsageError(
                f"--jallm-update-baseline with --jallm-limit {opt('jallm_limit')} would accept baselines of the first "
                f"{opt('jallm_limit')} items only, which later full runs cannot use: accept from a full run, or pass "
                "--jallm-accept-partial to accept them anyway (they are marked partial in their header and in every "
                "comparison)")
        self.progress = TerminalProgress(config)
        self.settings = run_settings(config, root, progress=self.progress)
        if self.settings.save_outputs is not None and not self.is_worker:  # xdist workers append to it
            start_outputs_file(self.settings.save_outputs)
        self.med_template: str | None = opt("jallm_med_template")
        if self.med_template is not None:
            from .prompt import harness_template_names

            if self.med_template not in harness_template_names():
                raise pytest.UsageError(f"--jallm-med-template {self.med_template!r}: expected one of "
                                        f"{', '.join(harness_template_names())} (japanese-lm-med-harness's template.py)")
        from .chatjudge.flow import JudgedRunner
        from .chatjudge.judge import judge_settings

        try:
            self.judge_settings = judge_settings(config.getoption)  # None: judged benchmarks are skipped
        except BackendOptionError as e:
            raise pytest.UsageError(str(e)) from None
        self.evaluation = Evaluation(self.settings, self._make_backend, progress=self.progress.generating,
                                     judged=JudgedRunner(self.judge_settings, progress=self.progress.generating,
                                                         judge_progress=self.progress.judging))

    # --- backend -------------------------------------------------------------

    def _make_backend(self):
        factory = backend_factory(self.settings.backend)
        backend = factory(self.settings.model, **self.settings.backend_options)
        # The model and the libraries it imported (torch: ~380k objects) live as long as the session.
        # Frozen, they are left out of the cyclic collector's full passes, which otherwise take ~0.2 s
        # each: pytest runs two at session end, more come while outputs are scored (docs/performance.md).
        gc.freeze()
        return backend

    # --- results -------------------------------------------------------------

    def result_for(self, item) -> BenchmarkResult:
        name = item.spec.name
        ev = self.evaluation
        if name not in ev.results and name not in ev.errors:
            if self.is_worker or not self.selected:
                # xdist hands a worker whole benchmarks (--dist loadfile), one at a time.
                batch = [(item.spec, item.path)]
            else:
                batch = self.selected
            ev.run(batch)
        if name in ev.errors:
            raise ev.errors[name]
        return ev.results[name]

    def benchmark_test_rows(self) -> list[list[Any]]:
        """The selected benchmark tests as plain lists: what an xdist worker tells the controller, which
        collects nothing, so that it can report the ones never run too."""
        return [list(b) for b in self.benchmark_tests]

    def add_worker_benchmark_tests(self, rows: Any) -> None:
        known = {b.name for b in self.benchmark_tests}
        for row in rows:
            b = SelectedBenchmark(*row)
            if b.name not in known:
                known.add(b.name)
                self.benchmark_tests.append(b)

    def report_rows(self) -> list[BenchmarkRecord]:
        """A record per selected benchmark test: those reported, then those the session never ran
        (it stopped first: -x, --maxfail, Ctrl-C). An xdist controller learns the selected ones from
        its workers when they finish (not after Ctrl-C)."""
        seen = {r.name for r in self.summaries}
        why = "the session stopped before this benchmark's test ran (-x, --maxfail or an interruption)"
        if self.collection_errors:  # pytest stops after collection unless --continue-on-collection-errors
            why = (f"the session stopped before this benchmark's test ran ({len(self.collection_errors)} error(s) during "
                   "collection; --continue-on-collection-errors runs the rest)")
        return self.summaries + [unscored_record(b.name, b.category, b.metric, Verdict.NOT_RUN, why, in_average=b.in_average)
                                 for b in self.benchmark_tests if b.name not in seen]

    def other_failures(self) -> OtherFailures:
        """What failed the run besides the benchmark verdicts (for every report's headline)."""
        return OtherFailures(failed_tests=sorted(set(self.other_failed)),
                             strict_unused=list(self.unused) if self.strict else [],
                             collection_errors=[f"{node}: {why}" for node, why in sorted(self.collection_errors.items())])

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
                self._baselines[name] = read_baseline(self.baseline_file(name), name)
            except BaselineError as e:
                self._baselines[name] = e
        return self._baselines[name]

    def limits(self, spec):
        return limits_for(self.threshold_file(), spec.name, spec.thresholds)

    # --- the gate --------------------------------------------------------------

    @property
    def gate(self) -> Gate:
        if self._gate is None:
            options = GateOptions(family=self.family, strict=self.strict, smoke=self.settings.limit is not None,  # type: ignore[arg-type]
                                  enforce_min_score=self.enforce_min_score, update_baseline=self.update_baseline,
                                  diff_items=self.diff_items)
            # An xdist worker sees only its own benchmarks: Bonferroni over every selected one.
            self._gate = Gate(options, partial_view=max(1, len(self.selected)) if self.is_worker else None)
        return self._gate

    def judge(self, spec, result: BenchmarkResult) -> Judgement:
        """The gate's verdict on one benchmark, and its record."""
        gate = self.gate
        if self.update_baseline:
            gate.assess(result, None, self.limits(spec))
            return gate.judge(result, accepted=self.accept_baseline(result))
        # Holm needs every p-value: in one process every selected benchmark has its result by now.
        for other, _path in self.selected:
            other_result = self.evaluation.results.get(other.name)
            if other_result is not None and other.name != spec.name:
                gate.assess(other_result, self.baseline(other.name), self.limits(other))
        gate.assess(result, self.baseline(spec.name), self.limits(spec))
        return gate.judge(result)

    def accept_baseline(self, result: BenchmarkResult) -> Acceptance:
        """Write this benchmark's baseline file atomically (a partial one says so; a re-run of the
        accepted model adds to its re-run history). A run that scored nothing writes nothing."""
        path = self.baseline_file(result.name)
        if result.n == 0:
            return Acceptance(file=str(path), error="nothing to accept: no item was scored")
        item_scores = result.item_scores()
        limit = self.settings.limit  # partial only when it cut the data short
        record = Baseline(
            benchmark=result.name,
            metric=result.metric,
            score=round(result.score, 6),
            ooc_rate=None if result.ooc_rate is None else round(result.ooc_rate, 6),
            n=result.n,
            binary=result.binary,
            produced_by=result.produced_by,
            items=item_scores or {},
            predictions={it.id: it.prediction for it in result.items} if item_scores is not None else {},
            partial=limit if limit is not None and result.n + len(result.backend_errors) >= limit else None,
        )
        try:
            old = read_baseline(path, result.name)
        except BaselineError:
            old = None
        try:
            changed = atomic_write_baseline(path, with_rerun(old, record))
        except OSError as e:  # disk full, read-only: the write is atomic, the old file is intact
            return Acceptance(file=str(path), error=str(e))
        return Acceptance(file=str(path), changed=changed)

    def unused_thresholds(self) -> list[str]:
        """Threshold entries and baseline files that name no benchmark collected in this run (under
        xdist, by any worker: the controller itself collects nothing) and no spec of the project's
        benchmark folders either: a typo or a removed benchmark. An entry for a benchmark this run did
        not collect (`pytest benchmarks/` and the samples' entries, `pytest benchmarks/jnli.yaml`) could
        not have matched, and is not one."""
        collected = set(self.spec_paths) | self.worker_collected
        if not collected or self.baseline_name is None:
            return []
        from .baseline import BASELINE_SUFFIX, unused_entries

        try:
            entries = unused_entries(self.threshold_file(), sorted(collected))
        except Exception:
            entries = []  # a broken thresholds file fails every benchmark already
        unmatched = [(name, f"{self.threshold_path}: benchmarks.{name}") for name in entries]
        folder = self.threshold_path.with_suffix("")
        if folder.is_dir():
            for f in sorted(folder.glob("*" + BASELINE_SUFFIX)):
                if f.name[: -len(BASELINE_SUFFIX)] not in collected:
                    unmatched.append((f.name[: -len(BASELINE_SUFFIX)], str(f)))
        if not unmatched:
            return []
        from .specfile import spec_names_in

        root = Path(self.config.rootpath)
        folders = {root / d for d in self.config.getini("jallm_benchmark_dirs")} | {p.parent for p in self.spec_paths.values()}
        elsewhere = spec_names_in(sorted(folders))
        return [where for name, where in unmatched if name not in elsewhere]


def _ini_bool(config: pytest.Config, name: str) -> bool:
    value = config.getini(name)
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")
