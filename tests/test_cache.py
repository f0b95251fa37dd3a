"""The generation cache: keys, hits, de-duplication, multi-process writers,
resuming after kill -9, and what happens when the file or the disk is bad.

No assertion here depends on timing; delays only make the kill window wide.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jallm_toy import cache_rows
from pytest_jallm.backends.base import Backend, BackendIdentity, GenerationRequest, ItemRef, SamplingSettings
from pytest_jallm.cache import CacheError, CacheWriteWarning, GenerationCache, _canon
from pytest_jallm.generation import cached_generate

ROOT = Path(__file__).resolve().parents[1]
SLOW_BACKEND_PY = Path(__file__).resolve().parent / "fakes" / "slow_backend.py"

_spec = importlib.util.spec_from_file_location("jallm_fake_slow_backend", SLOW_BACKEND_PY)
slow = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(slow)  # type: ignore[union-attr]

IDENTITY = BackendIdentity("hf", "4.46.0", "llm-jp/llm-jp-3-1.8b", "abc123", {"dtype": "bfloat16", "max_model_len": 4096})
SAMPLING = SamplingSettings()
REQUEST = GenerationRequest(
    prompt="質問: 日本の首都は？\n回答:",
    max_new_tokens=16,
    stop=("\n",),
    messages=({"role": "user", "content": "日本の首都は？"},),
    guided_choices=("東京", "大阪"),
)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


# --------------------------------------------------------------------------
# keys


def test_backend_protocol():
    assert isinstance(slow.SlowBackend(), Backend)


def test_key_changes_with_every_field():
    base = GenerationCache.key(IDENTITY, SAMPLING, REQUEST)
    assert len(base) == 64 and int(base, 16) >= 0

    identity_variants = {
        "backend": "vllm",
        "backend_version": "4.47.0",
        "model": "llm-jp/llm-jp-3-3.7b",
        "model_revision": "def456",
        "settings": {"dtype": "float16", "max_model_len": 4096},
        "outputs_per_item": True,
    }
    sampling_variants = {"temperature": 0.7, "top_p": 0.9, "repetition_penalty": 1.1, "seed": 1}
    request_variants = {
        "prompt": "質問: 日本の首都は？\n回答: ",
        "max_new_tokens": 17,
        "stop": ("\n", "。"),
        "messages": ({"role": "user", "content": "日本の首都はどこ？"},),
        "guided_choices": ("東京", "京都"),
    }
    # Every field of each dataclass is exercised: a field added later without
    # a thought about the cache key fails here.
    assert set(identity_variants) == {f.name for f in dataclasses.fields(BackendIdentity)}
    assert set(sampling_variants) == {f.name for f in dataclasses.fields(SamplingSettings)}
    # `item` only says which benchmark item asked: the same request for another item is the same generation.
    assert set(request_variants) | {"item"} == {f.name for f in dataclasses.fields(GenerationRequest)}
    assert GenerationCache.key(IDENTITY, SAMPLING, dataclasses.replace(REQUEST, item=ItemRef("b", "x", 2))) == base
    # ... except for a backend whose outputs are per item (recorded outputs): there every part of the item counts
    per_item = dataclasses.replace(IDENTITY, outputs_per_item=True)
    items = [None, ItemRef("b", "x"), ItemRef("b", "x", 2), ItemRef("b", "y"), ItemRef("c", "x")]
    assert len({GenerationCache.key(per_item, SAMPLING, dataclasses.replace(REQUEST, item=i)) for i in items}) == len(items)

    keys = {base}
    for name, value in identity_variants.items():
        keys.add(GenerationCache.key(dataclasses.replace(IDENTITY, **{name: value}), SAMPLING, REQUEST))
    for name, value in sampling_variants.items():
        keys.add(GenerationCache.key(IDENTITY, dataclasses.replace(SAMPLING, **{name: value}), REQUEST))
    for name, value in request_variants.items():
        keys.add(GenerationCache.key(IDENTITY, SAMPLING, dataclasses.replace(REQUEST, **{name: value})))
    # Subtler differences that still change what the model sees.
    for r in (
        dataclasses.replace(REQUEST, messages=None),
        dataclasses.replace(REQUEST, messages=()),
        dataclasses.replace(REQUEST, guided_choices=None),
        dataclasses.replace(REQUEST, stop=()),
        dataclasses.replace(REQUEST, messages=({"role": "system", "content": "日本の首都は？"},)),
        dataclasses.replace(REQUEST, messages=REQUEST.messages + ({"role": "assistant", "content": ""},)),
    ):
        keys.add(GenerationCache.key(IDENTITY, SAMPLING, r))
    keys.add(GenerationCache.key(dataclasses.replace(IDENTITY, settings={**IDENTITY.settings, "extra": None}), SAMPLING, REQUEST))
    assert len(keys) == 1 + 6 + 4 + 5 + 6 + 1


def test_key_ignores_representation_details():
    same = [
        GenerationCache.key(IDENTITY, SAMPLING, REQUEST),
        # dict insertion order
        GenerationCache.key(
            dataclasses.replace(IDENTITY, settings={"max_model_len": 4096, "dtype": "bfloat16"}), SAMPLING, REQUEST
        ),
        # 0 and 0.0 are the same temperature; tuples and lists the same sequence
        GenerationCache.key(IDENTITY, SamplingSettings(temperature=0, top_p=1, repetition_penalty=1), REQUEST),
        GenerationCache.key(IDENTITY, SAMPLING, dataclasses.replace(REQUEST, stop=["\n"])),  # type: ignore[arg-type]
        GenerationCache.key(
            IDENTITY, SAMPLING, dataclasses.replace(REQUEST, messages=({"content": "日本の首都は？", "role": "user"},))
        ),
    ]
    assert len(set(same)) == 1


def test_key_rejects_unstable_values():
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Opaque"):
        GenerationCache.key(dataclasses.replace(IDENTITY, settings={"x": Opaque()}), SAMPLING, REQUEST)


def test_key_stable_across_processes(tmp_path):
    cases = [(IDENTITY, SAMPLING, REQUEST), (IDENTITY, SamplingSettings(temperature=0.7, seed=42), slow.numbered_requests(1)[0])]
    here = [GenerationCache.key(*c) for c in cases]
    code = textwrap.dedent(
        """
        import json
        from pytest_jallm.backends.base import BackendIdentity, GenerationRequest, SamplingSettings
        from pytest_jallm.cache import GenerationCache
        identity = BackendIdentity("hf", "4.46.0", "llm-jp/llm-jp-3-1.8b", "abc123", {"max_model_len": 4096, "dtype": "bfloat16"})
        req = GenerationRequest(prompt="質問: 日本の首都は？\\n回答:", max_new_tokens=16, stop=("\\n",),
            messages=({"role": "user", "content": "日本の首都は？"},), guided_choices=("東京", "大阪"))
        req2 = GenerationRequest(prompt="問題0000: 日本の首都は？", max_new_tokens=32)
        print(json.dumps([GenerationCache.key(identity, SamplingSettings(), req),
                          GenerationCache.key(identity, SamplingSettings(temperature=0.7, seed=42), req2)]))
        """
    )
    outs = []
    for seed in ("1", "12345"):
        env = _env() | {"PYTHONHASHSEED": seed}
        p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
        outs.append(json.loads(p.stdout))
    assert outs[0] == outs[1] == here


def _reference_key(identity, sampling, request) -> str:
    """The key as defined: sha256 of the sorted, compact JSON of the whole canonical payload."""
    payload = {
        "v": 1,
        "identity": identity.as_dict(),
        "sampling": sampling.as_dict(),
        "request": {
            "prompt": request.prompt,
            "messages": None if request.messages is None else [dict(m) for m in request.messages],
            "max_new_tokens": request.max_new_tokens,
            "stop": list(request.stop),
            "guided_choices": None if request.guided_choices is None else list(request.guided_choices),
        },
    }
    blob = json.dumps(_canon(payload), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@given(
    prompt=st.text(max_size=40),
    max_new=st.integers(1, 4096),
    stop=st.lists(st.text(max_size=3), max_size=3),
    choices=st.none() | st.lists(st.text(max_size=4), max_size=4),
    settings=st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5) | st.none(), max_size=3),
)
def test_precomputed_keyer_gives_the_defined_key(prompt, max_new, stop, choices, settings):
    # The fast path hashes the identity part once per run; keys written by
    # earlier versions must still hit, so it must hash exactly the same bytes.
    identity = dataclasses.replace(IDENTITY, settings=settings)
    request = GenerationRequest(prompt=prompt, max_new_tokens=max_new, stop=tuple(stop),
                                guided_choices=None if choices is None else tuple(choices))
    keyer = GenerationCache.keyer(identity, SAMPLING)
    assert keyer(request) == _reference_key(identity, SAMPLING, request)
    assert keyer(REQUEST) == _reference_key(identity, SAMPLING, REQUEST)


# --------------------------------------------------------------------------
# hits, misses, de-duplication


def test_hit_miss_and_rerun_generates_nothing(tmp_path):
    path = tmp_path / "sub" / "dir" / "gen.sqlite"  # parent dirs are created
    cache = GenerationCache(path)
    reqs = slow.numbered_requests(12)
    backend = slow.SlowBackend()
    progress: list[int] = []

    texts, generated = cached_generate(backend, reqs[:5], SAMPLING, cache, on_progress=progress.append)
    assert generated == 5 and backend.generated == 5
    assert texts == [slow.fake_text(r) for r in reqs[:5]]
    assert sum(progress) == 5

    progress.clear()
    texts, generated = cached_generate(backend, reqs, SAMPLING, cache, on_progress=progress.append)
    assert generated == 7 and backend.generated == 12
    assert backend.calls == [5, 7]  # the misses only, in one call
    assert texts == [slow.fake_text(r) for r in reqs]
    assert sum(progress) == 12
    cache.close()

    # A new process-level handle: everything is a hit, nothing is generated.
    cache = GenerationCache(path)
    backend2 = slow.SlowBackend()
    texts, generated = cached_generate(backend2, reqs, SAMPLING, cache)
    assert generated == 0 and backend2.generated == 0 and backend2.calls == []
    assert texts == [slow.fake_text(r) for r in reqs]

    # Another model or other sampling settings miss.
    other = slow.SlowBackend(model="fake/other")
    assert cached_generate(other, reqs, SAMPLING, cache)[1] == 12
    assert cached_generate(backend2, reqs, SamplingSettings(seed=7), cache)[1] == 12

    assert cache.get_many([GenerationCache.key(backend.identity(), SAMPLING, reqs[0]), "nope"]) == {
        GenerationCache.key(backend.identity(), SAMPLING, reqs[0]): slow.fake_text(reqs[0])
    }
    cache.close()


def test_on_text_sees_every_request_once_hits_first_then_as_generated(tmp_path):
    """--jallm-save-outputs' hook: each request's text once, repeated requests included, cache hits
    right after the lookup (before the backend runs), generated ones as the backend reports them."""
    cache = GenerationCache(tmp_path / "c.sqlite")
    a, b, c = slow.numbered_requests(3)
    backend = slow.SlowBackend()
    cached_generate(backend, [b], SAMPLING, cache)
    seen: list[tuple[int, str, int]] = []
    on_text = lambda i, text: seen.append((i, text, backend.generated))  # noqa: E731
    texts, generated = cached_generate(backend, [a, b, a, c], SAMPLING, cache, on_text=on_text)
    assert generated == 2
    assert sorted((i, t) for i, t, _ in seen) == list(enumerate(texts))
    assert seen[0] == (1, slow.fake_text(b), 1)  # the hit, before anything new was generated
    assert {i for i, _, n in seen if n == 2} == {0, 2}  # both slots of `a` as soon as `a` arrived
    cache.close()


def test_duplicates_generated_once(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    a, b, c = slow.numbered_requests(3)
    reqs = [a, b, a, c, a, b]
    backend = slow.SlowBackend()
    progress: list[int] = []
    texts, generated = cached_generate(backend, reqs, SAMPLING, cache, on_progress=progress.append)
    assert generated == 3 and backend.generated == 3 and backend.calls == [3]
    assert texts == [slow.fake_text(r) for r in reqs]
    assert sum(progress) == 6
    assert cache.stats()["entries"] == 3

    # Also without a cache: identical requests share one generation.
    backend = slow.SlowBackend()
    texts, generated = cached_generate(backend, reqs, SAMPLING, None)
    assert generated == 3 and backend.generated == 3
    assert texts == [slow.fake_text(r) for r in reqs]
    # No cache: nothing is remembered between calls.
    assert cached_generate(backend, reqs, SAMPLING, None)[1] == 3
    cache.close()


def test_results_reported_from_worker_threads(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    reqs = slow.numbered_requests(64)
    backend = slow.SlowBackend(threads=8)
    texts, generated = cached_generate(backend, reqs, SAMPLING, cache)
    assert generated == 64 and texts == [slow.fake_text(r) for r in reqs]
    assert cache.write_error is None
    assert cache.stats()["entries"] == 64
    assert cached_generate(slow.SlowBackend(), reqs, SAMPLING, cache) == (texts, 0)
    cache.close()


def test_get_many_beyond_sqlite_variable_limit(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    conn = cache._connection()
    if hasattr(conn, "setlimit"):  # Python >= 3.11: pin the limit to SQLite's historical default
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) if hasattr(conn, "getlimit") else 32766
    items = [(f"k{i}", f"text {i}") for i in range(limit * 2 + 1)]
    cache.put_many(items, model="m")
    got = cache.get_many([k for k, _ in items] + ["missing"])
    assert got == dict(items)
    cache.close()


def test_put_is_idempotent_and_replaces(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    cache.put("k", "one", model="m")
    cache.put("k", "one", model="m")
    assert cache.stats()["entries"] == 1
    cache.put("k", "two", model="m", meta={"note": "再生成"})
    assert cache.get_many(["k"]) == {"k": "two"}
    assert cache.stats()["entries"] == 1
    cache.close()


# --------------------------------------------------------------------------
# several processes


WRITER = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("error")  # a cache write warning fails the worker
    from pytest_jallm.cache import GenerationCache
    path, w, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cache = GenerationCache(path)
    for i in range(n):
        cache.put(f"w{w}-{i}", f"worker {w} item {i} 日本語", model=f"model-{w % 2}")
        cache.put(f"shared-{i}", f"shared item {i}", model="shared")   # every worker writes these
        if i % 10 == 0:
            got = cache.get_many([f"w{w}-{j}" for j in range(i + 1)])
            assert len(got) == i + 1, (i, len(got))
    assert cache.write_error is None, cache.write_error
    cache.close()
    print("ok")
    """
)


