"""The verdicts a benchmark test can end with: one enum instead of strings spelt in six modules."""

from __future__ import annotations

from enum import Enum


class Verdict(str, Enum):
    """What the gate concluded about one benchmark. str-valued: results JSON, JUnit properties and
    the tables show the value, spelt as users have always seen it (``FAIL`` stays upper case: it is
    the verdict of an absolute threshold, and scripts grep for it)."""

    PASS = "pass"
    IMPROVED = "improved"  # a significant improvement beyond max_drop (family-corrected)
    ACCEPTED = "accepted"  # --jallm-update-baseline wrote the baseline
    FAIL = "FAIL"  # min_score or max_ooc_rate
    REGRESSED = "regressed"  # significant paired drop beyond max_drop, or a corpus-level drop
    INVALID_BASELINE = "invalid baseline"  # the baseline file contradicts itself or names another benchmark
    NOT_WRITTEN = "not written"  # --jallm-update-baseline could not write the file
    NO_ITEMS = "no items"  # nothing was scored (every request failed in the backend)
    NO_BASELINE = "no baseline"
    STALE = "stale"
    UNPAIRED = "unpaired"
    # No score: the benchmark test ran (or was selected) but nothing reached the gate.
    ERROR = "error"  # its data, spec or backend failed before scoring (the record says why, in one line)
    SKIPPED = "skipped"  # pytest skipped its test (e.g. an LLM-judged benchmark without a judge)
    NOT_RUN = "not run"  # selected, but the session stopped before its test ran (-x, --maxfail, Ctrl-C)

    def __str__(self) -> str:  # f"{verdict}" and str(verdict) give the value on every Python version
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @property
    def ungated(self) -> bool:
        """Nothing compared this run with an accepted baseline: listed at the end, failed by --jallm-strict."""
        return self in UNGATED

    @property
    def failing(self) -> bool:
        """The verdict of a benchmark test that fails (or of one the failed session never ran)."""
        return self in FAILING

    @property
    def scored(self) -> bool:
        """The benchmark has a score (every verdict the gate gives; not error, skipped, not run)."""
        return self not in UNSCORED


UNGATED = frozenset({Verdict.NO_BASELINE, Verdict.STALE, Verdict.UNPAIRED})
FAILING = frozenset({Verdict.FAIL, Verdict.REGRESSED, Verdict.INVALID_BASELINE, Verdict.NOT_WRITTEN, Verdict.NO_ITEMS,
                     Verdict.ERROR, Verdict.NOT_RUN})
UNSCORED = frozenset({Verdict.ERROR, Verdict.SKIPPED, Verdict.NOT_RUN})
