"""Metrics: hand-computed cases, Japanese edge cases, parity with the reference formulas, properties.

Expected numbers are worked out by hand in the comments next to them.  The char_f1 table was
produced once with fuzzywuzzy 0.18.0 + python-Levenshtein (llm-jp-eval's pinned pair) and each
entry is re-derived by hand below it.
"""

from __future__ import annotations

import difflib
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_jallm import metrics as M
from pytest_jallm.answers import extract_answer, normalize, out_of_choice
from pytest_jallm.metrics import (
    METRIC_NAMES,
    MetricResult,
    MissingDependencyError,
    UnknownMetricError,
    extract_final_number,
    get_metric,
)
from pytest_jallm.metrics.text import bleu_scorer


def _has_mecab() -> bool:
    try:
        bleu_scorer("ja")
    except MissingDependencyError:
        return False
    return True


needs_mecab = pytest.mark.skipif(not _has_mecab(), reason="needs sacrebleu[ja] (mecab-python3, ipadic)")

ALL_TEXT = st.text(alphabet=st.characters(blacklist_categories=()), max_size=60)  # incl. surrogates, controls


# --- normalize / extract ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＡＢＣ１２３", "ABC123"),  # full-width letters and digits -> ASCII
        ("ｶﾀｶﾅ", "カタカナ"),  # half-width katakana -> full-width
        ("ｶﾞｷﾞ", "ガギ"),  # half-width voiced marks compose
        ("　東京　\n", "東京"),  # ideographic space (U+3000) is stripped
        ("東京　タワー", "東京 タワー"),  # ... and becomes a plain space inside
        ("「答え」。", "「答え」。"),  # Japanese brackets and 。 are kept by NFKC
        ("①", "1"),
        ("", ""),
        ("\x00a\x07", "\x00a\x07"),  # controls kept (strip only removes whitespace)
        ("a\ud800b", "a\ufffdb"),  # lone surrogate -> U+FFFD
        ("\ud83d\ude00", "\U0001f600"),  # a surrogate *pair* is joined into its character
    ],
)
def test_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


def test_extract_answer_first_paragraph() -> None:
    assert extract_answer("  entailment \n\n理由: ...") == "entailment"
    assert extract_answer("一行目\n二行目\n\n三行目") == "一行目\n二行目"  # a single \n stays
    assert extract_answer("") == ""
    assert extract_answer("\n\n答え") == ""  # empty first paragraph, as llm-jp-eval


def test_extract_answer_with_pattern() -> None:
    pattern = r"<answer>(.*?)</answer>"
    assert extract_answer("考え中\n\n<answer> 東京 </answer> 以上", pattern) == "東京"
    assert extract_answer("<answer>\n複数\n行\n</answer>", pattern) == "複数\n行"  # DOTALL
    assert extract_answer("答えなし", pattern) == ""
    assert extract_answer("<answer>a</answer><answer>b</answer>", pattern) == "a"  # first match
    assert extract_answer("x=42", r"\d+") == "42"  # no group -> whole match
    assert extract_answer("ab", r"a(c)?") == ""  # group did not participate


# --- exact_match ----------------------------------------------------------------------------------


def test_exact_match() -> None:
    r = get_metric("exact_match")(["1", "2", "3", "4"], ["1", "2", "0", "4"])
    assert r == MetricResult(0.75, [1.0, 1.0, 0.0, 1.0])  # 3 of 4 equal


def test_exact_match_is_on_normalised_text_only() -> None:
    # The caller normalises; the metric compares as given, so 。 and spacing matter.
    r = get_metric("exact_match")(["東京", "東京。", "東京 都", normalize("ＡＢＣ")], ["東京", "東京", "東京都", "ABC"])
    assert r.per_item == [1.0, 0.0, 0.0, 1.0]


# --- char_f1 --------------------------------------------------------------------------------------