def test_concurrent_writer_processes(tmp_path):
    path = tmp_path / "shared.sqlite"  # created by the racing workers themselves
    workers, n = 4, 150
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(n)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(workers)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.strip() == "ok"
        assert "locked" not in err

    cache = GenerationCache(path)
    keys = [f"w{w}-{i}" for w in range(workers) for i in range(n)] + [f"shared-{i}" for i in range(n)]
    got = cache.get_many(keys)
    assert len(got) == len(keys)
    assert got["w3-149"] == "worker 3 item 149 日本語"
    assert got["shared-7"] == "shared item 7"
    stats = cache.stats()
    assert stats["entries"] == workers * n + n
    assert stats["models"] == {"model-0": 2 * n, "model-1": 2 * n, "shared": n}
    assert stats["size_bytes"] > 0
    conn = sqlite3.connect(str(path))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    cache.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_uses_its_own_connection(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    cache.put("parent", "p")
    pid = os.fork()
    if pid == 0:  # child: same object, must reopen rather than reuse the parent's handle
        code = 1
        try:
            cache.put("child", "c")
            code = 0 if cache.write_error is None and cache.get_many(["parent"]) == {"parent": "p"} else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    cache.put("parent2", "p2")
    assert cache.get_many(["parent", "child", "parent2"]) == {"parent": "p", "child": "c", "parent2": "p2"}
    cache.close()


def test_resume_after_sigkill(tmp_path):
    path = tmp_path / "resume.sqlite"
    counter = tmp_path / "counter.txt"
    n = 40
    with (tmp_path / "stderr.txt").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(SLOW_BACKEND_PY), "--cache", str(path), "--n", str(n), "--delay", "0.05", "--counter", str(counter)],
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 60
        while not path.exists() or cache_rows(path) < 10:
            assert proc.poll() is None, (tmp_path / "stderr.txt").read_text()
            assert time.monotonic() < deadline, "the subprocess never stored 10 results"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    before = cache_rows(path)  # the dead process's committed rows (recovered from the WAL)
    assert 10 <= before < n, before
    # Everything it generated was stored, bar at most the one in flight at the kill.
    assert slow.count_generated(counter) - before in (0, 1)

    backend = slow.SlowBackend()
    cache = GenerationCache(path)
    reqs = slow.numbered_requests(n)
    texts, generated = cached_generate(backend, reqs, SAMPLING, cache)
    assert generated == n - before == backend.generated
    assert backend.calls == [n - before]
    assert texts == [slow.fake_text(r) for r in reqs]
    assert cache.stats()["entries"] == n
    cache.close()


