"""`--jallm-backend replay` and `--jallm-save-outputs` through the plugin (pytester): specs scored on
real models' recorded outputs (matched by prompt and by item id), a missing output, hostile files,
and a run's saved outputs replayed to identical scores."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from jallm_toy import BENCHMARKS, SCRIPTED, write_script, write_suite
from pytest_jallm.metrics import METRICS, MetricResult, register_metric

ROOT = Path(__file__).resolve().parents[1]
RECORDED = ROOT / "tests" / "fixtures" / "recorded"
M_IFEVAL = RECORDED / "m-ifeval" / "data"
GPT4O_IF = M_IFEVAL / "ja_input_response_data_gpt-4o-2024-08-06.jsonl"
GPT4O_MT = RECORDED / "japanese-mt-bench" / "japanese_mt_bench" / "model_answer" / "gpt-4o.jsonl"
N_TOY = sum(n for _, n, _ in BENCHMARKS.values())
SEEN: list[str] = []

if "test_replay_seen" not in METRICS:

    @register_metric("test_replay_seen", per_item=True, binary=True)
    def _seen(preds, golds, contexts):
        SEEN.extend(preds)
        return MetricResult(1.0, [1.0] * len(preds))


SPEC = """\
name: {name}
category: {category}
source: {{path: data/{data}, format: json-records}}
fields: {{id: {id}, answer: {id}, prompt: {prompt}}}
prompt_template: plain
instruction: ""
input: "{{prompt}}"
answer_extraction: raw
max_new_tokens: 64
metrics: [test_replay_seen]
"""


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _bench(pytester: pytest.Pytester) -> Path:
    bench = pytester.path / "benchmarks"
    (bench / "data").mkdir(parents=True, exist_ok=True)
    return bench


def _replay(pytester: pytest.Pytester, model: Path | str, *more: str) -> pytest.RunResult:
    SEEN.clear()
    return pytester.runpytest("benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "replay", "--model", str(model),
                              "--jallm-thresholds-dir", "thresholds", *more)


def _scores(path: Path) -> dict[str, tuple]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    return {b["name"]: (b["score"], b["n"], b["verdict"], b["flipped_worse"], b["flipped_better"]) for b in doc["benchmarks"]}


# --- real recorded outputs through a spec --------------------------------------------------------

@pytest.mark.parametrize("chat", [True, False], ids=["chat", "raw"])
def test_m_ifeval_responses_are_scored_matched_by_prompt(pytester: pytest.Pytester, chat: bool) -> None:
    """The spec knows M-IFEval's prompts (its input file), the recording knows their responses:
    each item gets its own model's response, matched by the prompt alone."""
    bench = _bench(pytester)
    shutil.copy(M_IFEVAL / "ja_input_data.jsonl", bench / "data" / "m_ifeval.jsonl")
    (bench / "m_ifeval_replay.yaml").write_text(
        SPEC.format(name="m_ifeval_replay", category="IF", data="m_ifeval.jsonl", id="key", prompt="prompt"), encoding="utf-8")
    result = _replay(pytester, GPT4O_IF, "--jallm-no-cache", *(["--jallm-chat"] if chat else []))
    result.assert_outcomes(passed=1)
    responses = {r["prompt"]: r["response"] for r in _jsonl(GPT4O_IF)}
    assert SEEN == [responses[r["prompt"]] for r in _jsonl(M_IFEVAL / "ja_input_data.jsonl")]
    assert len(SEEN) == 12


def test_fastchat_answers_are_scored_matched_by_item_id(pytester: pytest.Pytester) -> None:
    """FastChat answers name only question ids: items are matched by id (the spec's prompts are not
    the recorded ones), and bound to the benchmark with --jallm-replay-benchmark."""
    bench = _bench(pytester)
    answers = _jsonl(GPT4O_MT)
    _write_jsonl(bench / "data" / "mt.jsonl", [{"qid": str(a["question_id"]), "q": f"質問 {a['question_id']}"} for a in answers])
    (bench / "mt_replay.yaml").write_text(
        SPEC.format(name="mt_replay", category="CHAT", data="mt.jsonl", id="qid", prompt="q"), encoding="utf-8")
    result = _replay(pytester, GPT4O_MT, "--jallm-no-cache", "--jallm-chat", "--jallm-replay-benchmark", "mt_replay")
    result.assert_outcomes(passed=1)
    assert SEEN == [a["choices"][0]["turns"][0] for a in answers]


