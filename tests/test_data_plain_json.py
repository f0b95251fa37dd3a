"""The standard-library JSON path must return exactly what `datasets` returns, or step aside.

`pytest_jallm.data.plain_json_rows` saves a run the import of `datasets` (and its
Arrow cache) for JSON files whose rows Arrow would not convert. These tests hold
it to that: on the real benchmark files and on generated rows of every shape,
whenever it answers, its rows equal `datasets.load_dataset("json", ...)`'s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_jallm.data import DataError, plain_json_rows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SLICES = Path(__file__).resolve().parent / "fixtures" / "real-slices"
# The real files when present, and always their shipped slices (first records, same format).
REAL_JSON = (sorted(SHARED.rglob("*.json")) if SHARED.is_dir() else []) + sorted(SLICES.rglob("*.json"))


def _json_id(path: Path) -> str:
    return f"slices/{path.relative_to(SLICES)}" if path.is_relative_to(SLICES) else str(path.relative_to(SHARED))


def _datasets_rows(path: Path, cache_dir: Path) -> list[dict]:
    import datasets  # here, not at the top: collecting the suite should not cost its import

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("json", data_files=[str(path)], split="train", cache_dir=str(cache_dir))
    return ds.to_list()


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("path", REAL_JSON, ids=_json_id)
def test_real_benchmark_files_read_the_same(path: Path, tmp_path: Path) -> None:
    plain = plain_json_rows(str(path))
    if plain is None:
        pytest.skip(f"{path.name}: rows Arrow would convert (nested or mixed types): datasets reads it")
    assert plain == _datasets_rows(path, tmp_path)


@pytest.mark.parametrize("root", [pytest.param(SLICES, id="slices"), pytest.param(SHARED, id="shared", marks=pytest.mark.skipif(
    not (SHARED / "jglue").is_dir(), reason=f"JGLUE not found under {SHARED}"))])
def test_flat_benchmark_files_take_the_fast_path(root: Path) -> None:
    # Otherwise the equivalence above is vacuous and no run gets faster.
    for name in ("jcommonsenseqa-v1.3/valid-v1.3.json", "jnli-v1.3/valid-v1.3.json"):
        assert plain_json_rows(str(root / "jglue" / name)), name
    # JSTS's similarity labels are floats, which only datasets may read (see below).
    assert plain_json_rows(str(root / "jglue" / "jsts-v1.3" / "valid-v1.3.json")) is None


def test_declines_what_arrow_would_convert(tmp_path: Path) -> None:
    cases = {
        "int and float": [{"a": 1}, {"a": 1.5}],
        "missing key": [{"a": "x", "b": 1}, {"a": "y"}],
        "nested object": [{"a": {"x": 1}}, {"a": {"y": 2}}],
        "mixed list": [{"a": [1, "x"]}],
        "bool and int": [{"a": True}, {"a": 2}],
        "beyond int64": [{"a": 2**70}],
        # datasets parses some files with ujson, which rounds floats; a list column that
        # pyarrow cannot type sends even JSON Lines there (found by the property below).
        "float": [{"a": 0.5}],
        "float beside an untyped list": [{"l": [None, ""], "a": 2.3457517728667064e16}],
    }
    for name, rows in cases.items():
        (tmp_path / "r.json").write_text(json.dumps(rows), encoding="utf-8")
        assert plain_json_rows(str(tmp_path / "r.json")) is None, f"{name} (JSON array)"
        assert plain_json_rows(str(_write_jsonl(tmp_path / "r.jsonl", rows))) is None, name
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl: line 2: not valid JSON \(Expecting value, column 7\)"):
        plain_json_rows(str(tmp_path / "bad.jsonl"))  # datasets would report a byte position
    (tmp_path / "empty.jsonl").write_text("\n \n", encoding="utf-8")
    assert plain_json_rows(str(tmp_path / "empty.jsonl")) == []


scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | st.floats(allow_nan=False, width=64) | st.text(max_size=6)
values = scalars | st.lists(scalars, max_size=3) | st.dictionaries(st.sampled_from("xy"), scalars, max_size=2)
KINDS = {
    "str": st.text(max_size=6),
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.floats(allow_nan=False, allow_infinity=False, width=64),
    "bool": st.booleans(),
    "list_str": st.lists(st.text(max_size=4) | st.none(), max_size=3),
    "list_int": st.lists(st.integers(-5, 5), max_size=3),
}


@st.composite
def uniform_rows(draw) -> list:
    """Rows with one type per column (nulls allowed): what the fast path accepts."""
    schema = draw(st.dictionaries(st.sampled_from(["id", "q", "label", "choices", "x"]), st.sampled_from(sorted(KINDS)),
                                  min_size=1, max_size=4))
    n = draw(st.integers(1, 5))
    return [{k: draw(st.none() | KINDS[kind]) for k, kind in schema.items()} for _ in range(n)]


row_sets = uniform_rows() | st.lists(st.dictionaries(st.sampled_from(["id", "q", "label"]), values, min_size=1, max_size=3),
                                     min_size=1, max_size=5)


@settings(max_examples=int(os.environ.get("JALLM_PLAIN_JSON_EXAMPLES", "40")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=row_sets, as_array=st.booleans())
def test_whenever_it_answers_it_agrees_with_datasets(rows: list, as_array: bool, tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    if as_array:
        path.write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    else:
        _write_jsonl(path, rows)
    plain = plain_json_rows(str(path))
    if plain is not None:
        assert plain == _datasets_rows(path, tmp_path / "cache")


@given(n=st.integers(1, 5), label=st.integers(0, 4), text=st.text(min_size=1, max_size=8))
def test_uniform_rows_take_the_fast_path(n: int, label: int, text: str) -> None:
    rows = [{"id": i, "q": text, "label": label, "choices": [text, "b"]} for i in range(n)]
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        assert plain_json_rows(str(_write_jsonl(Path(d) / "r.jsonl", rows))) == rows
