"""Every real-format loader, exercised without ../shared: on the small slices of the published
files in tests/fixtures/real-slices/ (laid out like ../shared/data, so the specs' own `mirror:`
paths find them with --jallm-data-dir). Counts here come from the slice files with a few lines
of csv/json/regex, independently of the project's loaders. When ../shared/data is present the
slices are also checked to be faithful (every kept record is a record of the real file).
The full-size checks against ../shared stay in test_real_specs.py and test_catalog.py.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
from pathlib import Path

import pytest
import yaml

from pytest_jallm.data import LOADERS, load_examples, load_fewshots
from pytest_jallm.prompt import render_prompt
from pytest_jallm.specfile import load_spec
from real_slices import PARTIAL, SLICES, for_slices

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
SHARED = ROOT.parent / "shared" / "data"
SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"
# A slice is not the pinned file: specs read it unpinned (real_slices.for_slices), which warns.
pytestmark = pytest.mark.filterwarnings("ignore::pytest_jallm.sources.UnpinnedDataWarning")

# Few-shot sources that are not in ../shared/data either (JGLUE train files; MGSM's few-shots
# come from Hugging Face): these specs are checked 0-shot.
NO_FEWSHOT_FILES = {"jnli", "jsquad", "mgsm"}


def _text(rel: str) -> str:
    return (SLICES / rel).read_text(encoding="utf-8")


def _lines(rel: str, header: int = 0) -> int:
    return len(_text(rel).splitlines()) - header


def _csv_rows(rel: str, header: int = 0) -> int:
    return sum(1 for _ in csv.reader(io.StringIO(_text(rel), newline=""))) - header


def _niilc_answered(rel: str) -> int:
    blocks = re.findall(r"<question\b.*?</question>", _text(rel), re.DOTALL)
    return sum(1 for b in blocks if "".join(re.findall(r"<answer>(.*?)</answer>", b)).strip("-, \n"))


def _second_half(n: int, start: float) -> int:
    """Items in llm-jp-eval's `rows[int(n * start):]`."""
    return n - int(n * start)