def test_items_with_one_prompt_get_their_own_recorded_outputs(pytester: pytest.Pytester) -> None:
    """Two items render the same prompt; the engine would generate it once. Recorded by item id, each
    keeps its own output, through the generation cache and from it on a second run."""
    bench = _bench(pytester)
    spec = ("name: same_prompt\ncategory: MC\nsource: {path: data/same.jsonl}\nfields: {id: qid, answer: label, q: q}\n"
            "instruction: 番号で答えてください。\ninput: \"{q}\"\nlabels: [\"0\", \"1\"]\nmax_new_tokens: 2\nmetrics: [exact_match]\n")
    (bench / "same_prompt.yaml").write_text(spec, encoding="utf-8")
    _write_jsonl(bench / "data" / "same.jsonl", [{"qid": "a", "q": "同じ問題", "label": "0"}, {"qid": "b", "q": "同じ問題", "label": "1"},
                                                 {"qid": "c", "q": "別の問題", "label": "1"}])
    recording = _write_jsonl(pytester.path / "by_id.jsonl", [
        {"benchmark": "same_prompt", "id": "a", "turn": 1, "prompt": None, "messages": None, "output": "0"},
        {"benchmark": "same_prompt", "id": "b", "turn": 1, "prompt": None, "messages": None, "output": "1"},
        {"benchmark": "same_prompt", "id": "c", "turn": 1, "prompt": None, "messages": None, "output": "1"},
    ])
    for run in ("generated", "from the cache"):
        result = _replay(pytester, recording, "--jallm-cache", "cache.sqlite", "--jallm-results-json", "r.json")
        result.assert_outcomes(passed=1)
        assert _scores(pytester.path / "r.json")["same_prompt"][0] == 100.0, run  # one shared output would score 66.67
    result.stdout.fnmatch_lines(["*3 prompts, 0 generated, 3 from the generation cache*"])


# --- what fails, and how -----------------------------------------------------------------------

def _toy_with_recording(pytester: pytest.Pytester, drop: set[str]) -> Path:
    """The toy suite, and a --jallm-save-outputs recording of a perfect run less the items in ``drop``."""
    write_suite(pytester.path)
    script = write_script(pytester.path)
    pytester.runpytest("benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED, "--model", script,
                       "--jallm-no-cache", "--jallm-save-outputs", "full.jsonl").assert_outcomes(passed=3)
    rows = [r for r in _jsonl(pytester.path / "full.jsonl") if r["id"] not in drop]
    return _write_jsonl(pytester.path / "partial.jsonl", rows)


def test_a_missing_output_fails_its_benchmark_naming_item_and_file(pytester: pytest.Pytester) -> None:
    recording = _toy_with_recording(pytester, drop={"toy_nli-3"})
    result = _replay(pytester, recording, "--jallm-no-cache")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines([
        "*toy_nli: 1 of 6 requests failed in the backend*--jallm-max-backend-errors*first: item toy_nli-3: "
        "no recorded output for toy_nli item 'toy_nli-3' in partial.jsonl*",
    ])
    allowed = _replay(pytester, recording, "--jallm-no-cache", "--jallm-max-backend-errors", "20", "--jallm-items")
    allowed.assert_outcomes(passed=N_TOY + 3 - 1, failed=1)  # the item's own test fails; the benchmark passes
    allowed.stdout.fnmatch_lines(["*toy_nli-3*no recorded output for toy_nli item 'toy_nli-3'*"])


@pytest.mark.parametrize(("content", "message"), [
    (b"\x7fELF\x02\x01\x01\x00\x00\xff\xfe\x00binary junk", "*junk.jsonl: line 1: not UTF-8 text*"),
    (b'{"prompt": "p", "response": "r"}\n' + b"x" * 10_000_000 + b"\n", "*junk.jsonl: line 2: not JSON*"),
    (b'[{"prompt": "p", "response": "r"}]\n', "*junk.jsonl: line 1: expected a JSON object, got list*"),
])
def test_a_hostile_recording_fails_the_run_naming_file_and_line(pytester: pytest.Pytester, content: bytes, message: str) -> None:
    write_suite(pytester.path)
    (pytester.path / "junk.jsonl").write_bytes(content)
    result = _replay(pytester, pytester.path / "junk.jsonl", "--jallm-no-cache")
    result.assert_outcomes(failed=3)
    result.stdout.fnmatch_lines([message])
    assert max(len(line) for line in result.stdout.lines) < 2000  # the 10 MB line is named, not printed


# --- --jallm-save-outputs ----------------------------------------------------------------------