# (pred, gold, fuzzywuzzy 0.18 token_sort_ratio) -- Indel ratio = 2*LCS/(|a|+|b|), rounded to int.
FUZZYWUZZY_TABLE = [
    ("とうきょう", "とうきよう", 80),  # LCS 4 of 5+5 -> 8/10
    ("東京都", "東京", 80),  # LCS 2 -> 4/5
    ("「東京」", "東京", 100),  # 「」 are \W -> spaces -> "東京" == "東京"
    ("東京。", "東京", 100),  # trailing 。 removed the same way
    ("ABC", "abc", 100),  # lower-cased
    ("ＡＢＣ１２３", "ABC123", 0),  # not NFKC'd by the metric: "ａｂｃ１２３" vs "abc123", LCS 0
    ("ｶﾀｶﾅ", "カタカナ", 0),  # different code points, LCS 0 (the caller's NFKC makes them equal)
    ("。", "、", 100),  # both process to "" -> equal -> 100
    ("a", "", 0),  # exactly one empty -> 0
    ("", "", 100),
    ("abcdefg", "abcdefh", 86),  # 12/14 = 85.71 -> 86 (rapidfuzz 3 returns 85.714...)
    ("きょうと おおさか", "おおさか きょうと", 100),  # tokens sorted
    ("é東京", "東京", 100),  # U+00E9 deleted by force_ascii
    ("しんじゅく", "しぶや", 25),  # LCS "し": 2/8
    ("やまのてせん", "やまてせん", 91),  # LCS 5: 10/11 = 90.9
    ("ぎゅうにゅう", "ぎゅうにく", 73),  # LCS "ぎゅうに" 4: 8/11 = 72.7
]


@pytest.mark.parametrize(("pred", "gold", "expected"), FUZZYWUZZY_TABLE)
def test_char_f1_matches_fuzzywuzzy(pred: str, gold: str, expected: int) -> None:
    assert M.char_f1_item(pred, gold) == expected / 100


def test_char_f1_differs_from_rapidfuzz_default() -> None:
    from rapidfuzz import fuzz

    # rapidfuzz 3: no default processor, no rounding -- documented reason for our own processing.
    assert fuzz.token_sort_ratio("「東京」", "東京") == pytest.approx(200 / 3)
    assert M.char_f1_item("「東京」", "東京") == 1.0
    assert fuzz.token_sort_ratio("abcdefg", "abcdefh") == pytest.approx(1200 / 14)
    assert M.char_f1_item("abcdefg", "abcdefh") == 0.86
    # On plain Japanese without spaces/punctuation they agree up to rounding.
    assert round(fuzz.token_sort_ratio("やまのてせん", "やまてせん")) / 100 == M.char_f1_item("やまのてせん", "やまてせん")


def test_char_f1_metric_averages() -> None:
    r = get_metric("char_f1")(["東京都", "しんじゅく"], ["東京", "しぶや"])
    assert r.per_item == [0.8, 0.25]
    assert r.score == pytest.approx(0.525)


# --- set_f1 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("a\nb\nb\nc", "a\nb\nd", 2 / 3),  # pred set {a,b,c}: 2 hits; P=2/3, R=2/3
        ("a\na", "a\na", 2 / 3),  # pred deduped to {a}: P=1/1, gold not deduped: R=1/2 -> 2/3
        (" a \n b", "a\nb", 1.0),  # lines stripped
        ("x", "y", 0.0),
        ("", "", 1.0),  # [""] vs [""]
        ("", "a", 0.0),
        ("トヨタ positive\n日産 negative", "トヨタ positive\nホンダ neutral\n日産 negative", 0.8),  # P=1, R=2/3
    ],
)
def test_set_f1(pred: str, gold: str, expected: float) -> None:
    assert M.set_f1_item(pred, gold) == pytest.approx(expected)
    assert get_metric("set_f1")([pred], [gold]).per_item == [pytest.approx(expected)]


# --- pearson / spearman -----------------------------------------------------------------------------


def test_correlations_perfect_and_inverse() -> None:
    assert get_metric("pearson")(["1", "2", "3"], ["1", "2", "3"]) == MetricResult(pytest.approx(1.0), None)
    assert get_metric("spearman")(["3", "2", "1"], ["1", "2", "3"]).score == pytest.approx(-1.0)


def test_correlations_unparseable_is_minus_two() -> None:
    preds, golds = ["1", "不明", "3"], ["1", "2", "3"]  # pred parsed as [1, -2, 3]
    # pearson: dx = [-1,0,1], dy = [1/3,-8/3,7/3]; cov = 2; |dx| = sqrt 2; |dy| = sqrt(114)/3
    # r = 2 / (sqrt(2) * sqrt(114) / 3) = 6 / sqrt(228)
    assert get_metric("pearson")(preds, golds).score == pytest.approx(6 / math.sqrt(228))
    # spearman: ranks [2,1,3] vs [1,2,3]: 1 - 6*(1+1+0)/(3*8) = 0.5
    assert get_metric("spearman")(preds, golds).score == pytest.approx(0.5)