# --------------------------------------------------------------------------
# bad files, bad disks


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "gen.sqlite"
    path.write_bytes(b"this is not an sqlite database, it is a text file\n" * 200)
    with pytest.raises(CacheError) as e:
        GenerationCache(path)
    msg = str(e.value)
    assert str(path) in msg and "delete" in msg.lower() and "--jallm-no-cache" in msg
    assert "--jallm-cache-clear" in msg

    assert GenerationCache.delete_file(path) and not path.exists()
    cache = GenerationCache(path)  # the documented recovery works
    cache.put("k", "v")
    assert cache.get_many(["k"]) == {"k": "v"}
    cache.close()


def test_corrupt_pages_are_a_clear_error(tmp_path):
    path = tmp_path / "gen.sqlite"
    cache = GenerationCache(path)
    cache.put_many([(f"k{i}", "x" * 500) for i in range(200)], model="m")
    cache.close()
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # move everything into the main file
    conn.close()
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    assert len(data) > 4 * page
    data[page : len(data)] = b"\xa5" * (len(data) - page)  # keep the header, trash every page after the first
    path.write_bytes(bytes(data))
    with pytest.raises(CacheError) as e:
        c = GenerationCache(path)
        try:
            c.get_many([f"k{i}" for i in range(200)])
            c.stats()
        finally:
            c.close()
    assert str(path) in str(e.value)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "gen.sqlite"
    GenerationCache(path).close()
    conn = sqlite3.connect(str(path))
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(CacheError, match="schema version 99") as e:
        GenerationCache(path)
    assert str(path) in str(e.value)