def test_saved_outputs_replay_to_identical_scores_and_pass_the_recorded_runs_gate(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path)
    script = write_script(pytester.path, wrong={"toy_mc": 3, "toy_nli": 1})
    first = pytester.runpytest("benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED, "--model", script,
                               "--jallm-cache", "cache.sqlite", "--jallm-save-outputs", "out/saved.jsonl",
                               "--jallm-baseline", "toy", "--jallm-update-baseline", "--jallm-results-json", "first.json")
    first.assert_outcomes(passed=3)
    saved = _jsonl(pytester.path / "out" / "saved.jsonl")
    assert len(saved) == N_TOY and all(list(r) == ["benchmark", "id", "turn", "prompt", "messages", "output"] for r in saved)
    replayed = _replay(pytester, pytester.path / "out" / "saved.jsonl", "--jallm-cache", "cache.sqlite",
                       "--jallm-baseline", "toy", "--jallm-strict", "--jallm-results-json", "replayed.json")
    replayed.assert_outcomes(passed=3)
    scores, again = _scores(pytester.path / "first.json"), _scores(pytester.path / "replayed.json")
    assert {k: v[:2] for k, v in scores.items()} == {k: v[:2] for k, v in again.items()}
    assert scores["toy_mc"][0] == 70.0 and scores["toy_nli"][0] < 100.0
    assert {v[2:] for v in again.values()} == {("pass", 0, 0)}  # paired with the recorded run's baseline: no flip
    # a fully cached run still saves every output (cache hits included), as the first run did
    cached = pytester.runpytest("benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED, "--model", script,
                                "--jallm-cache", "cache.sqlite", "--jallm-save-outputs", "out/saved.jsonl")
    cached.stdout.fnmatch_lines([f"*{N_TOY} prompts, 0 generated, {N_TOY} from the generation cache*"])
    assert sorted(map(json.dumps, _jsonl(pytester.path / "out" / "saved.jsonl"))) == sorted(map(json.dumps, saved))


def test_outputs_are_saved_as_they_arrive_so_a_failed_run_keeps_them(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path)
    script = pytester.path / "failing.json"
    rules = json.loads(Path(write_script(pytester.path)).read_text(encoding="utf-8"))
    script.write_text(json.dumps({**rules, "fail_after": 5}, ensure_ascii=False), encoding="utf-8")
    (pytester.path / "saved.jsonl").write_text("a previous run's outputs\n", encoding="utf-8")
    result = pytester.runpytest("benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED, "--model", str(script),
                                "--jallm-no-cache", "--jallm-save-outputs", "saved.jsonl")
    result.assert_outcomes(failed=3)
    saved = _jsonl(pytester.path / "saved.jsonl")  # the earlier content replaced, the 5 generated kept
    assert len(saved) == 5 and all(r["output"] for r in saved)


@pytest.mark.slow
def test_xdist_workers_share_one_outputs_file(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path)
    script = write_script(pytester.path, wrong={"toy_he": 2})
    dist = pytester.runpytest_subprocess("benchmarks", "-p", "no:cacheprovider", "-n", "2", "--jallm-backend", SCRIPTED,
                                         "--model", script, "--jallm-no-cache", "--jallm-save-outputs", "saved.jsonl",
                                         "--jallm-results-json", "dist.json")
    dist.assert_outcomes(passed=3)
    saved = _jsonl(pytester.path / "saved.jsonl")
    assert sorted(r["id"] for r in saved) == sorted(f"{b}-{i}" for b, (_, n, _) in BENCHMARKS.items() for i in range(n))
    _replay(pytester, pytester.path / "saved.jsonl", "--jallm-no-cache", "--jallm-results-json", "replayed.json").assert_outcomes(passed=3)
    assert _scores(pytester.path / "dist.json") == _scores(pytester.path / "replayed.json")


def test_an_outputs_file_that_cannot_be_created_is_a_usage_error(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path)
    (pytester.path / "a-file").write_text("", encoding="utf-8")
    result = pytester.runpytest("benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED,
                                "--model", write_script(pytester.path), "--jallm-save-outputs", "a-file/out.jsonl")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--jallm-save-outputs a-file/out.jsonl: cannot create the file*"])


@pytest.mark.slow
def test_a_real_checkpoints_saved_outputs_meet_the_gate_as_the_checkpoint_did(pytester: pytest.Pytester) -> None:
    """The bundled weak checkpoint, held to the good one's baselines, fails the gate; its saved
    outputs, replayed without the model, give the same scores, flips and verdicts."""
    common = ("--jallm-thresholds-dir", str(ROOT / "thresholds"), "--jallm-baseline", "tiny-ja-good", "--jallm-no-cache",
              "-p", "no:cacheprovider")
    # a subprocess: torch's operator libraries cannot be loaded twice into one process
    model = pytester.runpytest_subprocess(str(ROOT / "samples"), "--model", str(ROOT / "models" / "tiny-ja-weak"),
                                          "--jallm-backend", "hf", "--jallm-save-outputs", "weak.jsonl",
                                          "--jallm-results-json", "model.json", *common)
    SEEN.clear()
    replayed = pytester.runpytest(str(ROOT / "samples"), "--model", "weak.jsonl", "--jallm-backend", "replay",
                                  "--jallm-results-json", "replayed.json", *common)
    assert model.parseoutcomes() == replayed.parseoutcomes() and model.parseoutcomes().get("failed", 0) >= 1
    assert _scores(pytester.path / "model.json") == _scores(pytester.path / "replayed.json")
    assert any(v[2] != "pass" and v[3] > 0 for v in _scores(pytester.path / "replayed.json").values())
