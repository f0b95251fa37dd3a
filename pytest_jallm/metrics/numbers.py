"""Numbers in answers (exact rationals, the last number of a chain of thought) and the metrics that
compare them: mathematical_equivalence, pearson, spearman."""

from __future__ import annotations

import math
import re
import warnings
from fractions import Fraction
from typing import Any, Callable, Mapping

from ..answers import as_str, normalize
from .base import METRICS, Metric, MetricResult, per_item

# numbers -------------------------------------------------------------------------------------

_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2013": "-", "\u2012": "-", "\ufe63": "-"})
_NUMBER_RE = re.compile(
    r"""^(?P<sign>[+-]?)
        (?:
          (?P<num>\d+(?:\.\d*)?|\.\d+)(?:[eE](?P<exp>[+-]?\d{1,4}))?
          (?:/(?P<den>\d+(?:\.\d*)?|\.\d+))?
        )$""",
    re.VERBOSE,
)
_GROUPED_RE = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+)(?![\d,])")
# A number inside free text: optional sign, digits with optional thousands commas, decimals.
_FREE_NUMBER_RE = re.compile(r"(?<![\d.,])[+-]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")


def parse_number(text: str) -> Fraction | None:
    """Parse a whole answer string as an exact number, or ``None``.

    Accepts NFKC-normalisable digits (``１２`` -> 12), a leading ``+``/``-``/U+2212, thousands
    commas in groups of three (``1,234``), decimals (``12.0``), a simple exponent (``1e3``), a
    fraction ``a/b`` and a trailing ``.``/``。``.  Anything else (words, units, ``50%``) -> ``None``.
    """
    s = normalize(text).translate(_MINUS_SIGNS).replace(" ", "")
    if len(s) > 1 and s[-1] in "。." and s[-2].isdigit():
        s = s[:-1]
    if len(s) > 400:
        return None
    s = _GROUPED_RE.sub(lambda m: m.group(1).replace(",", ""), s)
    m = _NUMBER_RE.match(s)
    if m is None:
        return None
    try:
        value = Fraction(m.group("num"))
        if m.group("exp"):
            value *= Fraction(10) ** int(m.group("exp"))
        if m.group("den") is not None:
            den = Fraction(m.group("den"))
            if den == 0:
                return None
            value /= den
    except (ValueError, ZeroDivisionError, OverflowError):
        return None
    return -value if m.group("sign") == "-" else value


def extract_final_number(text: str) -> str:
    """The last number written in ``text`` (for chain-of-thought math answers), or ``""``.

    The result is NFKC-normalised with thousands commas removed (``"合計は１，２３４円です"`` ->
    ``"1234"``), ready to be compared by ``exact_match`` or ``mathematical_equivalence``.
    """
    s = normalize(text).translate(_MINUS_SIGNS)
    found = _FREE_NUMBER_RE.findall(s)
    if not found:
        return ""
    return found[-1].replace(",", "")


def parse_float(text: str) -> float:
    """llm-jp-eval's ``parse_float``: keep only ``[0-9.]`` and ``float()`` it; -2.0 if that fails."""
    cleaned = re.sub(r"[^0-9.]", "", as_str(text))
    try:
        return float(cleaned)
    except ValueError:
        return -2.0


# correlations ----------------------------------------------------------------------------------


def _gold_float(text: str) -> float:
    try:
        return float(text)
    except (ValueError, OverflowError):
        return parse_float(text)


def _correlation(kind: str) -> Callable[..., MetricResult]:
    def run(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
        import numpy as np
        from scipy import stats

        y_true = np.array([_gold_float(g) for g in golds], dtype=float)
        y_pred = np.array([parse_float(p) for p in preds], dtype=float)
        if len(y_true) < 2 or not (np.isfinite(y_true).all() and np.isfinite(y_pred).all()):
            return MetricResult(0.0, None)
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            try:
                fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
                value = float(fn(y_true, y_pred)[0])
            except (ValueError, FloatingPointError, ZeroDivisionError):
                value = float("nan")
        if math.isnan(value):
            value = 0.0
        return MetricResult(max(-1.0, min(1.0, value)), None)

    return run


# mathematical equivalence ----------------------------------------------------------------------


def _math_equiv(pred: str, gold: str) -> float:
    a, b = parse_number(pred), parse_number(gold)
    if a is not None and b is not None:
        return 1.0 if a == b else 0.0
    return 1.0 if normalize(pred) == normalize(gold) else 0.0


METRICS.register("pearson", Metric("pearson", False, False, _correlation("pearson")), origin=__name__)
METRICS.register("spearman", Metric("spearman", False, False, _correlation("spearman")), origin=__name__)
METRICS.register("mathematical_equivalence", Metric("mathematical_equivalence", True, True, per_item(_math_equiv)), origin=__name__)
