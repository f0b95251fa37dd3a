"""`pytest benchmarks/japanese_mt_bench.yaml … --jallm-judge-backend openai …` end to end.

The shipped spec (its pins dropped: it reads the real-format slice through --jallm-data-dir), the
model scripted, and the judge a loopback OpenAI-compatible server (tests/fakes/openai_stub.py)
reached through the openai backend and the --jallm-judge-* options: what the judge is sent, the
MT-Bench block of the terminal, Markdown, HTML and results JSON, an unscorable judgment counted
and shown, the generation cache on the second run, a baseline made stale by another judge.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fakes.openai_stub import OpenAIStub, Reply, StubRequest, completion_json
from real_slices import SLICES

ROOT = Path(__file__).resolve().parents[1]
SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"
MARKER = "採点不能な答え"  # the model's answer to question 11: the judge gives it no rating


def _unpinned_spec(pytester: pytest.Pytester) -> None:
    raw = yaml.safe_load((ROOT / "benchmarks" / "japanese_mt_bench.yaml").read_text(encoding="utf-8"))
    for source in (raw["source"], raw["judge"]["prompts"], raw["judge"]["multi_turn_prompts"], raw["judge"]["reference_answers"]):
        source.pop("sha256")  # a slice is not the pinned file
    bench = pytester.mkdir("benchmarks")
    (bench / "japanese_mt_bench.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")


def _script(pytester: pytest.Pytester) -> Path:
    q11 = next(json.loads(line) for line in (SLICES / "japanese-mt-bench/japanese_mt_bench/question_full.jsonl")
               .read_text(encoding="utf-8").splitlines() if json.loads(line)["question_id"] == 11)
    path = pytester.path / "model.json"
    path.write_text(json.dumps({"rules": [{"contains": q11["turns"][0][:30], "output": MARKER}],
                                "default": "はい、順を追って説明します。"}, ensure_ascii=False), encoding="utf-8")
    return path


def judge(req: StubRequest) -> Reply:
    if not req.path.endswith("/chat/completions"):
        return Reply(status=404, json={"error": "not here"})
    user = req.body["messages"][-1]["content"]
    if MARKER in user:
        text = "この回答は質問に答えていないため、評価できません。"
    elif req.body["messages"][0]["content"].startswith("Please act"):  # turn 2: FastChat's English prompt
        text = "The second answer is brief. Rating: [[5]]"
    else:
        text = "簡潔ですが正確です。\n\n評価：[[8]]"
    return Reply(json=completion_json(req.path, text, model=req.body["model"]))


def _args(pytester: pytest.Pytester, stub: OpenAIStub | None, *more: str, judge_model: str = "stub-judge") -> list[str]:
    args = ["benchmarks/japanese_mt_bench.yaml", "--model", str(_script(pytester)), "--jallm-backend", SCRIPTED,
            "--jallm-data-dir", str(SLICES), "--jallm-cache", str(pytester.path / "cache.sqlite"),
            "--jallm-thresholds-dir", str(pytester.path / "thresholds"), "-p", "no:cacheprovider",
            "-W", "ignore::pytest_jallm.sources.UnpinnedDataWarning"]
    if stub is not None:
        args += ["--jallm-judge-backend", "openai", "--jallm-judge-model", judge_model,
                 "--jallm-judge-base-url", stub.base_url + "/v1"]
    return args + list(more)


@pytest.mark.slow
def test_japanese_mt_bench_runs_against_an_openai_compatible_judge(pytester: pytest.Pytester, monkeypatch) -> None:
    _unpinned_spec(pytester)
    log = pytester.path / "generate.log"
    monkeypatch.setenv("JALLM_SCRIPTED_LOG", str(log))
    with OpenAIStub(judge) as stub:
        result = pytester.runpytest(*_args(pytester, stub, "--jallm-results-json", "r.json", "--jallm-report-md", "r.md",
                                           "--jallm-report-html", "r.html"))
        result.assert_outcomes(passed=1)
        posts = stub.posts()
        assert len(posts) == 32  # 16 questions x 2 turns, one judge prompt each
        assert all(p.body["model"] == "stub-judge" and p.body["temperature"] == 0 and p.body["max_tokens"] == 2048
                   and [m["role"] for m in p.body["messages"]] == ["system", "user"] for p in posts)
        assert [json.loads(line)["prompts"] for line in log.read_text().splitlines()] == [16, 16]  # turn 1, turn 2
        out = result.stdout.str()
        # 15 first turns rated 8, 15 second turns rated 5; question 11's two judgments have no rating
        result.stdout.fnmatch_lines(["*japanese_mt_bench*CHAT*judge_rating*30*65.00*",
                                     "MT-Bench (1-10)*japanese_mt_bench*", "average*6.50", "turn 1*8.00", "turn 2*5.00",
                                     "Writing*6.50", "*unscorable*2"])
        assert "japanese_mt_bench: 2 judgment(s) unscorable, left out of the averages (not scored 0): " \
               "11-turn1: no [[rating]] in the judgment" in " ".join(out.split())
        doc = json.loads((pytester.path / "r.json").read_text(encoding="utf-8"))
        bench = doc["benchmarks"][0]
        assert bench["score"] == 65.0 and bench["n"] == 30 and bench["verdict"] == "no baseline"
        judged = bench["extra"]["judged"]
        assert (judged["average"], judged["unscorable_count"], judged["judge"]) == (6.5, 2, "openai stub-judge")
        assert set(judged["unscorable"]) == {"11-turn1", "11-turn2"}
        judge_prov = bench["extra"]["produced_by"]["judge"]
        assert judge_prov["model"] == "stub-judge" and judge_prov["reference_file"] == "gpt-4.jsonl"
        assert bench["extra"]["produced_by"]["judge_identity"]["settings"]["base_url"] == stub.base_url + "/v1"
        assert "### MT-Bench" in (pytester.path / "r.md").read_text(encoding="utf-8")
        assert "MT-Bench categories (1–10)" in (pytester.path / "r.html").read_text(encoding="utf-8")

        # Again: the model's answers and the judge's ratings all come from the generation cache.
        again = pytester.runpytest(*_args(pytester, stub))
        again.assert_outcomes(passed=1)
        assert len(stub.posts()) == 32 and len(log.read_text().splitlines()) == 2
        again.stdout.fnmatch_lines(["average*6.50"])


@pytest.mark.slow
def test_another_judge_makes_the_baseline_stale(pytester: pytest.Pytester) -> None:
    _unpinned_spec(pytester)
    with OpenAIStub(judge) as stub:
        pytester.runpytest(*_args(pytester, stub, "--jallm-update-baseline")).assert_outcomes(passed=1)
        same = pytester.runpytest(*_args(pytester, stub, "--jallm-strict"))
        same.assert_outcomes(passed=1)  # paired with the baseline: gated
        other = pytester.runpytest(*_args(pytester, stub, "--jallm-strict", judge_model="other-judge"))
        other.assert_outcomes(failed=1)
        other.stdout.fnmatch_lines(["*baseline is stale*LLM judge changed (judge model stub-judge -> other-judge)*"])


@pytest.mark.slow
def test_per_item_tests_are_question_by_turn(pytester: pytest.Pytester) -> None:
    _unpinned_spec(pytester)
    with OpenAIStub(judge) as stub:
        result = pytester.runpytest(*_args(pytester, stub, "--jallm-items", "--jallm-no-cache"))
    result.assert_outcomes(passed=31, failed=2)  # the benchmark, 30 rated turns; 11-turn1 and 11-turn2 unscorable
    result.stdout.fnmatch_lines(["*japanese_mt_bench[[]11-turn1[]]*no [[][[]rating[]][]] in the judgment*"])


def test_without_a_judge_the_benchmark_is_skipped_saying_how_to_give_one(pytester: pytest.Pytester) -> None:
    _unpinned_spec(pytester)
    result = pytester.runpytest(*_args(pytester, None), "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*japanese_mt_bench is scored by an LLM judge: pass --jallm-judge-model*-m 'not chat'*"])


@pytest.mark.parametrize(("options", "message"), [
    (["--jallm-judge-model", "gpt-4o"], "--jallm-judge-backend openai needs --jallm-judge-base-url (e.g. http://127.0.0.1:8000/v1)"),
    (["--jallm-judge-backend", "hf"], "--jallm-judge-backend hf: name the judge with --jallm-judge-model"),
    (["--jallm-judge-model", "j", "--jallm-judge-backend", "nope"], "--jallm-judge-backend 'nope': expected one of"),
])
def test_judge_options_are_checked_before_anything_runs(pytester: pytest.Pytester, options, message) -> None:
    _unpinned_spec(pytester)
    result = pytester.runpytest(*_args(pytester, None), *options)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()


def test_judge_options_mirror_every_backends_own() -> None:
    from pytest_jallm.backends import cli_options
    from pytest_jallm.chatjudge.judge import JudgeSettings, judge_flag, judge_settings

    assert judge_flag("--jallm-base-url") == "--jallm-judge-base-url" and judge_flag("--demo-x") == "--jallm-judge-demo-x"
    given = {"jallm_judge_model": "Qwen/Qwen2.5-7B-Instruct", "jallm_judge_backend": "vllm", "jallm_judge_tp": 2,
             "jallm_judge_gpu_memory_utilization": 0.45, "jallm_judge_revision": "abc", "jallm_judge_engine_arg": ["enforce_eager=true"],
             "jallm_seed": 7, "jallm_tp": 8, "jallm_revision": "model-rev"}
    defaults = {o.option_dest.replace("jallm_", "jallm_judge_", 1) if o.flag else o.option_dest: o.default for o in cli_options()}
    settings = judge_settings(lambda dest: given.get(dest, defaults.get(dest)))
    assert isinstance(settings, JudgeSettings) and settings.backend == "vllm"
    opts = settings.options
    # the judge's own copies, not the model's (--jallm-tp 8, --jallm-revision); the seed is the run's
    assert (opts["tensor_parallel_size"], opts["gpu_memory_utilization"], opts["revision"], opts["seed"]) == (2, 0.45, "abc", 7)
    assert opts["engine_kwargs"] == {"enforce_eager": True}


def test_the_mt_bench_block_renders_from_the_record_alone() -> None:
    """What a merged results file carries is enough: terminal, Markdown and HTML (with the 0-10 radar)."""
    from pytest_jallm.reporting.html import render_html
    from pytest_jallm.reporting.markdown import render_markdown
    from pytest_jallm.reporting.record import BenchmarkRecord
    from pytest_jallm.reporting.terminal import render_terminal

    judged = {"scale": "1-10", "average": 6.25, "turns": {"1": 7.0, "2": 5.5},
              "categories": {"humanities": 9.0, "writing": 8.0, "math": 2.5}, "scored": 8, "unscorable_count": 7,
              "unscorable": {f"{i}-turn2": "no [[rating]] in the judgment: '…'" for i in range(7)}, "judge": "openai gpt-4o"}
    record = BenchmarkRecord(name="japanese_mt_bench", category="CHAT", metric="judge_rating", n=8, score=62.5,
                             in_average=False, extra={"judged": judged})
    text = render_terminal([record])
    lines = [line.split() for line in text.splitlines()]
    rows = [line for line in lines if line and line[0] in ("average", "Writing", "Math", "Humanities", "unscorable")]
    assert rows == [["average", "6.25"], ["Writing", "8.00"], ["Math", "2.50"], ["Humanities", "9.00"], ["unscorable", "7"]]
    assert "7 judgment(s) unscorable" in text and "… and 2 more" in text and "Judge: japanese_mt_bench: openai gpt-4o" in text
    assert "### MT-Bench" in render_markdown([record])
    page = render_html([record])
    assert "<h2>MT-Bench</h2>" in page and "MT-Bench categories (1–10)" in page
    plain = BenchmarkRecord(name="jnli", category="NLI", metric="exact_match", n=3, score=50.0)
    assert "MT-Bench" not in render_terminal([plain]) + render_markdown([plain]) + render_html([plain])


def test_no_prompt_variants_for_a_judged_benchmark_and_its_requests_are_listed(pytester: pytest.Pytester) -> None:
    _unpinned_spec(pytester)
    collected = pytester.runpytest(*_args(pytester, None), "--jallm-variants", "3", "--collect-only", "-q")
    collected.stdout.fnmatch_lines(["*::japanese_mt_bench", "1 test collected*"])
    assert "[variants]" not in collected.stdout.str()
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "pytest_jallm", "prompts", "benchmarks/japanese_mt_bench.yaml",
                          "--data-dir", str(SLICES), "--limit", "2"], cwd=pytester.path, capture_output=True, text=True,
                         timeout=120, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(r["id"], [m["role"] for m in r["messages"]]) for r in records] == [("1", ["user"]), ("2", ["user"])]
