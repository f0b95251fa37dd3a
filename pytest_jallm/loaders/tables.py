"""Generic formats: plain TSV, JSON arrays and JSON Lines, multiple choice tables, SQuAD."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ..errors import DataError
from ..readlog import note_library
from . import register_loader
from .files import (
    Rows,
    bad_row,
    file_stem,
    json_lines,
    local_path,
    postprocess,
    read_text,
)

# plain TSV (llm-jp-eval's `line.split("\t")`) --------------------------------------------------


@register_loader("tsv-plain")
def load_tsv_plain(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """Tab-separated lines split on every tab, no quoting (pandas' CSV quoting merges rows
    that contain a stray `"`; llm-jp-eval splits lines the same way as here).

    The first line is the header unless ``columns`` names the columns. Every row must have
    at least as many cells as there are columns. Rows get ``_file`` and ``_row`` (0-based
    data row); ``_line`` is the 1-based line in the file.
    """
    rows: Rows = []
    for path in files:
        lines = read_text(path).split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        columns = options.get("columns")
        start = 0
        if not columns:
            if not lines:
                raise DataError(f"{path}: empty file (expected a header line)")
            columns = [c.strip() for c in lines[0].rstrip("\r").split("\t")]
            start = 1
        for i, line in enumerate(lines[start:]):
            cells = line.rstrip("\r").split("\t")
            if len(cells) < len(columns):
                missing = columns[len(cells)]
                raise bad_row(
                    path, f"{i} (line {i + start + 1})", missing,
                    f"missing: the line has {len(cells)} tab-separated cells, the header {len(columns)}",
                )
            row: dict[str, Any] = {c: cells[k].strip() for k, c in enumerate(columns)}
            row.update(_file=file_stem(path), _row=i, _line=i + start + 1)
            rows.append(row)
    return postprocess(rows, options)


# JSON arrays and JSON lines --------------------------------------------------------------------


@register_loader("json-records")
def load_json_records(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """A JSON array of objects, or JSON lines, kept as they are (nested values included).

    ``first: [col, ...]`` adds ``<col>_first`` holding the first element of a list column
    (llm-jp-eval scores AIO against the first listed answer).
    """
    rows: Rows = []
    for path in files:
        text = read_text(path)
        stripped = text.lstrip()
        records: list[Any]
        if stripped.startswith("["):
            try:
                records = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        else:
            records = [rec for _, rec in json_lines(path, text)]
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise bad_row(path, i, "<record>", f"expected a JSON object, got {type(rec).__name__}")
            row = dict(rec)
            for col in options.get("first", []):
                value = row.get(col)
                if not isinstance(value, list) or not value:
                    raise bad_row(path, i, col, f"expected a non-empty list, got {value!r}")
                row[f"{col}_first"] = value[0]
            row.update(_file=file_stem(path), _row=i)
            rows.append(row)
    return postprocess(rows, options)


# multiple choice with the answer as text (medical subsets of JMMLU / MMLU) --------------------

_LETTERS = "ABCDEFGHIJ"


def _table_rows(path: str, columns: Sequence[str] | None) -> Iterable[dict[str, Any]]:
    suffix = Path(path.split("?")[0]).suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        note_library("pyarrow")
        yield from pq.read_table(local_path(path)).to_pylist()
        return

    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = list(columns) if columns else next(reader, [])
    for i, cells in enumerate(reader):
        if len(cells) != len(header):
            missing = header[len(cells)] if len(cells) < len(header) else "<extra cell>"
            raise bad_row(path, i, missing, f"the row has {len(cells)} cells, expected {len(header)}")
        yield dict(zip(header, cells, strict=False))


@register_loader("mcq")
def load_mcq(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """Multiple-choice rows from CSV (optionally header-less: ``columns``) or parquet, with
    ``choices`` (a list, the context gestalt_accuracy needs), ``answer_letter`` and
    ``answer_text`` (the correct choice's text).

    Options: ``choice_columns`` (e.g. [A, B, C, D]) or ``choices_column`` (a list column);
    ``answer_column`` holding a letter (A..) or a 0-based index.
    """
    choice_columns = options.get("choice_columns")
    choices_column = options.get("choices_column")
    answer_column = options.get("answer_column", "answer")
    rows: Rows = []
    for path in files:
        for i, rec in enumerate(_table_rows(path, options.get("columns"))):
            if choices_column:
                if not isinstance(rec.get(choices_column), (list, tuple)):
                    raise bad_row(path, i, choices_column, f"expected a list of choices, got {rec.get(choices_column)!r}")
                choices = [str(c) for c in rec[choices_column]]
            else:
                for c in choice_columns or []:
                    if c not in rec:
                        raise bad_row(path, i, c, "missing")
                choices = [str(rec[c]) for c in choice_columns or []]
            if answer_column not in rec:
                raise bad_row(path, i, answer_column, "missing")
            raw = str(rec[answer_column]).strip()
            index = int(raw) if raw.isdigit() else _LETTERS.find(raw.upper()) if len(raw) == 1 else -1
            if not 0 <= index < len(choices):
                raise bad_row(path, i, answer_column, f"{raw!r} does not name one of {len(choices)} choices")
            row = dict(rec)
            row.update(choices=choices, answer_letter=_LETTERS[index], answer_text=choices[index],
                       _file=file_stem(path), _row=i)
            rows.append(row)
    return postprocess(rows, options)


@register_loader("squad")
def load_squad(files: Sequence[str], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """SQuAD-v1/v2 JSON (JSQuAD): one row per question with its context and answers."""
    rows: list[dict[str, Any]] = []
    for path in files:
        with open(local_path(path), encoding="utf-8") as fh:  # a URL: mirror, cache or download
            doc = json.load(fh)
        for article in doc.get("data", []):
            title = article.get("title", "")
            for para in article.get("paragraphs", []):
                for qa in para.get("qas", []):
                    answers = [a.get("text", "") for a in qa.get("answers", [])]
                    if not answers and options.get("skip_unanswerable", True):
                        continue
                    rows.append(
                        {
                            "id": qa.get("id"),
                            "title": title,
                            "context": para.get("context", ""),
                            "question": qa.get("question", ""),
                            "answers": answers,
                            "answer": answers[0] if answers else "",
                        }
                    )
    return rows

