"""FastChat's llm_judge file formats, as spec `format:` loaders (JSON Lines, one object a line).

* ``fastchat-questions`` -- ``{"question_id", "category", "turns": [q1, q2]}`` (question.jsonl,
  question_full.jsonl) becomes rows ``question_id`` (text), ``category``, ``turn_1``, ``turn_2``
  ("" for a one-turn question), ``turns`` (how many).
* ``fastchat-answers`` -- ``{"question_id", "choices": [{"turns": [a1, a2]}, …]}`` (model_answer/,
  reference_answer/) becomes rows ``question_id``, ``turn_1``, ``turn_2``: the first choice, as
  FastChat's judge reads it (``answer["choices"][0]["turns"]``).

Question ids are compared as text: FastChat's files write them as numbers or strings.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..errors import DataError
from ..loaders import register_loader
from ..loaders.files import Rows, file_stem, json_lines


def _question_id(path: str, n: int, record: Mapping[str, Any]) -> str:
    qid = record.get("question_id")
    if isinstance(qid, bool) or not isinstance(qid, (int, str)) or not str(qid).strip():
        raise DataError(f"{path}: line {n}: field 'question_id': expected a number or text, got {qid!r}")
    return str(qid).strip()


def _turns(path: str, n: int, value: Any, field: str) -> list[str]:
    if not (isinstance(value, list) and 1 <= len(value) <= 2 and all(isinstance(t, str) for t in value)):
        raise DataError(f"{path}: line {n}: field '{field}': expected a list of one or two texts, got {value!r:.80}")
    return list(value)


def _unique(path: str, n: int, qid: str, seen: dict[str, int]) -> None:
    if qid in seen:
        raise DataError(f"{path}: line {n}: question_id {qid} repeats line {seen[qid]}")
    seen[qid] = n


@register_loader("fastchat-questions")
def load_questions(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    rows: Rows = []
    for path in files:
        seen: dict[str, int] = {}
        for i, (n, record) in enumerate(json_lines(path)):
            qid = _question_id(path, n, record)
            _unique(path, n, qid, seen)
            category = record.get("category")
            if not isinstance(category, str) or not category.strip():
                raise DataError(f"{path}: line {n}: field 'category': expected a category name, got {category!r}")
            turns = _turns(path, n, record.get("turns"), "turns")
            if not all(t.strip() for t in turns):
                raise DataError(f"{path}: line {n}: field 'turns': a user turn is empty")
            rows.append({"question_id": qid, "category": category, "turn_1": turns[0],
                         "turn_2": turns[1] if len(turns) > 1 else "", "turns": len(turns),
                         "_file": file_stem(path), "_row": i})
    return rows


@register_loader("fastchat-answers")
def load_answers(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    rows: Rows = []
    for path in files:
        seen: dict[str, int] = {}
        for i, (n, record) in enumerate(json_lines(path)):
            qid = _question_id(path, n, record)
            _unique(path, n, qid, seen)
            choices = record.get("choices")
            if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
                raise DataError(f"{path}: line {n}: field 'choices': expected a list of {{\"turns\": [...]}} objects")
            turns = _turns(path, n, choices[0].get("turns"), "choices[0].turns")
            rows.append({"question_id": qid, "turn_1": turns[0], "turn_2": turns[1] if len(turns) > 1 else "",
                         "turns": len(turns), "_file": file_stem(path), "_row": i})
    return rows
