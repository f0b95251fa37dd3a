"""Faults: a backend failing half-way, a server answering 500 or hanging, Ctrl-C and kill -9 of a
`pytest benchmarks ...` process mid-generation, a full disk under the cache or the baseline. The
run ends with a clear message, never hangs, and the cache keeps every completed generation, so
the next run generates only the rest. A baseline file is replaced atomically or not at all."""

from __future__ import annotations

import errno
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pytest_jallm import baseline as baseline_mod
from pytest_jallm.baseline import Baseline, atomic_write_baseline, read_baseline

from .toy import cache_rows, prompts_generated, run, start, wait_until, write_script, write_suite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.openai_stub import OpenAIStub, Reply, completion_json  # noqa: E402

BENCHES = {"toy_a": 6, "toy_b": 6}
N = sum(BENCHES.values())


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def _resume(root: Path, cache: Path, already: int) -> None:
    """A re-run with a fast backend generates exactly the generations the cache lacks, and passes."""
    log = root / "resume.jsonl"
    script = write_script(root, BENCHES)  # same file, same rules: same backend identity
    done = run(root, script, "--jallm-cache", str(cache), JALLM_SCRIPTED_LOG=str(log))
    assert done.returncode == 0, done.stdout[-3000:]
    assert prompts_generated(log) == [N - already]
    assert cache_rows(cache) == N


# --- the backend raising half-way -------------------------------------------------------------


@pytest.mark.slow
def test_backend_failure_half_way_keeps_completed_generations(tmp_path: Path) -> None:
    write_suite(tmp_path, BENCHES)
    cache = tmp_path / "gen.sqlite"
    script = write_script(tmp_path, BENCHES, fail_after=5)
    failed = run(tmp_path, script, "--jallm-cache", str(cache))
    assert failed.returncode == 1
    # One failure section per benchmark (CI=true makes pytest repeat the message untruncated
    # in the short summary, hence counting lines that start with it).
    sections = [line for line in failed.stdout.splitlines() if line.startswith("BackendError: scripted failure after 5 generations")]
    assert len(sections) == 2
    assert "Traceback" not in failed.stdout and "def generate" not in failed.stdout
    assert cache_rows(cache) == 5
    _resume(tmp_path, cache, 5)


# --- an OpenAI-compatible server answering 500 or hanging ---------------------------------------


def _openai_args(stub: OpenAIStub, *more: str) -> list[str]:
    return ["benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "openai", "--jallm-base-url", stub.base_url,
            "--model", "stub-model", "--jallm-concurrency", "1",
            "--jallm-engine-arg", "max_retries=1", "--jallm-engine-arg", "backoff_base_s=0.01", *more]


def test_server_500s_error_the_benchmarks_clearly_and_keep_what_arrived(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, BENCHES)
    cache = pytester.path / "gen.sqlite"

    def first_four_then_500(req):
        if req.path.endswith("/version"):
            return Reply(status=404, json={})
        if len(stub_posts()) <= 4:
            return Reply(json=completion_json(req.path, "0"))
        return Reply(status=500, json={"error": "engine crashed"}, headers={"Retry-After": "0"})

    with OpenAIStub(first_four_then_500) as stub:
        stub_posts = stub.posts
        started = time.monotonic()
        result = pytester.runpytest(*_openai_args(stub, "--jallm-cache", str(cache), "--jallm-timeout", "5"))
        assert time.monotonic() - started < 30
        result.assert_outcomes(failed=2)
        result.stdout.fnmatch_lines(["*BackendError: openai backend: request * to http://127.0.0.1:* failed: HTTP 500: *engine crashed* (gave up after 2 attempts) (4/*"])
        assert "Traceback" not in result.stdout.str()
        assert cache_rows(cache) == 4

        # The server recovers: the next run asks only for what is missing.
        stub.handler = lambda req: Reply(json=completion_json(req.path, "0"))
        before = len(stub.posts())
        again = pytester.runpytest(*_openai_args(stub, "--jallm-cache", str(cache)))
        again.assert_outcomes(passed=2)
        assert len(stub.posts()) - before == N - 4
        assert cache_rows(cache) == N


@pytest.mark.slow
def test_hanging_server_times_out_instead_of_hanging_the_run(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, BENCHES)
    with OpenAIStub(lambda req: Reply(json=completion_json(req.path, "0"), delay=60)) as stub:
        started = time.monotonic()
        result = pytester.runpytest(*_openai_args(stub, "--jallm-no-cache", "--jallm-timeout", "0.5"))
        elapsed = time.monotonic() - started
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*BackendError: openai backend: request 0 to http://127.0.0.1:* failed: timed out: no complete response within 0.5 s (--jallm-timeout) (gave up after 2 attempts)*"])
    assert elapsed < 20, elapsed


