"""The context check through the openai backend (backends/openai_context.py): the context from the
server's model card, token counts from its /tokenize, asked concurrently; a server without them is
passed through and the run says so once. Against tests/fakes/openai_stub.VLLMLike, whose shapes are
vLLM 0.33.0's (checked against its wheel when it is at hand)."""

from __future__ import annotations

import ast
import glob
import json
import sys
import warnings
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fakes import openai_stub as stub_module  # noqa: E402
from fakes.openai_stub import OpenAIStub, VLLMLike  # noqa: E402
from pytest_jallm.backends.base import BackendError, GenerationRequest, RequestErrors, SamplingSettings  # noqa: E402
from pytest_jallm.backends.openai import OpenAIBackend  # noqa: E402
from pytest_jallm.backends.openai_context import ContextNotCheckedWarning  # noqa: E402
from pytest_jallm.context_fit import FittingBackend  # noqa: E402


def _backend(stub: OpenAIStub, **kw) -> OpenAIBackend:
    return OpenAIBackend("m", base_url=stub.base_url + "/v1", max_retries=0, **kw)


def _tokenize_bodies(stub: OpenAIStub) -> list[dict]:
    return [r.body for r in stub.requests if r.path == "/tokenize"]


def test_the_window_is_the_model_cards_max_model_len_and_counts_come_from_tokenize() -> None:
    with OpenAIStub(VLLMLike(max_model_len=300)) as stub:
        backend = _backend(stub)
        assert backend.context_window() == 300
        requests = [GenerationRequest(prompt="あいう", max_new_tokens=2),
                    GenerationRequest(prompt="x", max_new_tokens=2, messages=({"role": "system", "content": "s"},
                                                                               {"role": "user", "content": "質問"}))]
        assert backend.count_prompt_tokens(requests) == [1 + 3, len("<|system|>s<|user|>質問<|assistant|>")]
        assert [r.path for r in stub.requests].count("/v1/models") == 1
        assert backend.context_window() == 300 and [r.path for r in stub.requests].count("/v1/models") == 1  # asked once
        bodies = _tokenize_bodies(stub)
        assert bodies[0] == {"model": "m", "prompt": "a", "add_special_tokens": True}  # the probe
        assert sorted(bodies[1:], key=json.dumps) == sorted([  # sent side by side: in any order
            {"model": "m", "prompt": "あいう", "add_special_tokens": True},
            {"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "質問"}],
             "add_generation_prompt": True, "add_special_tokens": False}], key=json.dumps)


def test_chat_mode_counts_the_prompt_as_the_user_turn_with_the_runs_template_settings() -> None:
    with OpenAIStub(VLLMLike()) as stub:
        backend = _backend(stub, mode="chat", extra_body={"chat_template_kwargs": {"enable_thinking": False}, "top_k": 1})
        assert backend.count_prompt_tokens([GenerationRequest(prompt="問", max_new_tokens=1)]) == [len("<|user|>問<|assistant|>")]
        assert _tokenize_bodies(stub)[-1] == {"model": "m", "messages": [{"role": "user", "content": "問"}],
                                              "add_generation_prompt": True, "add_special_tokens": False,
                                              "chat_template_kwargs": {"enable_thinking": False}}


def test_counting_is_concurrent() -> None:
    with OpenAIStub(VLLMLike(tokenize_delay=0.05)) as stub:
        backend = _backend(stub, max_concurrency=4)
        counts = backend.count_prompt_tokens([GenerationRequest(prompt="p" * i, max_new_tokens=1) for i in range(16)])
        assert counts == [i + 1 for i in range(16)]
        assert stub.max_in_flight == 4


