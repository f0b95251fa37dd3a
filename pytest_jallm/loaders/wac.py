"""The Wikipedia Annotated Corpus (ku-nlp/WikipediaAnnotatedCorpus, KNP format) as
llm-jp-eval 1.3.0's five FA tasks: reading, ner, dependency, pas and coreference.

Documents are read with `rhoknp` (the KNP semantics: phrases and their dependencies,
named entities, predicate-argument structures, coreference entities). One row per
document: ``id``, ``text`` (the model's input) and ``answer``. A document whose answer is
empty is dropped, and documents come sorted by file name, as llm-jp-eval does.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from functools import lru_cache
from typing import Any, Mapping, Sequence

from ..errors import DataError
from ..readlog import note_library
from . import register_loader
from .files import Rows, bad_row, file_stem, postprocess, read_text

TASKS = ("reading", "ner", "dependency", "pas", "coreference")
SPLITS = ("train", "dev", "test")

_NE_TEXT = {
    "ORGANIZATION": "組織名", "PERSON": "人名", "LOCATION": "地名", "ARTIFACT": "固有物名",
    "DATE": "日付表現", "TIME": "時刻表現", "MONEY": "金額表現", "PERCENT": "割合表現",
}
_LETTER_READING = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [
    "えー", "びー", "しー", "でぃー", "いー", "えふ", "じー", "えいち", "あい", "じぇー", "けー", "える", "えむ",
    "えぬ", "おー", "ぴー", "きゅー", "あーる", "えす", "てぃー", "ゆー", "ぶい", "だぶりゅー", "えっくす", "わい", "ぜっと",
], strict=True))
# The cases llm-jp-eval lists, in its order; ガ２ (a second nominative) is written ガ.
_PAS_CASES = ("ガ", "デ", "ト", "ニ", "ヘ", "ヲ", "カラ", "ガ２", "マデ", "ヨリ")
_FUNCTION_POS = ("助詞", "特殊", "判定詞")
_PARENTHESIS = re.compile(r"括弧始:(\S+) 括弧終:(\S+) 括弧位置:(\d+)")


@register_loader("wac")
def load_wac(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """Rows of one task (``task`` option) from the corpus.

    A file may be the corpus root directory (``id/`` and ``knp/``; option ``split`` names
    the id list: train, dev or test), a split's id list (``id/<split>.id``; its documents
    come from the ``knp/`` folder beside ``id/`` in a local copy, else from ``knp_base_url``), or
    single ``.knp`` documents. ``max_rows`` stops after that many non-empty documents in
    sorted order: a few-shot pool needs only the first few, and parsing all 1,517 train
    documents takes about 20 s.
    """
    note_library("rhoknp")  # its parse is the answer
    task = options.get("task")
    if task not in TASKS:
        raise DataError(f"wac loader: option 'task' is {task!r}; expected one of {', '.join(TASKS)}")
    documents: list[str] = []
    for path in files:
        if os.path.isdir(path):
            split = options.get("split")
            if split not in SPLITS:
                raise DataError(
                    f"{path}: a corpus directory needs loader option 'split' (one of {', '.join(SPLITS)}), got {split!r}"
                )
            documents += _documents_of(os.path.join(path, "id", f"{split}.id"), os.path.join(path, "knp"))
        elif path.split("?")[0].endswith(".id"):
            beside = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "knp")
            if not _is_url(path) and os.path.isdir(beside):
                base = beside  # a local copy of the corpus: its own documents
            elif options.get("knp_base_url"):
                base = options["knp_base_url"]
            else:
                raise DataError(f"{path}: no knp/ folder beside id/, and no loader option 'knp_base_url' to fetch the documents from")
            documents += _documents_of(path, base)
        else:
            documents.append(path)
    limit = options.get("max_rows")
    rows: Rows = []
    for path in sorted(documents, key=lambda p: p.rstrip("/").rsplit("/", 1)[-1]):
        text, answer = convert_document(path, read_text(path), task)
        if answer.strip():
            rows.append({"id": file_stem(path), "text": text, "answer": answer, "_row": len(rows)})
            if limit is not None and len(rows) >= int(limit):
                break
    return postprocess(rows, options)


# Rows come in sorted document order and `max_rows` stops there: the data layer may pass a run's
# --jallm-limit down as `max_rows` (pytest_jallm.data.load_source).
load_wac.stops_at_max_rows = True  # type: ignore[attr-defined]


def _is_url(location: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*://", location) is not None


def _documents_of(id_list: str, knp_base: str) -> list[str]:
    sep = "/" if _is_url(knp_base) else os.sep
    return [f"{knp_base.rstrip('/')}{sep}{doc_id[:8]}{sep}{doc_id}.knp" for doc_id in read_text(id_list).split()]


_CONVERTERS: dict[str, Any] = {}  # task -> function(document) -> (input, answer); filled below


def convert_document(path: str, content: str, task: str) -> tuple[str, str]:
    """(input, answer) of one task for one KNP document."""
    return _converted(path, content, task)


@lru_cache(maxsize=8192)
def _converted(path: str, content: str, task: str) -> tuple[str, str]:
    return _CONVERTERS[task](_parsed(path, content))


@lru_cache(maxsize=512)
def _parsed(path: str, content: str):
    """The document, parsed once for all five tasks (the conversions only read it)."""
    from rhoknp import Document

    logging.getLogger("rhoknp").setLevel(logging.ERROR)  # it warns about the corpus' known quirks
    try:
        return Document.from_knp(content)
    except Exception as e:  # rhoknp raises assorted errors on malformed KNP
        raise bad_row(path, "<document>", "knp", f"not readable as KNP: {type(e).__name__}: {e}") from None


def _is_parenthetical(sentence) -> bool:
    return "括弧始" in sentence.misc_comment


def _text_with_parentheses(document) -> str:
    """The text with each parenthetical sentence put back where the corpus took it out
    (a sentence marked 括弧削除 is followed by its removed parenthesis)."""
    out = ""
    sentences = iter(document.sentences)
    for sentence in sentences:
        text = sentence.text
        if "括弧削除" in sentence.misc_comment:
            inner = next(sentences, None)
            match = _PARENTHESIS.search(inner.misc_comment) if inner is not None else None
            if match is None or inner is None:
                raise DataError(f"document {document.did}: sentence {sentence.sid} lost a parenthesis that the next sentence does not hold")
            pos = int(match.group(3))
            text = text[:pos] + match.group(1) + inner.text + match.group(2) + text[pos:]
        out += text
    return out


def _reading(document) -> tuple[str, str]:
    text, reading = "", ""
    for sentence in document.sentences:
        if _is_parenthetical(sentence):
            continue
        text += sentence.text
        for morpheme in sentence.morphemes:
            if morpheme.reading in (" ", "　") and morpheme.text not in (" ", "　"):
                continue  # a jukujikun reading is given on the first morpheme only
            first = morpheme.reading.split("/")[0]  # some have alternatives (にほん/にっぽん)
            if all(ch in _LETTER_READING for ch in first):
                first = "".join(_LETTER_READING[ch] for ch in first)
            reading += first
    return text, reading


def _ner(document) -> tuple[str, str]:
    entities = [
        f"{ne.text}（{_NE_TEXT[ne.category.name]}）" for ne in document.named_entities if ne.category.name in _NE_TEXT
    ]
    return _text_with_parentheses(document), " ".join(entities)


def _dependency(document) -> tuple[str, str]:
    text, lines = "", []
    for sentence in document.sentences:
        if _is_parenthetical(sentence):
            continue
        text += sentence.text
        for phrase in sentence.phrases:
            if phrase.parent is not None:
                lines.append(f"{phrase.text} -> {phrase.parent.text}")
    return text, "\n".join(lines)


def _core_text(morphemes, trim_end: tuple[str, ...] = _FUNCTION_POS) -> str:
    """The morphemes' text without leading particles/symbols/copulas (and trailing ones of
    `trim_end`); all of it when nothing else is left."""
    start, end = 0, len(morphemes)
    while start < end and morphemes[start].pos in _FUNCTION_POS:
        start += 1
    while end > start and morphemes[end - 1].pos in trim_end:
        end -= 1
    core = morphemes[start:end] or morphemes
    return "".join(m.text for m in core)


def _mention_text(base_phrase) -> str:
    """A base phrase with the neighbouring base phrases of its phrase that depend on it."""
    siblings = base_phrase.phrase.base_phrases
    anchor = siblings.index(base_phrase)
    dependents = _subtree(base_phrase)
    span = [base_phrase]
    for bp in siblings[anchor + 1 :]:
        if bp not in dependents:
            break
        span.append(bp)
    for bp in reversed(siblings[:anchor]):
        if bp not in dependents:
            break
        span.append(bp)
    span.sort(key=lambda bp: bp.index)
    return _core_text([m for bp in span for m in bp.morphemes])


def _subtree(base_phrase) -> list:
    nodes = [base_phrase]
    for child in base_phrase.children:
        nodes += _subtree(child)
    return nodes


def _pas(document) -> tuple[str, str]:
    from rhoknp.cohesion import EndophoraArgument

    lines = []
    for pas in document.pas_list:
        arguments = ""
        for case in _PAS_CASES:
            for argument in pas.get_arguments(case, relax=False):
                if not isinstance(argument, EndophoraArgument) or argument.phrase == pas.predicate.phrase:
                    continue
                arguments += f" {'ガ' if case == 'ガ２' else case}：{_mention_text(argument.base_phrase)}"
        # A predicate keeps a trailing copula (判定詞): 学生だ, not 学生.
        predicate = _core_text(pas.predicate.phrase.morphemes, trim_end=("助詞", "特殊"))
        if predicate and arguments:
            lines.append(predicate + arguments)
    return _text_with_parentheses(document), "\n".join(lines)


def _coreference(document) -> tuple[str, str]:
    from rhoknp import Document

    # from_sentences re-reads the sentences' KNP: the parsed document itself is not changed.
    kept = Document.from_sentences([s for s in document.sentences if not _is_parenthetical(s)])
    clusters: dict[tuple[int, ...], list] = defaultdict(list)
    for bp in kept.base_phrases:
        if not bp.entities:
            continue
        key = tuple(sorted(entity.eid for entity in bp.entities))
        if bp not in clusters[key]:
            clusters[key].append(bp)
    lines = [
        " ".join(_mention_text(bp) for bp in sorted(mentions, key=lambda bp: bp.global_index))
        for mentions in clusters.values()
        if len(mentions) >= 2
    ]
    return kept.text, "\n".join(lines)


_CONVERTERS.update(reading=_reading, ner=_ner, dependency=_dependency, pas=_pas, coreference=_coreference)
