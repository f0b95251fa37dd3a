"""The shipped specs' field mappings, checked against the real published files.

The files live in ../shared/data (JGLUE v1.3, JMMLU as their authors publish
them); they are not part of the project. The full-size checks skip without them;
the format checks also run on the small real slices in tests/fixtures/real-slices/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_jallm.data import load_examples, load_fewshots
from pytest_jallm.prompt import render_prompt
from pytest_jallm.specfile import load_spec
from real_slices import SLICES, for_slices

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


needs_shared = pytest.mark.skipif(
    not (SHARED / "jglue").is_dir() or not (SHARED / "jmmlu").is_dir(),
    reason=f"real benchmark files not found at {SHARED} (see shared/data/README.md)",
)
# The full files when present, and always their slices (the first records of the same files,
# read unpinned: a slice is not the pinned file).
DATA_ROOTS = [
    pytest.param(SLICES, id="slices", marks=pytest.mark.filterwarnings("ignore::pytest_jallm.sources.UnpinnedDataWarning")),
    pytest.param(SHARED, id="shared", marks=needs_shared),
]


def _spec(name: str, data: Path):
    spec = load_spec(ROOT / "benchmarks" / f"{name}.yaml")
    return for_slices(spec) if data == SLICES else spec


def _load(name: str, limit=None, data=SHARED):
    spec = _spec(name, data)
    return spec, load_examples(spec, ROOT / "benchmarks", data, limit)


@needs_shared
@pytest.mark.parametrize(
    ("name", "count", "labels"),
    [
        ("jcommonsenseqa", 1119, {"0", "1", "2", "3", "4"}),
        ("jnli", 2434, {"entailment", "contradiction", "neutral"}),
        ("jsquad", 4442, None),
        ("jmmlu", 3541, {"A", "B", "C", "D"}),  # llm-jp-eval's test half; 7,097 rows in all
    ],
)
def test_spec_maps_every_row_of_the_real_file(name: str, count: int, labels) -> None:
    spec, examples = _load(name)
    assert len(examples) == count
    assert len({ex.id for ex in examples}) == count
    if labels is not None:
        assert {ex.gold for ex in examples} == labels
    assert all(ex.gold for ex in examples)


@pytest.mark.parametrize("data", DATA_ROOTS)
def test_jcommonsenseqa_prompt_matches_llm_jp_eval_format(data: Path) -> None:
    spec, examples = _load("jcommonsenseqa", limit=1, data=data)
    ex = examples[0]
    assert ex.id == "8939" and ex.gold == "2"
    prompt = render_prompt(spec, ex, [])
    assert prompt.endswith(
        "### 入力:\n質問：電子機器で使用される最も主要な電子回路基板の事をなんと言う？\n"
        "選択肢：0.掲示板,1.パソコン,2.マザーボード,3.ハードディスク,4.まな板\n\n### 応答:\n"
    )
    assert prompt.startswith("以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。")


@pytest.mark.parametrize("data", DATA_ROOTS)
def test_jcommonsenseqa_fewshots_come_from_shuffled_train(data: Path) -> None:
    path = ROOT / "benchmarks" / "jcommonsenseqa.yaml"
    spec = _spec("jcommonsenseqa", data)
    shots = load_fewshots(spec, path.parent, data)
    assert len(shots) == 4
    again = load_fewshots(spec, path.parent, data)
    assert [s.id for s in shots] == [s.id for s in again]  # deterministic
    assert [s.id for s in shots] != ["0", "1", "2", "3"]  # shuffled, not the file head


@pytest.mark.parametrize("data", DATA_ROOTS)
def test_jsquad_keeps_title_sep_context_and_first_answer(data: Path) -> None:
    spec, examples = _load("jsquad", limit=1, data=data)
    ex = examples[0]
    assert ex.id == "a10336p0q0"
    assert ex.fields["context"].startswith("梅雨 [SEP] 梅雨（つゆ、ばいう）は")
    assert ex.gold == "小笠原諸島"


@pytest.mark.parametrize("data", DATA_ROOTS)
def test_jmmlu_reads_headerless_csv_with_bom(data: Path) -> None:
    from pytest_jallm.data import LOADERS

    rows = LOADERS["jmmlu"]([str(data / "jmmlu" / "JMMLU" / "anatomy.csv")], {"split": "all"})
    assert rows[0]["question"].startswith("「皿状顔貌(dished face)」")  # BOM stripped
    assert (rows[0]["_file"], rows[0]["_row"], rows[0]["answer"]) == ("anatomy", 0, "B")
    if data == SLICES:  # four subjects: the whole spec is read in test_real_slices.py
        rows = LOADERS["jmmlu"]([str(p) for p in sorted((data / "jmmlu" / "JMMLU").glob("*.csv"))], {"split": "all"})
        assert not any(r["question"].startswith("\ufeff") for r in rows) and len(rows) == 20
        return
    spec, examples = _load("jmmlu")
    assert not any(ex.fields["question"].startswith("\ufeff") for ex in examples)
    assert all(len(ex.choices) == 4 for ex in examples)