def test_an_overlong_prompt_fails_alone_instead_of_stopping_the_run() -> None:
    requests = [GenerationRequest(prompt="a" * 10, max_new_tokens=8), GenerationRequest(prompt="b" * 60, max_new_tokens=8),
                GenerationRequest(prompt="c" * 20, max_new_tokens=8)]
    with OpenAIStub(VLLMLike(max_model_len=64)) as stub:
        with pytest.raises(BackendError, match="maximum context length is 64"):
            _backend(stub).generate(requests, SamplingSettings())  # unchecked: the server's 400 stops everything
    with OpenAIStub(VLLMLike(max_model_len=64)) as stub:
        fitting = FittingBackend(_backend(stub), "error", lambda r, k: None, shots_of=lambda r: 0)
        with pytest.raises(RequestErrors) as e:
            fitting.generate(requests, SamplingSettings())
        assert list(e.value.failures) == [1] and "61 tokens + max_new_tokens 8 exceeds the model's context of 64" in e.value.failures[1]
        assert e.value.texts[0] == "echo:" + "a" * 10 and e.value.texts[2] == "echo:" + "c" * 20
        assert not any(r.text.startswith("b") for r in stub.posts())  # never sent
        assert fitting.report.window == 64 and fitting.report.checked


def test_a_reshot_prompt_is_counted_again_by_the_server() -> None:
    def reshot(r, k):
        return GenerationRequest(prompt=r.prompt[: 30 + 10 * k], max_new_tokens=r.max_new_tokens)

    with OpenAIStub(VLLMLike(max_model_len=64)) as stub:
        fitting = FittingBackend(_backend(stub), "fewer-shots", reshot, shots_of=lambda r: 3)
        out = fitting.generate([GenerationRequest(prompt="d" * 70, max_new_tokens=8)], SamplingSettings())
        assert out == ["echo:" + "d" * 50]  # 3 shots: 70 > 55; 2 shots: 50 + 1 + 8 <= 64
        assert fitting.report.shortened and list(fitting.report.shortened.values()) == [(2, 3)]


@pytest.mark.parametrize("server, why", [
    (VLLMLike(tokenize=False), "does not count tokens"),
    (VLLMLike(card_window=False, tokenize=False), "does not count tokens"),
    (VLLMLike(models=False, tokenize=False), "does not count tokens"),
])
def test_a_server_that_cannot_count_is_passed_through_and_said_once(server, why) -> None:
    with OpenAIStub(server) as stub:
        backend = _backend(stub)
        fitting = FittingBackend(backend, "error", lambda r, k: None, shots_of=lambda r: 0)
        with pytest.warns(ContextNotCheckedWarning, match=why) as caught:
            assert fitting.generate([GenerationRequest(prompt="a", max_new_tokens=1)], SamplingSettings()) == ["echo:a"]
            assert backend.context_window() is None
        assert len([w for w in caught if issubclass(w.category, ContextNotCheckedWarning)]) == 1
        assert fitting.report.checked is False


def test_the_tokenize_answer_gives_the_window_when_no_model_card_does() -> None:
    with OpenAIStub(VLLMLike(max_model_len=128, card_window=False)) as stub:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ContextNotCheckedWarning)
            assert _backend(stub).context_window() == 128


def test_a_server_with_tokenize_but_no_context_anywhere_is_passed_through() -> None:
    class NoWindow(VLLMLike):
        def __call__(self, req):
            reply = super().__call__(req)
            if req.path == "/tokenize" and isinstance(reply.json, dict):
                reply.json.pop("max_model_len")
            return reply

    with OpenAIStub(NoWindow(card_window=False)) as stub:
        with pytest.warns(ContextNotCheckedWarning, match="reports no context length"):
            assert _backend(stub).context_window() is None


def test_a_prompt_the_server_cannot_count_is_sent_unchecked_and_said_once() -> None:
    server = VLLMLike(refuse_tokenize=lambda body: body.get("prompt") == "bad")
    with OpenAIStub(server) as stub:
        backend = _backend(stub)
        with pytest.warns(ContextNotCheckedWarning, match="1 of 3 prompts could not be counted.*prompt 1: HTTP 400"):
            counts = backend.count_prompt_tokens([GenerationRequest(prompt=p, max_new_tokens=1) for p in ("ok", "bad", "ok")])
        assert counts == [3, 0, 3]
        assert sum(1 for b in _tokenize_bodies(stub) if b.get("prompt") == "bad") == 1  # a 400 is not retried


def test_the_api_key_goes_with_the_context_questions(monkeypatch) -> None:
    monkeypatch.setenv("JALLM_TEST_KEY", "sk-secret")
    with OpenAIStub(VLLMLike()) as stub:
        backend = _backend(stub, api_key_env="JALLM_TEST_KEY")
        backend.context_window()
        assert {r.headers.get("Authorization") for r in stub.requests} == {"Bearer sk-secret"}