# --- Ctrl-C and kill -9 mid-generation ----------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_run_resumes_with_only_the_remainder(tmp_path: Path, how: str) -> None:
    write_suite(tmp_path, BENCHES)
    cache = tmp_path / "gen.sqlite"
    script = write_script(tmp_path, BENCHES, delay=0.25)
    proc = start(tmp_path, script, "--jallm-cache", str(cache))
    try:
        assert wait_until(lambda: cache_rows(cache) >= 3, timeout=60), "generation never started"
        if how == "sigint":
            os.kill(proc.pid, signal.SIGINT)  # what Ctrl-C sends
        else:
            os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    if how == "sigint":
        assert proc.returncode == pytest.ExitCode.INTERRUPTED, out[-3000:]
        assert "KeyboardInterrupt" in out
    else:
        assert proc.returncode == -signal.SIGKILL
    kept = cache_rows(cache)
    assert 3 <= kept < N
    assert _integrity(cache) == "ok"
    _resume(tmp_path, cache, kept)


# --- a full disk ----------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A 1 MiB tmpfs (root only); always unmounted."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk: Path) -> Path:
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as fh:  # unbuffered: nothing left to flush on close
        for _ in range(100_000):  # bounded: a 1 MiB disk fills after ~256 writes of 4 KiB
            try:
                fh.write(b"\0" * 4096)
            except OSError as e:
                assert e.errno == errno.ENOSPC
                break
    return filler


@pytest.mark.slow
def test_disk_full_under_the_cache_mid_run(tmp_path: Path, tiny_disk: Path) -> None:
    write_suite(tmp_path, BENCHES)
    cache = tiny_disk / "gen.sqlite"
    script = write_script(tmp_path, BENCHES, delay=0.2)
    proc = start(tmp_path, script, "--jallm-cache", str(cache))
    try:
        assert wait_until(lambda: cache_rows(cache) >= 3, timeout=60), "generation never started"
        filler = _fill(tiny_disk)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, out[-3000:]  # every benchmark still scored, from memory
    assert "CacheWriteWarning" in out and "database or disk is full" in out
    assert out.count("100.00") >= 2
    filler.unlink()
    kept = cache_rows(cache)
    assert 3 <= kept < N
    assert _integrity(cache) == "ok"
    _resume(tmp_path, cache, kept)


def test_disk_full_when_writing_the_baseline(pytester: pytest.Pytester, tiny_disk: Path) -> None:
    write_suite(pytester.path, BENCHES)
    thresholds = tiny_disk / "thresholds"
    args = ["benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "pytest_jallm.backends.scripted:ScriptedBackend",
            "--jallm-no-cache", "--jallm-thresholds-dir", str(thresholds), "--jallm-baseline", "model",
            "--jallm-update-baseline"]
    good = write_script(pytester.path, BENCHES)
    pytester.runpytest(*args, "--model", good).assert_outcomes(passed=2)
    path = thresholds / "model" / "toy_a.baseline.jsonl"
    before = path.read_bytes()
    _fill(tiny_disk)
    worse = write_script(pytester.path, BENCHES, name="model2.json", outputs={"toy_a-0": "2"})
    result = pytester.runpytest(*args, "--model", worse)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*baseline NOT written to *toy_a.baseline.jsonl (*No space left on device*); the file is unchanged"])
    # The table and the outcome agree: each benchmark whose baseline was not written failed.
    result.assert_outcomes(failed=2)
    for name in ("toy_a", "toy_b"):
        assert any(line.startswith(name) and line.rstrip().endswith("not written") for line in result.stdout.lines)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy_a.baseline.jsonl", "toy_b.baseline.jsonl"]  # no temp file


@pytest.mark.parametrize("failing", ["write", "fsync", "replace"])
def test_baseline_write_failure_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    """Simulated ENOSPC at each step of the atomic write (runs without root)."""
    path = tmp_path / "toy_a.baseline.jsonl"
    record = Baseline(benchmark="toy_a", score=50.0, ooc_rate=0.0, n=2, metric="exact_match", binary=True,
                      items={"a": 1.0, "b": 0.0}, produced_by={"model": "m"})
    atomic_write_baseline(path, record)
    before = path.read_bytes()

    def enospc(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if failing == "write":
        real_fdopen = os.fdopen

        def fdopen(fd, *args, **kwargs):
            fh = real_fdopen(fd, *args, **kwargs)
            fh.write = enospc  # type: ignore[method-assign]
            return fh

        monkeypatch.setattr(baseline_mod.os, "fdopen", fdopen)
    else:
        monkeypatch.setattr(baseline_mod.os, failing, enospc)
    changed = Baseline(**{**record.__dict__, "score": 100.0, "items": {"a": 1.0, "b": 1.0}})
    with pytest.raises(OSError, match="No space left"):
        atomic_write_baseline(path, changed)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_baseline(path).score == 50.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy_a.baseline.jsonl"]
