"""JCoLA (jcola-in-domain, jcola-out-of-domain) against the real published files and the shipped slice.

The expectations are derived from llm-jp-eval's JCoLA processors (src/llm_jp_eval/datasets/jcola.py,
read in swallow-llm/swallow-evaluation @57c4ecdf), re-done here with the standard library only:
every JSON line is a sample, input = sentence, output = str(label); in-domain: test = the valid file
in order, train = the train file after `random.seed(42); random.shuffle`; out-of-domain: the valid
file shuffled the same way, train = its first 32 rows, then dev and test halves of the rest.
Few-shots are the first N train rows.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pytest_jallm.data import DataError, load_examples, load_fewshots
from pytest_jallm.loaders import LOADERS
from pytest_jallm.prompt import render_prompt
from pytest_jallm.spec import CATEGORIES_OUT_OF_AVERAGE
from pytest_jallm.specfile import load_spec
from real_slices import SLICES, for_slices

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SHARED = ROOT.parent / "shared" / "data"
JCOLA = "jcola/data/jcola-v1.0"
INSTRUCTION = (
    "これから提示する日本語の文章が文法的な誤りを含んでいるかを判断してください。"
    "文法的に正しい文章の場合1、誤りを含んでいる場合は0を出力してください。"
    "必ず1か0のどちらか1文字を出力し、それ以外には何も含めないことを厳守してください。"
)
PREAMBLE = "以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。要求を適切に満たす応答を書きなさい。"

needs_shared = pytest.mark.skipif(not (SHARED / "jcola").is_dir(),
                                  reason=f"real JCoLA files not found under {SHARED / 'jcola'} (see shared/data/README.md)")
on_slices = pytest.mark.filterwarnings("ignore::pytest_jallm.sources.UnpinnedDataWarning")  # a slice is not the pinned file


def _samples(root: Path, name: str) -> list[tuple[str, str, str]]:
    """(uid, output, input) per line, as the processor's `_get_samples` reads them."""
    with open(root / JCOLA / name, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh.readlines()]
    return [(str(r["uid"]), str(r["label"]), r["sentence"]) for r in rows]


def _shuffled(samples: list) -> list:
    samples = list(samples)
    random.seed(42)
    random.shuffle(samples)
    return samples


def _reference(root: Path, name: str) -> tuple[list, list]:
    """(test samples, train samples) as llm-jp-eval's processor cuts them."""
    if name == "jcola-in-domain":
        train = _shuffled(_samples(root, "in_domain_train-v1.0.json"))
        return _samples(root, "in_domain_valid-v1.0.json"), train[: len(train) * 9 // 10]
    valid = _shuffled(_samples(root, "out_of_domain_valid-v1.0.json"))
    n_dev = (len(valid) - 32) // 2
    return valid[32 + n_dev :], valid[:32]


def _spec(name: str):
    return load_spec(BENCH / f"{name}.yaml")


def test_specs_are_syntactic_analysis_beside_the_average() -> None:
    for name in ("jcola-in-domain", "jcola-out-of-domain"):
        spec = _spec(name)
        assert spec.category == "SYN" and "SYN" in CATEGORIES_OUT_OF_AVERAGE and not spec.counts_in_average
        assert (spec.instruction, spec.labels, spec.max_new_tokens, spec.metrics) == (INSTRUCTION, ["0", "1"], 1, ["exact_match"])
        assert spec.fewshot.count == 4 and spec.fewshot.shuffle_seed == 42


@needs_shared
@pytest.mark.parametrize(("name", "count", "ones"), [("jcola-in-domain", 865, 726), ("jcola-out-of-domain", 327, 242)])
def test_real_files_give_llm_jp_evals_test_split_and_few_shots(name: str, count: int, ones: int) -> None:
    spec = _spec(name)
    test, train = _reference(SHARED, name)
    examples = load_examples(spec, BENCH, SHARED)
    assert len(test) == count and sum(out == "1" for _, out, _ in test) == ones  # the raw files, counted here
    assert [(ex.id, ex.gold, ex.fields["sentence"]) for ex in examples] == test  # ids, golds and inputs, in order
    assert {ex.gold for ex in examples} == {"0", "1"}
    shots = load_fewshots(spec, BENCH, SHARED)
    assert [(s.id, s.gold, s.fields["sentence"]) for s in shots] == train[:4]
    assert not {s.id for s in shots} & {ex.id for ex in examples}


@needs_shared
def test_real_out_of_domain_prompt_with_its_four_shots() -> None:
    spec = _spec("jcola-out-of-domain")
    ex = load_examples(spec, BENCH, SHARED, limit=1)[0]
    shots = load_fewshots(spec, BENCH, SHARED)
    turns = [("太郎は3冊の本を買ったが、花子は5冊のを買った。", "0"), ("このビルは高さが20メートルある。", "1"),
             ("もしそのビルの高さが20メートルあるならば、この街で1番高い。", "1"), ("水のひまわりの与えにくさについて話した。", "0")]
    expected = PREAMBLE + "\n\n### 指示:\n" + INSTRUCTION
    expected += "".join(f"\n\n### 入力:\n{s}\n\n### 応答:\n{a}" for s, a in turns)
    expected += "\n\n### 入力:\n伊藤先生がメアリーをお褒めになった。\n\n### 応答:\n"
    assert (ex.id, ex.gold) == ("9388", "1")
    assert render_prompt(spec, ex, shots) == expected


@pytest.mark.parametrize("data", [pytest.param(SLICES, id="slices", marks=on_slices),
                                  pytest.param(SHARED, id="shared", marks=needs_shared)])
def test_in_domain_first_prompt_zero_shot(data: Path) -> None:
    spec = _spec("jcola-in-domain")
    spec = for_slices(spec) if data == SLICES else spec
    ex = load_examples(spec, BENCH, data, limit=1)[0]
    assert (ex.id, ex.gold) == ("2733", "0")
    assert render_prompt(spec, ex, []) == (
        PREAMBLE + "\n\n### 指示:\n" + INSTRUCTION + "\n\n### 入力:\nここは寒すぎている。\n\n### 応答:\n"
    )


@on_slices
def test_slice_gives_the_out_of_domain_cut_less_the_train_head() -> None:
    """On the 6-row slice the 32-row train head is dropped (tests/real_slices.py): test = the second
    half of the seed-42 shuffle, as the processor would cut it without the head."""
    spec = for_slices(_spec("jcola-out-of-domain"))
    rows = _shuffled(_samples(SLICES, "out_of_domain_valid-v1.0.json"))
    examples = load_examples(spec, BENCH, SLICES)
    assert [(ex.id, ex.gold, ex.fields["sentence"]) for ex in examples] == rows[len(rows) // 2 :]


def test_skip_drops_rows_after_the_shuffle_and_before_the_slice(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(10)), encoding="utf-8")
    load = LOADERS["json-records"]
    order = list(range(10))
    random.Random(7).shuffle(order)
    got = [r["n"] for r in load([str(path)], {"shuffle_seed": 7, "skip": 4, "slice": [0.5, 1.0]})]
    assert got == order[4:][3:]  # 6 rows left, the second half
    assert [r["n"] for r in load([str(path)], {"skip": 12})] == []


@pytest.mark.parametrize("bad", [-1, "32", True, 1.5])
def test_skip_must_be_a_row_count(tmp_path: Path, bad) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"n": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"loader option 'skip' must be a number of rows"):
        LOADERS["json-records"]([str(path)], {"skip": bad})
