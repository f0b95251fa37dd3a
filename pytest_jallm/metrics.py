"""Scoring functions, named and defined as llm-jp-eval defines them.

The definitions follow ``shared/REFERENCE-llm-jp-eval.md`` (llm-jp-eval v1.3-v2, the numbers the
Open Japanese LLM Leaderboard shows).  All code here is written for this project; where a metric
is defined by a third-party *behaviour* (fuzzywuzzy's string processing, rouge-score's ROUGE-N),
that behaviour is re-implemented and pinned by hand-computed tests.

Conventions
-----------
* ``preds`` and ``golds`` handed to a metric are already extracted and normalised by the caller
  (:mod:`pytest_jallm.answers`), exactly as llm-jp-eval does before scoring.
* Every score is on a 0-1 scale (BLEU and ROUGE are divided by 100).  The correlations
  (``pearson``/``spearman``) are in [-1, 1]; they are corpus-level and have no per-item scores.
* Metrics never raise on the *text* they are given (empty, 100k characters, control characters,
  lone surrogates).  They do raise ``ValueError`` on caller mistakes (``preds``/``golds`` of
  different lengths, a ``gestalt_accuracy`` item without choices) and :class:`MissingDependencyError`
  when an optional scorer's package is not installed.
* An empty input (no items) scores 0.0 with ``per_item == []`` (``None`` for corpus metrics).

Notes on each metric (what exactly is computed, and where it departs from a naive reading):

``exact_match``
    1 if pred == gold else 0, averaged (sklearn's ``accuracy_score`` in llm-jp-eval).
``char_f1``
    llm-jp-eval: ``fuzzywuzzy.fuzz.token_sort_ratio(pred, gold) / 100`` with fuzzywuzzy 0.18 and
    python-Levenshtein installed (both pinned in llm-jp-eval's dependencies).  rapidfuzz 3's
    ``fuzz.token_sort_ratio`` is **not** the same number: since rapidfuzz 3.0 its default
    ``processor`` is ``None`` and it returns an unrounded float.  fuzzywuzzy by default
    (``full_process=True, force_ascii=True``) first deletes code points 128-255, replaces every
    non-word character (``re`` ``\\W``, e.g. 「」。、・ and ASCII punctuation) with a space and
    lower-cases; it returns ``int(round(100 * ratio))`` (Python's banker's rounding), 100 when the
    two processed strings are equal (also when both are empty, e.g. "。" vs "、") and 0 when exactly
    one is empty.  Examples (fuzzywuzzy vs rapidfuzz 3 default): "「東京」"/"東京" 100 vs 66.7;
    "東京。"/"東京" 100 vs 80; "ABC"/"abc" 100 vs 0; "abcdefg"/"abcdefh" 86 vs 85.71.  On plain
    Japanese strings without spaces or punctuation the two agree up to the integer rounding.
    :func:`char_f1_item` reproduces fuzzywuzzy's number using rapidfuzz's Indel distance (which is
    what python-Levenshtein's ``ratio`` computes).
``set_f1``
    Lines of pred (deduplicated) and gold (not deduplicated), each stripped; hits = deduplicated
    pred lines found among the gold lines; P = hits/len(pred lines), R = hits/len(gold lines).
``pearson`` / ``spearman``
    scipy over the whole set; gold parsed with ``float`` (falling back to the pred parser when that
    fails), pred parsed by keeping only ``[0-9.]`` (so a sign is dropped: "-1.5" -> 1.5, as in
    llm-jp-eval), unparseable -> -2.0; NaN (constant input, fewer than 2 items, inf) -> 0.0.
``bleu_en`` / ``bleu_ja``
    sacrebleu sentence BLEU (``BLEU(effective_order=True)``, ``trg_lang="ja"`` -> MeCab-IPA
    tokenisation) per item, averaged, /100.  When pred or gold is empty after ``strip()`` the item
    scores 1.0 if both are empty and 0.0 otherwise (llm-jp-eval appends ``float(pred == gold)`` on
    its 0-100 scale there; gold is never empty in its data, so only the 0.0 case is reachable).
    ``bleu_ja`` needs ``sacrebleu[ja]`` (mecab-python3 + ipadic).
    Known difference: llm-jp-eval <= 1.4 calls ``corpus_score(pred, [gold])`` with bare strings,
    which sacrebleu treats as one segment per *character*; this module implements the sentence
    BLEU the reference defines, not that accident.
``rouge2``
    Japanese ROUGE-2 as llm-jp-eval's ``RougeJa`` (XL-Sum): rouge-score's ROUGE-N F-measure over
    MeCab-IPA words from sacrebleu's ``ja-mecab`` tokenizer (the same tokenizer as ``bleu_ja``).
    Not characters: character bigrams give markedly higher numbers than the word-bigram score the
    leaderboard reports.  The per-item F1 values are averaged; llm-jp-eval reports the ``mid`` of
    rouge-score's ``BootstrapAggregator`` (median of 1000 unseeded bootstrap means), which is the
    mean up to resampling noise (well under 0.1 point for a few hundred items).
``mathematical_equivalence``
    1 if pred and gold parse as the same number (exact rational comparison: "12.0" == "12",
    "1,234" == "1234", "1/2" == "0.5", full-width digits via NFKC, U+2212 minus), else exact
    string equality.  For chain-of-thought output use :func:`extract_final_number` first.
``code_exec``
    1 if the item's tests hold for the generated code, run in :mod:`pytest_jallm.sandbox`: the
    code and the calls the tests make into it run in the sandboxed child, whose values come back
    as plain data; the asserts are evaluated in this process (:mod:`pytest_jallm.code_check`), out
    of the code's reach, so neither an early ``os._exit(0)`` nor an object that equals everything
    nor patched built-ins score (llm-jp-eval appends the asserts and checks the exit status: an
    honest answer scores the same).  Tests come from ``contexts[i]["test_code"]`` (a str) or
    ``contexts[i]["tests"]``/``["test_list"]`` (a list of str); when no context gives any, the gold
    is read as llm-jp-eval's MBPP output, a Python list literal of assert statements (parsed with
    ``ast.literal_eval``; a gold that is not one is used as test code as-is).
``gestalt_score`` / ``gestalt_accuracy``
    The Japanese medical-QA "Gestalt" metrics (Sukeda et al., JMedLoRA / "Medical instruction-tuning
    for Japanese LLMs", evaluated on IgakuQA): Gestalt score = Ratcliff/Obershelp similarity
    ``2*M/(|R|+|C*|)`` between response and correct answer, i.e. ``difflib.SequenceMatcher(None, R,
    C*).ratio()`` (default ``autojunk``), averaged -> ``gestalt_score``.  Their "Accuracy" is *not* a
    threshold on that ratio: the response is mapped to the choice it is most similar to, and the item
    is correct iff that choice is the gold -> ``gestalt_accuracy`` (needs ``contexts[i]["choices"]``;
    ties go to the first choice in list order, as ``max`` does).  A gold of several lines (a
    multi-answer question) maps each answer line to its most similar choice instead; the item is
    correct iff the set of mapped choices is the gold set.  rapidfuzz's ``fuzz.ratio`` is an
    Indel (LCS-subsequence) ratio, not Ratcliff/Obershelp, and is not used here.
``choice_set_accuracy`` / ``choice_set_f1``
    IgakuQA's scoring (jungokasai/IgakuQA ``scripts/evaluate_main.py``, read for its facts): the
    response's answer letters and the gold letters are each sorted and compared, so the order of
    a multi-answer response does not matter and a repeated answer is wrong.  The response is
    read by :func:`choice_letters` (one choice text, ``"b. text"`` or letter per line, or IgakuQA's
    ``"b,e"``); a line naming no choice counts as a wrong answer.  Golds come from
    ``contexts[i]["accepted_answers"]`` (any listed letter list is right -- IgakuQA's 112B30
    accepts a or d), else ``["answer_letters"]``, else the gold text's lines;
    ``["any_answer_correct"]`` credits every response (IgakuQA's 116A71).  ``choice_set_f1`` is the
    partial credit ``2|P∩G|/(|P|+|G|)`` of the answer sets (best over accepted answers).
    ``choice_set_points`` is IgakuQA's score/total: each right answer counts its problem's
    ``contexts[i]["points"]`` (1 or 3 in the exam; 1 when absent); corpus-level.
``gestalt_match`` / ``harness_exact_match``
    japanese-lm-med-harness's ``evaluate()`` (its leaderboard's "Accuracy based on Gestalt
    distance"), reproduced in :mod:`pytest_jallm.medharness`: each choice scores the mean of
    ``SequenceMatcher(None, choice, response).ratio()`` and ``(response, choice)`` (the ratio is not
    symmetric), the response with every "." removed; k = number of ","-separated gold parts; the k
    best choices are picked greedily (first on ties) and compared, sorted, with the gold parts.
    Unlike ``gestalt_accuracy`` it scores multi-answer items and uses the (possibly shuffled) choice
    order of the item for ties. ``harness_exact_match``: gold == response after removing "." and
    stripping. Multi-answer golds (one per line here) become the harness's ","-joined string.
    With a harness ``prompt_template`` the runner hands these metrics the harness's own cut of the
    response and the raw gold (no NFKC), as the harness scores them.
``comet_wmt22``
    Unbabel/wmt22-comet-da system score; needs ``contexts[i]["source"]`` and ``pip install
    'pytest-jallm[comet]'`` (the model is downloaded by comet on first use).
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import threading
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Callable, Mapping, Sequence

from .answers import as_str, clean_surrogates, normalize
from .registry import Registry

__all__ = [
    "METRICS",
    "METRIC_NAMES",
    "Metric",
    "MetricResult",
    "MissingDependencyError",
    "UnknownMetricError",
    "char_f1_item",
    "choice_letters",
    "extract_final_number",
    "gestalt_ratio",
    "get_metric",
    "parse_float",
    "parse_number",
    "register_metric",
    "rouge_n_f1",
    "set_f1_item",
]


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


# --------------------------------------------------------------------------------------------
# results and registry


@dataclass(frozen=True)
class MetricResult:
    score: float
    per_item: list[float] | None
    # Optional, one line per item saying why it scored what it did (ifeval: the instructions not
    # followed); the primary metric's line becomes the item's `detail` in reports.
    details: list[str] | None = None


class UnknownMetricError(KeyError):
    """A metric name that this module does not define."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(name)

    def __str__(self) -> str:
        return f"unknown metric {self.name!r}; known metrics: {', '.join(sorted(METRICS))}"


