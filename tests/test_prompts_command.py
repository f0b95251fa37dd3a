"""`python -m pytest_jallm prompts SPEC…` writes the exact requests a run sends, in the run's
order, through the same code (evaluation.prepare): checked against what a scripted backend
receives in a real pytest run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_jallm.__main__ import main

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"

SPEC = """\
name: {name}
category: {category}
source: {{path: data/{name}.jsonl}}
fields: {{id: qid, answer: label, choices: [c0, c1, c2], question: question}}
instruction: 正しい選択肢の番号で答えてください。
input: "質問：{{question}}\\n選択肢：{{choices}}"
labels: ["0", "1", "2"]
fewshot: {{count: 2, source: {{path: data/{name}_train.jsonl}}}}
max_new_tokens: 3
metrics: [exact_match]
"""


def _rows(name: str, n: int, offset: int = 0) -> str:
    rows = [{"qid": f"{name}-{i}", "question": f"{name}の問題{i + offset}", "c0": "いぬ", "c1": "ねこ", "c2": "とり",
             "label": i % 3} for i in range(n)]
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    for name, cat in (("zeta_mc", "MC"), ("alpha_nli", "NLI")):
        (bench / f"{name}.yaml").write_text(SPEC.format(name=name, category=cat), encoding="utf-8")
        (bench / "data" / f"{name}.jsonl").write_text(_rows(name, 5), encoding="utf-8")
        (bench / "data" / f"{name}_train.jsonl").write_text(_rows(name, 3, offset=100), encoding="utf-8")
    (pytester.path / "script.json").write_text(json.dumps({"rules": [], "default": "0"}), encoding="utf-8")
    return pytester


def _received(pytester: pytest.Pytester, *extra: str) -> list[dict]:
    log = pytester.path / "requests.jsonl"
    os.environ["JALLM_SCRIPTED_REQUESTS"] = str(log)
    try:
        result = pytester.runpytest("benchmarks", "--model", str(pytester.path / "script.json"), "--jallm-backend", SCRIPTED,
                                    "--jallm-no-cache", *extra)
    finally:
        del os.environ["JALLM_SCRIPTED_REQUESTS"]
    result.assert_outcomes(passed=2)
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


def _exported(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    assert main(["prompts", *args]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_prompts_equal_what_a_run_sends(suite: pytest.Pytester, capsys, monkeypatch) -> None:
    monkeypatch.chdir(suite.path)
    records = _exported(capsys, "benchmarks", "--limit", "4", "--num-fewshot", "1")
    received = _received(suite, "--jallm-limit", "4", "--jallm-num-fewshot", "1")
    assert [r["prompt"] for r in records] == [r["prompt"] for r in received]
    # evaluation order: the benchmarks as pytest collects them, items in file order
    assert [(r["benchmark"], r["id"]) for r in records] == [
        ("alpha_nli", f"alpha_nli-{i}") for i in range(4)] + [("zeta_mc", f"zeta_mc-{i}") for i in range(4)]
    assert [r["gold"] for r in records[:4]] == ["0", "1", "2", "0"]
    assert records[0]["prompt"].count("問題10") == 1  # one shot (alpha_nliの問題100)
    assert "messages" not in records[0]
    assert records[0]["max_new_tokens"] == 3


def test_chat_prompts_carry_the_messages_a_run_sends(suite: pytest.Pytester, capsys, monkeypatch) -> None:
    monkeypatch.chdir(suite.path)
    records = _exported(capsys, "benchmarks/zeta_mc.yaml", "benchmarks/alpha_nli.yaml", "--chat", "--limit", "2")
    # explicit specs keep the order given, as pytest runs explicit arguments
    assert [r["benchmark"] for r in records] == ["zeta_mc", "zeta_mc", "alpha_nli", "alpha_nli"]
    received = _received(suite, "--jallm-chat", "--jallm-limit", "2")
    by_prompt = {r["prompt"]: r["messages"] for r in received}
    assert len(records[0]["messages"]) == 2 * 2 + 1  # two shots, then the question
    for r in records:
        assert by_prompt[r["prompt"]] == r["messages"]


def test_prompts_to_a_file_and_data_errors_name_the_spec(suite: pytest.Pytester, tmp_path: Path) -> None:
    out = tmp_path / "p.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "pytest_jallm", "prompts", str(suite.path / "benchmarks"), "--num-fewshot", "0",
                           "-o", str(out)], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 10 and json.loads(lines[0])["prompt"].count("の問題") == 1  # 0-shot
    (suite.path / "benchmarks" / "data" / "zeta_mc.jsonl").unlink()
    bad = subprocess.run([sys.executable, "-m", "pytest_jallm", "prompts", str(suite.path / "benchmarks")],
                         capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 1  # the others were written; the failure is reported at the end
    assert "zeta_mc.yaml" in bad.stderr and "zeta_mc.jsonl" in bad.stderr


def test_prompts_take_the_runs_download_options(suite: pytest.Pytester, capsys, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.chdir(suite.path)
    records = _exported(capsys, "benchmarks", "--limit", "1", "--data-cache", str(tmp_path / "cache"),
                        "--url-map", "https://example.invalid/=http://127.0.0.1:9/")
    assert len(records) == 2
    assert main(["prompts", "benchmarks", "--url-map", "no-equals-sign"]) == 2
    assert "--jallm-url-map" in capsys.readouterr().err


def test_a_benchmark_without_data_is_reported_and_the_others_are_still_written(suite: pytest.Pytester, capsys) -> None:
    bench = suite.path / "benchmarks"
    (bench / "zeta_mc.yaml").write_text(
        SPEC.format(name="zeta_mc", category="MC").replace("source: {path: data/zeta_mc.jsonl}",
                                                            "source: {url: 'https://example.invalid/z.jsonl', "
                                                            "mirror: z/z.jsonl}"), encoding="utf-8")
    (bench / "broken.yaml").write_text("name: broken\ncategory: NOPE\n", encoding="utf-8")
    out = suite.path / "out.jsonl"
    # No data dir: the download from a host that cannot resolve fails at once, and its hint says where
    # a local copy would go.
    rc = main(["prompts", str(bench), "--data-cache", str(suite.path / "cache"), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1
    written = {json.loads(line)["benchmark"] for line in out.read_text(encoding="utf-8").splitlines()}
    assert written == {"alpha_nli"}  # the healthy benchmark is complete
    assert "broken.yaml: key 'category'" in err and "zeta_mc" in err
    assert "2 of 3 spec(s) failed: broken.yaml, zeta_mc.yaml" in err
    # Hints name this command's flags, not a pytest run's.
    assert "pass --data-dir DIR" in err and "--url-map" in err and "--jallm-" not in err
