"""Named row loaders for published formats `datasets` has no builder for.

Each is registered with `@register_loader(name)` and chosen by a spec's
`source.format`; it gets the resolved files (local paths or URLs) and the
spec's `source.loader_options`, and returns flat rows. Imported by
`pytest_jallm.data`.

Every problem with a row is reported as a DataError naming the file, the row
and the field. Common options, applied after a loader has read all files:

* ``shuffle_seed``: shuffle the rows with ``random.Random(seed)`` -- the same
  permutation as llm-jp-eval's ``random.seed(seed); random.shuffle(rows)``.
* ``skip: N``: drop the first N rows (after shuffling, before ``slice``), as llm-jp-eval
  keeps a fixed head of a shuffled list for train (JCoLA out-of-domain: 32 rows).
* ``slice: [start, end]``: keep ``rows[int(n*start):int(n*end)]``, as
  llm-jp-eval cuts its shuffled lists into train/dev/test (e.g. ``[0.9, 1.0]``).
* ``copy: {new: old}``: add column ``new`` holding ``old``'s value (e.g. ``source`` for the
  source-language text that comet_wmt22 reads from an item's context).
* ``max_chars: {column: N}``: drop rows whose text in ``column`` is longer than N characters
  (japanese-lm-med-harness skips questions over 1024 characters in Japanese, 2048 in English).
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import re
import tarfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from .errors import DataError
from .fetch import local_file
from .registry import Registry

Rows = list[dict[str, Any]]

# Named loaders for formats `datasets` has no builder for (nested JSON, XML).
# A loader takes resolved local files and its options and returns flat rows.
RowLoader = Callable[[Sequence[str], Mapping[str, Any]], list[dict[str, Any]]]


def _check_loader(name: str, obj: Any) -> RowLoader:
    if not callable(obj):
        raise TypeError(f"expected a loader function (files, options) -> rows, got {type(obj).__name__}")
    return obj


# The built-ins below and those installed packages add (`pytest_jallm.loaders` entry points).
LOADERS: Registry[RowLoader] = Registry("loader", "pytest_jallm.loaders", _check_loader,
                                        builtin_modules=("pytest_jallm.ifeval.benchmark",))


def register_loader(name: str) -> Callable[[RowLoader], RowLoader]:
    """Decorator: the function becomes the `format: name` a spec's source may use."""
    return LOADERS.register(name)


# helpers ---------------------------------------------------------------------------------------


def _local(path: str) -> str:
    """A local path for `path`: a URL comes from the data dir's mirror, the download cache or
    the network, checked against the spec's sha256 pins (see :mod:`pytest_jallm.fetch`)."""
    return local_file(path)


def _read_bytes(path: str) -> bytes:
    with open(_local(path), "rb") as fh:
        return fh.read()


def _read_text(path: str) -> str:
    data = _read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None