class MissingDependencyError(ImportError):
    """An optional scorer's package is not installed; the message says what to install."""


@dataclass(frozen=True)
class Metric:
    name: str
    per_item: bool
    binary: bool
    _fn: Callable[[list[str], list[str], list[Mapping[str, Any]]], MetricResult]

    def __call__(
        self,
        preds: Sequence[str],
        golds: Sequence[str],
        contexts: Sequence[Mapping[str, Any]] | None = None,
    ) -> MetricResult:
        p = [as_str(x) for x in preds]
        g = [as_str(x) for x in golds]
        if len(p) != len(g):
            raise ValueError(f"{self.name}: {len(p)} predictions but {len(g)} golds")
        if contexts is None:
            ctx: list[Mapping[str, Any]] = [{} for _ in p]
        else:
            ctx = [c if c is not None else {} for c in contexts]
            if len(ctx) != len(p):
                raise ValueError(f"{self.name}: {len(p)} predictions but {len(ctx)} contexts")
        return self._fn(p, g, ctx)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0


def _per_item(fn: Callable[[str, str], float]) -> Callable[..., MetricResult]:
    def run(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
        scores = [float(fn(p, g)) for p, g in zip(preds, golds)]
        return MetricResult(_mean(scores), scores)

    return run


# exact_match -----------------------------------------------------------------------------------


def _exact(pred: str, gold: str) -> float:
    return 1.0 if pred == gold else 0.0


# char_f1 ---------------------------------------------------------------------------------------

_LATIN1_HIGH = dict.fromkeys(range(128, 256))
_NON_WORD = re.compile(r"(?ui)\W")


def _fuzzywuzzy_process(text: str) -> str:
    # fuzzywuzzy.utils.full_process(s, force_ascii=True): drop U+0080..U+00FF, non-word -> space,
    # lower-case, strip.  Then _process_and_sort: whitespace-split, sort, join with one space.
    text = text.translate(_LATIN1_HIGH)
    text = _NON_WORD.sub(" ", text).lower().strip()
    return " ".join(sorted(text.split()))


def char_f1_item(pred: str, gold: str) -> float:
    """fuzzywuzzy 0.18 ``token_sort_ratio(pred, gold) / 100`` (with python-Levenshtein)."""
    from rapidfuzz.distance import Indel

    a = _fuzzywuzzy_process(as_str(pred))
    b = _fuzzywuzzy_process(as_str(gold))
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    total = len(a) + len(b)
    ratio = (total - Indel.distance(a, b)) / total
    return int(round(100 * ratio)) / 100.0


# set_f1 ----------------------------------------------------------------------------------------


def set_f1_item(pred: str, gold: str) -> float:
    pred_lines = list({x.strip() for x in pred.split("\n")})
    gold_lines = [x.strip() for x in gold.split("\n")]
    gold_set = set(gold_lines)
    hits = sum(1 for y in pred_lines if y in gold_set)
    precision = hits / len(pred_lines)
    recall = hits / len(gold_lines)
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


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


# BLEU ------------------------------------------------------------------------------------------

_JA_HINT = (
    "Japanese tokenisation (bleu_ja, rouge2) needs MeCab with the IPA dictionary: "
    "pip install 'sacrebleu[ja]'  (mecab-python3, ipadic)"
)
_lock = threading.Lock()
_bleu_cache: dict[str, Any] = {}


def _bleu_scorer(lang: str) -> Any:
    with _lock:
        if lang not in _bleu_cache:
            from sacrebleu.metrics import BLEU

            try:
                _bleu_cache[lang] = BLEU(effective_order=True, trg_lang=lang) if lang == "ja" else BLEU(
                    effective_order=True
                )
            except (RuntimeError, ImportError, AssertionError) as exc:
                raise MissingDependencyError(f"{_JA_HINT} ({exc.__class__.__name__}: {str(exc).strip()})") from exc
        return _bleu_cache[lang]


def _for_tokenizer(text: str) -> str:
    # MeCab takes a C string: NUL would truncate it and lone surrogates cannot be encoded.
    return clean_surrogates(text).replace("\x00", " ")


def _bleu(lang: str) -> Callable[..., MetricResult]:
    def run(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
        scorer = _bleu_scorer(lang)
        scores: list[float] = []
        for pred, gold in zip(preds, golds):
            p, g = _for_tokenizer(pred).strip(), _for_tokenizer(gold).strip()
            if p and g:
                with _lock:  # sacrebleu's tokenizer caches are not thread-safe
                    value = scorer.sentence_score(p, [g]).score / 100.0
            else:
                value = 1.0 if p == g else 0.0
            scores.append(min(1.0, max(0.0, value)))
        return MetricResult(_mean(scores), scores)

    return run


# ROUGE-2 ---------------------------------------------------------------------------------------

_ja_tokenizer: Any = None


def _ja_words(text: str) -> list[str]:
    global _ja_tokenizer
    with _lock:
        if _ja_tokenizer is None:
            try:
                from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

                _ja_tokenizer = TokenizerJaMecab()
            except (RuntimeError, ImportError, AssertionError) as exc:
                raise MissingDependencyError(f"{_JA_HINT} ({exc.__class__.__name__}: {str(exc).strip()})") from exc
        return _ja_tokenizer(_for_tokenizer(text)).split()


def rouge_n_f1(pred_tokens: Sequence[str], gold_tokens: Sequence[str], n: int = 2) -> float:
    """ROUGE-N F-measure of two token lists, as rouge-score computes it.

    overlap = sum over n-grams of min(count in pred, count in gold);
    P = overlap / max(#pred n-grams, 1), R = overlap / max(#gold n-grams, 1), F = 2PR/(P+R) or 0.
    """

    def grams(tokens: Sequence[str]) -> Counter[tuple[str, ...]]:
        return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))

    p, g = grams(pred_tokens), grams(gold_tokens)
    overlap = sum(min(c, p[k]) for k, c in g.items())
    precision = overlap / max(sum(p.values()), 1)
    recall = overlap / max(sum(g.values()), 1)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def _rouge2(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    scores = [rouge_n_f1(_ja_words(p), _ja_words(g), 2) for p, g in zip(preds, golds)]
    return MetricResult(_mean(scores), scores)


# mathematical equivalence ----------------------------------------------------------------------


def _math_equiv(pred: str, gold: str) -> float:
    a, b = parse_number(pred), parse_number(gold)
    if a is not None and b is not None:
        return 1.0 if a == b else 0.0
    return 1.0 if normalize(pred) == normalize(gold) else 0.0


# code_exec -------------------------------------------------------------------------------------


def _tests_for(gold: str, ctx: Mapping[str, Any]) -> str:
    code = ctx.get("test_code")
    if isinstance(code, str) and code.strip():
        return code
    for key in ("tests", "test_list"):
        tests = ctx.get(key)
        if isinstance(tests, (list, tuple)) and tests:
            return "\n".join(as_str(t) for t in tests)
    try:
        parsed = ast.literal_eval(gold)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return gold
    if isinstance(parsed, (list, tuple)) and all(isinstance(t, str) for t in parsed):
        return "\n".join(parsed)
    return gold


def _code_exec(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    from . import code_check, sandbox

    jobs = [(pred, _tests_for(gold, ctx)) for pred, gold, ctx in zip(preds, golds, contexts)]
    for i, (_, tests) in enumerate(jobs):  # tests that cannot be checked are the data's fault: say which item
        try:
            code_check.plan(tests, "")
        except code_check.TestsNotCheckable as e:
            ident = contexts[i].get("task_id", contexts[i].get("id"))
            where = f"item {i + 1}" + (f" (id {ident})" if ident is not None else "")
            raise code_check.TestsNotCheckable(f"code_exec: {where}: {e}") from None

    def one(job: tuple[str, str]) -> float:
        return 1.0 if sandbox.run_python(job[0], tests=job[1]).passed else 0.0

    workers = max(1, min(4, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        scores = list(pool.map(one, jobs))
    return MetricResult(_mean(scores), scores)


# Gestalt (Ratcliff/Obershelp) ------------------------------------------------------------------


def gestalt_ratio(a: str, b: str) -> float:
    """Ratcliff/Obershelp similarity 2*M/(|a|+|b|) (difflib, default autojunk); 1.0 for two empties."""
    return difflib.SequenceMatcher(None, as_str(a), as_str(b)).ratio()


def _answer_lines(text: str) -> list[str]:
    return [line.strip() for line in text.split("\n") if line.strip()]


def _gestalt_accuracy(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    scores: list[float] = []
    for i, (pred, gold, ctx) in enumerate(zip(preds, golds, contexts)):
        normed = _context_choices("gestalt_accuracy", i, ctx, "(use gestalt_score for the plain similarity)")
        gold_lines = _answer_lines(gold)
        if len(gold_lines) <= 1:
            best = max(normed, key=lambda c: gestalt_ratio(pred, c))
            scores.append(1.0 if best == gold else 0.0)
            continue
        # Several correct choices: each answer line is mapped to its most similar choice.
        mapped = {max(normed, key=lambda c, line=line: gestalt_ratio(line, c)) for line in _answer_lines(pred)}
        scores.append(1.0 if mapped == set(gold_lines) else 0.0)
    return MetricResult(_mean(scores), scores)


# choice sets (IgakuQA) -------------------------------------------------------------------------

_LETTER_LIST = re.compile(r"^[a-z](?:\s*[,、]\s*[a-z])*$")
_LABELLED = re.compile(r"^([a-z])\s*[.)]\s*(.+)$")


def _context_choices(metric: str, i: int, ctx: Mapping[str, Any], hint: str = "") -> list[str]:
    choices = ctx.get("choices")
    if not isinstance(choices, (list, tuple)) or not choices:
        raise ValueError(
            f"{metric}: item {i} has no 'choices' in its context; the metric maps the answer to the "
            f"choices {hint}".rstrip()
        )
    return [normalize(as_str(c)) for c in choices]


def choice_letters(pred: str, choices: Sequence[str]) -> list[str]:
    """The answer letters of a (normalised) response, sorted; a line naming no choice stays as text.

    A response is IgakuQA's own form (``"b,e"``) or one answer per line, each the choice's text,
    ``"b. text"`` (the prompt's label and the text) or a lone letter.
    """
    letters = [chr(ord("a") + k) for k in range(len(choices))]
    lines = _answer_lines(pred)
    if len(lines) == 1 and _LETTER_LIST.match(lines[0].lower()):
        return sorted(re.split(r"\s*[,、]\s*", lines[0].lower()))
    out = []
    for line in lines:
        if line in choices:
            out.append(letters[choices.index(line)])
            continue
        labelled = _LABELLED.match(line)
        low = line.lower()
        if labelled and labelled.group(1).lower() in letters and normalize(labelled.group(2)) == choices[letters.index(labelled.group(1).lower())]:
            out.append(labelled.group(1).lower())
        elif low in letters:
            out.append(low)
        else:
            out.append("\x00" + line)  # names no choice: never equal to a gold letter
    return sorted(out)


def _gold_letters(i: int, gold: str, ctx: Mapping[str, Any], choices: list[str]) -> list[list[str]]:
    """Every accepted answer (a sorted letter list): the gold, then any alternative the data allows."""
    accepted = ctx.get("accepted_answers")
    if isinstance(accepted, (list, tuple)) and accepted:
        return [sorted(str(a).lower() for a in alt) for alt in accepted]
    letters = ctx.get("answer_letters")
    if isinstance(letters, (list, tuple)) and letters:
        return [sorted(str(a).lower() for a in letters)]
    return [choice_letters(gold, choices)]


def _choice_set(partial: bool) -> Callable[..., MetricResult]:
    name = "choice_set_f1" if partial else "choice_set_accuracy"

    def run(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
        scores: list[float] = []
        for i, (pred, gold, ctx) in enumerate(zip(preds, golds, contexts)):
            choices = _context_choices(name, i, ctx, "to read it as answer letters")
            if ctx.get("any_answer_correct"):
                scores.append(1.0)
                continue
            answer = choice_letters(pred, choices)
            best = 0.0
            for accepted in _gold_letters(i, gold, ctx, choices):
                if answer == accepted:
                    best = 1.0
                elif partial and answer:
                    hits = len(set(answer) & set(accepted))
                    best = max(best, 2 * hits / (len(set(answer)) + len(set(accepted))))
            scores.append(best)
        return MetricResult(_mean(scores), scores)

    return run


def _choice_set_points(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    right = _choice_set(partial=False)(preds, golds, contexts).per_item or []
    points = [float(ctx.get("points", 1)) for ctx in contexts]
    total = math.fsum(points)
    return MetricResult(math.fsum(p * r for p, r in zip(points, right)) / total if total else 0.0, None)


# japanese-lm-med-harness's evaluate() ------------------------------------------------------------


def _harness_gestalt_match(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    from .medharness import gestalt_match_item, harness_gold

    scores: list[float] = []
    for i, (pred, gold, ctx) in enumerate(zip(preds, golds, contexts)):
        choices = ctx.get("choices")
        if not isinstance(choices, (list, tuple)) or not choices:
            raise ValueError(f"gestalt_match: item {i} has no 'choices' in its context (the harness picks among them)")
        scores.append(gestalt_match_item(pred, harness_gold(gold, ctx), [as_str(c) for c in choices]))
    return MetricResult(_mean(scores), scores)


def _harness_exact(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    from .medharness import harness_exact_match_item, harness_gold

    scores = [harness_exact_match_item(p, harness_gold(g, c)) for p, g, c in zip(preds, golds, contexts)]
    return MetricResult(_mean(scores), scores)


# LLM judge (FastChat's single-answer grading) -----------------------------------------------------


def _judge_rating(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    """The judge's 1-10 rating read from its judgment (``preds``: the judgments) as FastChat reads
    it, /10. The judged flow (chatjudge.flow) leaves out, counts and lists the judgments without a
    rating in 1-10 before it gets here; given one anyway, this scores it 0 (a metric never raises
    on model output)."""
    from .chatjudge.fastchat import valid_rating

    scores = [(valid_rating(j) or 0.0) / 10 for j in preds]
    return MetricResult(_mean(scores), scores)


# COMET -----------------------------------------------------------------------------------------

_comet_model: Any = None


def _comet(preds: list[str], golds: list[str], contexts: list[Mapping[str, Any]]) -> MetricResult:
    global _comet_model
    try:
        import comet  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(
            "comet_wmt22 needs Unbabel COMET: pip install 'pytest-jallm[comet]'  (unbabel-comet)"
        ) from exc
    sources = []
    for i, ctx in enumerate(contexts):
        src = ctx.get("source")
        if not isinstance(src, str):
            raise ValueError(f"comet_wmt22: item {i} has no 'source' text in its context")
        sources.append(src)
    if not preds:
        return MetricResult(0.0, None)
    with _lock:
        if _comet_model is None:
            from comet import download_model, load_from_checkpoint

            _comet_model = load_from_checkpoint(download_model("Unbabel/wmt22-comet-da"))
    try:
        import torch

        gpus = 1 if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover - comet depends on torch
        gpus = 0
    data = [{"src": s, "mt": p, "ref": g} for s, p, g in zip(sources, preds, golds)]
    out = _comet_model.predict(data, batch_size=8, gpus=gpus, progress_bar=False)
    return MetricResult(float(out.system_score), None)


# registry --------------------------------------------------------------------------------------

_BUILTIN_METRICS = [
    Metric("exact_match", True, True, _per_item(_exact)),
    Metric("char_f1", True, False, _per_item(char_f1_item)),
    Metric("set_f1", True, False, _per_item(set_f1_item)),
    Metric("pearson", False, False, _correlation("pearson")),
    Metric("spearman", False, False, _correlation("spearman")),
    Metric("bleu_en", True, False, _bleu("en")),
    Metric("bleu_ja", True, False, _bleu("ja")),
    Metric("rouge2", True, False, _rouge2),
    Metric("mathematical_equivalence", True, True, _per_item(_math_equiv)),
    Metric("code_exec", True, True, _code_exec),
    Metric("gestalt_score", True, False, _per_item(gestalt_ratio)),
    Metric("gestalt_accuracy", True, True, _gestalt_accuracy),
    Metric("choice_set_accuracy", True, True, _choice_set(partial=False)),
    Metric("choice_set_f1", True, False, _choice_set(partial=True)),
    Metric("choice_set_points", False, False, _choice_set_points),
    Metric("gestalt_match", True, True, _harness_gestalt_match),
    Metric("harness_exact_match", True, True, _harness_exact),
    Metric("comet_wmt22", False, False, _comet),
    Metric("judge_rating", True, False, _judge_rating),
]


def _check_metric(name: str, obj: Any) -> Metric:
    if not isinstance(obj, Metric):
        raise TypeError(f"expected a Metric (made with @register_metric), got {type(obj).__name__}")
    if obj.name != name:
        raise TypeError(f"the Metric is named {obj.name!r}; register it under that name")
    return obj


# Every metric a spec may name: the built-ins and those installed packages add through the
# `pytest_jallm.metrics` entry-point group.
METRICS: Registry[Metric] = Registry("metric", "pytest_jallm.metrics", _check_metric,
                                     builtin_modules=("pytest_jallm.ifeval.benchmark",))
for _metric in _BUILTIN_METRICS:
    METRICS.register(_metric.name, _metric)

METRIC_NAMES: frozenset[str] = frozenset(m.name for m in _BUILTIN_METRICS)  # the built-ins only


def register_metric(name: str, *, per_item: bool, binary: bool) -> Callable[[Callable[..., MetricResult]], Metric]:
    """Decorator: `fn(preds, golds, contexts) -> MetricResult` becomes the metric `name`.

    `per_item`: the result carries one score per item (paired significance tests need them);
    `binary`: those scores are 0 or 1 (McNemar's test instead of a paired t-test). The
    decorated name is the `Metric` itself, callable as before."""

    def deco(fn: Callable[..., MetricResult]) -> Metric:
        metric = Metric(name, per_item, binary, fn)
        METRICS.register(name, metric, origin=getattr(fn, "__module__", None))
        return metric

    return deco


def get_metric(name: str) -> Metric:
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise UnknownMetricError(name) from None
