"""One checker per ``ja:`` instruction id of M-IFEval, as the reference defines its verdict.

Follows lightblue-tech/M-IFEval at 0bc3143a919eef2f9ec64aa26da8a546086653de:
``instructions/ja_instructions.py`` (each class's ``check_following``) and
``instructions_registry.py`` (``JA_INSTRUCTION_DICT``, the ``ja:`` prefix). Written for this
project; what each check computes is said in its docstring.

Where the reference's ``build_description`` would draw a random value (an argument missing,
negative or out of range) a checker here refuses the arguments instead
(:class:`InstructionArgsError`): a benchmark must not score against a different instruction on
each run. The ids in ``ja_input_data.jsonl`` always give every argument. The reference's
``build_description(prompt=...)`` second call never applies to a ``ja:`` instruction (none takes
an argument named ``prompt``), so there is no such step here.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from typing import Any, ClassVar, Mapping

from . import text as ja

__all__ = ["INSTRUCTIONS", "Instruction", "InstructionArgsError", "LANGUAGE_CODES", "build"]

# ResponseLanguageChecker names the language from this table (ja_instructions_util.LANGUAGE_CODES);
# a code outside it is a KeyError there, an error here.
LANGUAGE_CODES = frozenset(
    "en es pt ar hi fr ru de ja it bn uk th ur ta te bg ko pl he fa vi ne sw kn mr gu pa ml fi".split()
)
RELATIONS = ("未満", "以上")  # less than, at least
CONSTRAINED_RESPONSES = ("はい、そうです。", "いいえ、違います。", "どちらとも言えません。")


class InstructionArgsError(ValueError):
    """An instruction's kwargs are not what its checker needs; the message names both."""


def _compare(actual: int, relation: str, threshold: int) -> bool:
    return actual < threshold if relation == "未満" else actual >= threshold


class Instruction:
    """A checker: built from one prompt's kwargs for its id, then ``check(response) -> bool``."""

    id: ClassVar[str]
    params: ClassVar[dict[str, type]] = {}  # every argument is required: none is drawn at random

    def __init__(self, kwargs: Mapping[str, Any]) -> None:
        if not isinstance(kwargs, Mapping):
            raise InstructionArgsError(f"{self.id}: kwargs must be an object, got {type(kwargs).__name__}")
        unknown = sorted(set(kwargs) - set(self.params))
        if unknown:
            raise InstructionArgsError(
                f"{self.id}: unknown kwarg(s) {', '.join(map(repr, unknown))}; it takes "
                f"{', '.join(self.params) or 'none'}"
            )
        for name, kind in self.params.items():
            value = kwargs.get(name)
            if kind is list:
                ok = isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)
                want = "a non-empty list of non-empty strings"
            elif kind is int:
                ok = isinstance(value, int) and not isinstance(value, bool) and value >= 0
                want = "an integer >= 0"
            else:
                ok = isinstance(value, str)
                want = "a string"
            if not ok:
                raise InstructionArgsError(f"{self.id}: kwarg {name!r} must be {want}, got {value!r}")
            setattr(self, name, value)
        if "relation" in self.params or "let_relation" in self.params:
            relation = kwargs.get("relation", kwargs.get("let_relation"))
            if relation not in RELATIONS:
                raise InstructionArgsError(f"{self.id}: relation must be one of {', '.join(RELATIONS)}, got {relation!r}")
        self.setup()

    def setup(self) -> None:
        """Checks and derived values beyond the types (as build_description normalises them)."""

    def require(self, ok: bool, problem: str) -> None:
        if not ok:
            raise InstructionArgsError(f"{self.id}: {problem}")

    def check(self, value: str) -> bool:
        raise NotImplementedError


INSTRUCTIONS: dict[str, type[Instruction]] = {}


def _register(instruction_id: str):
    def deco(cls: type[Instruction]) -> type[Instruction]:
        cls.id = instruction_id
        INSTRUCTIONS[instruction_id] = cls
        return cls

    return deco


