"""Prompts that fit the model (pytest_jallm/context_fit.py): a prompt longer than the model's context
minus max_new_tokens is rendered with fewer few-shot examples, or fails alone; never the batch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_jallm.backends.base import GenerationRequest, RequestErrors, SamplingSettings
from pytest_jallm.context_fit import FittingBackend

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"

SPEC = """\
name: {name}
category: MC
source: {{path: data/{name}.jsonl}}
fields: {{id: qid, answer: label, choices: [c0, c1], question: question}}
fewshot: {{count: 3, source: {{path: data/shots.jsonl}}}}
instruction: 番号で答えてください。
input: "質問：{{question}}\\n選択肢：{{choices}}"
labels: ["0", "1"]
max_new_tokens: 2
metrics: [exact_match]
"""

# Character counts drive the scripted backend's token counts (one token per character).
QUESTIONS = {"short": "短い", "long": "長" * 250, "huge": "巨" * 900}
WINDOW = 500


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "fit_mc.yaml").write_text(SPEC.format(name="fit_mc"), encoding="utf-8")
    (bench / "other_mc.yaml").write_text(SPEC.format(name="other_mc"), encoding="utf-8")
    rows = [{"qid": qid, "question": q, "c0": "いぬ", "c1": "ねこ", "label": 0} for qid, q in QUESTIONS.items()]
    (bench / "data" / "fit_mc.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                 encoding="utf-8")
    other = [{"qid": "o1", "question": "別の問題", "c0": "いぬ", "c1": "ねこ", "label": 0}]
    (bench / "data" / "other_mc.jsonl").write_text(json.dumps(other[0], ensure_ascii=False) + "\n", encoding="utf-8")
    shots = [{"qid": f"s{i}", "question": f"見本{i}" + "例" * 60, "c0": "いぬ", "c1": "ねこ", "label": 0} for i in range(3)]
    (bench / "data" / "shots.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in shots),
                                                encoding="utf-8")
    script = {"rules": [], "default": "0", "context_window": WINDOW}
    (pytester.path / "script.json").write_text(json.dumps(script), encoding="utf-8")
    return pytester


def _run(pytester: pytest.Pytester, *extra: str):
    log = pytester.path / "requests.jsonl"
    pytester._monkeypatch.setenv("JALLM_SCRIPTED_REQUESTS", str(log))
    result = pytester.runpytest("benchmarks", "--model", "script.json", "--jallm-backend", SCRIPTED, "--jallm-no-cache",
                                "--jallm-results-json", "r.json", *extra)
    sent = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
    return result, sent, {b["name"]: b for b in doc["benchmarks"]}


def test_an_overlong_prompt_gets_fewer_shots_and_one_that_never_fits_fails_alone(suite: pytest.Pytester) -> None:
    result, sent, rows = _run(suite, "--jallm-max-backend-errors", "40")
    result.assert_outcomes(passed=2)
    assert all(len(r["prompt"]) + 2 <= WINDOW for r in sent)  # nothing over budget reached the model
    by_question = {q: [r for r in sent if f"質問：{q}\n" in r["prompt"]] for q in QUESTIONS.values()}
    assert by_question["短い"][0]["prompt"].count("見本") == 3  # fits: untouched
    assert by_question["長" * 250][0]["prompt"].count("見本") == 1  # 3 and 2 shots are too long, 1 fits
    assert by_question["巨" * 900] == []  # too long even 0-shot: never sent
    fit = rows["fit_mc"]
    assert fit["n"] == 2 and fit["run"]["context"] == {"window": WINDOW, "checked": True, "shortened": {"long": 1},
                                                       "too_long": ["huge"]}
    assert fit["extra"]["produced_by"]["context_policy"] == "fewer-shots"
    assert rows["other_mc"]["n"] == 1  # the other benchmark, in the same batch, is untouched


def test_error_policy_fails_the_overlong_items_and_names_why(suite: pytest.Pytester) -> None:
    result, sent, rows = _run(suite, "--jallm-context-policy", "error")
    result.assert_outcomes(passed=1, failed=1)  # fit_mc fails (2 of 3 requests), other_mc passes
    result.stdout.fnmatch_lines(["*fit_mc: 2 of 3 requests failed in the backend*exceeds the model's context of 500 "
                                 "tokens (--jallm-context-policy error)*"])
    assert all(len(r["prompt"]) + 2 <= WINDOW for r in sent) and len(sent) == 2
    assert rows["other_mc"]["extra"]["produced_by"]["context_policy"] == "error"
    assert (rows["fit_mc"]["verdict"], rows["fit_mc"]["error_kind"], rows["fit_mc"]["score"]) == ("error", "backend", None)


class CountingBackend:
    """Counts characters; records what reached it."""

    def __init__(self, window: int | None):
        self.window, self.sent = window, []

    def identity(self):
        raise AssertionError("not needed")

    def context_window(self):
        return self.window

    def count_prompt_tokens(self, requests):
        return [len(r.prompt) for r in requests]

    def generate(self, requests, sampling, on_result=None):
        self.sent.extend(r.prompt for r in requests)
        out = [f"ok:{len(r.prompt)}" for r in requests]
        for i, t in enumerate(out):
            if on_result:
                on_result(i, t)
        return out


def _req(n: int) -> GenerationRequest:
    return GenerationRequest(prompt="x" * n, max_new_tokens=10)


def test_fitting_backend_delivers_every_fitting_text_in_the_callers_indexes() -> None:
    inner = CountingBackend(window=100)
    requests = [_req(50), _req(200), _req(95), _req(500)]

    def reshot(r, k):  # each shot left out saves 60 characters
        return GenerationRequest(prompt="x" * (len(r.prompt) - 60 * (2 - k)), max_new_tokens=r.max_new_tokens)

    wrapper = FittingBackend(inner, "fewer-shots", reshot, shots_of=lambda r: 2)
    got: dict[int, str] = {}
    with pytest.raises(RequestErrors) as e:
        wrapper.generate(requests, SamplingSettings(), lambda i, t: got.__setitem__(i, t))
    # 50 fits; 200 -> 140 -> 80 fits with 0 shots; 95 + 10 > 100 -> 35 with 1 shot; 500 -> 380 never fits.
    assert got == {0: "ok:50", 1: "ok:80", 2: "ok:35"}
    assert list(e.value.failures) == [3] and "500 tokens + max_new_tokens 10 exceeds" in e.value.failures[3]
    assert e.value.texts == ["ok:50", "ok:80", "ok:35", None] and e.value.generated == 3
    assert inner.sent == ["x" * 50, "x" * 80, "x" * 35]
    assert sorted(wrapper.report.shortened.values()) == [(0, 2), (1, 2)]


def test_pass_through_when_the_backend_cannot_count() -> None:
    inner = CountingBackend(window=None)
    wrapper = FittingBackend(inner, "error", lambda r, k: None, shots_of=lambda r: 0)
    assert wrapper.generate([_req(10_000)], SamplingSettings()) == ["ok:10000"]
    assert wrapper.report.checked is False


# --- vLLM: one overlong prompt would fail the whole engine call ----------------------------


def test_vllm_standin_refuses_the_batch_and_the_check_saves_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    root = Path(__file__).resolve().parent / "fakes" / "fake_vllm"
    for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
        del sys.modules[name]
    monkeypatch.syspath_prepend(str(root))
    try:
        from pytest_jallm.backends.vllm import VLLMBackend

        backend = VLLMBackend("org/tiny-ja", max_model_len=64)
        assert backend.context_window() == 64
        requests = [GenerationRequest(prompt="a" * 20, max_new_tokens=8),
                    GenerationRequest(prompt="b" * 70, max_new_tokens=8),
                    GenerationRequest(prompt="c", max_new_tokens=8, messages=({"role": "user", "content": "d" * 80},))]
        with pytest.raises(Exception, match="longer than the maximum model length"):
            backend.generate(requests, SamplingSettings())  # what vLLM does without the check
        assert backend.count_prompt_tokens(requests) == [20, 70, len("user:" + "d" * 80)]
        wrapper = FittingBackend(backend, "fewer-shots", lambda r, k: None, shots_of=lambda r: 0)
        with pytest.raises(RequestErrors) as e:
            wrapper.generate(requests, SamplingSettings())
        assert sorted(e.value.failures) == [1, 2] and e.value.texts[0] is not None
    finally:
        for name in [m for m in sys.modules if m == "vllm" or m.startswith("vllm.")]:
            del sys.modules[name]


@pytest.mark.slow
def test_hf_backend_reports_the_models_positions_and_counts_its_tokens() -> None:
    from pytest_jallm.backends.hf import HFBackend

    model = Path(__file__).resolve().parents[1] / "models" / "tiny-ja-good"
    backend = HFBackend(str(model), device="cpu")
    assert backend.context_window() == backend.model.config.max_position_embeddings
    text = "質問：日本の首都は？" * 10
    n = backend.count_prompt_tokens([GenerationRequest(prompt=text, max_new_tokens=1)])[0]
    assert n == len(backend.tokenizer(text)["input_ids"]) and n > 10


SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "jglue").is_dir(), reason=f"real JGLUE files not found at {SHARED}")
def test_real_jcommonsenseqa_item_over_the_bundled_models_positions_is_shortened(pytester: pytest.Pytester) -> None:
    """JCommonsenseQA item 9414's 4-shot prompt is 524 tokens for the bundled model (512 positions):
    it is sent 3-shot, and transformers' too-long warning never appears."""
    root = Path(__file__).resolve().parents[1]
    spec = (root / "benchmarks" / "jcommonsenseqa.yaml").read_text(encoding="utf-8")
    spec = spec.replace("name: jcommonsenseqa", "name: jcqa_long").replace("  format: jsonl\n", "  format: jsonl\n  where: {q_id: 9414}\n", 1)
    bench = pytester.mkdir("benchmarks")
    (bench / "jcqa_long.yaml").write_text(spec, encoding="utf-8")
    result = pytester.runpytest_subprocess("benchmarks", "--model", str(root / "models" / "tiny-ja-good"),
                                           "--jallm-data-dir", str(SHARED), "--jallm-no-cache", "--jallm-results-json",
                                           "r.json", "-W", "error::UserWarning")
    row = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))["benchmarks"][0]
    assert row["n"] == 1 and row["run"]["context"]["shortened"] == {"9414": 3}
    assert row["run"]["context"]["window"] == 512
    assert "longer than the specified maximum sequence length" not in result.stdout.str() + result.stderr.str()
