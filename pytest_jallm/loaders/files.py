"""What every row loader shares: reading a source's files (a URL through the mirror, the download
cache or the network; see :mod:`pytest_jallm.sources`), the one JSON Lines reader, the row errors that
name the file, row and field, and the common loader options (see :mod:`pytest_jallm.loaders`)."""

from __future__ import annotations

import json
import random
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..errors import DataError
from ..sources import local_file

Rows = list[dict[str, Any]]

def local_path(path: str) -> str:
    """A local path for `path`: a URL comes from the data dir's mirror, the download cache or
    the network, checked against the spec's sha256 pins (see :mod:`pytest_jallm.sources`)."""
    return local_file(path)


def read_bytes(path: str) -> bytes:
    with open(local_path(path), "rb") as fh:
        return fh.read()


def read_text(path: str) -> str:
    data = read_bytes(path)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None


def parse_xml(where: str, data: bytes | str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as e:
        raise DataError(f"{where}: malformed XML: {e}") from None


def bad_row(path: str, row: Any, field: str, problem: str) -> DataError:
    return DataError(f"{path}: row {row}: field '{field}': {problem}")


def file_stem(path: str) -> str:
    return Path(path.split("?")[0]).stem


def postprocess(rows: Rows, options: Mapping[str, Any]) -> Rows:
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


def text_of(elem: ET.Element | None) -> str:
    return "" if elem is None else "".join(elem.itertext())


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false", type(None): "null"}


def json_lines(path: str, text: str | None = None, first_line: int = 1) -> list[tuple[int, dict[str, Any]]]:
    """The objects of a JSON Lines file with their line numbers (blank lines skipped). A malformed or
    non-object line is a DataError naming the file and the line. Lines are split on "\n" only: U+2028
    and U+2029 may stand inside a JSON string."""
    text = read_text(path) if text is None else text
    out = []
    for number, line in enumerate(text.split("\n"), start=first_line):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as e:
            detail = f"{e.msg}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)
            raise DataError(f"{path}: line {number}: not valid JSON ({detail})") from None
        if type(row) is not dict:
            kind = _JSON_KINDS.get(type(row), type(row).__name__)
            raise DataError(f"{path}: line {number}: {kind}, but JSON Lines needs one JSON object per line")
        out.append((number, row))
    return out


def json_objects(path: str) -> list[dict[str, Any]]:
    """The objects of a JSON Lines file, in order."""
    return [row for _, row in json_lines(path)]


def json_rows_head(path: str) -> Iterator[dict[str, Any]]:
    """The objects of a local JSON Lines file (or JSON array) one at a time, read only as far as the
    caller takes them; errors as :func:`json_lines` gives them. Lines are split on "\n" only."""
    with open(path, "rb") as fh:
        first = fh.read(1 << 16)
        if first.lstrip().startswith(b"["):  # a JSON array: one document, read whole
            try:
                rows = json.loads((first + fh.read()).decode("utf-8"))
            except ValueError as e:
                raise DataError(f"{path}: not valid JSON ({e})") from None
            if not isinstance(rows, list) or not all(type(r) is dict for r in rows):
                raise DataError(f"{path}: expected a JSON array of objects")
            yield from rows
            return
        fh.seek(0)
        for number, raw in enumerate(fh, start=1):
            line = raw.decode("utf-8")
            if not line.strip():
                continue
            yield json_lines(path, line, first_line=number)[0][1]


def json_head_rows(files: Sequence[str], max_rows: int,
                   keep: Callable[[Mapping[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
    """The first ``max_rows`` kept rows of local JSON Lines files, tagged with ``_file`` (the file's
    stem) and ``_row`` (the row's index in its file), as a full read tags them."""
    rows: list[dict[str, Any]] = []
    for path in files:
        if len(rows) >= max_rows:
            break
        stem = Path(path.split("?")[0]).stem
        for i, row in enumerate(json_rows_head(path)):
            row["_file"], row["_row"] = stem, i
            if keep is None or keep(row):
                rows.append(row)
                if len(rows) >= max_rows:
                    break
    return rows