def build(instruction_id: str, kwargs: Mapping[str, Any]) -> Instruction:
    """The checker for one instruction of a prompt."""
    cls = INSTRUCTIONS.get(instruction_id)
    if cls is None:
        raise InstructionArgsError(f"unknown instruction id {instruction_id!r} (M-IFEval's ja: ids: "
                                   f"{', '.join(sorted(INSTRUCTIONS))})")
    return cls(kwargs)


# -- keywords ------------------------------------------------------------------------------------
# janome token surfaces are pieces of the text, so a word that is not a substring is not a token:
# those verdicts are read off without tokenising.


@_register("ja:keywords:existence")
class KeywordExistence(Instruction):
    """Every keyword is the surface of a janome token."""

    keywords: list[str]
    params = {"keywords": list}

    def check(self, value: str) -> bool:
        if any(k not in value for k in self.keywords):
            return False
        surfaces = {s for s, _ in ja.tokens(value)}
        return all(k in surfaces for k in self.keywords)


@_register("ja:keywords:frequency")
class KeywordFrequency(Instruction):
    """The number of janome tokens whose surface is the keyword (stripped), against the relation."""

    keyword: str
    frequency: int
    relation: str
    params = {"keyword": str, "frequency": int, "relation": str}

    def setup(self) -> None:
        self.keyword = self.keyword.strip()
        self.require(bool(self.keyword), "kwarg 'keyword' must not be empty")

    def check(self, value: str) -> bool:
        count = Counter(s for s, _ in ja.tokens(value))[self.keyword] if self.keyword in value else 0
        return _compare(count, self.relation, self.frequency)


@_register("ja:keywords:forbidden_words")
class ForbiddenWords(Instruction):
    """No janome token has a forbidden word as its surface."""

    forbidden_words: list[str]
    params = {"forbidden_words": list}

    def check(self, value: str) -> bool:
        present = [w for w in self.forbidden_words if w in value]
        if not present:
            return True
        surfaces = {s for s, _ in ja.tokens(value)}
        return not any(w in surfaces for w in present)


@_register("ja:keywords:letter_frequency")
class LetterFrequency(Instruction):
    """Occurrences of the hiragana letter plus its katakana (code point + 96), against the relation
    (anything but 未満 counts as 以上, as in the reference)."""

    letter: str
    let_frequency: int
    let_relation: str
    params = {"letter": str, "let_frequency": int, "let_relation": str}

    def setup(self) -> None:
        self.require(len(self.letter) == 1 and "ぁ" <= self.letter <= "ん",
                     f"kwarg 'letter' must be one hiragana letter (ぁ-ん), got {self.letter!r}")

    def check(self, value: str) -> bool:
        count = value.count(self.letter) + value.count(chr(ord(self.letter) + 96))
        return _compare(count, self.let_relation, self.let_frequency)


# -- language and length -------------------------------------------------------------------------


@_register("ja:language:response_language")
class ResponseLanguage(Instruction):
    """langdetect's language of the whole response is the one asked for; a text langdetect cannot
    read (no letters) counts as followed, as in the reference."""

    language: str
    params = {"language": str}

    def setup(self) -> None:
        self.require(self.language in LANGUAGE_CODES,
                     f"kwarg 'language' must be one of {', '.join(sorted(LANGUAGE_CODES))}, got {self.language!r}")

    def check(self, value: str) -> bool:
        try:
            return ja.detect_language(value) == self.language
        except ja.LanguageUndetectable:
            return True


@_register("ja:length_constraints:number_sentences")
class NumberOfSentences(Instruction):
    """ja-sentence-segmenter's sentence count (see :func:`text.count_sentences`) against the relation."""

    num_sentences: int
    relation: str
    params = {"num_sentences": int, "relation": str}

    def check(self, value: str) -> bool:
        return _compare(ja.count_sentences(value), self.relation, self.num_sentences)