# spec -> independent item count in the slice
EXPECTED = {
    "jcommonsenseqa": lambda: _lines("jglue/jcommonsenseqa-v1.3/valid-v1.3.json"),
    "jnli": lambda: _lines("jglue/jnli-v1.3/valid-v1.3.json"),
    "jsts": lambda: _lines("jglue/jsts-v1.3/valid-v1.3.json"),
    "jsquad": lambda: sum(len(p["qas"]) for a in json.loads(_text("jglue/jsquad-v1.3/valid-v1.3.json"))["data"]
                          for p in a["paragraphs"]),
    "jamp": lambda: _lines("jamp/dataset/test_2.tsv", header=1),
    "jsick": lambda: _lines("jsick/jsick/test.tsv", header=1),
    "janli": lambda: sum(line.split("\t")[-1] == "test" for line in _text("janli/janli.tsv").splitlines()),
    "jemhopqa": lambda: len(json.loads(_text("jemhopqa/corpus_ver1.2/dev_ver1.2.json"))),
    "niilc": lambda: _niilc_answered("niilc/data/NIILC-ECQA2015_test.xml"),
    "commonsensemoralja": lambda: _csv_rows("jcommonsensemorality/data/data_test.csv", header=1),
    "mawps": lambda: _second_half(len(json.loads(_text("mawps/dataset/mawps/test.json"))), 0.5),
    "mawps_cot": lambda: _second_half(len(json.loads(_text("mawps/dataset/mawps/test.json"))), 0.5),
    "mgsm": lambda: _lines("mgsm/mgsm/mgsm_ja.tsv"),
    "mgsm_cot": lambda: _lines("mgsm/mgsm/mgsm_ja.tsv"),
    # llm-jp-eval's JMMLU split: each subject's second half is test (5 rows -> 3), less the pool's 2
    "jmmlu": lambda: sum(_csv_rows(f) - _csv_rows(f) // 2 for f in _sliced("jmmlu/JMMLU/*.csv")) - 2,
    # shuffled, then the last tenth: 20 problems -> 2
    "jsem": lambda: _second_half(sum(_text(f).count("<problem ") for f in _sliced("jsem/data/v1.0/*.xml")), 0.9),
    "jcola-in-domain": lambda: _lines("jcola/data/jcola-v1.0/in_domain_valid-v1.0.json"),
    # the test half of the shuffled rows (the slice is shorter than llm-jp-eval's 32-row train head)
    "jcola-out-of-domain": lambda: _second_half(_lines("jcola/data/jcola-v1.0/out_of_domain_valid-v1.0.json"), 0.5),
    "japanese_mt_bench": lambda: _lines("japanese-mt-bench/japanese_mt_bench/question_full.jsonl"),
    "m_ifeval_ja": lambda: _lines("m-ifeval/data/ja_input_data.jsonl"),
}


def _sliced(pattern: str) -> list[str]:
    return [str(Path(p).relative_to(SLICES)) for p in sorted(glob.glob(str(SLICES / pattern)))]


def _mirrored_specs() -> list[str]:
    """Every shipped spec whose local copy lives in a folder that the slices cover."""
    names = []
    for path in sorted(BENCH.glob("*.yaml")):
        spec = load_spec(path)
        if spec.source.mirror and (SLICES / spec.source.mirrors()[0].split("/")[0]).is_dir():
            names.append(spec.name)
    return names


def test_slices_cover_every_shared_folder_small_and_licensed() -> None:
    folders = {"jglue", "jmmlu", "janli", "jamp", "jsick", "jsem", "jemhopqa", "niilc", "jcommonsensemorality",
               "mawps", "mgsm", "wikipedia-annotated-corpus", "jcola", "japanese-mt-bench", "m-ifeval"}
    assert {p.name for p in SLICES.iterdir() if p.is_dir()} == folders
    total = sum(p.stat().st_size for p in SLICES.rglob("*") if p.is_file())
    # MT-Bench's recorded judgments carry the whole judge prompt (~200 kB); m-ifeval also carries two
    # models' responses and the reference's results on them (~290 kB)
    assert total < 1_050_000
    for folder in folders:
        readme = (SLICES / folder / "README.md").read_text(encoding="utf-8")
        assert "github.com/" in readme and "licence" in readme
        assert list((SLICES / folder).rglob("LICENSE*")), folder


def test_every_mirrored_spec_has_a_slice() -> None:
    covered = set(_mirrored_specs())
    assert set(EXPECTED) <= covered
    # the rest are datasets that ../shared/data does not hold either
    for path in sorted(BENCH.glob("*.yaml")):
        spec = load_spec(path)
        if spec.source.mirror and spec.name not in covered:
            assert not (SHARED.is_dir() and (SHARED / spec.source.mirrors()[0].split("/")[0]).is_dir()), spec.name


@pytest.mark.parametrize("name", _mirrored_specs())
def test_spec_loads_its_slice(name: str) -> None:
    spec = for_slices(load_spec(BENCH / f"{name}.yaml"))
    examples = load_examples(spec, BENCH, SLICES)
    assert examples, name
    if name in EXPECTED:
        assert len(examples) == EXPECTED[name](), name
    assert len({ex.id for ex in examples}) == len(examples)
    if spec.judge is None:  # an LLM-judged benchmark has no gold answer (tests/test_mt_bench.py)
        assert all(ex.gold.strip() for ex in examples)
    if spec.labels:
        assert {g for ex in examples for g in ex.gold.split("\n")} <= set(spec.labels)
    shots = []
    if spec.fewshot.count and name not in NO_FEWSHOT_FILES:
        shots = load_fewshots(spec, BENCH, SLICES)
        assert len(shots) == spec.fewshot.count
        assert all(s.gold.strip() for s in shots)
    prompt = render_prompt(spec, examples[0], shots)
    assert spec.instruction.strip()[:10] in prompt


def test_wiki_tasks_load_their_slice() -> None:
    test_ids = _text("wikipedia-annotated-corpus/id/test.id").split()
    for task in ("reading", "ner", "dependency", "pas", "coreference"):
        rows = LOADERS["wac"]([str(SLICES / "wikipedia-annotated-corpus" / "id" / "test.id")], {"task": task})
        assert rows and {r["id"] for r in rows} <= set(test_ids), task
        assert all(r["answer"].strip() and r["text"].strip() for r in rows)
        pool = LOADERS["wac"]([str(SLICES / "wikipedia-annotated-corpus" / "id" / "train.id")], {"task": task, "max_rows": 16})
        assert len(pool) >= 4, task  # the specs' 4-shot pool


def test_jcommonsenseqa_prompt_on_the_slice_is_llm_jp_evals() -> None:
    spec = for_slices(load_spec(BENCH / "jcommonsenseqa.yaml"))
    ex = load_examples(spec, BENCH, SLICES, limit=1)[0]
    assert (ex.id, ex.gold) == ("8939", "2")
    assert render_prompt(spec, ex, []).endswith(
        "### 入力:\n質問：電子機器で使用される最も主要な電子回路基板の事をなんと言う？\n"
        "選択肢：0.掲示板,1.パソコン,2.マザーボード,3.ハードディスク,4.まな板\n\n### 応答:\n"
    )


def _unpinned(raw: dict) -> dict:
    for source in (raw.get("source"), (raw.get("fewshot") or {}).get("source")):
        if source:
            source.pop("sha256", None)
            source.pop("sha256_file", None)
            (source.get("loader_options") or {}).pop("skip", None)  # as real_slices.for_slices
    return raw


def test_a_run_reads_the_slices_through_data_dir(pytester: pytest.Pytester) -> None:
    """The plugin end to end: the spec files as shipped less their sha256 pins (a slice is not
    the pinned file) and a `skip` longer than its slice, --jallm-data-dir at the slices, 0-shot."""
    # An LLM-judged benchmark needs a judge: its run is tests/test_mt_bench_run.py's.
    specs = [name for name in _mirrored_specs() if name not in PARTIAL and load_spec(BENCH / f"{name}.yaml").judge is None]
    bench = pytester.mkdir("benchmarks")
    for name in specs:
        raw = yaml.safe_load((BENCH / f"{name}.yaml").read_text(encoding="utf-8"))
        (bench / f"{name}.yaml").write_text(yaml.safe_dump(_unpinned(raw), allow_unicode=True), encoding="utf-8")
    script = pytester.path / "script.json"
    script.write_text(json.dumps({"rules": [], "default": "0"}), encoding="utf-8")
    result = pytester.runpytest("benchmarks", "--model", str(script),
                                "--jallm-backend", SCRIPTED, "--jallm-no-cache", "--jallm-num-fewshot", "0",
                                "--jallm-data-dir", str(SLICES), "--jallm-thresholds-dir", str(pytester.path / "none"),
                                "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(specs))


needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real benchmark files not found at {SHARED} "
                                  "(the slices' faithfulness is checked against them)")


@needs_shared
def test_slices_are_faithful_to_the_real_files() -> None:
    files = sorted(str(p.relative_to(SLICES)) for p in SLICES.rglob("*") if p.is_file() and p.name != "README.md")
    assert len(files) > 40
    for rel in files:
        _check_faithful(rel)


def _check_faithful(rel: str) -> None:
    real = (SHARED / rel).read_text(encoding="utf-8")
    mine = _text(rel)
    if "LICENSE" in rel or rel.endswith(".knp"):
        assert mine == real
    elif rel.endswith(".json") and mine.lstrip().startswith(("[", '{"data"')):  # one JSON value, re-serialised
        data = json.loads(mine)
        full = json.loads(real)
        if isinstance(data, list):
            assert data == full[: len(data)]
        else:  # JSQuAD: the kept questions are the first questions of the real file
            qas = [q for a in data["data"] for p in a["paragraphs"] for q in p["qas"]]
            real_qas = [q for a in full["data"] for p in a["paragraphs"] for q in p["qas"]]
            assert qas == real_qas[: len(qas)]
    elif rel.endswith(".id"):
        assert set(mine.split()) <= set(real.split())
    elif rel.endswith(".xml"):
        blocks = re.findall(r"<(?:problem|question)\b.*?</(?:problem|question)>", mine, re.DOTALL)
        assert blocks and all(b in real for b in blocks)
        assert real.startswith(mine[: mine.index(blocks[0])])  # the prologue as published
    else:  # line-based: the slice is the real file's first lines, or (JaNLI) some of them in order
        real_lines = real.splitlines(keepends=True)
        lines = mine.splitlines(keepends=True)
        if rel == "janli/janli.tsv" or rel.startswith(("japanese-mt-bench/japanese_mt_bench/", "m-ifeval/")):  # chosen lines, in order
            it = iter(real_lines)
            assert all(line in it for line in lines)
        else:
            assert lines == real_lines[: len(lines)]
