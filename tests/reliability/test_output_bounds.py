"""A completion far longer than its max_new_tokens allows is cut, visibly, before it is scored
or cached, whatever the backend (issue 22 item 3); the openai backend also caps the size of a
response body it reads."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from fakes.openai_stub import OpenAIStub, Reply, completion_json
from pytest_jallm.backends.base import GenerationRequest, SamplingSettings
from pytest_jallm.backends.scripted import ScriptedBackend
from pytest_jallm.cache import GenerationCache
from pytest_jallm.generation import cached_generate

from .toy import write_suite

HUGE = "1" + "a" * 2_000_000  # the toy specs allow 2 new tokens


def _sizes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_overlong_completions_are_cut_before_scoring_and_caching(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, {"toy_a": 3, "toy_b": 3})
    with OpenAIStub(lambda req: Reply(json=completion_json(req.path, HUGE))) as stub:
        args = ["benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "openai", "--jallm-base-url", stub.base_url,
                "--model", "stub-model", "--jallm-cache", "gen.sqlite", "--jallm-results-json", "r.json", "-rA"]
        result = pytester.runpytest(*args)
    assert "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*OutputCutWarning: 6 of 6 completions were longer than max_new_tokens allows*"])
    cache = pytester.path / "gen.sqlite"
    conn = sqlite3.connect(cache)
    texts = [t for (t,) in conn.execute("SELECT text FROM generations")]
    conn.close()
    assert len(texts) == 6
    for text in texts:
        assert text.startswith("1aaa") and text.endswith("[cut by pytest-jallm: longer than max_new_tokens allows]")
        assert len(text) < 10_000, len(text)
    assert _sizes(cache) < 1_000_000, "the whole completions reached the cache"  # they were 6 x 2 MB
    json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))


def test_every_backend_is_cut_at_the_cache_boundary(tmp_path: Path) -> None:
    script = tmp_path / "s.json"
    script.write_text(json.dumps({"rules": [{"contains": "long", "output": "x" * 300_000}], "default": "short"}))
    requests = [GenerationRequest(prompt="long", max_new_tokens=4), GenerationRequest(prompt="other", max_new_tokens=4),
                GenerationRequest(prompt="long", max_new_tokens=10_000)]
    with GenerationCache(tmp_path / "c.sqlite") as cache, pytest.warns(UserWarning, match="1 of 3 completions"):
        texts, generated = cached_generate(ScriptedBackend(str(script)), requests, SamplingSettings(), cache)
    assert generated == 3
    assert texts[0].startswith("xxx") and "[cut by pytest-jallm" in texts[0] and len(texts[0]) < 10_000
    assert texts[1] == "short"
    assert texts[2] == "x" * 300_000  # 10,000 tokens may be that long


def test_openai_response_body_is_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_jallm.backends.base import RequestErrors
    from pytest_jallm.backends.openai import OpenAIBackend

    def answer(req) -> Reply:
        text = HUGE if "big" in req.text else "0"
        return Reply(json=completion_json(req.path, text))

    with OpenAIStub(answer) as stub:
        backend = OpenAIBackend("m", base_url=stub.base_url, max_retries=0, max_response_mb=1)
        with pytest.raises(RequestErrors) as err:
            backend.generate([GenerationRequest(prompt="big", max_new_tokens=2),
                              GenerationRequest(prompt="small", max_new_tokens=2)], SamplingSettings())
    assert err.value.texts[1] == "0"
    assert "response body exceeds 1 MB (max_response_mb)" in err.value.failures[0]