@_register("ja:length_constraints:number_paragraphs")
class NumberOfParagraphs(Instruction):
    """Exactly n paragraphs split by ``\\s?\\*\\*\\*\\s?``; an empty first or last piece does not
    count, an empty piece in between fails."""

    num_paragraphs: int
    params = {"num_paragraphs": int}
    _DIVIDER = re.compile(r"\s?\*\*\*\s?")  # fixed length: linear

    def check(self, value: str) -> bool:
        pieces = self._DIVIDER.split(value)
        count = len(pieces)
        for i, piece in enumerate(pieces):
            if not piece.strip():
                if i in (0, len(pieces) - 1):
                    count -= 1
                else:
                    return False
        return count == self.num_paragraphs


@_register("ja:length_constraints:number_letters")
class NumberOfLetters(Instruction):
    """``len(response)`` (code points, spaces and newlines included) against the relation."""

    num_letters: int
    relation: str
    params = {"num_letters": int, "relation": str}

    def check(self, value: str) -> bool:
        return _compare(len(value), self.relation, self.num_letters)


@_register("ja:length_constraints:nth_paragraph_first_word")
class NthParagraphFirstWord(Instruction):
    """Paragraphs split on ``"\\n\\n"``: the non-blank ones number exactly n, and the nth piece of the
    split (blank ones included, as the reference indexes) stripped of spaces and of leading 「 and
    『 begins with the word (lower-cased when the instruction is built; the response is not)."""

    num_paragraphs: int
    nth_paragraph: int
    first_word: str
    params = {"num_paragraphs": int, "nth_paragraph": int, "first_word": str}

    def setup(self) -> None:
        self.require(1 <= self.nth_paragraph <= self.num_paragraphs,
                     f"kwarg 'nth_paragraph' must be in 1..num_paragraphs ({self.num_paragraphs}), got {self.nth_paragraph}")
        self.first_word = self.first_word.lower()

    def check(self, value: str) -> bool:
        paragraphs = value.split("\n\n")  # re.split(r"\n\n") splits the same way
        count = sum(1 for p in paragraphs if p.strip())
        if self.nth_paragraph > count:
            return False
        paragraph = paragraphs[self.nth_paragraph - 1].strip()
        if not paragraph:
            return False
        paragraph = paragraph.lstrip("「").lstrip("『")
        return count == self.num_paragraphs and paragraph[:len(self.first_word)] == self.first_word


# -- content and format --------------------------------------------------------------------------


@_register("ja:detectable_content:number_placeholders")
class Placeholders(Instruction):
    """At least n ``[...]`` on one line (``re.findall(r"\\[.*?\\]")``)."""

    num_placeholders: int
    params = {"num_placeholders": int}

    def check(self, value: str) -> bool:
        count = sum(1 for line in value.split("\n") for _ in ja.lazy_spans(line, "[", "]"))
        return count >= self.num_placeholders


@_register("ja:detectable_content:postscript")
class Postscript(Instruction):
    """The marker occurs anywhere, case-insensitively: "P.S." as ``p\\.\\s?s\\.``, "P.P.S" as
    ``p\\.\\s?p\\.\\s?s``, any other marker literally (so "P.P.S.", with its final dot, is matched
    literally, as in the reference). The reference's ``\\s*`` before and ``.*$`` after cannot
    change whether there is a match, so they are left out (with them, a long run of spaces is
    quadratic)."""

    postscript_marker: str
    params = {"postscript_marker": str}

    def setup(self) -> None:
        marker = self.postscript_marker.strip()
        if marker == "P.P.S":
            pattern = r"p\.\s?p\.\s?s"
        elif marker == "P.S.":
            pattern = r"p\.\s?s\."
        else:
            pattern = re.escape(marker)
        self._pattern = re.compile(pattern, re.IGNORECASE)

    def check(self, value: str) -> bool:
        return self._pattern.search(value) is not None


@_register("ja:detectable_format:number_bullet_lists")
class BulletList(Instruction):
    """Exactly n lines that start (after spaces) with "・" and a character that is not "・"."""

    num_bullets: int
    params = {"num_bullets": int}

    def check(self, value: str) -> bool:
        return ja.count_bullet_items(value) == self.num_bullets


@_register("ja:detectable_format:number_numbered_lists")
class NumberedList(Instruction):
    """Exactly n lines that start (after spaces) with digits, a dot and a space character."""

    num_items: int
    params = {"num_items": int}

    def check(self, value: str) -> bool:
        return ja.count_numbered_items(value) == self.num_items


