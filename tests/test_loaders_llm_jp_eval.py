"""Loaders that reproduce llm-jp-eval 1.3.0's splits, on tiny hand-written files
(the full-size comparisons with llm-jp-eval's own output are in test_parity_llm_jp_eval.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_jallm.data import LOADERS, DataError


def _subject(tmp_path: Path, name: str, n: int) -> str:
    path = tmp_path / f"{name}.csv"
    path.write_text("".join(f'"{name} q{i}",a,b,c,d,{"ABCD"[i % 4]}\n' for i in range(n)), encoding="utf-8")
    return str(path)


def _ids(rows) -> list[str]:
    return [f"{r['_file']}-{r['_row']}" for r in rows]


def test_jmmlu_splits_partition_every_row(tmp_path: Path) -> None:
    files = [_subject(tmp_path, "s1", 41), _subject(tmp_path, "s2", 30), _subject(tmp_path, "s3", 7)]
    opts = {"split_seed": 42, "fewshot_pool": 8}
    parts = {split: _ids(LOADERS["jmmlu"](files, {**opts, "split": split})) for split in ("test", "dev", "fewshot")}
    everything = _ids(LOADERS["jmmlu"](files, {"split": "all"}))
    assert len(everything) == 78 and everything[:2] == ["s1-0", "s1-1"]  # file order, unshuffled
    assert sorted(parts["test"] + parts["dev"] + parts["fewshot"]) == sorted(everything)
    assert len(parts["fewshot"]) == 8
    # Each subject's second half (n - n//2 rows) is test; 4 of them went to the few-shot pool.
    assert len(parts["test"]) == (41 - 20) + (30 - 15) + (7 - 3) - 4
    again = _ids(LOADERS["jmmlu"](files, {**opts, "split": "test"}))
    assert again == parts["test"]  # deterministic
    assert _ids(LOADERS["jmmlu"](files, {**opts, "split": "test", "split_seed": 7})) != parts["test"]


def test_jmmlu_subject_order_decides_the_split(tmp_path: Path) -> None:
    files = [_subject(tmp_path, "s1", 20), _subject(tmp_path, "s2", 20)]
    opts = {"split_seed": 42, "split": "test"}
    as_listed = _ids(LOADERS["jmmlu"](files, {**opts, "subject_order": ["s1", "s2"]}))
    reordered = _ids(LOADERS["jmmlu"](files, {**opts, "subject_order": ["s2", "s1"]}))
    assert sorted(as_listed) != sorted(reordered)  # another subject's shuffle comes first
    assert _ids(LOADERS["jmmlu"](files, opts)) == as_listed  # no order: the files' order


def test_jmmlu_reads_quoted_line_breaks_as_universal_newlines(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    path.write_bytes('\ufeff"一行目\r\n二行目",a,b,c,d,A\r\n"q2",a,b,c,d,B\r\n'.encode("utf-8"))
    rows = LOADERS["jmmlu"]([str(path)], {"split": "all"})
    assert [r["question"] for r in rows] == ["一行目\n二行目", "q2"]
    assert [r["answer"] for r in rows] == ["A", "B"]


@pytest.mark.parametrize(
    ("options", "text", "expected"),
    [
        ({"split": "all"}, "q,a,b,c,d\n", ["s1.csv", "row 0", "expected 6 cells"]),
        ({"split": "train"}, "q,a,b,c,d,A\n", ["option 'split'", "'train'"]),
        ({"split": "test"}, "q,a,b,c,d,A\n", ["needs option 'split_seed'"]),
        ({"split": "all", "subject_order": ["other"]}, "q,a,b,c,d,A\n", ["s1", "not in option 'subject_order'"]),
    ],
)
def test_jmmlu_errors_name_the_file_or_option(tmp_path: Path, options, text, expected) -> None:
    path = tmp_path / "s1.csv"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError) as err:
        LOADERS["jmmlu"]([str(path)], options)
    for part in expected:
        assert part in str(err.value)