def _fill_disk(cache: GenerationCache) -> None:
    """Make the database file unable to grow: SQLite then fails writes with
    SQLITE_FULL ('database or disk is full'), as on a full disk."""
    conn = cache._connection()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")


@pytest.mark.parametrize("failure", ["disk_full", "read_only"])
def test_write_failure_keeps_the_run_going(tmp_path, failure):
    path = tmp_path / "gen.sqlite"
    cache = GenerationCache(path)
    reqs = [GenerationRequest(prompt=f"{i:03d}" + "長い問題文。" * 400, max_new_tokens=5000) for i in range(20)]
    backend = slow.SlowBackend()
    texts, _ = cached_generate(backend, reqs[:3], SAMPLING, cache)  # stored before the failure
    if failure == "disk_full":
        _fill_disk(cache)
    else:  # a read-only database: writes fail with SQLITE_READONLY
        cache._connection().execute("PRAGMA query_only = ON")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        texts, generated = cached_generate(backend, reqs, SAMPLING, cache)
    # The run lost nothing: every text is there and correct.
    assert generated == 17
    assert texts == [slow.fake_text(r) for r in reqs]
    # One warning for the whole run, not one per generation.
    ours = [w for w in caught if issubclass(w.category, CacheWriteWarning)]
    assert len(ours) == 1
    assert str(path) in str(ours[0].message)
    assert cache.write_error
    # Reads still work and rows written before the failure are intact.
    assert cache.stats()["entries"] == 3
    assert cache.get_many([GenerationCache.key(backend.identity(), SAMPLING, r) for r in reqs[:3]]) == {
        GenerationCache.key(backend.identity(), SAMPLING, r): slow.fake_text(r) for r in reqs[:3]
    }
    cache.close()

    # The file is fine for the next run once the condition is gone.
    cache = GenerationCache(path)
    assert cached_generate(slow.SlowBackend(), reqs, SAMPLING, cache)[1] == 17
    assert cache.stats()["entries"] == 20
    cache.close()


