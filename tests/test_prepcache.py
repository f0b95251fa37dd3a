"""The prepared-benchmark cache (pytest_jallm.prepcache): a re-run neither reads nor renders again,
every change that matters prepares again, a damaged entry is rebuilt with a warning, and a limited
run whose entry is missing reads only the rows it needs while its fingerprint stays the full data's."""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path

import pytest

import pytest_jallm.data as data_module
import pytest_jallm.loaders.files as files_module
import pytest_jallm.preparation as preparation
from pytest_jallm import filehash, readlog
from pytest_jallm.data import Example
from pytest_jallm.preparation import RunSettings, prepare
from pytest_jallm.prepcache import PreparedCache, PreparedCacheWarning
from pytest_jallm.sources import DataConfig, UnpinnedDataWarning
from pytest_jallm.specfile import load_spec

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"

SPEC = """\
name: toy
category: MC
source: {{path: data/test.jsonl}}
fewshot:
  count: 2
  shuffle_seed: 42
  source: {{path: data/train.jsonl}}
fields: {{id: qid, answer: label, choices: [c0, c1, c2], question: question}}
instruction: {instruction}
input: "質問：{{question}}\\n選択肢：{{choices}}"
labels: ["0", "1", "2"]
max_new_tokens: 2
metrics: [exact_match]
"""


def _rows(prefix: str, n: int) -> list[dict]:
    return [{"qid": f"{prefix}{i}", "question": f"{prefix}の問題{i}", "c0": "いぬ", "c1": "ねこ", "c2": "とり", "label": i % 3}
            for i in range(n)]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "toy.yaml").write_text(SPEC.format(instruction="番号で答えてください。"), encoding="utf-8")
    _write_jsonl(tmp_path / "data" / "test.jsonl", _rows("t", 12))
    _write_jsonl(tmp_path / "data" / "train.jsonl", _rows("s", 8))
    return tmp_path / "toy.yaml"


def _settings(tmp_path: Path, **kw) -> RunSettings:
    return RunSettings(model="m", data_config=DataConfig(cache_dir=tmp_path / "dl"), **kw)


def _prepare(spec_path: Path, settings: RunSettings, cache_dir: Path | None):
    cache = None if cache_dir is None else PreparedCache(cache_dir)
    return prepare(load_spec(spec_path), spec_path, settings, cache)


def _same(a, b) -> None:
    assert a.examples == b.examples and [e.context for e in a.examples] == [e.context for e in b.examples]
    assert a.shots == b.shots and a.requests == b.requests and a.inputs == b.inputs
    assert (a.data_fingerprint, a.prompt_hash) == (b.data_fingerprint, b.prompt_hash)


def _no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a, **k):
        raise AssertionError("a cached benchmark read its data again")

    monkeypatch.setattr(preparation, "load_examples", refuse)
    monkeypatch.setattr(preparation, "load_fewshots", refuse)


def test_a_rerun_reads_and_renders_nothing_and_equals_an_uncached_preparation(bench, tmp_path, monkeypatch) -> None:
    settings = _settings(tmp_path)
    first = _prepare(bench, settings, tmp_path / "prep")
    assert sorted(p.name.split(".")[1] for p in (tmp_path / "prep").iterdir()) == ["data", "prepared", "shots"]
    uncached = _prepare(bench, settings, None)
    _no_reading(monkeypatch)
    monkeypatch.setattr(preparation, "render_items", lambda *a, **k: pytest.fail("rendered again"))
    again = _prepare(bench, settings, tmp_path / "prep")
    _same(again, uncached)
    _same(first, uncached)
    assert again.inputs == [f"質問：tの問題{i}" + "\n選択肢：0.いぬ,1.ねこ,2.とり" for i in range(12)]


def test_changing_a_data_file_prepares_again(bench, tmp_path) -> None:
    settings = _settings(tmp_path)
    _prepare(bench, settings, tmp_path / "prep")
    rows = _rows("t", 12)
    rows[3]["question"] = "書き換えた問題"
    _write_jsonl(tmp_path / "data" / "test.jsonl", rows)
    again = _prepare(bench, settings, tmp_path / "prep")
    assert "書き換えた問題" in again.requests[3].prompt
    _same(again, _prepare(bench, settings, None))


def test_a_file_rewritten_with_the_same_size_and_a_new_mtime_is_hashed_again(bench, tmp_path) -> None:
    settings = _settings(tmp_path)
    _prepare(bench, settings, tmp_path / "prep")
    path = tmp_path / "data" / "test.jsonl"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("tの問題3", "tの問題X"), encoding="utf-8")  # the same number of bytes
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert "tの問題X" in _prepare(bench, settings, tmp_path / "prep").requests[3].prompt


