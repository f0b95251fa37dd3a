"""Baselines that cannot be trusted are never compared as if they matched, and a benchmark that
scored nothing is never a pass (issue 22, items 7 and 8)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from .toy import FAST, SCRIPTED, write_suite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.openai_stub import OpenAIStub, Reply  # noqa: E402

# Two benchmarks whose items have the same ids (q0..q5), as jamp's and janli's both count test-0000 up:
# a baseline copied from one to the other pairs item for item.
SAME_IDS = """\
name: {name}
category: NLI
source: {{path: data/{name}.jsonl}}
fields: {{id: qid, answer: label, question: question}}
instruction: 答えてください。
input: "{name}：{{question}}"
labels: ["0", "1", "2"]
max_new_tokens: 2
metrics: [exact_match]
"""


def _suite(root: Path) -> str:
    data = root / "benchmarks" / "data"
    data.mkdir(parents=True)
    rules = []
    for name in ("toy_a", "toy_b"):
        (root / "benchmarks" / f"{name}.yaml").write_text(SAME_IDS.format(name=name), encoding="utf-8")
        rows = [{"qid": f"q{i}", "question": f"問{i}", "label": i % 3} for i in range(6)]
        (data / f"{name}.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        # toy_b's model answers everything right; toy_a's gets half wrong.
        rules += [{"contains": f"{name}：問{i}", "output": str(i % 3 if name == "toy_b" or i % 2 else (i + 1) % 3)}
                  for i in range(6)]
    script = root / "model.json"
    script.write_text(json.dumps({"rules": rules, "default": ""}, ensure_ascii=False), encoding="utf-8")
    return str(script)


def _args(script: str, *more: str) -> list[str]:
    return ["benchmarks", *FAST, "--jallm-backend", SCRIPTED, "--model", script, "--jallm-no-cache",
            "--jallm-results-json", "out.json", *more]


def _verdicts(root: Path) -> dict[str, str]:
    return {b["name"]: b["verdict"] for b in json.loads((root / "out.json").read_text(encoding="utf-8"))["benchmarks"]}


def test_a_baseline_naming_another_benchmark_is_refused(pytester: pytest.Pytester) -> None:
    script = _suite(pytester.path)
    pytester.runpytest(*_args(script, "--jallm-update-baseline")).assert_outcomes(passed=2)
    folder = pytester.path / "thresholds" / "model"
    # Someone copies toy_b's (perfect) baseline over toy_a's: same ids, so it would pair item for item.
    (folder / "toy_a.baseline.jsonl").write_bytes((folder / "toy_b.baseline.jsonl").read_bytes())
    result = pytester.runpytest(*_args(script))
    result.assert_outcomes(passed=1, failed=1)
    assert _verdicts(pytester.path) == {"toy_a": "invalid baseline", "toy_b": "pass"}
    result.stdout.fnmatch_lines(["*invalid baseline, not compared: *toy_a.baseline.jsonl: line 1: key 'benchmark' is "
                                 "'toy_b', but this is the baseline file of 'toy_a' (copied from another benchmark?)*"])


def test_a_baseline_with_an_empty_provenance_is_refused(pytester: pytest.Pytester) -> None:
    script = _suite(pytester.path)
    pytester.runpytest(*_args(script, "--jallm-update-baseline")).assert_outcomes(passed=2)
    path = pytester.path / "thresholds" / "model" / "toy_b.baseline.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], json.dumps({"produced_by": {}}), *lines[2:]]) + "\n", encoding="utf-8")
    result = pytester.runpytest(*_args(script))
    result.assert_outcomes(passed=1, failed=1)
    assert _verdicts(pytester.path)["toy_b"] == "invalid baseline"
    result.stdout.fnmatch_lines(["*toy_b.baseline.jsonl: line 2: key 'produced_by' is empty: nothing records what "
                                 "produced this baseline*"])


def test_a_baseline_with_an_empty_provenance_is_never_written(tmp_path: Path) -> None:
    from pytest_jallm.baseline import Baseline, BaselineError, atomic_write_baseline

    path = tmp_path / "toy_a.baseline.jsonl"
    with pytest.raises(BaselineError, match="key 'produced_by' is empty: a baseline must record what produced it"):
        atomic_write_baseline(path, Baseline(benchmark="toy_a", metric="exact_match", score=100.0, ooc_rate=0.0, n=1,
                                             binary=True, items={"a": 1.0}))
    assert not path.exists()


def test_a_provenance_without_prompt_hash_or_data_fingerprint_makes_it_stale(pytester: pytest.Pytester) -> None:
    script = _suite(pytester.path)
    pytester.runpytest(*_args(script, "--jallm-update-baseline")).assert_outcomes(passed=2)
    path = pytester.path / "thresholds" / "model" / "toy_b.baseline.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    produced_by = json.loads(lines[1])["produced_by"]
    del produced_by["data_fingerprint"]
    path.write_text("\n".join([lines[0], json.dumps({"produced_by": produced_by}), *lines[2:]]) + "\n", encoding="utf-8")
    result = pytester.runpytest(*_args(script, "--jallm-strict"))
    result.assert_outcomes(passed=1, failed=1)
    assert _verdicts(pytester.path)["toy_b"] == "stale"
    result.stdout.fnmatch_lines(["*the baseline records no data_fingerprint, so nothing shows that its data matches*"])


def _all_broken(request) -> Reply:
    return Reply(json={"id": "x", "object": "text_completion", "choices": []})  # no text: a backend error per item


def test_a_benchmark_with_no_scored_item_is_an_error_not_a_pass(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, {"toy_a": 4})
    with OpenAIStub(_all_broken) as stub:
        args = ["benchmarks", *FAST, "--jallm-backend", "openai", "--jallm-base-url", stub.base_url, "--model", "stub",
                "--jallm-no-cache", "--jallm-engine-arg", "max_retries=0", "--jallm-max-backend-errors", "100",
                "--jallm-results-json", "out.json"]
        result = pytester.runpytest(*args)
        result.assert_outcomes(failed=1)
        result.stdout.fnmatch_lines(["toy_a (MC, exact_match, n=0):", "  - no item was scored (all 4 requests failed in the backend): a benchmark "
                                     "with no items proves nothing*"])
        assert _verdicts(pytester.path) == {"toy_a": "no items"}
        # Nor is it accepted as a baseline.
        accept = pytester.runpytest(*args, "--jallm-update-baseline")
        accept.assert_outcomes(failed=1)
        assert not (pytester.path / "thresholds").exists()
