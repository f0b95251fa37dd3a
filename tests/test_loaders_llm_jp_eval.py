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


# Wikipedia Annotated Corpus (KNP) --------------------------------------------------------------

# One document: a sentence whose parenthesis (（学生）) the corpus moved into a sentence of its
# own, a named entity, two predicates with their arguments, and 彼 coreferring with 太郎.
_KNP = """\
# S-ID:doc00000001-01 括弧削除
* 2D
+ 2D <NE:PERSON:太郎>
太郎 たろう 太郎 名詞 6 人名 5 * 0 * 0 NIL
は は は 助詞 9 副助詞 2 * 0 * 0 NIL
* 2D
+ 2D
本 ほん 本 名詞 6 普通名詞 1 * 0 * 0 NIL
を を を 助詞 9 格助詞 1 * 0 * 0 NIL
* -1D
+ -1D <rel type="ガ" target="太郎" sid="doc00000001-01" id="0"/><rel type="ヲ" target="本" sid="doc00000001-01" id="1"/>
読む よむ 読む 動詞 2 * 0 子音動詞マ行 9 基本形 2 NIL
。 。 。 特殊 1 句点 1 * 0 * 0 NIL
EOS
# S-ID:doc00000001-02 括弧始:（ 括弧終:） 括弧位置:2
* -1D
+ -1D
学生 がくせい 学生 名詞 6 普通名詞 1 * 0 * 0 NIL
EOS
# S-ID:doc00000001-03
* 1D
+ 1D <rel type="=" target="太郎" sid="doc00000001-01" id="0"/>
彼 かれ 彼 名詞 6 普通名詞 1 * 0 * 0 NIL
は は は 助詞 9 副助詞 2 * 0 * 0 NIL
* -1D
+ -1D <rel type="ガ" target="彼" sid="doc00000001-03" id="0"/>
笑う わらう 笑う 動詞 2 * 0 子音動詞ワ行 12 基本形 2 NIL
。 。 。 特殊 1 句点 1 * 0 * 0 NIL
EOS
"""
# A document with no named entity, no argument and no coreference: dropped by those tasks.
_KNP_PLAIN = """\
# S-ID:doc00000000-01
* -1D
+ -1D
晴れ はれ 晴れ 名詞 6 普通名詞 1 * 0 * 0 NIL
。 。 。 特殊 1 句点 1 * 0 * 0 NIL
EOS
"""


def _corpus(tmp_path: Path) -> Path:
    root = tmp_path / "wac"
    (root / "id").mkdir(parents=True)
    (root / "knp" / "doc00000").mkdir(parents=True)
    (root / "knp" / "doc00000" / "doc00000001.knp").write_text(_KNP, encoding="utf-8")
    (root / "knp" / "doc00000" / "doc00000000.knp").write_text(_KNP_PLAIN, encoding="utf-8")
    (root / "id" / "test.id").write_text("doc00000001\ndoc00000000\n", encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("task", "text", "answer"),
    [
        ("reading", "太郎は本を読む。彼は笑う。", "たろうはほんをよむ。かれはわらう。"),
        ("ner", "太郎（学生）は本を読む。彼は笑う。", "太郎（人名）"),
        ("dependency", "太郎は本を読む。彼は笑う。", "太郎は -> 読む。\n本を -> 読む。\n彼は -> 笑う。"),
        ("pas", "太郎（学生）は本を読む。彼は笑う。", "読む ガ：太郎 ヲ：本\n笑う ガ：彼"),
        ("coreference", "太郎は本を読む。彼は笑う。", "太郎 彼"),
    ],
)
def test_wac_tasks_from_the_corpus_directory(tmp_path: Path, task: str, text: str, answer: str) -> None:
    rows = LOADERS["wac"]([str(_corpus(tmp_path))], {"task": task, "split": "test"})
    keep = [r for r in rows if r["id"] == "doc00000001"]
    assert len(keep) == 1 and (keep[0]["text"], keep[0]["answer"]) == (text, answer)
    # Sorted by document; a document with an empty answer is dropped.
    assert [r["id"] for r in rows] == (["doc00000000", "doc00000001"] if task == "reading" else ["doc00000001"])


def test_wac_reads_an_id_list_with_the_documents_beside_it(tmp_path: Path) -> None:
    root = _corpus(tmp_path)
    rows = LOADERS["wac"]([str(root / "id" / "test.id")], {"task": "reading", "knp_base_url": "https://example.invalid/knp"})
    assert [r["id"] for r in rows] == ["doc00000000", "doc00000001"]  # local copy: no URL is read
    first = LOADERS["wac"]([str(root / "id" / "test.id")], {"task": "reading", "max_rows": 1})
    assert [r["id"] for r in first] == ["doc00000000"]


@pytest.mark.parametrize(
    ("where", "options", "expected"),
    [
        ("root", {"task": "srl", "split": "test"}, ["option 'task' is 'srl'"]),
        ("root", {"task": "ner"}, ["needs loader option 'split'"]),
        ("lonely.id", {"task": "ner"}, ["lonely.id", "no knp/ folder", "knp_base_url"]),
        ("bad.knp", {"task": "ner"}, ["bad.knp", "not readable as KNP"]),
    ],
)
def test_wac_errors_name_the_file_or_option(tmp_path: Path, where, options, expected) -> None:
    root = _corpus(tmp_path)
    if where == "root":
        path = root
    else:
        path = tmp_path / where
        path.write_text("doc00000001\n" if where.endswith(".id") else "+ garbage\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        LOADERS["wac"]([str(path)], options)
    for part in expected:
        assert part in str(err.value)
