"""The OpenAI-compatible HTTP backend: against a scripted stdlib stub (request bodies,
retries, timeouts, concurrency, ordering, API-key hygiene) and end to end against a real
`transformers serve` on loopback (texts equal local greedy `generate`)."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest_jallm  # noqa: E402
from fakes.openai_stub import OpenAIStub, Reply, StubRequest, completion_json, echo  # noqa: E402
from pytest_jallm.backends.base import BackendError, GenerationRequest, SamplingSettings  # noqa: E402
from pytest_jallm.backends.openai import OpenAIBackend, _parse_retry_after  # noqa: E402
from servers import (  # noqa: E402,F401 - fixtures are used by name
    free_port,
    tiny_ja_chat_model,
    tiny_ja_model,
    transformers_server,
)

GREEDY = SamplingSettings(seed=1234)
FAKE_KEY = "sk-jallm-FAKE-leakcheck-7f3a9c"
KEY_ENV = "JALLM_TEST_OPENAI_KEY"


def req(prompt: str, n: int = 16, stop: tuple[str, ...] = (), messages=None) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, max_new_tokens=n, stop=stop, messages=messages)


def backend(stub: OpenAIStub, **kw) -> OpenAIBackend:
    kw.setdefault("api_key_env", KEY_ENV)
    kw.setdefault("backoff_base_s", 0.001)
    kw.setdefault("timeout_s", 5)
    return OpenAIBackend(kw.pop("model", "test-model"), base_url=kw.pop("base_url", stub.base_url), **kw)


@pytest.fixture(autouse=True)
def _no_key(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)


class Script:
    """Per-prompt scripted replies: ``Script({"p": [Reply(500), Reply(429, ...)]})``; then echo."""

    def __init__(self, plan: dict[str, list[Reply]] | None = None, default=echo):
        self.plan = {k: list(v) for k, v in (plan or {}).items()}
        self.default = default
        self.calls: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def __call__(self, r: StubRequest) -> Reply:
        with self.lock:
            self.calls[r.text] += 1
            queue = self.plan.get(r.text)
            if queue:
                return queue.pop(0)
        return self.default(r)


# ----- request bodies -----


def test_completions_request_body():
    with OpenAIStub(lambda r: Reply(json=completion_json(r.path, "答えはBです。余分"))) as stub:
        b = backend(stub, extra_body={"top_k": 1})
        out = b.generate([req("質問：", n=7, stop=("。", "\n"))], GREEDY)
    assert out == ["答えはBです"]  # stop applied client-side too
    (r,) = stub.posts()
    assert r.path == "/v1/completions"
    assert r.headers["Content-Type"] == "application/json"
    assert "Authorization" not in r.headers  # no key set: no header
    assert r.body == {
        "model": "test-model",
        "prompt": "質問：",
        "max_tokens": 7,
        "temperature": 0.0,
        "top_p": 1.0,
        "seed": 1234,
        "stop": ["。", "\n"],
        "top_k": 1,
    }


def test_chat_requests_and_chat_mode():
    msgs = ({"role": "system", "content": "日本語で答えて"}, {"role": "user", "content": "こんにちは"})
    with OpenAIStub() as stub:
        # A base_url ending in /v1 (OpenAI SDK style) is accepted as well.
        b = backend(stub, base_url=stub.base_url + "/v1/")
        out = b.generate([req("rendered", n=5, messages=msgs), req("生の文")], GREEDY)
        chat = backend(stub, mode="chat")
        out2 = chat.generate([req("生の文", n=3)], GREEDY)
    assert out == ["echo:こんにちは", "echo:生の文"]
    assert out2 == ["echo:生の文"]
    posts = stub.posts()
    r_chat = next(r for r in posts if "messages" in r.body and r.body["max_tokens"] == 5)
    r_raw = next(r for r in posts if "prompt" in r.body)
    r_mode = next(r for r in posts if "messages" in r.body and r.body["max_tokens"] == 3)
    assert r_chat.path == "/v1/chat/completions"
    assert r_chat.body["messages"] == [dict(m) for m in msgs]
    assert "prompt" not in r_chat.body and r_chat.body["max_tokens"] == 5
    assert r_chat.body["temperature"] == 0.0 and r_chat.body["seed"] == 1234
    assert "stop" not in r_chat.body
    assert r_raw.path == "/v1/completions" and r_raw.body["prompt"] == "生の文"
    assert r_mode.path == "/v1/chat/completions"
    assert r_mode.body["messages"] == [{"role": "user", "content": "生の文"}]


def test_null_chat_content_is_empty_text():
    def handler(r):
        body = completion_json(r.path, "")
        body["choices"][0]["message"]["content"] = None
        return Reply(json=body)

    with OpenAIStub(handler) as stub:
        assert backend(stub, mode="chat").generate([req("x")], GREEDY) == [""]


# ----- retries -----


@pytest.mark.slow
def test_429_then_success_honours_retry_after():
    script = Script({"p": [Reply(429, json={"error": "slow down"}, headers={"Retry-After": "1"})]})
    with OpenAIStub(script) as stub:
        t0 = time.monotonic()
        out = backend(stub, backoff_base_s=0.001).generate([req("p")], GREEDY)
        elapsed = time.monotonic() - t0
    assert out == ["echo:p"]
    assert script.calls["p"] == 2
    assert 0.9 <= elapsed < 5  # the server's 1 s, not the 1 ms backoff


def test_500s_then_success(caplog):
    script = Script({"p": [Reply(500), Reply(503), Reply(502)]})
    with OpenAIStub(script) as stub, caplog.at_level(logging.WARNING, "pytest_jallm.backends.openai"):
        out = backend(stub, max_retries=3).generate([req("p"), req("q")], GREEDY)
    assert out == ["echo:p", "echo:q"]
    assert script.calls == {"p": 4, "q": 1}
    assert sum("retry" in m for m in caplog.messages) == 3


def test_persistent_500_raises_after_retries_and_delivers_the_rest_first():
    # "bad" answers slowly so the good ones are surely in flight before it fails.
    script = Script(default=lambda r: Reply(500, delay=0.1) if r.text == "bad" else echo(r))
    delivered: list[tuple[int, str]] = []
    with OpenAIStub(script) as stub:
        b = backend(stub, max_retries=2, max_concurrency=4)
        with pytest.raises(BackendError) as ei:
            b.generate([req("a"), req("bad"), req("c")], GREEDY, on_result=lambda i, t: delivered.append((i, t)))
    msg = str(ei.value)
    assert "request 1" in msg and "HTTP 500" in msg and "3 attempts" in msg
    assert script.calls["bad"] == 3  # 1 + max_retries
    assert sorted(delivered) == [(0, "echo:a"), (2, "echo:c")]


def test_failure_skips_queued_requests():
    script = Script(default=lambda r: Reply(400, json={"error": "no"}) if r.text == "first" else echo(r))
    with OpenAIStub(script) as stub:
        with pytest.raises(BackendError, match="request 0"):
            backend(stub, max_concurrency=1).generate([req("first")] + [req(f"q{i}") for i in range(20)], GREEDY)
    assert len(stub.posts()) == 1  # queued requests are not sent once the run has failed


def test_400_is_not_retried_and_body_is_truncated():
    long_detail = "bad max_tokens " + "x" * 5000
    script = Script(default=lambda r: Reply(400, json={"error": {"message": long_detail}}))
    with OpenAIStub(script) as stub:
        with pytest.raises(BackendError) as ei:
            backend(stub, max_retries=5).generate([req("p")], GREEDY)
    assert script.calls["p"] == 1
    msg = str(ei.value)
    assert "HTTP 400" in msg and "bad max_tokens" in msg and "request 0" in msg
    assert len(msg) < 1000


@pytest.mark.slow
def test_hanging_server_times_out():
    with OpenAIStub(lambda r: Reply(delay=30)) as stub:
        t0 = time.monotonic()
        with pytest.raises(BackendError, match="timed out"):
            backend(stub, timeout_s=0.5, max_retries=1).generate([req("p")], GREEDY)
        elapsed = time.monotonic() - t0
    assert len(stub.posts()) == 2
    assert elapsed < 5


def test_connection_refused_is_retried_then_fails():
    port = free_port()  # nothing listens there
    b = OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}", max_retries=2, backoff_base_s=0.001)
    with pytest.raises(BackendError, match=r"request 0 .*connection error.*3 attempts"):
        b.generate([req("p")], GREEDY)


def test_non_json_response_fails():
    with OpenAIStub(lambda r: Reply(raw=b"<html>oops</html>")) as stub:
        with pytest.raises(BackendError, match="not JSON"):
            backend(stub).generate([req("p")], GREEDY)


def test_retry_after_parsing():
    assert _parse_retry_after("2") == 2.0
    assert _parse_retry_after(" 0.25 ") == 0.25
    assert _parse_retry_after("-3") == 0.0
    assert _parse_retry_after("junk") is None
    assert _parse_retry_after(None) is None
    assert _parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert _parse_retry_after("999999") == 300.0  # capped


# ----- concurrency and ordering -----


def test_concurrency_bound_respected():
    with OpenAIStub(lambda r: Reply(json=completion_json(r.path, r.text), delay=0.05)) as stub:
        out = backend(stub, max_concurrency=3).generate([req(f"p{i}") for i in range(15)], GREEDY)
    assert out == [f"p{i}" for i in range(15)]
    assert stub.max_in_flight == 3


def test_order_preserved_under_out_of_order_completion():
    n = 6

    def handler(r):  # the earlier the request, the later its answer
        i = int(r.text[1:])
        return Reply(json=completion_json(r.path, f"out{i}"), delay=0.05 * (n - i))

    arrivals: list[int] = []
    with OpenAIStub(handler) as stub:
        out = backend(stub, max_concurrency=n).generate(
            [req(f"p{i}") for i in range(n)], GREEDY, on_result=lambda i, t: arrivals.append(i)
        )
    assert out == [f"out{i}" for i in range(n)]
    assert sorted(arrivals) == list(range(n))
    assert arrivals != sorted(arrivals)  # on_result really saw them as they arrived
    assert arrivals[0] == n - 1


# ----- identity and secrets -----


def test_identity():
    b = OpenAIBackend(
        "org/model", base_url="http://127.0.0.1:9/v1?api-version=2024#frag", mode="chat", revision="abc123",
        extra_body={"top_k": 1},
    )
    ident = b.identity()
    assert ident.backend == "openai"
    assert pytest_jallm.__version__ in ident.backend_version
    assert ident.model == "org/model" and ident.model_revision == "abc123"
    assert dict(ident.settings) == {"base_url": "http://127.0.0.1:9/v1", "mode": "chat", "extra_body": {"top_k": 1}}
    assert "OpenAIBackend(" in repr(b)


def test_identity_reports_server_version_when_cheap():
    def handler(r):
        if r.path == "/version":
            return Reply(json={"version": "0.99.1"})
        return echo(r)

    with OpenAIStub(handler) as stub:
        ident = backend(stub, base_url=stub.base_url + "/v1").identity()
    assert ident.backend_version == f"pytest-jallm {pytest_jallm.__version__}; server 0.99.1"
    assert ident.settings["base_url"] == stub.base_url + "/v1"


def test_bad_constructor_arguments():
    with pytest.raises(BackendError, match="mode"):
        OpenAIBackend("m", base_url="http://127.0.0.1:1", mode="responses")
    with pytest.raises(BackendError, match="http"):
        OpenAIBackend("m", base_url="ftp://127.0.0.1:1")
    with pytest.raises(BackendError) as ei:
        OpenAIBackend("m", base_url=f"http://user:{FAKE_KEY}@127.0.0.1:1")
    assert FAKE_KEY not in str(ei.value) and FAKE_KEY not in repr(ei.value)


def test_api_key_sent_as_bearer_but_never_leaked(monkeypatch, caplog):
    monkeypatch.setenv(KEY_ENV, FAKE_KEY)

    def handler(r):
        auth = r.headers.get("Authorization", "")
        if r.text == "ok":
            return echo(r)
        # A hostile/buggy server echoing the credentials back in error bodies.
        return Reply(401 if r.text == "fatal" else 500, json={"error": f"bad credentials: {auth}"})

    with OpenAIStub(handler) as stub, caplog.at_level(logging.DEBUG):
        b = backend(stub, max_retries=1)
        assert b.generate([req("ok")], GREEDY) == ["echo:ok"]
        errors = []
        for prompt in ("fatal", "retried"):
            with pytest.raises(BackendError) as ei:
                b.generate([req(prompt)], GREEDY)
            errors.append(ei.value)
        ident = b.identity()
    assert all(r.headers.get("Authorization") == f"Bearer {FAKE_KEY}" for r in stub.posts())
    assert "bad credentials" in str(errors[0])  # the body is quoted, redacted
    texts = [str(e) for e in errors] + [repr(e) for e in errors]
    texts += [repr(b), str(vars(b)), json.dumps(ident.as_dict()), str(ident)]
    texts += [rec.getMessage() for rec in caplog.records]
    for text in texts:
        assert FAKE_KEY not in text
    # The key is read at call time: unsetting it stops sending it.
    monkeypatch.delenv(KEY_ENV)
    with OpenAIStub() as stub:
        backend(stub).generate([req("ok")], GREEDY)
    assert "Authorization" not in stub.posts()[0].headers


def test_empty_and_closed():
    b = OpenAIBackend("m", base_url="http://127.0.0.1:9")
    assert b.generate([], GREEDY) == []
    b.close()
    with pytest.raises(BackendError):
        b.generate([req("p")], GREEDY)


# ----- a real OpenAI-compatible server on loopback -----


def _local_greedy(model_dir: Path, requests: list[GenerationRequest]) -> list[str]:
    """What the server should produce: the same model, transformers greedy generate, one by one."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from pytest_jallm.backends.base import apply_stop

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    outs = []
    for r in requests:
        if r.messages is not None:
            inputs = tok.apply_chat_template(
                [dict(m) for m in r.messages], add_generation_prompt=True, tokenize=True,
                return_dict=True, return_tensors="pt",
            )
        else:
            inputs = tok(r.prompt, return_tensors="pt")
        with torch.no_grad():
            ids = model.generate(
                **inputs, max_new_tokens=r.max_new_tokens, do_sample=False,
                stop_strings=list(r.stop) or None, tokenizer=tok,
            )
        text = tok.decode(ids[0, inputs["input_ids"].shape[-1]:], skip_special_tokens=True)
        outs.append(apply_stop(text, r.stop))
    return outs


