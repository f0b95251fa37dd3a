"""Japanese text primitives the M-IFEval checks are defined with, each in linear time.

Follows lightblue-tech/M-IFEval at 0bc3143a919eef2f9ec64aa26da8a546086653de:
``instruction_utils/ja_instructions_util.py`` (``count_sentences``, ``tokenizing_texts``) and the
regular expressions of ``instructions/ja_instructions.py``. Written for this project.

The reference applies several regular expressions to model output that backtrack quadratically on
hostile text (``\\[.*?\\]`` on a line of ``[``, ``^\\s*・…`` on a run of blank lines, ``『[^\\n]+』`` on a
line of ``『``, ``[一-龯]+（…`` on a long run of kanji). The scanners below give the same counts as
those patterns under ``re`` (``tests/test_ifeval_text.py`` checks them against the patterns on
random text) in one pass. The libraries are the reference's: janome 0.5.0 (tokens),
ja-sentence-segmenter 0.0.2 (sentences) and langdetect 1.0.9 (language), imported on first use.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterator
from typing import Any, Callable

__all__ = [
    "TOKENISE_MAX_CHARS",
    "TooLongToTokenise",
    "count_bullet_items",
    "count_numbered_items",
    "count_sentences",
    "detect_language",
    "furigana_counts",
    "has_title",
    "lazy_spans",
    "remove_quoted",
    "tokens",
]

# janome cuts its input into chunks by re-slicing the rest of the text for each one (quadratic
# copying) and reads 7-40k characters a second: past this many characters a check that needs
# tokens is not run (see TooLongToTokenise). Real responses of the reference's generation
# (max_tokens 2048) stay under 30k characters.
TOKENISE_MAX_CHARS = 100_000


class TooLongToTokenise(ValueError):
    """A text that a check would have to tokenise is longer than :data:`TOKENISE_MAX_CHARS`."""

    def __init__(self, chars: int) -> None:
        self.chars = chars
        super().__init__(f"{chars} characters: too long to tokenise (limit {TOKENISE_MAX_CHARS})")


# -- spans and line items ---------------------------------------------------------------------


def lazy_spans(line: str, opening: str, closing: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each match of ``re.escape(opening) + ".*?" + re.escape(closing)`` in one
    line (no ``\\n``), as ``re.finditer`` finds them: an opening and the first closing after it."""
    pos = 0
    while True:
        start = line.find(opening, pos)
        if start < 0:
            return
        end = line.find(closing, start + 1)
        if end < 0:
            return  # no later opening on this line has a closing after it either
        yield start, end + 1
        pos = end + 1


def remove_quoted(text: str) -> str:
    """``re.sub('「.*?」', '', text)`` then the same with 『』: what the sentence-ending and
    nominal-ending checks read. ``.`` does not cross a line, so each line is done on its own."""
    for opening, closing in (("「", "」"), ("『", "』")):
        lines = text.split("\n")
        for n, line in enumerate(lines):
            if opening in line:
                kept, last = [], 0
                for start, end in lazy_spans(line, opening, closing):
                    kept.append(line[last:start])
                    last = end
                kept.append(line[last:])
                lines[n] = "".join(kept)
        text = "\n".join(lines)
    return text


def _count_line_items(text: str, head: Callable[[str, int], int]) -> int:
    """Matches of ``^\\s*<head>.*$`` (re.MULTILINE), counted as ``re.findall`` does.

    ``head(text, q)`` is the index just after the item's head when one starts at ``q`` (the first
    non-space character at or after a line start), else -1. Since a head never starts with a
    space, ``\\s*`` has exactly one way to match, so each line start is tried once; ``q`` only
    moves forward (a run of spaces and newlines is walked once, not once per line in it)."""
    n = len(text)
    count = 0
    p = q = 0
    while True:
        if q < p:
            q = p
        while q < n and text[q].isspace():  # str.isspace is re's \s (checked over all code points)
            q += 1
        after = head(text, q) if q < n else -1
        if after >= 0:
            count += 1
            end = text.find("\n", after)  # `.*$`: the rest of the line the head ends in
            if end < 0:
                return count
            p = end + 1  # the search goes on at `end`, a newline: the next line start has the same q
        else:
            newline = text.find("\n", p)
            if newline < 0:
                return count
            p = newline + 1


def _bullet_head(text: str, q: int) -> int:
    # `・[^\・]`: the bullet and one more character that is not a bullet (a newline counts)
    if text[q] == "・" and q + 1 < len(text) and text[q + 1] != "・":
        return q + 2
    return -1


def _numbered_head(text: str, q: int) -> int:
    # `\d+\.\s`: every digit (re's \d is str.isdecimal), a dot, one space character (maybe "\n")
    r = q
    while r < len(text) and text[r].isdecimal():
        r += 1
    if r > q and r + 1 < len(text) and text[r] == "." and text[r + 1].isspace():
        return r + 2
    return -1


def count_bullet_items(text: str) -> int:
    """``len(re.findall(r"^\\s*・[^\\・].*$", text, flags=re.MULTILINE))``."""
    return _count_line_items(text, _bullet_head)


