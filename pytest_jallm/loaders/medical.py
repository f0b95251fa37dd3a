"""Medical QA: IgakuQA, and MedQA / MedMCQA in the layouts they are published in."""

from __future__ import annotations

import json
import os
import re
from typing import Any, Mapping, Sequence

from ..errors import DataError
from . import register_loader
from .files import (
    Rows,
    bad_row,
    file_stem,
    json_objects,
    local_path,
    postprocess,
    read_text,
)

# IgakuQA (jungokasai/IgakuQA) ------------------------------------------------------------------


@register_loader("igakuqa")
def load_igakuqa(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """IgakuQA exam files `data/<year>/<exam>-<block>.jsonl`.

    Drops problems that need an image (``text_only`` false) and those that are not
    five-choice a-e questions (e.g. numeric-entry calculation problems). Rows get
    ``choices`` (texts), ``answer_letters`` (a list: some problems take two or three
    answers), ``answer_text`` (the correct choices' texts, a list) and ``choices_lettered``,
    plus what IgakuQA's own scoring script accepts: ``accepted_answers`` (letter lists; a
    gold written ``"a or d"`` accepts either), ``any_answer_correct`` (problem 116A71) and
    ``points`` (1 or 3 in the exam; 1 when absent).
    ``language: en`` reads the English translation from the sibling
    ``<exam>-<block>_translate.jsonl`` (problem_text_en, choices_en), joined on problem_id;
    the image filter still comes from the Japanese file.
    """
    language = options.get("language", "ja")
    letters = "abcde"
    rows: Rows = []
    for path in files:
        originals = json_objects(path)
        translated: dict[str, dict[str, Any]] = {}
        if language == "en":
            tpath = re.sub(r"\.jsonl(\?.*)?$", r"_translate.jsonl\1", path)
            for j, rec in enumerate(json_objects(tpath)):
                if "problem_id" not in rec:
                    raise bad_row(tpath, j, "problem_id", "missing")
                translated[str(rec["problem_id"])] = rec
        for i, rec in enumerate(originals):
            for key in ("problem_id", "problem_text", "choices", "answer"):
                if key not in rec:
                    raise bad_row(path, i, key, "missing")
            if not rec.get("text_only", True):
                continue
            answer = rec["answer"]
            if not isinstance(answer, list) or not answer:
                raise bad_row(path, i, "answer", f"expected a non-empty list of letters, got {answer!r}")
            accepted = _igakuqa_accepted(answer, letters)
            if len(rec["choices"]) != 5 or accepted is None:
                continue
            answer = accepted[0]
            pid = str(rec["problem_id"])
            points = str(rec.get("points", "1")).strip()
            if not points.isdigit():
                raise bad_row(path, f"{i} (problem_id {pid})", "points", f"expected a whole number, got {rec.get('points')!r}")
            question: Any = rec["problem_text"]
            choices: Any = list(rec["choices"])
            if language == "en":
                tr = translated.get(pid)
                if tr is None:
                    raise bad_row(path, f"{i} (problem_id {pid})", "problem_text_en", "no English translation in the _translate file")
                question, choices = tr.get("problem_text_en"), tr.get("choices_en")
                if not isinstance(choices, list) or len(choices) != 5:
                    raise bad_row(path, f"{i} (problem_id {pid})", "choices_en", f"expected 5 translated choices, got {choices!r}")
            rows.append(
                {
                    "id": pid,
                    "question": str(question).strip(),
                    "choices": [str(c) for c in choices],
                    "choices_lettered": "\n".join(f"{letters[k]}. {c}" for k, c in enumerate(choices)),
                    "answer_letters": list(answer),
                    "accepted_answers": accepted,
                    "any_answer_correct": pid in _IGAKUQA_ALL_CREDITED,
                    "points": int(points),
                    "answer_text": [str(choices[letters.index(a)]) for a in answer],
                    # japanese-lm-med-harness prompts with the text as it is and scores against the
                    # answer texts joined by "," (a choice may itself hold a line break: 115C25).
                    "question_raw": str(question),
                    "harness_answer": ",".join(str(choices[letters.index(a)]) for a in answer),
                    "n_answers": len(answer),
                    "_file": file_stem(path),
                    "_row": i,
                }
            )
    return postprocess(rows, options)


# IgakuQA's scripts/evaluate_main.py credits every answer to problem 116A71.
_IGAKUQA_ALL_CREDITED = frozenset({"116A71"})


def _igakuqa_accepted(answer: list[Any], letters: str) -> list[list[str]] | None:
    """The accepted letter lists: the gold, plus alternatives where the data writes ``"a or d"``
    (112B30, which IgakuQA's script grades as a or d). None when this is no a-e choice answer."""
    if len(answer) == 1 and isinstance(answer[0], str) and " or " in answer[0]:
        alternatives = [[a.strip()] for a in answer[0].split(" or ")]
    else:
        alternatives = [list(answer)]
    if not all(isinstance(a, str) and len(a) == 1 and a in letters for alt in alternatives for a in alt):
        return None
    return alternatives


# MedQA / MedMCQA in the layouts they are published in ---------------------------------------------


def _med_record(path: str, i: int, rec: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """One record of any of the four layouts -> id, question, choices, answer_text, answer_index."""
    where = f"{i}"

    def need(key: str) -> Any:
        if key not in rec or rec[key] is None:
            raise bad_row(path, where, key, "missing")
        return rec[key]

    if "problem_text" in rec:  # japanese-lm-med-harness: dataset/MedQA/usmleqa_{en,ja}.jsonl etc.
        question, choices = need("problem_text"), need("choices")
        if not isinstance(choices, list) or not choices:
            raise bad_row(path, where, "choices", f"expected a list of choice texts, got {choices!r}")
        answer = str(need("answer"))
        index = choices.index(answer) if answer in choices else None
        # The harness numbers items without problem_id 1, 2, ... in file order.
        item_id = str(rec["problem_id"]) if rec.get("problem_id") is not None else str(i + 1)
        return {"id": item_id, "question": str(question), "choices": [str(c) for c in choices],
                "answer_text": answer, "answer_index": index, "harness_answer": answer}
    if "opa" in rec:  # MedMCQA release: opa..opd, cop (1-4 in its JSON files; HF's copy uses 0-3)
        choices = [str(need(k)) for k in ("opa", "opb", "opc", "opd")]
        base = int(options.get("cop_base", 1))
        try:
            index = int(need("cop")) - base
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < 4:
            raise bad_row(path, where, "cop", f"{rec.get('cop')!r} is not a choice number {base}..{base + 3} (loader option cop_base)")
        return {"id": str(rec.get("id") or f"{file_stem(path)}-{i}"), "question": str(need("question")), "choices": choices,
                "answer_text": choices[index], "answer_index": index}
    options_value = need("options")
    if isinstance(options_value, dict):  # jind11/MedQA: options {"A": ...}, answer_idx "A", answer text
        letters = sorted(options_value)
        choices = [str(options_value[k]) for k in letters]
        letter = str(need("answer_idx")).strip()
        if letter not in options_value:
            raise bad_row(path, where, "answer_idx", f"{letter!r} is not one of the options {', '.join(letters)}")
        index = letters.index(letter)
        return {"id": f"{file_stem(path)}-{i}", "question": str(need("question")), "choices": choices,
                "answer_text": choices[index], "answer_index": index}
    if isinstance(options_value, list):  # JMedBench: options [...], answer_idx int (or a one-element list)
        choices = [str(c) for c in options_value]
        raw = need("answer_idx")
        if isinstance(raw, list):
            if len(raw) != 1:
                raise bad_row(path, where, "answer_idx", f"expected one answer index, got {raw!r}")
            raw = raw[0]
        try:
            index = int(raw)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(choices):
            raise bad_row(path, where, "answer_idx", f"{raw!r} is not a 0-based index into {len(choices)} options")
        return {"id": str(rec.get("sample_id") if rec.get("sample_id") is not None else f"{file_stem(path)}-{i}"),
                "question": str(need("question")), "choices": choices, "answer_text": choices[index], "answer_index": index}
    raise bad_row(path, where, "options", f"expected a list (JMedBench) or a letter mapping (MedQA), got {type(options_value).__name__}")


def _med_records(path: str, options: Mapping[str, Any]) -> list[dict[str, Any]]:
    local = local_path(path)
    if os.path.isdir(local):  # a `datasets` save_to_disk copy (a DatasetDict or one split)
        import datasets

        path = local

        try:
            ds = datasets.load_from_disk(path)
        except Exception as e:
            raise DataError(f"{path}: not a `datasets` save_to_disk directory: {type(e).__name__}: {e}") from None
        if isinstance(ds, datasets.DatasetDict):
            split = options.get("split", "test")
            if split not in ds:
                raise DataError(f"{path}: no split {split!r} (has {', '.join(ds)}); set loader option 'split'")
            ds = ds[split]
        return ds.to_list()
    if path.split("?")[0].endswith(".json"):
        text = read_text(path).lstrip()
        if text.startswith("["):
            try:
                records = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
            for j, rec in enumerate(records):
                if not isinstance(rec, dict):
                    raise bad_row(path, j, "<record>", f"expected a JSON object, got {type(rec).__name__}")
            return records
    return json_objects(path)  # MedMCQA's .json files are JSON lines too


@register_loader("med-mcqa")
def load_med_mcqa(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """MedQA (USMLE) and MedMCQA items from any layout they are published in, told apart by
    their keys, record by record:

    * japanese-lm-med-harness's files ``MedQA/usmleqa_{en,ja}.jsonl``, ``MedMCQA/medmcqa_{en,ja}.jsonl``:
      ``problem_text``, ``choices`` (list), ``answer`` (the correct choice's text), optional
      ``problem_id``;
    * JMedBench (Hugging Face ``Coldog2333/JMedBench``, ``<config>/test.jsonl``): ``sample_id``,
      ``question``, ``options`` (list), ``answer_idx`` (0-based), ``n_options``, ``metadata``;
    * jind11/MedQA: ``question``, ``options`` ({"A": text, …}), ``answer_idx`` (letter), ``answer``;
    * MedMCQA's release: ``id``, ``question``, ``opa``..``opd``, ``cop`` (1-4; ``cop_base: 0`` for 0-3).

    A file may be JSON lines, a JSON array, or a directory written by ``datasets``'
    ``save_to_disk`` (option ``split``, default ``test``). Rows get ``id``, ``question``,
    ``choices``, ``answer_text`` and ``answer_index`` (None when a harness file's answer is not
    one of its choices: the harness still scores it by text).
    """
    rows: Rows = []
    for path in files:
        for i, rec in enumerate(_med_records(path, options)):
            if not isinstance(rec, Mapping):
                raise bad_row(path, i, "<record>", f"expected a JSON object, got {type(rec).__name__}")
            row = _med_record(path, i, rec, options)
            row.update(_file=file_stem(path), _row=i)
            rows.append(row)
    return postprocess(rows, options)