@pytest.mark.slow
def test_transformers_serve_completions_equal_local_generate(transformers_server, tiny_ja_model):  # noqa: F811 - fixtures imported from servers
    requests = [
        req("日本の首都は", n=12),
        req("質問：次のうち正しいものはどれですか？答え：", n=10, stop=("。",)),
        req("富士山は", n=8),
        req("猫が", n=6),
    ]
    b = OpenAIBackend(str(tiny_ja_model), base_url=transformers_server.base_url, max_concurrency=4, timeout_s=60)
    got: dict[int, str] = {}
    first = b.generate(requests, GREEDY, on_result=got.__setitem__)
    second = b.generate(requests, GREEDY)
    assert first == second, "greedy generation through the server is not deterministic"
    assert got == dict(enumerate(first))
    assert any(first), "the server returned only empty texts"
    assert first == _local_greedy(tiny_ja_model, requests), transformers_server.log_tail()
    ident = b.identity()
    assert ident.backend == "openai" and ident.model == str(tiny_ja_model)


@pytest.mark.slow
def test_transformers_serve_chat_equal_local_generate(transformers_server, tiny_ja_chat_model):  # noqa: F811 - fixtures imported from servers
    requests = [
        req("", n=10, messages=({"role": "user", "content": "こんにちは"},)),
        req("", n=8, messages=({"role": "system", "content": "日本語で"}, {"role": "user", "content": "京都は"})),
    ]
    b = OpenAIBackend(str(tiny_ja_chat_model), base_url=transformers_server.base_url, timeout_s=60)
    first = b.generate(requests, GREEDY)
    assert first == b.generate(requests, GREEDY)
    assert any(first)
    assert first == _local_greedy(tiny_ja_chat_model, requests), transformers_server.log_tail()
    # mode="chat" sends a raw prompt as one user message: same as an explicit one-message chat.
    chat_mode = OpenAIBackend(str(tiny_ja_chat_model), base_url=transformers_server.base_url, mode="chat")
    assert chat_mode.generate([req("こんにちは", n=10)], GREEDY) == first[:1]
