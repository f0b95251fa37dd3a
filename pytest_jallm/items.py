"""Collection nodes: a spec file yields one benchmark test, and per-example tests on request."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .backends.base import BackendError
from .baseline import BaselineError, ThresholdError
from .cache import CacheError
from .data import DataError, resolve_files
from .gate import Assessment, decide, gate_record
from .metrics import AnswerPatternTimeout
from .spec import SpecError, license_markers, load_spec, with_harness_template

if TYPE_CHECKING:
    from .session import JallmSession

MAX_SHOWN = 600  # characters of untrusted text shown in a failure message


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """Printable, bounded rendering of model output or prompts."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)
    if len(text) <= limit:
        return text
    half = limit // 2
    return f"{text[:half]} … [{len(text) - limit} characters cut] … {text[-half:]}"


# More tests per benchmark file (the variants' `name[variants]`): factories the plugin registers,
# so that this module imports none of the modules that build on it.
EXTRA_ITEMS_KEY = pytest.StashKey[list]()
SESSION_KEY = pytest.StashKey["JallmSession"]()  # the run's session, which plugin.py sets up


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
            for ex in prep.examples:
                # The id is given whole so that pytest >= 9 parses "[...]" as parameters, as it does for
                # the ids --lf stored: built from the name alone it would never match (and --lf would
                # re-run only the benchmark tests).
                name = f"{spec.name}[{ex.id}]"
                item = ExampleItem.from_parent(self, name=name, nodeid=f"{self.nodeid}::{name}", spec=spec, example_id=ex.id)
                for m in marks:
                    item.add_marker(m)
                yield item


class _JallmItem(pytest.Item):
    def __init__(self, *, spec, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec

    @property
    def jallm(self) -> "JallmSession":
        return self.config.stash[SESSION_KEY]

    def _result(self):
        return self.jallm.result_for(self)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (BenchmarkFailure, DataError, ThresholdError, BaselineError)):
            return str(excinfo.value)
        if isinstance(excinfo.value, (BackendError, CacheError, AnswerPatternTimeout)):  # a clear message, not a traceback
            return f"{type(excinfo.value).__name__}: {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, 0, f"{self.spec.category} benchmark {self.name}"


class BenchmarkItem(_JallmItem):
    """Asserts the score threshold, the OoC threshold and no paired regression."""

    def runtest(self) -> None:
        result = self._result()
        jallm = self.jallm
        limits = jallm.limits(self.spec)
        smoke = jallm.settings.limit is not None
        options = dict(score=result.score, ooc_rate=result.ooc_rate, limits=limits, smoke=smoke,
                       enforce_min_score=jallm.enforce_min_score)
        written: str | None = None
        testable = False
        if jallm.update_baseline:
            gate = decide(Assessment(), **options)  # being replaced: absolute thresholds still apply
            gate.warnings.clear()
            try:
                path, changed = jallm.accept_baseline(result)
                written = f"{path} ({'changed' if changed else 'unchanged'})"
                verdict = "accepted" if gate.passed else gate.verdict
            except OSError as e:  # disk full, read-only: the write is atomic, the old file is intact
                gate.failures.append(f"baseline NOT written to {jallm.baseline_file(result.name)} ({e}); the file is unchanged")
                verdict = "not written"
        else:
            a = jallm.assessment(self.spec, result)
            gate = decide(a, p_adjusted=jallm.adjusted_p(self), family=jallm.family, strict=jallm.strict, **options)
            verdict = gate.verdict
            testable = gate.comparison is not None
        cmp = gate.comparison
        mdd = gate_mdd(result, cmp, limits.alpha / jallm.family_size(self.session))
        flips = flip_records(result, jallm.baseline(result.name), cmp) if cmp is not None and cmp.losses else []
        if gate.verdict == "regressed" and flips:
            gate.failures[-1] += "\n" + render_flips(flips, jallm.diff_items)
        record = gate_record(result, gate, verdict=verdict, limits=limits, family=jallm.family, testable=testable,
                             mdd=mdd, flips=flips, written=written)
        # Scores travel as user properties: JUnit XML shows them and xdist carries them to the
        # controller, which builds the table (and adds the test's outcome and failure message).
        self.user_properties.append(("jallm_summary", record.model_dump_json(exclude={"outcome", "message"})))
        delta = None if gate.baseline_score is None else result.score - gate.baseline_score
        shown = {"score": (result.score, ".4f"), "ooc_rate": (result.ooc_rate, ".4f"), "baseline": (gate.baseline_score, ".4f"),
                 "delta": (delta, "+.4f"), "p_value": (record.p_value, ".6g"), "p_adjusted": (gate.p_adjusted, ".6g")}
        self.user_properties += [(f"jallm_{key}", format(value, spec)) for key, (value, spec) in shown.items() if value is not None]
        self.user_properties.append(("jallm_verdict", record.verdict))
        for w in gate.warnings + gate.notes:
            self.warn(pytest.PytestWarning(f"{result.name}: {w}"))
        if not gate.passed:
            raise BenchmarkFailure(f"{result.name} ({result.category}, {result.metric}, n={result.n}):\n  - " + "\n  - ".join(gate.failures))


def gate_mdd(result, cmp, alpha: float) -> float | None:
    """Minimum detectable drop at 80% power (binary metrics), from n and the observed flip rate."""
    if not result.binary or cmp is None or not cmp.n_paired:
        return None
    from .stats import min_detectable_drop

    return min_detectable_drop(cmp.n_paired, (len(cmp.losses) + len(cmp.gains)) / cmp.n_paired, alpha)


FLIP_TEXT = 160  # characters of each field of a flipped item in reports


def flip_records(result, baseline, cmp) -> list[dict[str, str]]:
    """Every item that got worse, with its input, gold and the two predictions."""
    preds = getattr(baseline, "predictions", {}) or {}
    out = []
    for item_id in cmp.losses:
        it = result.item(item_id)
        out.append({
            "id": item_id,
            "input": shorten(" ".join((it.input or it.prompt[-FLIP_TEXT:]).split()), FLIP_TEXT),
            "gold": shorten(it.gold, FLIP_TEXT),
            "baseline": shorten(preds.get(item_id, "?"), FLIP_TEXT),
            "now": shorten(it.prediction, FLIP_TEXT),
            **({"why": shorten(it.detail, FLIP_TEXT)} if it.detail else {}),
        })
    return out


def render_flips(flips: list[dict[str, str]], k: int) -> str:
    shown = flips[: max(0, k)]
    head = f"    first {len(shown)} of {len(flips)} flipped items (id | input | gold | baseline answer -> answer now):"
    lines = [head] + [
        f"    {f['id']} | {shorten(f['input'], 80)} | gold {f['gold']!r} | {f['baseline']!r} -> {f['now']!r}"
        + (f" | {f['why']}" if f.get("why") else "") for f in shown
    ]
    if len(flips) > len(shown):
        lines.append(f"    … {len(flips) - len(shown)} more (--jallm-diff-items K shows more; the HTML report lists all)")
    return "\n".join(lines)


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




def is_spec_file(path: Path, benchmark_dirs: list[str], explicit: bool) -> bool:
    if path.suffix not in (".yaml", ".yml"):
        return False
    return explicit or any(part in benchmark_dirs for part in path.parent.parts)
