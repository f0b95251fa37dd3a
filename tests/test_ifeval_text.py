"""The one-pass scanners of pytest_jallm.ifeval.text give what the reference's regular expressions
give under `re` (the patterns are quoted from lightblue-tech/M-IFEval 0bc3143,
instructions/ja_instructions.py, as the oracle), on random text made of the characters that matter."""

from __future__ import annotations

import functools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_jallm.ifeval import text as ja

# Each property draws from the characters its pattern turns on (spaces of several kinds included),
# so that the cases that matter come up often.
FAST = settings(max_examples=300, deadline=None)


def _texts(alphabet: str) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, max_size=40)


@FAST
@given(_texts("・・・a \n\n\t\u3000"))
def test_bullet_items_as_the_reference_pattern(value: str) -> None:
    assert ja.count_bullet_items(value) == len(re.findall(r"^\s*・[^\・].*$", value, flags=re.MULTILINE))


@FAST
@given(_texts("12２..a \n\n\t\u3000"))
def test_numbered_items_as_the_reference_pattern(value: str) -> None:
    assert ja.count_numbered_items(value) == len(re.findall(r"^\s*\d+\.\s.*$", value, flags=re.MULTILINE))


@FAST
@given(_texts("[[]]a\n"))
def test_placeholders_as_the_reference_pattern(value: str) -> None:
    placeholders = sum(1 for line in value.split("\n") for _ in ja.lazy_spans(line, "[", "]"))
    assert placeholders == len(re.findall(r"\[.*?\]", value))


@FAST
@given(_texts("「」「」『』『』a\n"))
def test_quote_removal_as_the_reference_patterns(value: str) -> None:
    assert ja.remove_quoted(value) == re.sub(r"『.*?』", "", re.sub(r"「.*?」", "", value))


@FAST
@given(_texts("『』『』a \n"))
def test_title_as_the_reference_pattern(value: str) -> None:
    titles = [t for t in re.findall(r"『[^\n]+』", value) if t.lstrip("『").rstrip("』").strip()]
    assert ja.has_title(value) == bool(titles)


@FAST
@given(_texts("漢字漢（（））ぁんあア\n"))
def test_furigana_as_the_reference_patterns(value: str) -> None:
    runs = len(re.findall(r"[\u4e00-\u9faf]+", value))
    with_reading = len(re.findall(r"[\u4e00-\u9faf]+（[ぁ-ん]+）", value))
    assert ja.furigana_counts(value) == (runs, with_reading)


def _library_count(value: str) -> int:
    """ja-sentence-segmenter's own pipeline, as the reference's count_sentences builds it."""
    from ja_sentence_segmenter.common.pipeline import make_pipeline
    from ja_sentence_segmenter.concatenate.simple_concatenator import concatenate_matching
    from ja_sentence_segmenter.normalize.neologd_normalizer import normalize
    from ja_sentence_segmenter.split.simple_splitter import split_newline, split_punctuation

    split = functools.partial(split_punctuation, punctuations=r"。!?")
    join = functools.partial(concatenate_matching, former_matching_rule=r"^(?P<result>.+)(の)$",
                             remove_former_matched=False)
    return len(list(make_pipeline(normalize, split_newline, join, split)(value)))


@FAST
@given(_texts("あの。!！?？「」()（）\n \u3000ｱＡ1"))
def test_sentence_count_is_the_segmenters(value: str) -> None:
    assert ja.count_sentences(value) == _library_count(value)


@pytest.mark.parametrize("value", ["", "の", "のの\n\nあ", "あの\nの\n\nい。う", "\n\nの\n", "日本の\n首都は東京。\n"])
def test_sentence_count_joins_lines_ending_in_no(value: str) -> None:
    assert ja.count_sentences(value) == _library_count(value)


def test_sentence_count_by_hand() -> None:
    assert ja.count_sentences("一文目です。二文目です！三文目？") == 3
    assert ja.count_sentences("「引用。です。」と言った。") == 1  # punctuation inside 「」 does not split
    assert ja.count_sentences("東京の\n大学です。") == 1  # a line ending in の continues on the next


def test_tokens_and_their_limit() -> None:
    assert [s for s, _ in ja.tokens("猫が好きです。")] == ["猫", "が", "好き", "です", "。"]
    assert ja.tokens("猫")[0][1].startswith("名詞")
    assert [s for s, _ in ja.tokens("猫\ud800です")][0] == "猫"  # a lone surrogate does not crash janome
    with pytest.raises(ja.TooLongToTokenise, match="100001 characters"):
        ja.tokens("あ" * (ja.TOKENISE_MAX_CHARS + 1))


def test_language_detection_is_seeded() -> None:
    # Thai and Japanese in one text: langdetect unseeded says either, run to run (the reference's
    # claude-3-5-sonnet response to prompt 2); seeded it always says the same.
    mixed = "เรียน ผู้จัดการ ขอบคุณมากสำหรับความช่วยเหลือ " * 3 + "これは感謝のメールです。ありがとうございました。" * 2
    assert len({ja.detect_language(mixed) for _ in range(5)}) == 1
    assert ja.detect_language("Bonjour, je voudrais un café s'il vous plaît.") == "fr"
    with pytest.raises(ja.LanguageUndetectable):
        ja.detect_language("12345 !!! ...")
