"""Parity with llm-jp-eval 1.3.0, item by item, on the real benchmark files.

`../shared/parity/llm-jp-eval-1.3.0/<dataset>.json` holds what llm-jp-eval 1.3.0's own
processors and prompt code made of the real files (its README says how). Each test here
runs the plugin's preparation path -- spec -> data -> prompt, `evaluation.prepare`, exactly
what a pytest run calls -- on the same files in `../shared/data` (through the specs'
`mirror` paths, i.e. `--jallm-data-dir` semantics) and compares: item count, every
input and gold, the instruction, output length, and the 0-shot and 4-shot prompts of the
first items, character for character. Both folders are outside the project; without
them these tests skip.

Where the plugin deliberately differs from llm-jp-eval it is a spec option, off by
default (docs/catalog.md lists them); these tests check the default.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from pytest_jallm.evaluation import PreparedBenchmark, RunSettings, prepare
from pytest_jallm.prompt import render_input
from pytest_jallm.spec import BenchmarkSpec
from pytest_jallm.specfile import load_spec

ROOT = Path(__file__).resolve().parents[1]
PARITY = ROOT.parent / "shared" / "parity" / "llm-jp-eval-1.3.0"
DATA = ROOT.parent / "shared" / "data"

# Every test item of 17 real datasets (JSeM's XML and the KNP corpus take seconds to read):
# outside the inner loop (`pytest tests -m "not slow"`); CI runs it.
pytestmark = pytest.mark.slow

DATASETS = [
    "jamp", "janli", "jcommonsenseqa", "jemhopqa", "jmmlu", "jnli", "jsem", "jsick", "jsquad",
    "jsts", "mawps", "niilc", "wiki_coreference", "wiki_dependency", "wiki_ner", "wiki_pas",
    "wiki_reading",
]
# JNLI's and JSQuAD's train files are not published in shared/data (nor were they fed to
# llm-jp-eval for the fixtures), so their fixtures have no few-shots and no 4-shot prompts.
NO_FEWSHOT_FIXTURE = {"jnli", "jsquad"}
# Deliberate deviations from llm-jp-eval: spec options, off by default, documented in
# docs/catalog.md in these words. name -> (loader option, its deviating value, the text).
DEVIATIONS = {"jmmlu": ("split", "all", "`jmmlu`'s `loader_options: {split: all}`")}


def _fixture(name: str) -> dict[str, Any]:
    path = PARITY / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"llm-jp-eval 1.3.0 parity fixture not found at {path} (see shared/parity/llm-jp-eval-1.3.0/README.md)")
    if not DATA.is_dir():
        pytest.skip(f"real benchmark files not found at {DATA} (see shared/data/README.md)")
    return json.loads(path.read_text(encoding="utf-8"))


def _spec(name: str) -> tuple[BenchmarkSpec, Path]:
    path = ROOT / "benchmarks" / f"{name}.yaml"
    return load_spec(path), path


@lru_cache(maxsize=None)
def _prepared(name: str, num_fewshot: int, limit: int | None) -> PreparedBenchmark:
    spec, path = _spec(name)
    settings = RunSettings(model="parity", data_dir=DATA, num_fewshot=num_fewshot, limit=limit)
    return prepare(spec, path, settings)


def _assert_same_items(what: str, ours: list[str], theirs: list[str]) -> None:
    """Compare long lists and report the first differences readably (not a 5,000-line diff)."""
    assert len(ours) == len(theirs), f"{what}: {len(ours)} items, llm-jp-eval has {len(theirs)}"
    bad = [i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b]
    if bad:
        shown = "\n".join(f"  item {i}: ours {ours[i]!r}\n  {' ' * len(str(i))}       theirs {theirs[i]!r}" for i in bad[:3])
        pytest.fail(f"{what}: {len(bad)} of {len(ours)} differ, first at item {bad[0]}:\n{shown}")


@pytest.mark.parametrize("name", DATASETS)
def test_every_test_item_matches(name: str) -> None:
    fixture = _fixture(name)
    prep = _prepared(name, 0, None)
    inputs = [render_input(prep.spec, ex) for ex in prep.examples]
    golds = [ex.gold for ex in prep.examples]
    assert len(inputs) == fixture["num_test_samples"], f"{name}: {len(inputs)} test items, llm-jp-eval has {fixture['num_test_samples']}"
    _assert_same_items(f"{name} inputs", inputs, [s["input"] for s in fixture["samples"]])
    _assert_same_items(f"{name} golds", golds, [s["output"] for s in fixture["samples"]])


@pytest.mark.parametrize("name", DATASETS)
def test_instruction_and_output_length_match(name: str) -> None:
    fixture = _fixture(name)
    spec, _ = _spec(name)
    assert spec.instruction == fixture["instruction"]
    assert spec.max_new_tokens == fixture["output_length"]
    assert spec.primary_metric == fixture["metrics"][0]


@pytest.mark.parametrize("name", DATASETS)
def test_zero_shot_prompts_match(name: str) -> None:
    fixture = _fixture(name)
    expected = fixture["prompt_0shot_first3"]
    prep = _prepared(name, 0, None)
    assert prep.shots == []
    _assert_same_items(f"{name} 0-shot prompts", [r.prompt for r in prep.requests[: len(expected)]], expected)


@pytest.mark.parametrize("name", DATASETS)
def test_four_shot_prompts_and_shots_match(name: str) -> None:
    if name in NO_FEWSHOT_FIXTURE:
        pytest.skip(f"{name}: llm-jp-eval's few-shots come from the JGLUE train file, which shared/data lacks")
    fixture = _fixture(name)
    expected = fixture["prompt_4shot_first3"]
    prep = _prepared(name, 4, len(expected))
    shots = [{"input": render_input(prep.spec, s), "output": s.gold} for s in prep.shots]
    assert shots == fixture["few_shots"]
    _assert_same_items(f"{name} 4-shot prompts", [r.prompt for r in prep.requests], expected)


def test_every_fixture_is_covered() -> None:
    if not PARITY.is_dir():
        pytest.skip(f"llm-jp-eval 1.3.0 parity fixtures not found at {PARITY}")
    assert sorted(p.stem for p in PARITY.glob("*.json")) == sorted(DATASETS)


@pytest.mark.parametrize("name", sorted(DEVIATIONS))
def test_deviation_options_are_off_by_default_documented_and_deviate(name: str) -> None:
    option, value, documented = DEVIATIONS[name]
    assert documented in (ROOT / "docs" / "catalog.md").read_text(encoding="utf-8")
    fixture = _fixture(name)
    spec, path = _spec(name)
    assert spec.source.loader_options.get(option) != value
    deviating = spec.model_copy(update={"source": spec.source.model_copy(
        update={"loader_options": {**spec.source.loader_options, option: value}})})
    prep = prepare(deviating, path, RunSettings(model="parity", data_dir=DATA, num_fewshot=0))
    assert [render_input(prep.spec, ex) for ex in prep.examples] != [s["input"] for s in fixture["samples"]]


def test_wiki_task_through_real_downloads_matches(tmp_path: Path) -> None:
    """The URL path: the spec's id list and every KNP document it names are downloaded (a
    loopback server serves the corpus through --jallm-url-map) and checked against the
    spec's pins; the items are llm-jp-eval's all the same."""
    from file_server import serve_directory
    from pytest_jallm.sources import DataConfig

    fixture = _fixture("wiki_dependency")
    spec, path = _spec("wiki_dependency")
    upstream = "https://raw.githubusercontent.com/ku-nlp/WikipediaAnnotatedCorpus/v1.1.2/"
    assert spec.source.locations() == [upstream + "id/test.id"]
    with serve_directory(DATA / "wikipedia-annotated-corpus") as server:
        config = DataConfig(cache_dir=tmp_path / "cache", url_map=((upstream, server.base_url + "/"),),
                            progress=lambda desc, total: None)
        prep = prepare(spec, path, RunSettings(model="parity", data_config=config, num_fewshot=4))
    assert server.count(".knp") >= fixture["num_test_samples"]  # every document was downloaded
    assert [render_input(prep.spec, ex) for ex in prep.examples] == [s["input"] for s in fixture["samples"]]
    assert [ex.gold for ex in prep.examples] == [s["output"] for s in fixture["samples"]]
    assert [r.prompt for r in prep.requests[:3]] == fixture["prompt_4shot_first3"]
