"""Text overlap metrics: exact_match, char_f1, set_f1, bleu_en, bleu_ja, rouge2, comet_wmt22."""

from __future__ import annotations

import re
import threading
from collections import Counter
from typing import Any, Callable, Mapping, Sequence

from ..answers import as_str, clean_surrogates
from .base import METRICS, Metric, MetricResult, MissingDependencyError, mean, per_item

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


# BLEU ------------------------------------------------------------------------------------------

_JA_HINT = (
    "Japanese tokenisation (bleu_ja, rouge2) needs MeCab with the IPA dictionary: "
    "pip install 'sacrebleu[ja]'  (mecab-python3, ipadic)"
)
_lock = threading.Lock()
_bleu_cache: dict[str, Any] = {}


def bleu_scorer(lang: str) -> Any:
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
        scorer = bleu_scorer(lang)
        scores: list[float] = []
        for pred, gold in zip(preds, golds, strict=True):
            p, g = _for_tokenizer(pred).strip(), _for_tokenizer(gold).strip()
            if p and g:
                with _lock:  # sacrebleu's tokenizer caches are not thread-safe
                    value = scorer.sentence_score(p, [g]).score / 100.0
            else:
                value = 1.0 if p == g else 0.0
            scores.append(min(1.0, max(0.0, value)))
        return MetricResult(mean(scores), scores)

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
    scores = [rouge_n_f1(_ja_words(p), _ja_words(g), 2) for p, g in zip(preds, golds, strict=True)]
    return MetricResult(mean(scores), scores)


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
    data = [{"src": s, "mt": p, "ref": g} for s, p, g in zip(sources, preds, golds, strict=True)]
    out = _comet_model.predict(data, batch_size=8, gpus=gpus, progress_bar=False)
    return MetricResult(float(out.system_score), None)


METRICS.register("exact_match", Metric("exact_match", True, True, per_item(_exact)), origin=__name__)
METRICS.register("char_f1", Metric("char_f1", True, False, per_item(char_f1_item)), origin=__name__)
METRICS.register("set_f1", Metric("set_f1", True, False, per_item(set_f1_item)), origin=__name__)
METRICS.register("bleu_en", Metric("bleu_en", True, False, _bleu("en")), origin=__name__)
METRICS.register("bleu_ja", Metric("bleu_ja", True, False, _bleu("ja")), origin=__name__)
METRICS.register("rouge2", Metric("rouge2", True, False, _rouge2), origin=__name__)
METRICS.register("comet_wmt22", Metric("comet_wmt22", False, False, _comet), origin=__name__)