def test_changing_the_spec_or_a_setting_prepares_again(bench, tmp_path) -> None:
    settings = _settings(tmp_path)
    _prepare(bench, settings, tmp_path / "prep")
    bench.write_text(SPEC.format(instruction="記号で答えよ。"), encoding="utf-8")
    edited = _prepare(bench, settings, tmp_path / "prep")
    assert all("記号で答えよ。" in r.prompt for r in edited.requests)
    for changed in (dataclasses.replace(settings, chat=True), dataclasses.replace(settings, num_fewshot=0),
                    dataclasses.replace(settings, limit=3), dataclasses.replace(settings, shuffle_choices=7)):
        _same(_prepare(bench, changed, tmp_path / "prep"), _prepare(bench, changed, None))


def test_a_new_file_matching_a_glob_prepares_again(tmp_path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "toy.yaml").write_text(SPEC.format(instruction="答えよ。").replace("data/test.jsonl", "data/part-*.jsonl")
                                       .replace("count: 2", "count: 0"), encoding="utf-8")
    _write_jsonl(tmp_path / "data" / "part-1.jsonl", _rows("a", 3))
    settings = _settings(tmp_path)
    assert len(_prepare(tmp_path / "toy.yaml", settings, tmp_path / "prep").examples) == 3
    _write_jsonl(tmp_path / "data" / "part-2.jsonl", _rows("b", 2))
    assert len(_prepare(tmp_path / "toy.yaml", settings, tmp_path / "prep").examples) == 5


