"""Tidy failures (issue 22 item 9): a process killed while writing a baseline or downloading
leaves no temp file behind (or the next write removes it); `data verify` names files the
manifest does not list; a fetch error names its source once; a retry-wait total that adds up
concurrent waits says so."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from drip_server import DripServer, dripped, http_head
from fakes.openai_stub import OpenAIStub, Reply
from file_server import serve_directory
from pytest_jallm.baseline import Baseline, atomic_write_baseline, read_baseline
from pytest_jallm.datadir import fetch, verify
from pytest_jallm.sources import DataConfig

from .toy import env, kill_group, wait_until

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.filterwarnings("ignore::pytest_jallm.sources.UnpinnedDataWarning")
UPSTREAM = "https://upstream.invalid/org/repo/"
BODY = "".join(json.dumps({"id": f"q{i}", "question": "問", "label": "0"}) + "\n" for i in range(200)).encode()
SPEC = """\
name: toy_url
category: MC
source: {{url: "{url}", mirror: repo/data/test.jsonl, format: jsonl}}
fields: {{id: id, answer: label, question: question}}
instruction: 答えてください。
input: "{{question}}"
labels: ["0", "1"]
max_new_tokens: 2
metrics: [exact_match]
"""


def _python(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, env=env(PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _record(score: float) -> Baseline:
    return Baseline(benchmark="toy_a", metric="exact_match", score=score, ooc_rate=0.0, n=2, binary=True,
                    items={"a": 1.0, "b": score / 50 - 1.0},
                    produced_by={"backend": "scripted", "prompt_hash": "p", "data_fingerprint": "d"})


KILLED_BASELINE_WRITE = """
    import os, signal, sys
    from pathlib import Path
    from pytest_jallm import atomic
    from pytest_jallm.baseline import Baseline, atomic_write_baseline
    atomic.USE_O_TMPFILE = getattr(atomic, "USE_O_TMPFILE", False) and sys.argv[2] == "tmpfile"
    def killed(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(os, sys.argv[3], killed)  # kill -9 with the temp file written (fsync) or about to be renamed (replace)
    atomic_write_baseline(Path(sys.argv[1]), Baseline(benchmark="toy_a", metric="exact_match", score=100.0,
                          ooc_rate=0.0, n=2, binary=True, items={"a": 1.0, "b": 1.0},
                          produced_by={"backend": "scripted", "prompt_hash": "p", "data_fingerprint": "d"}))
"""


@pytest.mark.parametrize("kill_at", ["fsync", "replace"])
@pytest.mark.parametrize("temp", ["tmpfile", "named"])
def test_killed_baseline_write_leaves_no_temp_file_in_the_thresholds_folder(tmp_path: Path, temp: str, kill_at: str) -> None:
    folder = tmp_path / "thresholds" / "model"
    path = folder / "toy_a.baseline.jsonl"
    atomic_write_baseline(path, _record(50.0))
    before = path.read_bytes()
    proc = _python(KILLED_BASELINE_WRITE, str(path), temp, kill_at)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, out
    assert path.read_bytes() == before
    left = sorted(p.name for p in folder.iterdir())
    if temp == "tmpfile" and kill_at == "fsync":
        assert left == ["toy_a.baseline.jsonl"], "an unnamed temp file left a name behind"
    # The next run removes what a killed writer of ours left: when it reads the baselines ...
    assert read_baseline(path).score == 50.0
    assert sorted(p.name for p in folder.iterdir()) == ["toy_a.baseline.jsonl"]
    # ... or when it writes one.
    (folder / ".toy_a.baseline.jsonl.jallm-abcd1234.tmp").write_text("x")
    atomic_write_baseline(folder / "toy_b.baseline.jsonl", _record(50.0))
    assert sorted(p.name for p in folder.iterdir()) == ["toy_a.baseline.jsonl", "toy_b.baseline.jsonl"]


def test_tidying_spares_live_writers_and_other_tools(tmp_path: Path) -> None:
    import fcntl
    import os

    from pytest_jallm.atomic import remove_stale_temps

    stale, live, foreign = ".a.json.jallm-abcd_123.tmp", ".b.json.jallm-abcd_123.part", ".c.json.abcd_123.tmp"
    for name in (stale, live, foreign):
        (tmp_path / name).write_text("x")
    fd = os.open(tmp_path / live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as a writer in another process holds it
        assert remove_stale_temps(tmp_path) == [stale]
    finally:
        os.close(fd)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live, foreign])


KILLED_DOWNLOAD = """
    import sys
    from pathlib import Path
    from pytest_jallm import atomic
    from pytest_jallm.data import load_rows
    from pytest_jallm.sources import DataConfig
    from pytest_jallm.spec import Source
    atomic.USE_O_TMPFILE = getattr(atomic, "USE_O_TMPFILE", False) and sys.argv[3] == "tmpfile"
    config = DataConfig(cache_dir=Path(sys.argv[1]), url_map=(("https://upstream.invalid/org/repo/", sys.argv[2] + "/"),))
    source = Source(url="https://upstream.invalid/org/repo/data/test.jsonl", format="jsonl", mirror="repo/data/test.jsonl")
    load_rows(source, Path("."), None, "t: source", config)
"""


@pytest.mark.parametrize("temp", ["tmpfile", "named"])
def test_killed_download_leaves_no_part_file(tmp_path: Path, temp: str) -> None:
    cache = tmp_path / "cache"
    steps = [(0.0, http_head(200, len(BODY)) + BODY[:2000])] + dripped(BODY[2000:2200], 0.05)
    with DripServer(steps) as server:
        proc = _python(KILLED_DOWNLOAD, str(cache), server.base_url, temp)
        try:
            assert wait_until(lambda: server.sent > 2000, timeout=60), "the download never started"
            parts = lambda: [p for p in cache.rglob("*") if p.is_file()]  # noqa: E731
            if temp == "named":
                assert wait_until(lambda: parts(), timeout=30)
        finally:
            kill_group(proc)
            proc.wait(timeout=30)
    left = [p.name for p in cache.rglob("*") if p.is_file()]
    if temp == "tmpfile":
        assert left == [], left
    (tmp_path / "served" / "data").mkdir(parents=True)
    (tmp_path / "served" / "data" / "test.jsonl").write_bytes(BODY)
    from pytest_jallm.data import load_rows
    from pytest_jallm.spec import Source

    with serve_directory(tmp_path / "served") as files:  # the next download into the cache tidies up
        config = DataConfig(cache_dir=cache, url_map=((UPSTREAM, files.base_url + "/"),))
        source = Source(url=UPSTREAM + "data/test.jsonl", format="jsonl", mirror="repo/data/test.jsonl")
        rows, _ = load_rows(source, tmp_path, None, "t: source", config)
    assert len(rows) == 200
    assert [p.name for p in cache.rglob("*") if p.is_file()] == ["test.jsonl"]


def test_a_part_file_an_earlier_version_left_is_removed_by_the_next_download(tmp_path: Path) -> None:
    import os
    import time

    from pytest_jallm.data import load_rows
    from pytest_jallm.spec import Source

    (tmp_path / "served" / "data").mkdir(parents=True)
    (tmp_path / "served" / "data" / "test.jsonl").write_bytes(BODY)
    source = Source(url=UPSTREAM + "data/test.jsonl", format="jsonl", mirror="repo/data/test.jsonl")
    with serve_directory(tmp_path / "served") as files:
        config = DataConfig(cache_dir=tmp_path / "cache", url_map=((UPSTREAM, files.base_url + "/"),))
        load_rows(source, tmp_path, None, "t: source", config)
        (cached,) = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
        old, fresh = cached.parent / ".test.jsonl.ab12cd_3.part", cached.parent / ".test.jsonl.ef45gh_6.part"
        old.write_bytes(BODY[:100])  # killed an hour ago (mkstemp's name, no lock)
        os.utime(old, (time.time() - 3600, time.time() - 3600))
        fresh.write_bytes(BODY[:100])  # may still be written by an earlier version running now
        cached.unlink()
        load_rows(source, tmp_path, None, "t: source", config)
    assert sorted(p.name for p in cached.parent.iterdir()) == [fresh.name, "test.jsonl"]


def _fetch_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "specs" / "toy_url.yaml"
    spec.parent.mkdir(exist_ok=True)
    spec.write_text(SPEC.format(url=UPSTREAM + "data/test.jsonl"), encoding="utf-8")
    return spec


def test_verify_names_files_the_manifest_does_not_list(tmp_path: Path) -> None:
    (tmp_path / "served" / "data").mkdir(parents=True)
    (tmp_path / "served" / "data" / "test.jsonl").write_bytes(BODY)
    to = tmp_path / "to"
    with serve_directory(tmp_path / "served") as server:
        config = DataConfig(cache_dir=tmp_path / "cache", url_map=((UPSTREAM, server.base_url + "/"),))
        count, failures = fetch([_fetch_spec(tmp_path)], to, config, log=lambda line: None)
    assert (count, failures) == (1, [])
    assert verify(to) == []
    (to / "repo" / "data" / "extra.jsonl").write_text("{}\n")
    (to / "stray.txt").write_text("?")
    problems = verify(to)
    assert problems == [f"{to / 'repo' / 'data' / 'extra.jsonl'}: present but not listed in MANIFEST.sha256",
                        f"{to / 'stray.txt'}: present but not listed in MANIFEST.sha256"], problems


def test_fetch_error_names_its_source_once(tmp_path: Path) -> None:
    lines: list[str] = []
    config = DataConfig(cache_dir=tmp_path / "cache", url_map=((UPSTREAM, "http://127.0.0.1:9/"),))
    spec = _fetch_spec(tmp_path)
    _, failures = fetch([spec], tmp_path / "to", config, log=lines.append)
    (line,) = lines
    assert line.startswith("FAILED toy_url: source: could not download "), line
    assert line.count("toy_url: source") == 1, line
    (failure,) = failures
    assert failure.startswith(f"{spec}: toy_url: source: could not download ") and failure.count("toy_url: source") == 1


def test_summed_retry_waits_are_labelled_as_such() -> None:
    from pytest_jallm.backends.base import BackendError, GenerationRequest, SamplingSettings
    from pytest_jallm.backends.openai import OpenAIBackend

    def busy(req) -> Reply:
        return Reply(status=503, json={"error": "busy"}, headers={"Retry-After": "0.2"})

    with OpenAIStub(busy) as stub:
        backend = OpenAIBackend("m", base_url=stub.base_url, max_concurrency=4, max_retries=2, timeout_s=5)
        with pytest.raises(BackendError) as err:
            backend.generate([GenerationRequest(prompt=f"q{i}", max_new_tokens=2) for i in range(4)], SamplingSettings())
    message = str(err.value)
    assert re.search(r"gave up after 3 attempts\); \d+\.\d s of retry waits in this run over \d+ retries, summed "
                     r"over requests waiting at the same time \(up to 4 in flight\)", message), message
