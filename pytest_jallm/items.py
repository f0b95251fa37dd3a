"""Collection nodes: a spec file yields one benchmark test, and per-example tests on request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .backends.base import BackendError
from .data import DataError, resolve_files
from .display import shorten
from .errors import JallmError
from .session import SESSION_KEY, JallmSession
from .spec import SpecError, license_markers
from .specfile import load_spec, with_harness_template

# More tests per benchmark file (the variants' `name[variants]`): factories the plugin registers,
# so that this module imports none of the modules that build on it.
EXTRA_ITEMS_KEY = pytest.StashKey[list]()


class BenchmarkFailure(AssertionError):
    pass


class BenchmarkFile(pytest.File):
    def collect(self):
        jallm: JallmSession = self.config.stash[SESSION_KEY]
        try:
            spec = load_spec(self.path)
            if jallm.med_template:
                spec = with_harness_template(spec, jallm.med_template, str(self.path))
            # A spec's own local file is checked now (a typo in it is the spec's error). Mirrors,
            # downloads and few-shot sources are loaded when the benchmark runs, so one missing
            # file fails that benchmark alone while the others run.
            if spec.source.path:
                resolve_files(spec.source, self.path.parent, None, f"{self.path}: source")
        except (SpecError, DataError) as e:
            raise self.CollectError(str(e)) from None
        if spec.name in jallm.spec_paths and jallm.spec_paths[spec.name] != self.path:
            raise self.CollectError(
                f"{self.path}: key 'name': benchmark name {spec.name!r} is already used by {jallm.spec_paths[spec.name]}"
            )
        jallm.spec_paths[spec.name] = self.path
        marks = [getattr(pytest.mark, spec.category.lower()), pytest.mark.jallm, pytest.mark.xdist_group(spec.name)]
        marks += [getattr(pytest.mark, m) for m in license_markers(spec.license)]
        if spec.judge is not None and jallm.judge_settings is None:
            marks.append(pytest.mark.skip(reason=f"{spec.name} is scored by an LLM judge: pass --jallm-judge-model "
                                                 "(and --jallm-judge-backend, --jallm-judge-base-url …), or deselect "
                                                 f"it with -m 'not {spec.category.lower()}'"))
        bench = BenchmarkItem.from_parent(self, name=spec.name, spec=spec)
        for m in marks:
            bench.add_marker(m)
        yield bench
        for collect_extra in self.config.stash.get(EXTRA_ITEMS_KEY, ()):  # `name[variants]` with --jallm-variants N
            extra = collect_extra(self, spec, marks)
            if extra is not None:
                yield extra
        if jallm.per_item:
            try:
                prep = jallm.evaluation.prepared(spec, self.path)
            except DataError as e:
                raise self.CollectError(str(e)) from None
            ids = [ex.id for ex in prep.examples]
            if spec.judge is not None:  # scored per question and turn
                from .chatjudge import item_id

                ids = [item_id(i, turn) for i in ids for turn in range(1, spec.judge.turns + 1)]
            for example_id in ids:
                # The id is given whole so that pytest >= 9 parses "[...]" as parameters, as it does for
                # the ids --lf stored: built from the name alone it would never match (and --lf would
                # re-run only the benchmark tests).
                name = f"{spec.name}[{example_id}]"
                item = ExampleItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}", spec=spec,
                                               example_id=example_id)
                for m in marks:
                    item.add_marker(m)
                yield item


class _JallmItem(pytest.Item):
    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    @property
    def jallm(self) -> JallmSession:
        return self.config.stash[SESSION_KEY]

    def _result(self):
        return self.jallm.result_for(self)

    def repr_failure(self, excinfo, style=None):
        error = excinfo.value
        if isinstance(error, BenchmarkFailure):
            return str(error)
        if isinstance(error, JallmError):  # a message that names what went wrong, not a traceback
            return f"{type(error).__name__}: {error}" if error.show_type else str(error)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, 0, f"{self.spec.category} benchmark {self.name}"


class BenchmarkItem(_JallmItem):
    """The gate's verdict on one benchmark: its thresholds and no paired regression (`pytest_jallm.gate`)."""

    def runtest(self) -> None:
        result = self._result()
        judgement = self.jallm.judge(self.spec, result)
        record, details = judgement.record, judgement.details
        # Scores travel as user properties: JUnit XML shows them and xdist carries them to the
        # controller, which builds the table (and adds the test's outcome and failure message).
        self.user_properties.append(("jallm_summary", record.model_dump_json(exclude={"outcome", "message"})))
        delta = None if record.baseline is None else details.score - record.baseline
        shown = {"score": (details.score, ".4f"), "ooc_rate": (details.ooc_rate, ".4f"), "baseline": (record.baseline, ".4f"),
                 "delta": (delta, "+.4f"), "p_value": (record.p_value, ".6g"), "p_adjusted": (record.p_adjusted, ".6g")}
        self.user_properties += [(f"jallm_{key}", format(value, spec)) for key, (value, spec) in shown.items() if value is not None]
        self.user_properties.append(("jallm_verdict", str(record.verdict)))
        for w in judgement.decision.warnings + judgement.decision.notes:
            self.warn(pytest.PytestWarning(f"{result.name}: {w}"))
        if not judgement.passed:
            raise BenchmarkFailure(judgement.failure_text)


def selected_benchmarks(items: list[pytest.Item]) -> list[tuple[Any, Path]]:
    """(spec, spec file) of every benchmark with a selected test, in collection order."""
    seen: dict[str, tuple[Any, Path]] = {}
    for it in items:
        if isinstance(it, _JallmItem) and it.spec.name not in seen:
            seen[it.spec.name] = (it.spec, it.path)
    return list(seen.values())


class ExampleItem(_JallmItem):
    """One benchmark example: fails when its score is below the spec's item_pass_score."""

    def __init__(self, *, example_id: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.example_id = example_id

    def runtest(self) -> None:
        result = self._result()
        if self.example_id in result.backend_errors:  # left out of the score (--jallm-max-backend-errors)
            raise BackendError(f"{result.name}[{self.example_id}]: the backend failed this request: "
                               f"{result.backend_errors[self.example_id]}")
        outcome = result.item(self.example_id)
        if outcome.score is None:
            return  # corpus-level metric: no per-item verdict
        self.user_properties.append(("jallm_item_score", f"{outcome.score:.4f}"))
        if outcome.score < self.spec.item_pass_score:
            raise BenchmarkFailure(
                f"{result.name}[{outcome.id}] {result.metric}={outcome.score:.3f} "
                f"(needs {self.spec.item_pass_score:g})"
                + (" — answer is outside the label set" if outcome.ooc else "")
                + f"\n--- prompt ---\n{shorten(outcome.prompt)}"
                + f"\n--- expected ---\n{shorten(outcome.gold)}"
                + f"\n--- model output ---\n{shorten(outcome.output)}"
                + f"\n--- extracted answer ---\n{shorten(outcome.prediction)}"
                + (f"\n--- why ---\n{outcome.detail}" if outcome.detail else "")
            )

