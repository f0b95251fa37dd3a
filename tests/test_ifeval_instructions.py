"""Each ja: instruction checker on hand-made responses, its refusal of bad kwargs, the strict and
loose evaluation rules, and hostile model output (huge, adversarial for backtracking, broken)."""

from __future__ import annotations

import pytest

from pytest_jallm.ifeval.evaluate import (
    InputError,
    PromptInput,
    evaluate,
    evaluate_responses,
    figures,
    loose_variants,
)
from pytest_jallm.ifeval.instructions import INSTRUCTIONS, InstructionArgsError, build
from pytest_jallm.ifeval.text import TOKENISE_MAX_CHARS

# (instruction id, kwargs, response, followed?) -- the rule each case pins is in its comment
CASES = [
    ("ja:keywords:existence", {"keywords": ["猫", "犬"]}, "猫と犬がいます。", True),
    ("ja:keywords:existence", {"keywords": ["猫"]}, "子猫がいます。", False),  # 子猫 is one token, not 猫
    ("ja:keywords:frequency", {"keyword": "猫", "frequency": 2, "relation": "以上"}, "猫と猫。", True),
    ("ja:keywords:frequency", {"keyword": "猫", "frequency": 2, "relation": "未満"}, "猫と猫。", False),
    ("ja:keywords:frequency", {"keyword": " 猫 ", "frequency": 1, "relation": "未満"}, "犬です。", True),
    ("ja:keywords:forbidden_words", {"forbidden_words": ["海"]}, "海に行く。", False),
    ("ja:keywords:forbidden_words", {"forbidden_words": ["海"]}, "海外に行く。", True),  # 海外 is one token
    ("ja:keywords:letter_frequency", {"letter": "し", "let_frequency": 3, "let_relation": "以上"}, "しシし", True),
    ("ja:keywords:letter_frequency", {"letter": "し", "let_frequency": 3, "let_relation": "未満"}, "しシし", False),
    ("ja:language:response_language", {"language": "fr"}, "Bonjour, je suis très content de vous voir.", True),
    ("ja:language:response_language", {"language": "fr"}, "こんにちは、元気ですか。", False),
    ("ja:language:response_language", {"language": "th"}, "12345 !!!", True),  # undetectable counts as followed
    ("ja:length_constraints:number_sentences", {"num_sentences": 3, "relation": "以上"}, "一。二！三？", True),
    ("ja:length_constraints:number_sentences", {"num_sentences": 3, "relation": "未満"}, "一。二！三？", False),
    ("ja:length_constraints:number_paragraphs", {"num_paragraphs": 2}, "一\n***\n二", True),
    ("ja:length_constraints:number_paragraphs", {"num_paragraphs": 2}, "***\n一\n***\n二\n***", True),
    ("ja:length_constraints:number_paragraphs", {"num_paragraphs": 2}, "一\n***\n***\n二", False),  # empty middle
    ("ja:length_constraints:number_letters", {"num_letters": 5, "relation": "未満"}, "あいう\n", True),
    ("ja:length_constraints:number_letters", {"num_letters": 5, "relation": "以上"}, "あいう\n", False),
    ("ja:length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "愛"}, "一段落。\n\n「愛は」二段落。", True),
    ("ja:length_constraints:nth_paragraph_first_word",
     {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "愛"}, "一段落。\n\n\n\n愛は二段落。", False),
    ("ja:detectable_content:number_placeholders", {"num_placeholders": 2}, "[名前]と[場所]", True),
    ("ja:detectable_content:number_placeholders", {"num_placeholders": 2}, "[名前\n]と[場所]", False),
    ("ja:detectable_content:postscript", {"postscript_marker": "P.S."}, "本文\np. s. 追記", True),
    ("ja:detectable_content:postscript", {"postscript_marker": "P.P.S."}, "本文\nP.P.S 追記", False),  # literal
    ("ja:detectable_content:postscript", {"postscript_marker": "P.P.S"}, "本文\np.p. s 追記", True),
    ("ja:detectable_content:postscript", {"postscript_marker": "追伸"}, "本文\n追伸：また。", True),
    ("ja:detectable_format:number_bullet_lists", {"num_bullets": 2}, "・一\n  ・二\n・・三", True),
    ("ja:detectable_format:number_bullet_lists", {"num_bullets": 1}, "・一\n  ・二", False),  # exactly n
    ("ja:detectable_format:number_numbered_lists", {"num_items": 2}, "1. 一\n2. 二\n3.三", True),
    ("ja:detectable_format:number_numbered_lists", {"num_items": 2}, "1. 一\n２. 二\n 33. 三", False),
    ("ja:detectable_format:constrained_response", {}, "答え：はい、そうです。", True),
    ("ja:detectable_format:constrained_response", {}, "はい。", False),
    ("ja:detectable_format:number_highlighted_sections", {"num_highlights": 2}, "《一》《 》《二》", True),
    ("ja:detectable_format:number_highlighted_sections", {"num_highlights": 2}, "《一》《 》", False),
    ("ja:detectable_format:multiple_sections", {"section_spliter": "章", "num_sections": 2}, "第1章 a\n第２章 b", True),
    ("ja:detectable_format:multiple_sections", {"section_spliter": "節", "num_sections": 2}, "第1章 a\n第2節 b", False),
    ("ja:detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True),
    ("ja:detectable_format:json_format", {}, '{"a": 1', False),
    ("ja:detectable_format:title", {}, "『春の詩』\n本文", True),
    ("ja:detectable_format:title", {}, "『 』\n本文", False),
    ("ja:detectable_format:nominal_ending", {"count": 2}, "美しい花。青い空。", True),
    ("ja:detectable_format:nominal_ending", {"count": 1}, "「青い空。」と言いました。", False),  # quotes removed
    ("ja:combination:two_responses", {}, "一つ目\n******\n二つ目", True),
    ("ja:combination:two_responses", {}, "同じ\n******\n同じ", False),
    ("ja:combination:repeat_prompt", {"prompt_to_repeat": "質問です。"}, " 質問です。答えです。", True),
    ("ja:combination:repeat_prompt", {"prompt_to_repeat": "質問です。"}, "はい。質問です。", False),
    ("ja:startend:end_checker", {"end_phrase": "以上です。"}, "本文。以上です。」\n", True),
    ("ja:startend:end_checker", {"end_phrase": "以上です。"}, "以上です。何か？", False),
    ("ja:startend:sentence_unified_end", {"ending": "です"}, "猫です。「走る。」犬です。", True),
    ("ja:startend:sentence_unified_end", {"ending": "です"}, "猫です。\n", False),  # the trailing "\n" piece
    ("ja:startend:quotation", {}, " 「全部。」 ", True),
    ("ja:startend:quotation", {}, "「", False),
    ("ja:punctuation:no_comma", {}, "一。二", True),
    ("ja:punctuation:no_comma", {}, "一、二", False),
    ("ja:punctuation:no_period", {}, "一、二", True),
    ("ja:punctuation:no_period", {}, "一。", False),
    ("ja:letters:furigana", {}, "漢字（かんじ）を書（か）く", True),
    ("ja:letters:furigana", {}, "漢字（カンジ）", False),  # the reading must be hiragana
    ("ja:letters:kansuuji", {}, "三百二十", True),
    ("ja:letters:kansuuji", {}, "３百", False),  # any decimal digit, full-width too
    ("ja:letters:kanji", {"kanji_limit": 3, "relation": "未満"}, "漢字かな", True),
    ("ja:letters:kanji", {"kanji_limit": 3, "relation": "以上"}, "漢字かな", False),
    ("ja:letters:no_hiragana", {}, "カタカナ漢字", True),
    ("ja:letters:no_hiragana", {}, "カタカナと", False),
    ("ja:letters:hiragana_only", {}, "ひらがなー、123！", True),
    ("ja:letters:hiragana_only", {}, "ひらがなカ", False),
    ("ja:letters:no_katakana", {}, "ひらがな漢字", True),
    ("ja:letters:no_katakana", {}, "ひらがなｶ", False),  # half-width too
    ("ja:letters:katakana_only", {}, "カタカナ・ー、123", True),
    ("ja:letters:katakana_only", {}, "ヴァイオリン", False),  # ヴ is past ン
]


def test_every_instruction_has_cases_both_ways() -> None:
    assert len(INSTRUCTIONS) == 33
    for instruction_id in INSTRUCTIONS:
        outcomes = {ok for i, _, _, ok in CASES if i == instruction_id}
        assert outcomes == {True, False}, instruction_id


@pytest.mark.parametrize(("instruction_id", "kwargs", "response", "followed"), CASES,
                         ids=[f"{c[0].split(':', 1)[1]}-{n}" for n, c in enumerate(CASES)])
def test_instruction(instruction_id: str, kwargs: dict, response: str, followed: bool) -> None:
    assert build(instruction_id, kwargs).check(response) is followed


@pytest.mark.parametrize(("instruction_id", "kwargs", "message"), [
    ("ja:keywords:frequency", {"keyword": "猫", "frequency": 2}, "kwarg 'relation' must be a string"),
    ("ja:keywords:frequency", {"keyword": "猫", "frequency": 2, "relation": "より多い"}, "relation must be one of 未満, 以上"),
    ("ja:keywords:frequency", {"keyword": "猫", "frequency": -1, "relation": "以上"}, "'frequency' must be an integer >= 0"),
    ("ja:keywords:existence", {"keywords": []}, "'keywords' must be a non-empty list"),
    ("ja:keywords:letter_frequency", {"letter": "ア", "let_frequency": 2, "let_relation": "以上"}, "one hiragana letter"),
    ("ja:language:response_language", {"language": "xx"}, "'language' must be one of"),
    ("ja:length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"},
     "'nth_paragraph' must be in 1..num_paragraphs"),
    ("ja:detectable_format:multiple_sections", {"section_spliter": "章|節", "num_sections": 2}, "must be plain text"),
    ("ja:detectable_format:title", {"count": 1}, "unknown kwarg(s) 'count'; it takes none"),
    ("ja:no_such:thing", {}, "unknown instruction id 'ja:no_such:thing'"),
])
def test_bad_kwargs_are_refused_by_name(instruction_id: str, kwargs: dict, message: str) -> None:
    # The reference would draw a random value for most of these: a benchmark must not.
    with pytest.raises(InstructionArgsError, match=message.replace("(", r"\(").replace(")", r"\)").replace("|", r"\|")):
        build(instruction_id, kwargs)


def _input(ids: list[str], kwargs: list[dict], prompt: str = "質問") -> PromptInput:
    return PromptInput.from_row({"key": 1, "prompt": prompt, "instruction_id_list": ids, "kwargs": kwargs})


def test_bad_rows_name_the_field() -> None:
    with pytest.raises(InputError, match=r"line 3: field 'kwargs' must be a list with one object per instruction \(2\)"):
        PromptInput.from_row({"key": 1, "prompt": "p", "instruction_id_list": ["ja:startend:quotation"] * 2,
                              "kwargs": [{}]}, "data.jsonl: line 3")
    with pytest.raises(InputError, match=r"instruction_id_list\[0\]/kwargs\[0\]: ja:letters:kanji: kwarg 'kanji_limit'"):
        _input(["ja:letters:kanji"], [{"relation": "以上"}])
    with pytest.raises(InputError, match="field 'instruction_id_list' is missing"):
        PromptInput.from_row({"key": 1, "prompt": "p", "kwargs": []})


def test_loose_variants_are_the_references_eight() -> None:
    assert loose_variants("**前置き**\n本文 *強調*\n後書き") == [
        "**前置き**\n本文 *強調*\n後書き", "前置き\n本文 強調\n後書き",
        "本文 *強調*\n後書き", "**前置き**\n本文 *強調*", "本文 *強調*",
        "本文 強調\n後書き", "前置き\n本文 強調", "本文 強調",
    ]


def test_strict_and_loose() -> None:
    inp = _input(["ja:startend:quotation", "ja:punctuation:no_period"], [{}, {}])
    response = "はい、書きます：\n「全部です」"
    strict, loose = evaluate(inp, response, "strict"), evaluate(inp, response, "loose")
    assert strict.follow_instruction_list == (False, True)
    assert loose.follow_instruction_list == (True, True)  # without the first line it is quoted
    assert strict.explain() == "strict: 1 of 2 not followed: ja:startend:quotation"
    assert loose.explain() == "loose: all 2 instruction(s) followed"
    # A blank or missing response follows nothing, even "no period".
    for bad in ("  \n", None):
        assert evaluate(inp, bad, "strict").follow_instruction_list == (False, False)
        assert evaluate(inp, bad, "loose").follow_instruction_list == (False, False)
    f = figures([strict, evaluate(inp, None, "strict")], [loose, evaluate(inp, None, "loose")])
    assert (f.prompt_strict, f.inst_strict, f.prompt_loose, f.inst_loose) == (0.0, 0.25, 0.5, 0.5)
    assert (f.prompts, f.instructions) == (2, 4)


def test_responses_are_matched_by_prompt_and_a_missing_one_is_named() -> None:
    rows = [{"key": 7, "prompt": "一", "instruction_id_list": ["ja:punctuation:no_comma"], "kwargs": [{}]},
            {"key": 9, "prompt": "二", "instruction_id_list": ["ja:punctuation:no_comma"], "kwargs": [{}]}]
    ev = evaluate_responses([{"prompt": "二", "response": "あ、い"}, {"prompt": "一", "response": "あい"}], rows)
    assert [r.follow_instruction_list for r in ev.strict] == [(True,), (False,)]
    with pytest.raises(InputError, match=r"no response for 1 of 2 prompts \(keys \[9\]\)"):
        evaluate_responses({"一": "x"}, rows)
    with pytest.raises(InputError, match="the same prompt as row 0"):
        evaluate_responses({}, [rows[0], rows[0]])


# -- hostile output ------------------------------------------------------------------------------

ALL_ARGS = {
    "ja:keywords:existence": {"keywords": ["猫"]},
    "ja:keywords:frequency": {"keyword": "猫", "frequency": 1, "relation": "以上"},
    "ja:keywords:forbidden_words": {"forbidden_words": ["猫"]},
    "ja:keywords:letter_frequency": {"letter": "あ", "let_frequency": 1, "let_relation": "以上"},
    "ja:language:response_language": {"language": "ja"},
    "ja:length_constraints:number_sentences": {"num_sentences": 1, "relation": "以上"},
    "ja:length_constraints:number_paragraphs": {"num_paragraphs": 1},
    "ja:length_constraints:number_letters": {"num_letters": 1, "relation": "以上"},
    "ja:length_constraints:nth_paragraph_first_word": {"num_paragraphs": 1, "nth_paragraph": 1, "first_word": "猫"},
    "ja:detectable_content:number_placeholders": {"num_placeholders": 1},
    "ja:detectable_content:postscript": {"postscript_marker": "P.S."},
    "ja:detectable_format:number_bullet_lists": {"num_bullets": 1},
    "ja:detectable_format:number_numbered_lists": {"num_items": 1},
    "ja:detectable_format:number_highlighted_sections": {"num_highlights": 1},
    "ja:detectable_format:multiple_sections": {"section_spliter": "章", "num_sections": 1},
    "ja:detectable_format:nominal_ending": {"count": 1},
    "ja:combination:repeat_prompt": {"prompt_to_repeat": "猫"},
    "ja:startend:end_checker": {"end_phrase": "猫"},
    "ja:startend:sentence_unified_end": {"ending": "です"},
    "ja:letters:kanji": {"kanji_limit": 1, "relation": "以上"},
}
EVERY = _input(sorted(INSTRUCTIONS), [ALL_ARGS.get(i, {}) for i in sorted(INSTRUCTIONS)])


@pytest.mark.parametrize("response", [
    "\ud800猫\udfff。", "\x00\x1b[31m猫\u202e。", "猫" * 3 + "\n" * 3, "[" * 5, '{"a": ' * 50,
], ids=["lone-surrogates", "control-chars", "short", "brackets", "open-json"])
def test_broken_text_never_raises(response: str) -> None:
    for mode in ("strict", "loose"):
        result = evaluate(EVERY, response, mode)
        assert len(result.follow_instruction_list) == len(INSTRUCTIONS)


@pytest.mark.slow
def test_huge_adversarial_responses_are_judged_without_hanging() -> None:
    """Each of these backtracks quadratically (or worse) in the reference's patterns or in janome:
    at 1-2 million characters that would be hours. Here they are judged in seconds, the same as
    the reference judges them, except that a text past the tokeniser's limit is not tokenised."""
    huge = {
        "brackets": "[" * 2_000_000,  # \[.*?\] from every [
        "blank-lines": "\n" * 2_000_000 + "・",  # ^\s*・ from every line start
        "title-opens": "『" * 2_000_000 + "』",  # 『[^\n]+』 from every 『
        "kanji-run": "漢" * 2_000_000,  # [一-龯]+（ from every kanji
        "spaces": " " * 2_000_000 + "P.S.",  # \s*p\.\s?s\. from every space
        "no-lines": "あの\n" * 700_000,  # the sentence segmenter's join, one line at a time
        "json-depth": "[" * 200_000 + "]" * 200_000,  # json.loads past the recursion limit
        "cats": "猫。" * 1_000_000,  # janome would need minutes
    }
    for name, response in huge.items():
        strict = evaluate(EVERY, response, "strict")
        verdict = dict(zip(strict.instruction_id_list, strict.follow_instruction_list, strict=True))
        if name == "blank-lines":
            assert verdict["ja:detectable_format:number_bullet_lists"] is False  # "・" then nothing: not an item
        if name == "spaces":
            assert verdict["ja:detectable_content:postscript"] is True
        if name == "json-depth":
            assert verdict["ja:detectable_format:json_format"] is False
        if name == "cats":
            assert "too long to tokenise" in strict.explain()
            assert verdict["ja:keywords:forbidden_words"] is False  # it would need tokens: not followed
        if name == "kanji-run":
            assert verdict["ja:keywords:existence"] is False  # no 猫 in it: read off without janome
            assert verdict["ja:letters:furigana"] is False
    assert TOKENISE_MAX_CHARS >= 30_000  # above every real response of the reference's generation