def test_through_pytest_an_overlong_item_is_left_out_and_the_rest_scored(pytester: pytest.Pytester) -> None:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "fit.yaml").write_text(
        "name: fit\ncategory: MC\nsource: {path: data/t.jsonl}\nfields: {id: qid, answer: label, question: question}\n"
        "prompt_template: plain\ninstruction: ''\ninput: '{question}'\nlabels: ['0', '1']\nmax_new_tokens: 4\n"
        "metrics: [exact_match]\n", encoding="utf-8")
    rows = [{"qid": "short", "question": "短い", "label": "0"}, {"qid": "long", "question": "長" * 100, "label": "0"}]
    (bench / "data" / "t.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    with OpenAIStub(VLLMLike(max_model_len=64)) as stub:
        result = pytester.runpytest("benchmarks", "--jallm-backend", "openai", "--model", "m", "--jallm-base-url",
                                    stub.base_url + "/v1", "--jallm-no-cache", "--jallm-max-backend-errors", "50",
                                    "--jallm-results-json", "r.json", "-p", "no:cacheprovider")
        sent = [r.text for r in stub.posts()]
    row = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["benchmarks"][0]
    assert sent == ["短い"]
    assert row["n"] == 1 and row["run"]["context"] == {"window": 64, "checked": True, "shortened": {}, "too_long": ["long"]}
    result.assert_outcomes(passed=1)


# --- the stub's shapes are vLLM's ----------------------------------------------------------------------

WHEELS = sorted(glob.glob("/tmp/vllm-src/vllm-*.whl"))


def _class_fields(source: str, name: str) -> list[str]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == name:
            return [s.target.id for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                    and not (isinstance(s.annotation, ast.Subscript) and getattr(s.annotation.value, "id", "") == "ClassVar")]
    raise AssertionError(f"no class {name}")


@pytest.mark.skipif(not WHEELS, reason="the vLLM wheel is not at /tmp/vllm-src (the field names are pinned in the stub)")
def test_the_stubs_field_names_are_vllms() -> None:
    with zipfile.ZipFile(WHEELS[-1]) as wheel:
        engine = wheel.read("vllm/entrypoints/serve/engine/protocol.py").decode()
        tokenize = wheel.read("vllm/entrypoints/serve/tokenize/protocol.py").decode()
        router = wheel.read("vllm/entrypoints/serve/tokenize/api_router.py").decode()
    assert tuple(_class_fields(engine, "ModelCard")) == stub_module.MODEL_CARD_FIELDS
    assert tuple(_class_fields(engine, "ModelList")) == stub_module.MODEL_LIST_FIELDS
    assert tuple(_class_fields(engine, "ErrorInfo")) == stub_module.ERROR_INFO_FIELDS
    assert tuple(_class_fields(tokenize, "TokenizeCompletionRequest")) == stub_module.TOKENIZE_COMPLETION_FIELDS
    assert tuple(_class_fields(tokenize, "TokenizeChatRequest")) == stub_module.TOKENIZE_CHAT_FIELDS
    assert tuple(_class_fields(tokenize, "TokenizeResponse")) == stub_module.TOKENIZE_RESPONSE_FIELDS
    assert '@router.post(\n    "/tokenize"' in router


def test_what_the_backend_sends_and_reads_fits_those_shapes() -> None:
    with OpenAIStub(VLLMLike()) as stub:
        backend = _backend(stub)
        backend.context_window()
        backend.count_prompt_tokens([GenerationRequest(prompt="p", max_new_tokens=1),
                                     GenerationRequest(prompt="p", max_new_tokens=1, messages=({"role": "user", "content": "q"},))])
        card = VLLMLike()(stub_module.StubRequest("/v1/models", {}, None, 0)).json["data"][0]
    for body in _tokenize_bodies(stub):
        allowed = stub_module.TOKENIZE_CHAT_FIELDS if "messages" in body else stub_module.TOKENIZE_COMPLETION_FIELDS
        assert set(body) <= set(allowed), body
    assert tuple(card) == stub_module.MODEL_CARD_FIELDS