@pytest.mark.parametrize("damage", ["truncated", "not json", "wrong types", "another key", "binary"])
def test_a_corrupt_entry_is_rebuilt_with_a_warning(bench, tmp_path, damage) -> None:
    settings = _settings(tmp_path)
    good = _prepare(bench, settings, tmp_path / "prep")
    entry = next((tmp_path / "prep").glob("toy.prepared.*.json"))
    text = entry.read_text(encoding="utf-8")
    broken = {
        "truncated": text[: len(text) // 2],
        "not json": "{nonsense",
        "wrong types": text.replace('"t0"', "0", 1),
        "another key": json.dumps({**json.loads(text), "key": "0" * 64}),
        "binary": None,
    }[damage]
    if broken is None:
        entry.write_bytes(b"\xff\xfe\x00garbage")
    else:
        entry.write_text(broken, encoding="utf-8")
    with pytest.warns(PreparedCacheWarning, match="unreadable"):
        again = _prepare(bench, settings, tmp_path / "prep")
    _same(again, good)
    assert json.loads(entry.read_text(encoding="utf-8"))["payload"]["examples"][0][0] == "t0"  # rewritten
    with warnings.catch_warnings():
        warnings.simplefilter("error", PreparedCacheWarning)
        _same(_prepare(bench, settings, tmp_path / "prep"), good)


def test_an_unwritable_folder_warns_once_and_the_run_goes_on(bench, tmp_path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder should be", encoding="utf-8")
    with pytest.warns(PreparedCacheWarning, match="cannot write"):
        prep = _prepare(bench, _settings(tmp_path), blocker / "prep")
    _same(prep, _prepare(bench, _settings(tmp_path), None))


def test_a_limited_run_reads_only_its_rows_and_keeps_the_full_fingerprint(bench, tmp_path, monkeypatch) -> None:
    full = _prepare(bench, _settings(tmp_path), None)
    _prepare(bench, _settings(tmp_path, limit=5), tmp_path / "prep")  # reads everything: no fingerprint known yet
    parsed: list[int] = []
    real = files_module.json_lines
    monkeypatch.setattr(files_module, "json_lines", lambda *a, **k: parsed.append(1) or real(*a, **k))
    monkeypatch.setattr(data_module, "plain_json_rows", lambda *a, **k: pytest.fail("the whole file was read"))
    monkeypatch.setattr(preparation, "load_fewshots", lambda *a, **k: pytest.fail("the few-shot source was read"))
    limited = _prepare(bench, _settings(tmp_path, limit=3), tmp_path / "prep")
    assert len(parsed) == 3  # one JSON line per example, none beyond the limit
    assert [e.id for e in limited.examples] == ["t0", "t1", "t2"]
    assert limited.data_fingerprint == full.data_fingerprint
    assert limited.shots == full.shots and limited.requests == full.requests[:3]


def test_a_limited_run_with_shuffled_choices_matches_the_full_draw(bench, tmp_path) -> None:
    settings = _settings(tmp_path, shuffle_choices=3)
    full = _prepare(bench, settings, None)
    _prepare(bench, dataclasses.replace(settings, limit=2), tmp_path / "prep")
    limited = _prepare(bench, dataclasses.replace(settings, limit=4), tmp_path / "prep")  # from the first rows only
    assert limited.examples == full.examples[:4] and limited.data_fingerprint == full.data_fingerprint


def test_a_changed_file_outside_the_limit_is_seen_through_the_fingerprint_entry(bench, tmp_path) -> None:
    _prepare(bench, _settings(tmp_path, limit=2), tmp_path / "prep")
    rows = _rows("t", 12)
    rows[10]["question"] = "後ろの行"  # beyond any limit used here
    _write_jsonl(tmp_path / "data" / "test.jsonl", rows)
    limited = _prepare(bench, _settings(tmp_path, limit=3), tmp_path / "prep")
    assert limited.data_fingerprint == _prepare(bench, _settings(tmp_path), None).data_fingerprint


def test_warnings_raised_while_preparing_are_raised_again_from_the_cache(tmp_path) -> None:
    data_dir = tmp_path / "mirror"
    (data_dir / "toy").mkdir(parents=True)
    _write_jsonl(data_dir / "toy" / "test.jsonl", _rows("t", 3))
    (tmp_path / "toy.yaml").write_text(
        SPEC.format(instruction="答えよ。").replace("{path: data/test.jsonl}",
                                                 "{url: 'https://example.invalid/test.jsonl', mirror: toy/test.jsonl}")
        .replace("count: 2", "count: 0"), encoding="utf-8")
    settings = _settings(tmp_path, data_dir=data_dir)
    for _ in range(2):
        with pytest.warns(UnpinnedDataWarning, match="not pinned"):
            _prepare(tmp_path / "toy.yaml", settings, tmp_path / "prep")
    assert len(list((tmp_path / "prep").glob("toy.prepared.*"))) == 1


def test_rows_json_cannot_hold_are_prepared_every_time(bench, tmp_path, monkeypatch) -> None:
    real = preparation.load_items

    def with_a_tuple(*a, **k):
        examples, fp = real(*a, **k)
        return [dataclasses.replace(e, context={**e.context, "pair": (1, 2)}) for e in examples], fp

    monkeypatch.setattr(preparation, "load_items", with_a_tuple)
    import pytest_jallm.prepcache as prepcache

    monkeypatch.setattr(prepcache, "load_items", with_a_tuple)
    prep = _prepare(bench, _settings(tmp_path), tmp_path / "prep")
    assert prep.examples[0].context["pair"] == (1, 2)
    assert not list((tmp_path / "prep").glob("toy.prepared.*"))


def test_unchanged_files_are_not_hashed_again_by_the_next_process(tmp_path, monkeypatch) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 1000)
    memo = tmp_path / "memo.json"
    hashed: list[str] = []
    real = filehash.hash_file
    monkeypatch.setattr(filehash, "hash_file", lambda p: hashed.append(str(p)) or real(p))
    first = filehash.FileHashes(memo)
    digest = first.sha256(path)
    first.flush()
    assert filehash.FileHashes(memo).sha256(path) == digest and len(hashed) == 1  # "the next process"
    path.write_bytes(b"y" * 1000)
    assert filehash.FileHashes(memo).sha256(path) != digest and len(hashed) == 2
    memo.write_text("{not json", encoding="utf-8")
    assert filehash.FileHashes(memo).sha256(path) == real(path)  # a damaged memo only costs a hash


def test_a_loader_outside_the_package_counts_as_a_file_read(tmp_path) -> None:
    module = tmp_path / "my_loader_mod.py"
    module.write_text("def load(files, options):\n    return []\n", encoding="utf-8")
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("my_loader_mod", module)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["my_loader_mod"] = mod
    try:
        spec.loader.exec_module(mod)
        with readlog.recording() as log:
            readlog.note_code(mod.load)
            readlog.note_code(prepare)  # this package's own code is in the key instead
    finally:
        del sys.modules["my_loader_mod"]
    assert list(log.files) == [str(module)]


def test_examples_come_back_with_their_types(bench, tmp_path) -> None:
    prep = _prepare(bench, _settings(tmp_path), tmp_path / "prep")
    again = _prepare(bench, _settings(tmp_path), tmp_path / "prep")
    ex = again.examples[1]
    assert isinstance(ex, Example) and isinstance(ex.choices, tuple) and ex.context["label"] == 1
    assert ex.context["_row"] == prep.examples[1].context["_row"] == 1


# --- through pytest ---------------------------------------------------------------------------------

@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "toy.yaml").write_text(SPEC.format(instruction="番号で答えてください。"), encoding="utf-8")
    _write_jsonl(bench / "data" / "test.jsonl", _rows("t", 6))
    _write_jsonl(bench / "data" / "train.jsonl", _rows("s", 4))
    (pytester.path / "script.json").write_text(json.dumps({"rules": [], "default": "0"}), encoding="utf-8")
    return pytester