def count_numbered_items(text: str) -> int:
    """``len(re.findall(r"^\\s*\\d+\\.\\s.*$", text, flags=re.MULTILINE))``."""
    return _count_line_items(text, _numbered_head)


def has_title(text: str) -> bool:
    """A match of ``『[^\\n]+』`` (re.findall) with something besides brackets and spaces inside.

    On a line, the first 『 takes the greedy run to the line's last 』 when that is at least two
    characters on; when it is not, no later 『 on the line can match either. So a line has at most
    one match, found without backtracking."""
    for line in text.split("\n"):
        start = line.find("『")
        if start < 0:
            continue
        last = line.rfind("』")
        if last >= start + 2 and line[start:last + 1].lstrip("『").rstrip("』").strip():
            return True
    return False


_KANJI_RUN = re.compile("[\u4e00-\u9faf]+")
_FURIGANA = re.compile("（[ぁ-ん]+）")


def furigana_counts(text: str) -> tuple[int, int]:
    """(kanji runs, kanji runs followed by （hiragana）): ``len(re.findall('[一-龯]+', text))`` and
    ``len(re.findall('[一-龯]+（[ぁ-ん]+）', text))``. The second pattern can only match from the
    start of a maximal kanji run (a shorter start reaches the same end and fails the same way), so
    it is tried once per run instead of once per kanji."""
    runs = with_reading = 0
    for run in _KANJI_RUN.finditer(text):
        runs += 1
        if _FURIGANA.match(text, run.end()):
            with_reading += 1
    return runs, with_reading


# -- janome ------------------------------------------------------------------------------------

_local = threading.local()
_SURROGATE = re.compile("[\ud800-\udfff]")


def _tokenizer() -> Any:
    tokenizer = getattr(_local, "tokenizer", None)
    if tokenizer is None:
        from janome.tokenizer import Tokenizer  # janome's dictionary loads on first use

        tokenizer = _local.tokenizer = Tokenizer()
    return tokenizer


@functools.lru_cache(maxsize=64)
def _tokens(text: str) -> tuple[tuple[str, str], ...]:
    return tuple((t.surface, t.part_of_speech) for t in _tokenizer().tokenize(text))


def tokens(text: str) -> tuple[tuple[str, str], ...]:
    """janome 0.5.0's ``Tokenizer().tokenize(text)`` as ``(surface, part_of_speech)`` pairs; the
    last few texts are remembered (the loose variants and the strict response share them).

    Raises :class:`TooLongToTokenise` past :data:`TOKENISE_MAX_CHARS`. Lone surrogates become
    U+FFFD first (janome encodes to UTF-8 and would raise, as the reference would)."""
    if len(text) > TOKENISE_MAX_CHARS:
        raise TooLongToTokenise(len(text))
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return _tokens(text)


# -- sentences -----------------------------------------------------------------------------------


def count_sentences(text: str) -> int:
    """The reference's ``count_sentences``: ja-sentence-segmenter's neologd ``normalize``, one
    item per line (``str.splitlines``), a line ending in "の" (two characters or more, so
    ``^(?P<result>.+)(の)$`` matches) joined with the next, then a split after each 。 ! ? outside
    「」 and () (``split_punctuation``); the count of pieces.

    The joining step is done here: the library re-matches its regular expression against the
    growing joined text, which is quadratic on a long run of lines ending in "の"."""
    from ja_sentence_segmenter.normalize.neologd_normalizer import normalize
    from ja_sentence_segmenter.split.simple_splitter import split_punctuation

    joined: list[str] = []
    former: list[str] | None = None  # the pieces of the line being joined
    length, last = 0, ""  # its length and last character: all the joining rule looks at
    for normalised in normalize(text):
        for line in normalised.splitlines():
            if former is not None and length >= 2 and last == "の":
                former.append(line)
                length += len(line)
                last = line[-1] if line else last
                continue
            if former is not None:
                joined.append("".join(former))
            former, length, last = [line], len(line), line[-1:]
    if former is not None:
        joined.append("".join(former))
    return sum(1 for _ in split_punctuation(joined, punctuations="。!?"))


# -- language ----------------------------------------------------------------------------------

_factory_lock = threading.Lock()
_factory: Any = None


class LanguageUndetectable(ValueError):
    """langdetect found nothing to go on (no letters)."""


def detect_language(text: str) -> str:
    """langdetect 1.0.9's ``detect(text)`` with the seed fixed at 0.

    langdetect samples at random, and the reference does not seed it, so a text between two
    languages can go either way from run to run; a seeded factory of our own makes the verdict
    reproducible without touching langdetect's global one. Raises :class:`LanguageUndetectable`
    where langdetect raises ``LangDetectException``."""
    global _factory
    from langdetect.lang_detect_exception import LangDetectException

    with _factory_lock:
        if _factory is None:
            from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

            factory = DetectorFactory()
            factory.load_profile(PROFILES_DIRECTORY)
            factory.seed = 0
            _factory = factory
    detector = _factory.create()
    try:
        detector.append(text)
        return detector.detect()
    except LangDetectException as e:
        raise LanguageUndetectable(str(e)) from None