def test_correlations_parse_float_quirks() -> None:
    assert M.parse_float("スコアは3.5です") == 3.5
    assert M.parse_float("-1.5") == 1.5  # sign dropped, as llm-jp-eval
    assert M.parse_float("1.2.3") == -2.0
    assert M.parse_float("") == -2.0


def test_correlations_nan_becomes_zero() -> None:
    assert get_metric("pearson")(["2", "2", "2"], ["1", "2", "3"]).score == 0.0  # constant -> NaN -> 0
    assert get_metric("spearman")(["1"], ["1"]).score == 0.0  # fewer than 2 items
    assert get_metric("pearson")(["9" * 400, "1"], ["1", "2"]).score == 0.0  # inf -> 0
    assert get_metric("pearson")([], []) == MetricResult(0.0, None)


# --- BLEU -----------------------------------------------------------------------------------------


def test_bleu_en_hand_computed() -> None:
    # 6 tokens each; clipped matches 1-4 gram: 5/6, 3/5, 2/4, 1/3; BP = 1
    # BLEU = (5/6 * 3/5 * 1/2 * 1/3) ** (1/4) = (1/12) ** 0.25
    r = get_metric("bleu_en")(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert r.per_item == [pytest.approx((1 / 12) ** 0.25)]
    # effective order: a 2-token sentence is scored on 1- and 2-grams only -> identical = 1.0
    assert get_metric("bleu_en")(["hello world"], ["hello world"]).score == pytest.approx(1.0)


def test_bleu_empty_handling() -> None:
    r = get_metric("bleu_en")(["", "", "a b c d"], ["x y", "", " "])
    assert r.per_item == [0.0, 1.0, 0.0]


@needs_mecab
def test_bleu_ja_hand_computed() -> None:
    # MeCab-IPA: 今日 は 良い 天気 です (5) vs 今日 は 良い 天気 でし た (6)
    # precisions 4/5, 3/4, 2/3, 1/2 -> geo mean 0.2**0.25; BP = exp(1 - 6/5)
    r = get_metric("bleu_ja")(["今日は良い天気です"], ["今日は良い天気でした"])
    assert r.score == pytest.approx(math.exp(-0.2) * 0.2**0.25)


def test_bleu_ja_without_mecab_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sacrebleu.tokenizers.tokenizer_ja_mecab as ja

    monkeypatch.setattr(ja, "MeCab", None)
    monkeypatch.setattr(M.text, "_bleu_cache", {})
    monkeypatch.setattr(M.text, "_ja_tokenizer", None)
    with pytest.raises(MissingDependencyError, match=r"sacrebleu\[ja\]"):
        get_metric("bleu_ja")(["a"], ["a"])
    with pytest.raises(MissingDependencyError, match="mecab-python3"):
        get_metric("rouge2")(["a"], ["a"])


# --- ROUGE-2 ------------------------------------------------------------------------------------


def test_rouge_n_f1_formula() -> None:
    # bigrams pred: ab, bc, cd ; gold: ab, bc, ce, ef -> overlap 2; P = 2/3, R = 2/4 -> F = 4/7
    assert M.rouge_n_f1(list("abcd"), list("abcef")) == pytest.approx(4 / 7)
    # clipped counts: pred "a a a" has 2x (a,a), gold "a a" has 1 -> overlap 1; P=1/2, R=1 -> 2/3
    assert M.rouge_n_f1(["a"] * 3, ["a"] * 2) == pytest.approx(2 / 3)
    assert M.rouge_n_f1([], []) == 0.0  # rouge-score: no bigrams -> 0
    assert M.rouge_n_f1(["a"], ["a"]) == 0.0  # a single token has no bigram


@needs_mecab
def test_rouge2_uses_mecab_words_not_characters() -> None:
    # 今日 は 晴れ です vs 今日 は 雨 です: bigrams 3 vs 3, overlap (今日,は) -> P = R = F = 1/3.
    # Character bigrams would give overlap 3 of 6 and 5: F = 6/11 = 0.545 -- not what llm-jp-eval reports.
    r = get_metric("rouge2")(["今日は晴れです"], ["今日は雨です"])
    assert r.per_item == [pytest.approx(1 / 3)]
    assert get_metric("rouge2")(["同じ文です。"], ["同じ文です。"]).score == pytest.approx(1.0)
    assert get_metric("rouge2")([""], ["要約"]).score == 0.0


# --- mathematical equivalence ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "gold", "expected"),
    [
        ("12.0", "12", 1.0),
        ("１２", "12", 1.0),  # full-width digits (NFKC)
        ("1,234", "1234", 1.0),  # thousands separators
        ("１，２３４", "1234", 1.0),  # full-width comma too
        ("1/2", "0.5", 1.0),  # exact rational comparison
        ("\u22123", "-3", 1.0),  # U+2212 MINUS SIGN
        ("3.", "3", 1.0),  # trailing period
        ("12", "13", 0.0),
        ("12個", "12", 0.0),  # units are not stripped
        ("0.1", "0.10000000000000001", 0.0),  # exact, not float-rounded
        ("abc", "abc", 1.0),  # not numbers: string equality
        ("12,34", "1234", 0.0),  # not a thousands grouping
    ],
)
def test_mathematical_equivalence(pred: str, gold: str, expected: float) -> None:
    assert get_metric("mathematical_equivalence")([pred], [gold]).per_item == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("まず3個、次に5個で、合計は８個です。", "8"),
        ("答えは1,234円です", "1234"),
        ("気温は-5度", "-5"),
        ("重さは3.5kg.", "3.5"),
        ("2024年の人口は12,345,678人", "12345678"),
        ("数字はありません", ""),
        ("", ""),
    ],
)
def test_extract_final_number(text: str, expected: str) -> None:
    assert extract_final_number(text) == expected