@_register("ja:detectable_format:constrained_response")
class ConstrainedResponse(Instruction):
    """One of the three fixed answers occurs in the response."""

    def check(self, value: str) -> bool:
        value = value.strip()
        return any(option in value for option in CONSTRAINED_RESPONSES)


@_register("ja:detectable_format:number_highlighted_sections")
class HighlightedSections(Instruction):
    """At least n ``《…》`` on one line with something besides spaces inside."""

    num_highlights: int
    params = {"num_highlights": int}
    _HIGHLIGHT = re.compile(r"《[^\n《》]*》")  # the class excludes both brackets: linear

    def check(self, value: str) -> bool:
        count = sum(1 for h in self._HIGHLIGHT.findall(value) if h.strip("《》").strip())
        return count >= self.num_highlights


@_register("ja:detectable_format:multiple_sections")
class MultipleSections(Instruction):
    """At least n headers ``第<digits><splitter>`` (an optional space character around it)."""

    section_spliter: str
    num_sections: int
    params = {"section_spliter": str, "num_sections": int}

    def setup(self) -> None:
        splitter = self.section_spliter.strip()
        # The reference pastes the splitter into its pattern unescaped; a literal one is the same.
        self.require(re.escape(splitter) == splitter,
                     f"kwarg 'section_spliter' must be plain text (章, 節, 項), got {splitter!r}")
        # `[\d０-９]+` then a non-digit: each 第 scans its own digit run once, so this is linear.
        self._header = re.compile(r"\s?第[\d\uFF10-\uFF19]+" + splitter + r"\s?")

    def check(self, value: str) -> bool:
        return sum(1 for _ in self._header.finditer(value)) >= self.num_sections


@_register("ja:detectable_format:json_format")
class JsonFormat(Instruction):
    """The stripped response, less a leading ```json/```Json/```JSON/``` and a trailing ```, is JSON.
    JSON nested past Python's recursion limit is not followed (the reference would crash)."""

    def check(self, value: str) -> bool:
        value = value.strip()
        for prefix in ("```json", "```Json", "```JSON", "```"):
            value = value.removeprefix(prefix)
        value = value.removesuffix("```").strip()
        try:
            json.loads(value)
        except (ValueError, RecursionError):
            return False
        return True


@_register("ja:detectable_format:title")
class Title(Instruction):
    """A ``『…』`` title on one line with something besides brackets and spaces inside."""

    def check(self, value: str) -> bool:
        return ja.has_title(value)


@_register("ja:detectable_format:nominal_ending")
class NominalEnding(Instruction):
    """At least n janome tokens whose surface is part of "。！？" right after a noun (名詞…), with
    「…」 and 『…』 removed first."""

    count: int
    params = {"count": int}

    def check(self, value: str) -> bool:
        value = ja.remove_quoted(value)
        found = 0
        if any(mark in value for mark in "。！？"):
            toks = ja.tokens(value)
            found = sum(1 for i in range(1, len(toks)) if toks[i][0] in "。！？" and toks[i - 1][1].startswith("名詞"))
        return found >= self.count


# -- combinations, start and end -----------------------------------------------------------------


@_register("ja:combination:two_responses")
class TwoResponses(Instruction):
    """Split on "******": exactly two non-blank answers that differ (stripped); a blank piece is
    allowed only first or last."""

    def check(self, value: str) -> bool:
        answers = []
        pieces = value.split("******")
        for i, piece in enumerate(pieces):
            if piece.strip():
                answers.append(piece)
            elif i not in (0, len(pieces) - 1):
                return False
        return len(answers) == 2 and answers[0].strip() != answers[1].strip()


@_register("ja:combination:repeat_prompt")
class RepeatPrompt(Instruction):
    """The stripped response starts with the stripped request."""

    prompt_to_repeat: str
    params = {"prompt_to_repeat": str}

    def setup(self) -> None:
        self.require(bool(self.prompt_to_repeat), "kwarg 'prompt_to_repeat' must not be empty")

    def check(self, value: str) -> bool:
        return value.strip().startswith(self.prompt_to_repeat.strip())