# --------------------------------------------------------------------------
# clear and stats


def test_clear_per_model_and_stats(tmp_path):
    cache = GenerationCache(tmp_path / "c.sqlite")
    reqs = slow.numbered_requests(6)
    a, b = slow.SlowBackend(model="org/a"), slow.SlowBackend(model="org/b")
    cached_generate(a, reqs, SAMPLING, cache)
    cached_generate(b, reqs[:4], SAMPLING, cache)
    s = cache.stats()
    assert s["entries"] == 10 and s["models"] == {"org/a": 6, "org/b": 4}
    assert s["size_bytes"] > 0 and s["path"] == str(tmp_path / "c.sqlite")

    assert cache.clear(model="org/a") == 6
    assert cache.clear(model="org/a") == 0
    assert cache.stats()["models"] == {"org/b": 4}
    # Model b's entries still hit; model a regenerates everything.
    assert cached_generate(slow.SlowBackend(model="org/b"), reqs[:4], SAMPLING, cache)[1] == 0
    assert cached_generate(slow.SlowBackend(model="org/a"), reqs, SAMPLING, cache)[1] == 6

    assert cache.clear() == 10
    assert cache.stats()["entries"] == 0
    cache.close()
    with pytest.raises(CacheError, match="closed"):
        cache.get_many(["k"])