def _run(pytester: pytest.Pytester, *extra: str):
    return pytester.runpytest("benchmarks", "--model", str(pytester.path / "script.json"), "--jallm-backend", SCRIPTED,
                              "-p", "no:cacheprovider", *extra)


def test_the_cache_sits_beside_the_generation_cache_and_no_cache_bypasses_it(suite: pytest.Pytester) -> None:
    _run(suite, "--jallm-no-cache").assert_outcomes(passed=1)
    assert not (suite.path / ".jallm").exists()
    _run(suite).assert_outcomes(passed=1)
    assert len(list((suite.path / ".jallm" / "prepared").glob("toy.prepared.*.json"))) == 1
    _run(suite, "--jallm-cache", str(suite.path / "elsewhere" / "gen.sqlite")).assert_outcomes(passed=1)
    assert len(list((suite.path / "elsewhere" / "prepared").glob("toy.prepared.*.json"))) == 1


def test_a_cached_run_fails_the_same_items_with_the_same_prompts(suite: pytest.Pytester) -> None:
    def failures(result) -> list[str]:
        lines = result.stdout.lines
        return [line for line in lines if line.startswith(("toy[", "質問", "以下は"))]

    first = _run(suite, "--jallm-items")
    first.assert_outcomes(passed=3, failed=4)  # the script answers 0: items 1, 2, 4, 5 are wrong, and so the benchmark
    assert list((suite.path / ".jallm" / "prepared").glob("toy.prepared.*.json"))
    second = _run(suite, "--jallm-items")
    second.assert_outcomes(passed=3, failed=4)
    assert failures(second) == failures(first) and any("tの問題4" in line for line in failures(first))


# --- the real catalog ---------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not (SHARED / "wikipedia-annotated-corpus").is_dir() or not (SHARED / "jglue").is_dir(),
                                  reason=f"real data not found at {SHARED}")


@pytest.mark.slow
@needs_shared
def test_real_wiki_ner_is_parsed_once_and_a_new_limit_parses_only_its_documents(tmp_path, monkeypatch) -> None:
    import pytest_jallm.loaders.wac as wac

    spec_path = ROOT / "benchmarks" / "wiki_ner.yaml"
    settings = _settings(tmp_path, data_dir=SHARED, limit=5)
    full = prepare(load_spec(spec_path), spec_path, dataclasses.replace(settings, limit=None))
    first = prepare(load_spec(spec_path), spec_path, settings, PreparedCache(tmp_path / "prep"))
    wac._parsed.cache_clear()
    wac._converted.cache_clear()
    parsed: list[str] = []
    real = wac._parsed.__wrapped__
    monkeypatch.setattr(wac, "_parsed", lambda path, content: parsed.append(path) or real(path, content))
    again = prepare(load_spec(spec_path), spec_path, settings, PreparedCache(tmp_path / "prep"))
    assert parsed == [] and again.requests == first.requests and again.data_fingerprint == full.data_fingerprint
    more = prepare(load_spec(spec_path), spec_path, dataclasses.replace(settings, limit=8), PreparedCache(tmp_path / "prep"))
    assert 8 <= len(parsed) < 20  # the first documents of the test list (empty ones skipped), no few-shot documents
    assert more.requests == full.requests[:8] and more.data_fingerprint == full.data_fingerprint


@pytest.mark.slow
@needs_shared
def test_real_jcommonsenseqa_limited_rerun_reads_its_rows_only(tmp_path, monkeypatch) -> None:
    spec_path = ROOT / "benchmarks" / "jcommonsenseqa.yaml"
    settings = _settings(tmp_path, data_dir=SHARED, limit=300)
    full = prepare(load_spec(spec_path), spec_path, dataclasses.replace(settings, limit=None))
    prepare(load_spec(spec_path), spec_path, settings, PreparedCache(tmp_path / "prep"))
    hashed: list[str] = []
    real_hash = filehash.hash_file
    monkeypatch.setattr(filehash, "hash_file", lambda p: hashed.append(str(p)) or real_hash(p))
    parsed: list[int] = []
    real_lines = files_module.json_lines
    monkeypatch.setattr(files_module, "json_lines", lambda *a, **k: parsed.append(1) or real_lines(*a, **k))
    with readlog.recording() as log:
        again = prepare(load_spec(spec_path), spec_path, settings, PreparedCache(tmp_path / "prep"))
    assert list(log.files) == [] and hashed == [] and parsed == []  # from the cache: stat calls only
    limited = prepare(load_spec(spec_path), spec_path, dataclasses.replace(settings, limit=200), PreparedCache(tmp_path / "prep"))
    assert len(parsed) == 200 and hashed == []  # 200 lines of the valid file; the train file not opened
    assert again.data_fingerprint == limited.data_fingerprint == full.data_fingerprint
    assert limited.requests == full.requests[:200] and again.requests == full.requests[:300]