# --- code_exec ------------------------------------------------------------------------------------

ADD = "def add(a, b):\n    return a + b\n"


def test_code_exec_with_mbpp_style_gold() -> None:
    gold = "['assert add(1, 2) == 3', 'assert add(2, 2) == 4']"  # llm-jp-eval's MBPP output field
    r = get_metric("code_exec")([ADD, ADD.replace("+", "-"), "def add(:"], [gold] * 3)
    assert r.per_item == [1.0, 0.0, 0.0]
    assert r.score == pytest.approx(1 / 3)


def test_code_exec_with_context_tests() -> None:
    contexts = [{"tests": ["assert add(1, 1) == 2"]}, {"test_code": "assert add(1, 1) == 3"}]
    r = get_metric("code_exec")([ADD, ADD], ["", ""], contexts)
    assert r.per_item == [1.0, 0.0]


@pytest.mark.slow
def test_code_exec_infinite_loop_fails_not_hangs(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_jallm import sandbox

    real = sandbox.run_python
    monkeypatch.setattr(sandbox, "run_python", lambda code, **kw: real(code, **kw, timeout_s=1))
    r = get_metric("code_exec")(["while True:\n    pass\n"], ["['assert True']"])
    assert r.per_item == [0.0]


# --- Gestalt --------------------------------------------------------------------------------------


def test_gestalt_score_is_ratcliff_obershelp() -> None:
    # 心筋梗塞 vs 心筋炎: longest common block 心筋 (2) -> 2*2/(4+3)
    assert get_metric("gestalt_score")(["心筋梗塞"], ["心筋炎"]).score == pytest.approx(4 / 7)
    # Ratcliff/Obershelp is greedy on the longest block, so it is not the Indel/LCS ratio:
    # えええええ vs えいええ: block "ええ" then nothing on either side -> 2*2/9;
    # the LCS is "えええ" (3) -> rapidfuzz fuzz.ratio would say 6/9.
    assert M.gestalt_ratio("えええええ", "えいええ") == pytest.approx(4 / 9)
    from rapidfuzz import fuzz

    assert fuzz.ratio("えええええ", "えいええ") == pytest.approx(600 / 9)
    assert M.gestalt_ratio("", "") == 1.0
    assert M.gestalt_ratio("a", "") == 0.0


def test_gestalt_accuracy_picks_the_most_similar_choice() -> None:
    choices = ["心筋梗塞", "心筋炎", "狭心症", "大動脈解離", "肺塞栓症"]
    ctx = [{"choices": choices}] * 3
    preds = ["答えは心筋梗塞です", "狭心症の疑い", "ｃ"]  # -> 心筋梗塞 (ratio 8/13), 狭心症, first tie
    r = get_metric("gestalt_accuracy")(preds, ["心筋梗塞", "心筋梗塞", "心筋梗塞"], ctx)
    assert r.per_item == [1.0, 0.0, 1.0]  # all ratios 0 for "ｃ": ties go to the first choice
    assert difflib.SequenceMatcher(None, preds[0], "心筋梗塞").ratio() == pytest.approx(8 / 13)


def test_gestalt_accuracy_needs_choices() -> None:
    with pytest.raises(ValueError, match="choices"):
        get_metric("gestalt_accuracy")(["a"], ["a"])


# --- comet, registry, out_of_choice -----------------------------------------------------------------


def test_comet_missing_names_the_extra() -> None:
    try:
        import comet  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("comet is installed here")
    with pytest.raises(MissingDependencyError, match=r"pytest-jallm\[comet\]"):
        get_metric("comet_wmt22")(["a"], ["a"], [{"source": "a"}])


def test_registry() -> None:
    assert METRIC_NAMES >= {
        "exact_match", "char_f1", "set_f1", "pearson", "spearman", "bleu_ja", "bleu_en", "rouge2",
        "mathematical_equivalence", "code_exec", "gestalt_score", "gestalt_accuracy", "comet_wmt22",
    }  # fmt: skip
    for name in METRIC_NAMES:
        m = get_metric(name)
        assert m.name == name
        assert not (m.binary and not m.per_item)
    assert get_metric("exact_match").binary and get_metric("code_exec").binary
    assert not get_metric("char_f1").binary and get_metric("char_f1").per_item
    assert not get_metric("pearson").per_item and not get_metric("comet_wmt22").per_item


def test_unknown_metric_error() -> None:
    with pytest.raises(KeyError) as info:
        get_metric("bleu")
    assert isinstance(info.value, UnknownMetricError)
    assert "'bleu'" in str(info.value) and "exact_match" in str(info.value) and "rouge2" in str(info.value)


def test_length_mismatch_and_empty_inputs() -> None:
    with pytest.raises(ValueError, match="2 predictions but 1 golds"):
        get_metric("exact_match")(["a", "b"], ["a"])
    assert get_metric("exact_match")([], []) == MetricResult(0.0, [])


def test_out_of_choice() -> None:
    labels = ["entailment", "contradiction", "neutral"]
    preds = ["entailment", "Entailment", "", "ｎｅｕｔｒａｌ", " neutral "]
    assert out_of_choice(preds, labels) == [False, True, True, False, False]
    assert out_of_choice(["", "x", "  "], None) == [True, False, True]
    assert out_of_choice(["", "x"], []) == [True, False]


# --- parity with the reference formulas ---------------------------------------------------------

PARITY_PREDS = ["entailment", "東京都", "a\nb", "3", "しんじゅく", "", "「答え」"]
PARITY_GOLDS = ["entailment", "東京", "a\nc\nb", "5", "しぶや", "x", "答え"]


def _reference_scores() -> dict[str, float]:
    """llm-jp-eval's formulas written out independently of pytest_jallm.metrics."""
    n = len(PARITY_PREDS)
    em = sum(p == g for p, g in zip(PARITY_PREDS, PARITY_GOLDS, strict=True)) / n  # 1/7
    fw = {("東京都", "東京"): 80, ("しんじゅく", "しぶや"): 25, ("「答え」", "答え"): 100}
    char = [100 if p == g else fw.get((p, g), 0) for p, g in zip(PARITY_PREDS, PARITY_GOLDS, strict=True)]
    # the remaining pairs share no character after processing: a\nb / a\nc\nb are "a b" vs "a b c"
    char[2] = round(100 * (2 * 3) / (3 + 5))  # "a b" vs "a b c": LCS 3 of 3+5 -> 75
    sets = []
    for p, g in zip(PARITY_PREDS, PARITY_GOLDS, strict=True):
        pl, gl = list({x.strip() for x in p.split("\n")}), [x.strip() for x in g.split("\n")]
        hit = sum(x in gl for x in pl)
        pr, rc = hit / len(pl), hit / len(gl)
        sets.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    return {"exact_match": em, "char_f1": sum(char) / 100 / n, "set_f1": sum(sets) / n}


def test_parity_with_reference_formulas() -> None:
    expected = _reference_scores()
    assert expected["exact_match"] == pytest.approx(1 / 7)
    assert expected["char_f1"] == pytest.approx((100 + 80 + 75 + 0 + 25 + 0 + 100) / 700)
    for name, value in expected.items():
        assert get_metric(name)(PARITY_PREDS, PARITY_GOLDS).score == pytest.approx(value, abs=1e-6), name


def test_parity_correlations_with_numpy() -> None:
    import numpy as np

    preds, golds = ["1.0", "2.5", "x", "4", "3"], ["1", "2", "3", "4", "5"]
    y = np.array([1.0, 2.5, -2.0, 4.0, 3.0])
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    r = float(np.sum((x - x.mean()) * (y - y.mean())) / math.sqrt(np.sum((x - x.mean()) ** 2) * np.sum((y - y.mean()) ** 2)))
    assert get_metric("pearson")(preds, golds).score == pytest.approx(r, abs=1e-6)
    # spearman = pearson of the ranks: y ranks [2,3,1,5,4]
    rx, ry = x, np.array([2.0, 3.0, 1.0, 5.0, 4.0])
    rs = float(np.corrcoef(rx, ry)[0, 1])
    assert get_metric("spearman")(preds, golds).score == pytest.approx(rs, abs=1e-6)


def test_parity_bleu_with_sacrebleu_sentence_score() -> None:
    from sacrebleu.metrics import BLEU

    preds = ["The quick brown fox jumps.", "A dog.", "completely different words here"]
    golds = ["The quick brown fox jumped.", "A dog barked.", "nothing in common at all"]
    ref = [BLEU(effective_order=True).corpus_score([p], [[g]]).score / 100 for p, g in zip(preds, golds, strict=True)]
    r = get_metric("bleu_en")(preds, golds)
    assert r.per_item == pytest.approx(ref, abs=1e-6)
    assert r.score == pytest.approx(sum(ref) / 3, abs=1e-6)


# --- properties -----------------------------------------------------------------------------------

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(ALL_TEXT, st.one_of(st.none(), st.sampled_from([r"(\d+)", r"<a>(.*?)</a>", r"x", r"(a)?b"])))
def test_normalize_and_extract_never_raise(text: str, pattern: str | None) -> None:
    n = normalize(text)
    assert n == n.strip()
    n.encode("utf-8")  # always encodable
    assert normalize(n) == n  # idempotent
    assert isinstance(extract_answer(text, pattern), str)
    assert isinstance(extract_final_number(text), str)


_PER_ITEM = ["exact_match", "char_f1", "set_f1", "bleu_en", "mathematical_equivalence", "gestalt_score"]
if _has_mecab():
    _PER_ITEM += ["bleu_ja", "rouge2"]


@PROPERTY
@given(st.lists(st.tuples(ALL_TEXT, ALL_TEXT), min_size=1, max_size=4))
def test_metrics_never_raise_and_stay_in_range(pairs: list[tuple[str, str]]) -> None:
    preds = [p for p, _ in pairs]
    golds = [g for _, g in pairs]
    for name in _PER_ITEM:
        r = get_metric(name)(preds, golds)
        assert 0.0 <= r.score <= 1.0, name
        assert r.per_item is not None and len(r.per_item) == len(pairs)
        assert all(0.0 <= s <= 1.0 for s in r.per_item), name
        if get_metric(name).binary:
            assert set(r.per_item) <= {0.0, 1.0}
    for name in ("pearson", "spearman"):
        r = get_metric(name)(preds, golds)
        assert -1.0 <= r.score <= 1.0 and r.per_item is None
    assert len(out_of_choice(preds, golds)) == len(preds)


@PROPERTY
@given(ALL_TEXT)
def test_identical_answers_score_one(text: str) -> None:
    t = normalize(text)
    assert get_metric("exact_match")([t], [t]).score == 1.0
    assert get_metric("char_f1")([t], [t]).score == 1.0
    assert get_metric("set_f1")([t], [t]).score == 1.0
    assert get_metric("mathematical_equivalence")([t], [t]).score == 1.0


def test_long_and_hostile_inputs() -> None:
    long = "東京" * 50_000  # 100k characters
    hostile = "\x00\x1b[31m\ud800\u202e" + "あ" * 10
    for name in _PER_ITEM:
        r = get_metric(name)([long, hostile, ""], [long[:-1], hostile, "x"])
        assert all(0.0 <= s <= 1.0 for s in r.per_item), name
        assert r.per_item[2] == 0.0, name