@_register("ja:startend:end_checker")
class EndPhrase(Instruction):
    """The response and the phrase, each stripped of spaces and then of 」』 at both ends: the
    response ends with the phrase."""

    end_phrase: str
    params = {"end_phrase": str}

    def setup(self) -> None:
        self._phrase = self.end_phrase.strip().strip("」』")

    def check(self, value: str) -> bool:
        return value.strip().strip("」』").endswith(self._phrase)


@_register("ja:startend:sentence_unified_end")
class SentenceEnding(Instruction):
    """With 「…」 and 『…』 removed, every non-empty piece between 。！？ ends with the ending (the
    piece after the last mark too, even if it is only a newline)."""

    ending: str
    params = {"ending": str}
    _MARKS = re.compile("[。！？]")

    def check(self, value: str) -> bool:
        return all(not s or s.endswith(self.ending) for s in self._MARKS.split(ja.remove_quoted(value)))


@_register("ja:startend:quotation")
class Quotation(Instruction):
    """The stripped response has two characters or more, starts with 「 and ends with 」."""

    def check(self, value: str) -> bool:
        value = value.strip()
        return len(value) > 1 and value[0] == "「" and value[-1] == "」"


@_register("ja:punctuation:no_comma")
class NoComma(Instruction):
    """No 、 anywhere."""

    def check(self, value: str) -> bool:
        return "、" not in value


@_register("ja:punctuation:no_period")
class NoPeriod(Instruction):
    """No 。 anywhere."""

    def check(self, value: str) -> bool:
        return "。" not in value


# -- letters -------------------------------------------------------------------------------------


def _is_letter(char: str) -> bool:
    return unicodedata.category(char).startswith("L")


@_register("ja:letters:furigana")
class Furigana(Instruction):
    """Every run of kanji (U+4E00-U+9FAF) is followed by （hiragana）: as many such runs as runs."""

    def check(self, value: str) -> bool:
        runs, with_reading = ja.furigana_counts(value)
        return runs == with_reading


@_register("ja:letters:kansuuji")
class KanjiNumerals(Instruction):
    """No decimal digit of any script (``\\d``) anywhere."""

    def check(self, value: str) -> bool:
        return not any(c.isdecimal() for c in value)  # str.isdecimal is re's \d


@_register("ja:letters:kanji")
class KanjiCount(Instruction):
    """The number of kanji (U+4E00-U+9FAF) against the relation."""

    kanji_limit: int
    relation: str
    params = {"kanji_limit": int, "relation": str}

    def check(self, value: str) -> bool:
        return _compare(sum(1 for c in value if "\u4e00" <= c <= "\u9faf"), self.relation, self.kanji_limit)


@_register("ja:letters:no_hiragana")
class NoHiragana(Instruction):
    """No character in ぁ-ゖ."""

    def check(self, value: str) -> bool:
        return not any("ぁ" <= c <= "ゖ" for c in value)


@_register("ja:letters:hiragana_only")
class HiraganaOnly(Instruction):
    """Every letter (Unicode category L*) is in ぁ-ん or is ー."""

    def check(self, value: str) -> bool:
        return all("ぁ" <= c <= "ん" or c == "ー" or not _is_letter(c) for c in value)


@_register("ja:letters:no_katakana")
class NoKatakana(Instruction):
    """No character in ァ-ヺ or half-width ｦ-ﾟ."""

    def check(self, value: str) -> bool:
        return not any("ァ" <= c <= "ヺ" or "ｦ" <= c <= "ﾟ" for c in value)


@_register("ja:letters:katakana_only")
class KatakanaOnly(Instruction):
    """Every letter is in ァ-ン (so not ヴ), ー, ・ or half-width ｦ-ﾟ."""

    def check(self, value: str) -> bool:
        return all("ァ" <= c <= "ン" or c in "ー・" or "ｦ" <= c <= "ﾟ" or not _is_letter(c) for c in value)