def _parse_xml(where: str, data: bytes | str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise DataError(f"{where}: malformed XML: {e}") from None


def _bad(path: str, row: Any, field: str, problem: str) -> DataError:
    return DataError(f"{path}: row {row}: field '{field}': {problem}")


def _stem(path: str) -> str:
    return Path(path.split("?")[0]).stem


def _postprocess(rows: Rows, options: Mapping[str, Any]) -> Rows:
    for new, old in (options.get("copy") or {}).items():
        for i, row in enumerate(rows):
            if old not in row:
                raise DataError(f"row {i}: loader option copy: column {old!r} is missing (row has {', '.join(row)})")
            row[new] = row[old]
    for column, limit in (options.get("max_chars") or {}).items():
        rows = [r for r in rows if len(str(r.get(column, ""))) <= int(limit)]
    seed = options.get("shuffle_seed")
    if seed is not None:
        rows = list(rows)
        random.Random(seed).shuffle(rows)
    skip = options.get("skip")
    if skip is not None:
        if isinstance(skip, bool) or not isinstance(skip, int) or skip < 0:
            raise DataError(f"loader option 'skip' must be a number of rows (0 or more), got {skip!r}")
        rows = rows[skip:]
    cut = options.get("slice")
    if cut is not None:
        if not (isinstance(cut, (list, tuple)) and len(cut) == 2):
            raise DataError(f"loader option 'slice' must be [start, end] fractions, got {cut!r}")
        n = len(rows)
        rows = rows[int(n * float(cut[0])) : int(n * float(cut[1]))]
    return rows


def _text_of(elem: ET.Element | None) -> str:
    return "" if elem is None else "".join(elem.itertext())


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
        lines = _read_text(path).split("\n")
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
                raise _bad(
                    path, f"{i} (line {i + start + 1})", missing,
                    f"missing: the line has {len(cells)} tab-separated cells, the header {len(columns)}",
                )
            row: dict[str, Any] = {c: cells[k].strip() for k, c in enumerate(columns)}
            row.update(_file=_stem(path), _row=i, _line=i + start + 1)
            rows.append(row)
    return _postprocess(rows, options)


# JSON arrays and JSON lines --------------------------------------------------------------------


@register_loader("json-records")
def load_json_records(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """A JSON array of objects, or JSON lines, kept as they are (nested values included).

    ``first: [col, ...]`` adds ``<col>_first`` holding the first element of a list column
    (llm-jp-eval scores AIO against the first listed answer).
    """
    rows: Rows = []
    for path in files:
        text = _read_text(path)
        stripped = text.lstrip()
        records: list[Any]
        if stripped.startswith("["):
            try:
                records = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
        else:
            records = []
            for n, line in enumerate(text.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path}: row {len(records)} (line {n}): malformed JSON: {e.msg}") from None
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise _bad(path, i, "<record>", f"expected a JSON object, got {type(rec).__name__}")
            row = dict(rec)
            for col in options.get("first", []):
                value = row.get(col)
                if not isinstance(value, list) or not value:
                    raise _bad(path, i, col, f"expected a non-empty list, got {value!r}")
                row[f"{col}_first"] = value[0]
            row.update(_file=_stem(path), _row=i)
            rows.append(row)
    return _postprocess(rows, options)


# JSeM (XML, one file per phenomenon) -----------------------------------------------------------

_JSEM_SKIPPED = {"", "infelicitous", "unacceptable", "weakacceptable"}


@register_loader("jsem")
def load_jsem(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """JSeM problems: premise = the `<p><script>` texts joined, hypothesis = `<h><script>`.

    Each script's text is stripped of surrounding whitespace, as llm-jp-eval's XML reader
    (xmltodict) does; a few problems have a line break inside `<script>`.

    Problems whose answer is empty, infelicitous, unacceptable or weakacceptable are left
    out, as llm-jp-eval does. llm-jp-eval then shuffles all problems (seed 42) and cuts
    80/10/10: use ``shuffle_seed: 42`` and ``slice: [0.9, 1.0]`` for its test split.
    """
    rows: Rows = []
    for path in files:
        root = _parse_xml(path, _read_bytes(path))
        stem = _stem(path)  # once per file: 16,000 problems
        for i, problem in enumerate(root.iter("problem")):
            answer = (problem.get("answer") or "").strip()
            if answer in _JSEM_SKIPPED:
                continue
            premises = problem.findall("p")
            if not premises:
                raise _bad(path, f"{i} (jsem_id {problem.get('jsem_id')})", "p", "the problem has no premise <p>")
            texts = []
            for p in premises:
                script = p.find("script")
                if script is None:
                    raise _bad(path, f"{i} (jsem_id {problem.get('jsem_id')})", "p.script", "a premise has no <script>")
                texts.append(_text_of(script).strip())
            h = problem.find("h/script")
            if h is None:
                raise _bad(path, f"{i} (jsem_id {problem.get('jsem_id')})", "h.script", "the hypothesis has no <script>")
            rows.append(
                {
                    # jsem_id repeats within a few files: the position is the unique part.
                    "id": f"{stem}-{i}",
                    "jsem_id": problem.get("jsem_id", ""),
                    "premise": "".join(texts),
                    "hypothesis": _text_of(h).strip(),
                    "answer": answer,
                    "phenomenon": stem,
                    "_file": stem,
                    "_row": i,
                }
            )
    return _postprocess(rows, options)


# NIILC (XML) -----------------------------------------------------------------------------------


@register_loader("niilc")
def load_niilc(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """NIILC questions: non-empty answers joined with ',' (llm-jp-eval), '-' (no answer) dropped."""
    rows: Rows = []
    for path in files:
        root = _parse_xml(path, _read_bytes(path))
        for i, q in enumerate(root.iter("question")):
            qid = q.get("id", str(i))
            text = q.find("text")
            if text is None:
                raise _bad(path, f"{i} (id {qid})", "text", "the question has no <text>")
            answers_el = q.find("answers")
            if answers_el is None:
                raise _bad(path, f"{i} (id {qid})", "answers", "the question has no <answers>")
            answers = [_text_of(a).strip() for a in answers_el.findall("answer")]
            answer = ",".join(a for a in answers if a)
            if answer == "-":
                continue
            rows.append({"id": qid, "question": _text_of(text), "answer": answer, "answers": answers,
                         "_file": _stem(path), "_row": i})
    return _postprocess(rows, options)


# MAWPS (nlp-waseda/chain-of-thought-ja-dataset) ------------------------------------------------

_QA_DELIMITER = "\n解答："


@register_loader("mawps")
def load_mawps(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """`test.json` rows (question before "\\n解答：", numeric answer) or, for
    `zero_shot_example.json`/`shot_example.json`, the worked examples with the number
    taken from "答えはNです。" (how llm-jp-eval builds its train split)."""
    rows: Rows = []
    for path in files:
        try:
            records = json.loads(_read_text(path))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
        if not isinstance(records, list):
            raise DataError(f"{path}: expected a JSON array of problems, got {type(records).__name__}")
        for i, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise _bad(path, i, "<record>", f"expected a JSON object, got {type(rec).__name__}")
            if "shot_example" in rec:
                parts = str(rec["shot_example"]).split(_QA_DELIMITER)
                if len(parts) != 2 or "答えは" not in parts[1]:
                    raise _bad(path, i, "shot_example", "expected '問題：…\\n解答：…答えはNです。'")
                question, solution = parts
                answer = solution.split("答えは")[1].split("です。")[0]
                rows.append({"id": f"{_stem(path)}-{i}", "question": question, "answer": answer,
                             "solution": solution.strip(), "_file": _stem(path), "_row": i})
            else:
                for key in ("question", "answer"):
                    if key not in rec:
                        raise _bad(path, i, key, "missing")
                question = str(rec["question"]).split(_QA_DELIMITER)[0]
                rows.append({"id": str(rec.get("idx", i)), "question": question, "answer": str(rec["answer"]),
                             "_file": _stem(path), "_row": i})
    return _postprocess(rows, options)


# chABSA (zip of per-company JSON) --------------------------------------------------------------


@register_loader("chabsa")
def load_chabsa(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """chABSA sentences with at least one opinion; gold is "target polarity" lines.

    Takes the published zip (or the JSON files themselves); files are read in sorted
    name order, as llm-jp-eval globs them, before ``shuffle_seed``/``slice``.
    """
    docs: list[tuple[str, bytes]] = []
    for path in files:
        if path.split("?")[0].endswith(".zip"):
            with zipfile.ZipFile(_local(path)) as zf:
                for name in sorted(n for n in zf.namelist() if n.endswith(".json")):
                    docs.append((f"{path}!{name}", zf.read(name)))
        else:
            docs.append((path, _read_bytes(path)))
    rows: Rows = []
    for where, data in sorted(docs, key=lambda d: d[0]):
        try:
            doc = json.loads(data.decode("utf-8-sig"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{where}: not readable JSON: {e}") from None
        for i, sentence in enumerate(doc.get("sentences", [])):
            if "sentence" not in sentence:
                raise _bad(where, i, "sentence", "missing")
            lines = []
            for k, op in enumerate(sentence.get("opinions", [])):
                for key in ("target", "polarity"):
                    if key not in op:
                        raise _bad(where, i, f"opinions.{k}.{key}", "missing")
                lines.append(f"{op['target']} {op['polarity']}")
            if not lines:
                continue
            rows.append({"id": f"{_stem(where.split('!')[-1])}-{sentence.get('sentence_id', i)}",
                         "sentence": sentence["sentence"], "answer": "\n".join(lines), "_row": i})
    return _postprocess(rows, options)


# JMMLU (nlp-waseda/JMMLU) as llm-jp-eval splits it ---------------------------------------------

_JMMLU_COLUMNS = ("question", "A", "B", "C", "D", "answer")
_JMMLU_SPLITS = ("test", "dev", "fewshot", "all")


@register_loader("jmmlu")
def load_jmmlu(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """JMMLU's header-less subject CSVs (question, A, B, C, D, answer letter), split as
    llm-jp-eval 1.3.0 splits them.

    Options: ``subject_order`` (file stems): the order the subjects are read in, which
    decides the split (llm-jp-eval's own list, not alphabetical); ``split_seed`` (42);
    ``fewshot_pool`` (32); ``split``: ``test``, ``dev``, ``fewshot`` or ``all``.
    One ``random.Random(split_seed)`` shuffles each subject in turn, its first half
    going to dev and the rest to test; then the dev and the test lists are shuffled.
    The few-shot pool is the first ``fewshot_pool/2`` of each; test and dev are the rest.
    ``split: all`` keeps every row in file order, unshuffled (7,097 rows, not
    llm-jp-eval's 3,541). Rows keep ``_file`` (subject) and ``_row`` (0-based row in it).
    """
    split = options.get("split", "test")
    if split not in _JMMLU_SPLITS:
        raise DataError(f"jmmlu loader: option 'split' is {split!r}; expected one of {', '.join(_JMMLU_SPLITS)}")
    order = options.get("subject_order")
    if order is not None:
        by_stem = {_stem(f): f for f in files}
        unknown = sorted(set(by_stem) - set(order))
        if unknown:
            raise DataError(f"jmmlu loader: file(s) {', '.join(unknown)} are not in option 'subject_order'")
        files = [by_stem[name] for name in order if name in by_stem]
    subjects: list[Rows] = []
    for path in files:
        rows: Rows = []
        # Universal newlines, as llm-jp-eval opens the files: a "\r\n" inside a quoted
        # question becomes "\n" (two questions have one).
        text = _read_text(path).replace("\r\n", "\n").replace("\r", "\n")
        for i, cells in enumerate(csv.reader(io.StringIO(text, newline=""))):
            if len(cells) != len(_JMMLU_COLUMNS):
                raise _bad(path, i, "<row>", f"expected {len(_JMMLU_COLUMNS)} cells (question, A, B, C, D, answer), got {len(cells)}")
            row: dict[str, Any] = dict(zip(_JMMLU_COLUMNS, cells))
            row.update(_file=_stem(path), _row=i)
            rows.append(row)
        subjects.append(rows)
    if split == "all":
        return _postprocess([r for rows in subjects for r in rows], options)
    seed = options.get("split_seed")
    if seed is None:
        raise DataError(f"jmmlu loader: split {split!r} needs option 'split_seed' (llm-jp-eval uses 42)")
    rng = random.Random(seed)
    dev: Rows = []
    test: Rows = []
    for rows in subjects:
        rng.shuffle(rows)
        dev += rows[: len(rows) // 2]
        test += rows[len(rows) // 2 :]
    rng.shuffle(dev)
    rng.shuffle(test)
    half = int(options.get("fewshot_pool", 32)) // 2
    chosen = {"test": test[half:], "dev": dev[half:], "fewshot": dev[:half] + test[:half]}[split]
    return _postprocess(chosen, options)


# multiple choice with the answer as text (medical subsets of JMMLU / MMLU) --------------------

_LETTERS = "ABCDEFGHIJ"


def _table_rows(path: str, columns: Sequence[str] | None) -> Iterable[dict[str, Any]]:
    suffix = Path(path.split("?")[0]).suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        yield from pq.read_table(_local(path)).to_pylist()
        return
    import csv

    reader = csv.reader(io.StringIO(_read_text(path), newline=""))
    header = list(columns) if columns else next(reader, [])
    for i, cells in enumerate(reader):
        if len(cells) != len(header):
            missing = header[len(cells)] if len(cells) < len(header) else "<extra cell>"
            raise _bad(path, i, missing, f"the row has {len(cells)} cells, expected {len(header)}")
        yield dict(zip(header, cells))


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
                    raise _bad(path, i, choices_column, f"expected a list of choices, got {rec.get(choices_column)!r}")
                choices = [str(c) for c in rec[choices_column]]
            else:
                for c in choice_columns or []:
                    if c not in rec:
                        raise _bad(path, i, c, "missing")
                choices = [str(rec[c]) for c in choice_columns or []]
            if answer_column not in rec:
                raise _bad(path, i, answer_column, "missing")
            raw = str(rec[answer_column]).strip()
            index = int(raw) if raw.isdigit() else _LETTERS.find(raw.upper()) if len(raw) == 1 else -1
            if not 0 <= index < len(choices):
                raise _bad(path, i, answer_column, f"{raw!r} does not name one of {len(choices)} choices")
            row = dict(rec)
            row.update(choices=choices, answer_letter=_LETTERS[index], answer_text=choices[index],
                       _file=_stem(path), _row=i)
            rows.append(row)
    return _postprocess(rows, options)


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
        originals = _jsonl(path)
        translated: dict[str, dict[str, Any]] = {}
        if language == "en":
            tpath = re.sub(r"\.jsonl(\?.*)?$", r"_translate.jsonl\1", path)
            for j, rec in enumerate(_jsonl(tpath)):
                if "problem_id" not in rec:
                    raise _bad(tpath, j, "problem_id", "missing")
                translated[str(rec["problem_id"])] = rec
        for i, rec in enumerate(originals):
            for key in ("problem_id", "problem_text", "choices", "answer"):
                if key not in rec:
                    raise _bad(path, i, key, "missing")
            if not rec.get("text_only", True):
                continue
            answer = rec["answer"]
            if not isinstance(answer, list) or not answer:
                raise _bad(path, i, "answer", f"expected a non-empty list of letters, got {answer!r}")
            accepted = _igakuqa_accepted(answer, letters)
            if len(rec["choices"]) != 5 or accepted is None:
                continue
            answer = accepted[0]
            pid = str(rec["problem_id"])
            points = str(rec.get("points", "1")).strip()
            if not points.isdigit():
                raise _bad(path, f"{i} (problem_id {pid})", "points", f"expected a whole number, got {rec.get('points')!r}")
            question, choices = rec["problem_text"], list(rec["choices"])
            if language == "en":
                tr = translated.get(pid)
                if tr is None:
                    raise _bad(path, f"{i} (problem_id {pid})", "problem_text_en", "no English translation in the _translate file")
                question, choices = tr.get("problem_text_en"), tr.get("choices_en")
                if not isinstance(choices, list) or len(choices) != 5:
                    raise _bad(path, f"{i} (problem_id {pid})", "choices_en", f"expected 5 translated choices, got {choices!r}")
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
                    "_file": _stem(path),
                    "_row": i,
                }
            )
    return _postprocess(rows, options)


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
            raise _bad(path, where, key, "missing")
        return rec[key]

    if "problem_text" in rec:  # japanese-lm-med-harness: dataset/MedQA/usmleqa_{en,ja}.jsonl etc.
        question, choices = need("problem_text"), need("choices")
        if not isinstance(choices, list) or not choices:
            raise _bad(path, where, "choices", f"expected a list of choice texts, got {choices!r}")
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
            raise _bad(path, where, "cop", f"{rec.get('cop')!r} is not a choice number {base}..{base + 3} (loader option cop_base)")
        return {"id": str(rec.get("id") or f"{_stem(path)}-{i}"), "question": str(need("question")), "choices": choices,
                "answer_text": choices[index], "answer_index": index}
    options_value = need("options")
    if isinstance(options_value, dict):  # jind11/MedQA: options {"A": ...}, answer_idx "A", answer text
        letters = sorted(options_value)
        choices = [str(options_value[k]) for k in letters]
        letter = str(need("answer_idx")).strip()
        if letter not in options_value:
            raise _bad(path, where, "answer_idx", f"{letter!r} is not one of the options {', '.join(letters)}")
        index = letters.index(letter)
        return {"id": f"{_stem(path)}-{i}", "question": str(need("question")), "choices": choices,
                "answer_text": choices[index], "answer_index": index}
    if isinstance(options_value, list):  # JMedBench: options [...], answer_idx int (or a one-element list)
        choices = [str(c) for c in options_value]
        raw = need("answer_idx")
        if isinstance(raw, list):
            if len(raw) != 1:
                raise _bad(path, where, "answer_idx", f"expected one answer index, got {raw!r}")
            raw = raw[0]
        try:
            index = int(raw)
        except (TypeError, ValueError):
            index = -1
        if not 0 <= index < len(choices):
            raise _bad(path, where, "answer_idx", f"{raw!r} is not a 0-based index into {len(choices)} options")
        return {"id": str(rec.get("sample_id") if rec.get("sample_id") is not None else f"{_stem(path)}-{i}"),
                "question": str(need("question")), "choices": choices, "answer_text": choices[index], "answer_index": index}
    raise _bad(path, where, "options", f"expected a list (JMedBench) or a letter mapping (MedQA), got {type(options_value).__name__}")


def _med_records(path: str, options: Mapping[str, Any]) -> list[dict[str, Any]]:
    local = _local(path)
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
        text = _read_text(path).lstrip()
        if text.startswith("["):
            try:
                records = json.loads(text)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
            for j, rec in enumerate(records):
                if not isinstance(rec, dict):
                    raise _bad(path, j, "<record>", f"expected a JSON object, got {type(rec).__name__}")
            return records
    return _jsonl(path)  # MedMCQA's .json files are JSON lines too


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
                raise _bad(path, i, "<record>", f"expected a JSON object, got {type(rec).__name__}")
            row = _med_record(path, i, rec, options)
            row.update(_file=_stem(path), _row=i)
            rows.append(row)
    return _postprocess(rows, options)


def _jsonl(path: str) -> list[dict[str, Any]]:
    out = []
    for n, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: row {len(out)} (line {n}): malformed JSON: {e.msg}") from None
        if not isinstance(rec, dict):
            raise _bad(path, len(out), "<record>", f"expected a JSON object, got {type(rec).__name__}")
        out.append(rec)
    return out


# ALT parallel corpus (NICT) -------------------------------------------------------------------


@register_loader("alt")
def load_alt(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """Asian Language Treebank ja-en pairs of one split, as llm-jp-eval builds them.

    Files: the `ALT-Parallel-Corpus-*.zip` and the split's `URL-<split>.txt` (article ids).
    Sentences of the split's articles present in both languages, with len(ja)+len(en) < 500,
    in split-file then sentence order. Rows: ``ja``, ``en``, ``id`` (SNT.<article>.<sentence>).
    """
    zips = [f for f in files if f.split("?")[0].endswith(".zip")]
    splits = [f for f in files if f.split("?")[0].endswith(".txt")]
    if len(zips) != 1 or len(splits) != 1:
        raise DataError(f"alt loader: expected one .zip and one URL-<split>.txt, got {list(files)}")
    with zipfile.ZipFile(_local(zips[0])) as zf:
        texts = {}
        for lang in ("ja", "en"):
            name = next((n for n in zf.namelist() if n.endswith(f"data_{lang}.txt")), None)
            if name is None:
                raise DataError(f"{zips[0]}: no data_{lang}.txt inside")
            texts[lang] = _alt_sentences(f"{zips[0]}!{name}", zf.read(name).decode("utf-8"))
    rows: Rows = []
    for n, line in enumerate(_read_text(splits[0]).splitlines(), 1):
        if not line.strip():
            continue
        tag = line.split("\t")[0]
        parts = tag.split(".")
        if len(parts) != 2:
            raise _bad(splits[0], f"line {n}", "article id", f"expected 'URL.<id>', got {tag!r}")
        article = parts[1]
        ja, en = texts["ja"].get(article, {}), texts["en"].get(article)
        if en is None:
            continue
        for sid, en_text in en.items():
            if sid in ja and len(ja[sid]) + len(en_text) < 500:
                rows.append({"id": f"SNT.{article}.{sid}", "ja": ja[sid], "en": en_text, "_row": len(rows)})
    return _postprocess(rows, options)


def _alt_sentences(where: str, text: str) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if "\t" not in line:
            continue  # a few sentence ids carry no text
        tag, sentence = line.split("\t", 1)
        parts = tag.split(".")
        if len(parts) != 3:
            raise _bad(where, f"line {n}", "sentence id", f"expected 'SNT.<article>.<sentence>', got {tag!r}")
        out.setdefault(parts[1], {})[parts[2]] = sentence.strip()
    return out


# Japanese-English Bilingual Corpus of Wikipedia's Kyoto Articles (NICT WikiCorpus) -----------


@register_loader("wikicorpus")
def load_wikicorpus(files: Sequence[str], options: Mapping[str, Any]) -> Rows:
    """Paragraph pairs from `wiki_corpus_2.01.tar.gz` (or loose XML files).

    Per paragraph: the `<sen>`'s `<j>` texts and `<e type="check">` texts joined by a space,
    pairs with len(ja)+len(en) < 500. llm-jp-eval shuffles the *files* (seed 42) and cuts
    80/10/10; here the file order is sorted by path before ``file_shuffle_seed`` and
    ``file_slice`` (llm-jp-eval walks the directory in filesystem order).
    """
    docs: list[tuple[str, bytes]] = []
    for path in files:
        p = path.split("?")[0]
        if p.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(_local(path)) as tf:
                for m in tf.getmembers():
                    if m.isfile() and m.name.endswith(".xml"):
                        fh = tf.extractfile(m)
                        if fh is not None:
                            docs.append((f"{path}!{m.name}", fh.read()))
        else:
            docs.append((path, _read_bytes(path)))
    docs.sort(key=lambda d: d[0])
    seed = options.get("file_shuffle_seed")
    if seed is not None:
        random.Random(seed).shuffle(docs)
    cut = options.get("file_slice")
    if cut is not None:
        n = len(docs)
        docs = docs[int(n * float(cut[0])) : int(n * float(cut[1]))]
    rows: Rows = []
    for where, data in docs:
        text = data.decode("utf-8", errors="replace").replace("&", "&amp;")
        root = _parse_xml(where, text)
        for k, par in enumerate(root.findall("par")):
            ja, en = [], []
            for sen in par.findall("sen"):
                j, e = sen.find("j"), sen.find("e[@type='check']")
                if j is not None and e is not None and j.text is not None and e.text is not None:
                    ja.append(j.text)
                    en.append(e.text)
            ja_p, en_p = " ".join(ja), " ".join(en)
            if len(ja_p) + len(en_p) < 500:
                rows.append({"id": f"{_stem(where.split('!')[-1])}-{k}", "ja": ja_p, "en": en_p, "_row": len(rows)})
    return _postprocess(rows, options)


@register_loader("squad")
def _load_squad(files: Sequence[str], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """SQuAD-v1/v2 JSON (JSQuAD): one row per question with its context and answers."""
    rows: list[dict[str, Any]] = []
    for path in files:
        with open(local_file(path), encoding="utf-8") as fh:  # a URL: mirror, cache or download
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
