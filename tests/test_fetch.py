"""Downloads: urllib through the URL map into the data cache, atomically, checked against sha256 pins.

A loopback file server (tests/file_server.py) serves small files made here and counts the
requests it gets.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from file_server import serve_directory
from pytest_jallm.data import DataError, load_rows
from pytest_jallm.sources import DataConfig, map_url, parse_url_map
from pytest_jallm.spec import Source

UPSTREAM = "https://upstream.invalid/org/repo/abc123/"
ROWS = [{"id": f"q{i}", "question": f"問{i}", "label": str(i % 2)} for i in range(50)]


def _published(tmp_path: Path) -> tuple[Path, str]:
    """A 'published' JSONL file under a served folder, and its sha256."""
    served = tmp_path / "served" / "data"
    served.mkdir(parents=True)
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS).encode("utf-8")
    (served / "test.jsonl").write_bytes(body)
    return tmp_path / "served", hashlib.sha256(body).hexdigest()


def _source(pin: str | None) -> Source:
    return Source(url=UPSTREAM + "data/test.jsonl", format="jsonl", mirror="repo/data/test.jsonl",
                  sha256={"repo/data/test.jsonl": pin} if pin else {})


def _config(tmp_path: Path, base_url: str, progress=None) -> DataConfig:
    return DataConfig(cache_dir=tmp_path / "cache", url_map=((UPSTREAM, base_url + "/"),), progress=progress)


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_url_map_rewrites_the_longest_matching_prefix() -> None:
    rules = parse_url_map(["https://a/=http://m/", "https://a/b/=http://n/x/"], "https://c/=http://o/")
    assert map_url("https://a/b/f.json", rules) == "http://n/x/f.json"
    assert map_url("https://a/z.json", rules) == "http://m/z.json"
    assert map_url("https://c/q?x=1", rules) == "http://o/q?x=1"
    assert map_url("https://elsewhere/f", rules) == "https://elsewhere/f"
    with pytest.raises(ValueError, match="'nothing' is not PREFIX=REPLACEMENT"):
        parse_url_map(["nothing"])


def test_download_through_url_map_then_cache_hit_makes_no_request(tmp_path: Path, capsys) -> None:
    root, digest = _published(tmp_path)
    with serve_directory(root) as server:
        config = DataConfig(cache_dir=tmp_path / "cache", url_map=((UPSTREAM, server.base_url + "/"),))
        rows, _ = load_rows(_source(digest), tmp_path, None, "t: source", config)
        assert [r["id"] for r in rows] == [r["id"] for r in ROWS]
        assert server.requests == ["/data/test.jsonl"]  # the mapped URL was asked for, once
        assert "downloading test.jsonl" in capsys.readouterr().err  # the progress bar
        again, _ = load_rows(_source(digest), tmp_path, None, "t: source", config)
        assert again == rows
        assert server.requests == ["/data/test.jsonl"]  # second run: from the cache, no request
    (cached,) = _cache_files(tmp_path)
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == digest
    assert stat.S_IMODE(cached.stat().st_mode) == 0o666 & ~_umask()  # a shared cache stays readable


def test_progress_bar_sees_every_byte(tmp_path: Path) -> None:
    root, digest = _published(tmp_path)
    seen: list[tuple[str, int | None, int]] = []

    class Bar:
        def __init__(self, desc, total):
            self.entry = [desc, total, 0]

        def update(self, n):
            self.entry[2] += n

        def close(self):
            seen.append(tuple(self.entry))

    with serve_directory(root) as server:
        load_rows(_source(digest), tmp_path, None, "t: source", _config(tmp_path, server.base_url, Bar))
    size = (root / "data" / "test.jsonl").stat().st_size
    assert seen == [("downloading test.jsonl", size, size)]


def test_sha256_mismatch_names_the_file_and_both_hashes_and_keeps_nothing(tmp_path: Path) -> None:
    root, digest = _published(tmp_path)
    wrong = "0" * 64
    with serve_directory(root) as server, pytest.raises(DataError) as err:
        load_rows(_source(wrong), tmp_path, None, "t: source", _config(tmp_path, server.base_url))
    message = str(err.value)
    assert UPSTREAM + "data/test.jsonl" in message and wrong in message and digest in message, message
    assert _cache_files(tmp_path) == []


def test_a_changed_cached_copy_is_refused_on_read(tmp_path: Path) -> None:
    root, digest = _published(tmp_path)
    with serve_directory(root) as server:
        config = _config(tmp_path, server.base_url)
        load_rows(_source(digest), tmp_path, None, "t: source", config)
        (cached,) = _cache_files(tmp_path)
        cached.write_bytes(cached.read_bytes().replace("問1".encode(), "問9".encode()))
        with pytest.raises(DataError) as err:
            load_rows(_source(digest), tmp_path, None, "t: source", config)
    message = str(err.value)
    assert str(cached) in message and digest in message and hashlib.sha256(cached.read_bytes()).hexdigest() in message


def test_a_changed_mirror_in_the_data_dir_is_refused_on_read(tmp_path: Path) -> None:
    _, digest = _published(tmp_path)
    data_dir = tmp_path / "mirror"
    (data_dir / "repo" / "data").mkdir(parents=True)
    changed = data_dir / "repo" / "data" / "test.jsonl"
    changed.write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_rows(_source(digest), tmp_path, data_dir, "t: source", DataConfig(cache_dir=tmp_path / "cache"))
    assert str(changed) in str(err.value) and digest in str(err.value)


def test_interrupted_download_leaves_no_file_behind(tmp_path: Path) -> None:
    root, digest = _published(tmp_path)
    with serve_directory(root, truncate={"/data/test.jsonl"}) as server:
        config = _config(tmp_path, server.base_url)
        with pytest.raises(DataError, match="could not download|stopped after") as err:
            load_rows(_source(digest), tmp_path, None, "t: source", config)
        assert UPSTREAM + "data/test.jsonl" in str(err.value)
        assert _cache_files(tmp_path) == []  # neither the file nor a partial temporary
        server.truncate.clear()
        rows, _ = load_rows(_source(digest), tmp_path, None, "t: source", config)  # a retry starts afresh
    assert len(rows) == len(ROWS)


def test_unreachable_url_says_how_to_work_offline(tmp_path: Path) -> None:
    config = DataConfig(cache_dir=tmp_path / "cache", url_map=((UPSTREAM, "http://127.0.0.1:9/"),))
    with pytest.raises(DataError) as err:
        load_rows(_source(None), tmp_path, None, "t: source", config)
    message = str(err.value)
    assert "could not download " + UPSTREAM + "data/test.jsonl (via http://127.0.0.1:9/data/test.jsonl)" in message
    assert "data fetch" in message and "--jallm-data-dir" in message


def test_unpinned_download_is_reported(tmp_path: Path) -> None:
    root, _ = _published(tmp_path)
    with serve_directory(root) as server, pytest.warns(UserWarning, match="not pinned by sha256"):
        load_rows(_source(None), tmp_path, None, "t: source", _config(tmp_path, server.base_url))


@pytest.mark.parametrize("mirror", ["../../etc/passwd", "/etc/passwd", "repo/../../outside.jsonl"])
def test_mirror_outside_the_data_dir_is_refused(tmp_path: Path, mirror: str) -> None:
    (tmp_path / "outside.jsonl").write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="inside --jallm-data-dir"):
        Source(url=UPSTREAM + "x.jsonl", mirror=mirror)
    # Even a Source built without validation is refused when it is read.
    source = Source.model_construct(url=UPSTREAM + "x.jsonl", mirror=mirror, format="jsonl", sha256={},
                                    sha256_file=None, path=None, hf=None, where={}, exclude={}, loader_options={},
                                    columns=None, hf_config=None, split=None)
    with pytest.raises(DataError, match="refused"):
        load_rows(source, tmp_path, tmp_path / "data", "t: source")


# in a run: one benchmark's missing data fails that benchmark only -------------------------------


def test_missing_fewshot_source_fails_its_benchmark_alone(pytester: pytest.Pytester) -> None:
    from jallm_toy import base_args, write_script, write_suite

    write_suite(pytester.path)
    spec = pytester.path / "benchmarks" / "toy_nli.yaml"
    spec.write_text(spec.read_text(encoding="utf-8") + "fewshot: {count: 2, source: {path: data/toy_nli_train.jsonl}}\n",
                    encoding="utf-8")
    result = pytester.runpytest(*base_args(write_script(pytester.path)))
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*toy_nli: fewshot.source: file 'data/toy_nli_train.jsonl' not found*",
        "*to run it without them, pass --jallm-num-fewshot 0*",
    ])
    zero_shot = pytester.runpytest(*base_args(write_script(pytester.path), "--jallm-num-fewshot", "0"))
    zero_shot.assert_outcomes(passed=3)


def test_mirror_leaving_the_data_dir_is_refused_in_a_run(pytester: pytest.Pytester) -> None:
    from jallm_toy import base_args, write_script, write_suite

    write_suite(pytester.path)
    spec = pytester.path / "benchmarks" / "toy_mc.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace(
        "source: {path: data/toy_mc.jsonl}", "source: {url: 'https://x.invalid/a.jsonl', mirror: ../../etc/passwd}"),
        encoding="utf-8")
    result = pytester.runpytest(*base_args(write_script(pytester.path), "--jallm-data-dir", str(pytester.path / "d")))
    result.stdout.fnmatch_lines(["*toy_mc.yaml: key 'source': *'../../etc/passwd' may not contain '..'*"])
    assert result.ret != 0


# data fetch / data verify ------------------------------------------------------------------------


def _cli(*args: str, env: dict | None = None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "pytest_jallm", *args], capture_output=True, text=True, timeout=300,
                          env=env)



def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.mark.slow
def test_data_fetch_writes_the_data_dir_layout_and_verify_names_a_changed_file(tmp_path: Path) -> None:
    root, digest = _published(tmp_path)
    spec = tmp_path / "specs" / "toy.yaml"
    spec.parent.mkdir()
    spec.write_text(
        "name: toy\ncategory: MC\n"
        f"source: {{url: '{UPSTREAM}data/test.jsonl', mirror: repo/data/test.jsonl, format: jsonl,"
        f" sha256: {{repo/data/test.jsonl: {digest}}}}}\n"
        "fields: {id: id, answer: label, question: question}\ninstruction: 答えて\ninput: '{question}'\n"
        "max_new_tokens: 2\nmetrics: [exact_match]\n", encoding="utf-8")
    data = tmp_path / "data"
    with serve_directory(root) as server:
        fetched = _cli("data", "fetch", str(spec), "--to", str(data), "--cache", str(tmp_path / "cache"),
                       "--url-map", f"{UPSTREAM}={server.base_url}/")
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    copy = data / "repo" / "data" / "test.jsonl"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    assert (data / "MANIFEST.sha256").read_text(encoding="utf-8") == f"{digest}  repo/data/test.jsonl\n"
    # Written like any plain file (mkstemp alone would make them owner-only, 0600).
    umask_mode = 0o666 & ~_umask()
    assert stat.S_IMODE(copy.stat().st_mode) == umask_mode
    assert stat.S_IMODE((data / "MANIFEST.sha256").stat().st_mode) == umask_mode
    rows, _ = load_rows(load_spec_source(spec), spec.parent, data, "t: source", DataConfig(cache_dir=tmp_path / "none"))
    assert len(rows) == len(ROWS)
    assert _cli("data", "verify", str(data)).returncode == 0

    copy.write_bytes(copy.read_bytes()[:-10])
    bad = _cli("data", "verify", str(data), str(spec))
    assert bad.returncode == 1
    assert str(copy) in bad.stderr and digest in bad.stderr, bad.stderr
    copy.unlink()
    missing = _cli("data", "verify", str(data), str(spec))
    assert missing.returncode == 1 and f"{copy}: missing" in missing.stderr, missing.stderr


def load_spec_source(path: Path) -> Source:
    from pytest_jallm.specfile import load_spec

    return load_spec(path).source


# the catalog's mirrors and pins -----------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def _catalog_sources():
    from pytest_jallm.datadir import spec_sources
    from pytest_jallm.specfile import load_spec

    for path in sorted((ROOT / "benchmarks").glob("*.yaml")):
        for src, _ in spec_sources(load_spec(path)):  # test data, few-shots, an LLM judge's files
            yield path, src


def test_every_catalog_source_has_a_local_path_under_the_data_dir() -> None:
    missing = [f"{p.name}: {s.locations() or s.hf}" for p, s in _catalog_sources() if not s.mirror]
    assert not missing, missing


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"real benchmark files not found at {SHARED} (see shared/data/README.md)")
def test_pins_are_the_hashes_of_the_real_files() -> None:
    checked = 0
    for path, src in _catalog_sources():
        for mirror, digest in src.pins(path.parent).items():
            if (SHARED / mirror).is_file():
                assert hashlib.sha256((SHARED / mirror).read_bytes()).hexdigest() == digest, f"{path.name}: {mirror}"
                checked += 1
    assert checked > 2000  # the 1,817 corpus documents and the files the specs list
    # Every file of a repository whose version the URLs name is pinned where shared/data has it.
    for path, src in _catalog_sources():
        pins = src.pins(path.parent)
        for mirror in src.mirrors() if src.url else []:
            folder = mirror.split("/")[0]
            commit = (SHARED / folder / "UPSTREAM_COMMIT")
            if (SHARED / mirror).is_file() and commit.is_file() and commit.read_text().split()[0] in " ".join(src.locations()):
                assert mirror in pins, f"{path.name}: {mirror} is in shared/data at the URL's commit but not pinned"


# Hugging Face sources and options ----------------------------------------------------------------


def test_unreachable_hub_loads_from_local_caches_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No DNS for the hub: `datasets` is asked in offline mode (its 5 retries took 23 s), and the
    error says how to pre-fetch."""
    import datasets
    import huggingface_hub.constants as hub

    import pytest_jallm.data as data

    seen = []

    def load_dataset(*args, **kwargs):
        seen.append((datasets.config.HF_HUB_OFFLINE, hub.HF_HUB_OFFLINE))
        raise ConnectionError("Couldn't reach 'x/y' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(data, "_hub_reachable", lambda: False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    with pytest.raises(DataError) as err:
        load_rows(Source(hf="x/y", split="test", mirror="x/y"), Path("."), None, "t: source")
    assert seen == [(True, True)]
    assert datasets.config.HF_HUB_OFFLINE is False  # restored
    message = str(err.value)
    assert message.startswith("t: source: could not load Hugging Face dataset 'x/y'"), message
    assert "the hub's host does not resolve: only local caches were tried" in message and "data fetch" in message


def test_a_bad_url_map_is_a_usage_error(pytester: pytest.Pytester) -> None:
    from jallm_toy import base_args, write_script, write_suite

    write_suite(pytester.path)
    result = pytester.runpytest(*base_args(write_script(pytester.path), "--jallm-url-map", "no-equals-sign"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jallm-url-map / JALLM_URL_MAP: 'no-equals-sign' is not PREFIX=REPLACEMENT*"])