# --------------------------------------------------------------------------
# lazy loading: a fully cached run never loads the model


def test_loader_not_called_when_everything_is_cached(tmp_path):
    cache = GenerationCache(tmp_path / "gen.sqlite")
    reqs = slow.numbered_requests(6)
    backend = slow.SlowBackend()
    texts, _ = cached_generate(backend, reqs, SAMPLING, cache)
    loads = []

    def loader():
        loads.append(1)
        return slow.SlowBackend()

    assert cached_generate(loader, reqs, SAMPLING, cache, identity=backend.identity()) == (texts, 0)
    assert loads == []
    assert cached_generate(loader, reqs + slow.numbered_requests(8)[6:], SAMPLING, cache,
                           identity=backend.identity())[1] == 2
    assert loads == [1]  # loaded once, for the misses


def test_a_wrong_identity_hint_never_serves_another_models_text(tmp_path):
    cache = GenerationCache(tmp_path / "gen.sqlite")
    reqs = slow.numbered_requests(4)
    other = slow.SlowBackend(model="org/other")
    cache.put_many([(GenerationCache.key(other.identity(), SAMPLING, r), "OTHER MODEL") for r in reqs[:2]])
    real = slow.SlowBackend(model="org/real")
    # The hint claims to be org/other and two rows match it, but two requests
    # miss: the real backend loads, reports its own identity and all four are
    # generated by it, none taken from org/other's rows.
    texts, generated = cached_generate(lambda: real, reqs, SAMPLING, cache, identity=other.identity())
    assert generated == 4
    assert texts == [slow.fake_text(r) for r in reqs]
