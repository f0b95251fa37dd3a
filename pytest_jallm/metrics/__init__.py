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

# The built-in metrics register when their modules are imported, here.
from . import choices, code, judged, numbers, text  # noqa: F401
from .base import METRICS, Metric, MetricResult, MissingDependencyError, UnknownMetricError, get_metric, register_metric
from .choices import choice_letters, gestalt_ratio
from .numbers import extract_final_number, parse_float, parse_number
from .text import char_f1_item, rouge_n_f1, set_f1_item

# The built-ins only (an installed package may add more to METRICS).
METRIC_NAMES: frozenset[str] = frozenset(METRICS.registered_by(__name__))

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
