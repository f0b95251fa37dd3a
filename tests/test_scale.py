"""Scaling out: xdist gives the same results as one process; shards merge into the unsharded run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from jallm_toy import BENCHMARKS, base_args, comparable, write_script, write_suite
from pytest_jallm.__main__ import main as cli
from pytest_jallm.scale import assign_shards, check_coverage, parse_shard, prefer_whole_benchmarks, worker_gpus

N_ITEMS = sum(n for _, n, _ in BENCHMARKS.values())

GPU_PROBE = """
import json, os

def pytest_sessionstart(session):
    config = session.config
    wid = getattr(config, "workerinput", {}).get("workerid")
    if wid:
        with open(f"gpus-{wid}.json", "w") as fh:
            json.dump(os.environ.get("CUDA_VISIBLE_DEVICES"), fh)
"""


@pytest.fixture
def regressed(pytester: pytest.Pytester) -> tuple[pytest.Pytester, str]:
    """A suite with baselines accepted from a perfect run, and a model that now regresses on toy_mc."""
    write_suite(pytester.path)
    script = write_script(pytester.path)
    pytester.runpytest(*base_args(script, "--jallm-update-baseline")).assert_outcomes(passed=3)
    write_script(pytester.path, wrong={"toy_mc": 7, "toy_he": 1})
    return pytester, script


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _as_holm(doc: dict) -> dict:
    """A results document with its Bonferroni labels read as Holm (where both give the same p)."""
    return json.loads(json.dumps(doc).replace('"method": "bonferroni"', '"method": "holm"').replace("Bonferroni", "Holm"))


def _table(result: pytest.RunResult) -> list[str]:
    """The pytest-jallm section of the terminal summary."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "pytest-jallm: " in line and line.startswith("="))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    # The prompts/cache count line is about the process that generated, not a result:
    # an xdist controller generates nothing and does not print it.
    return [line for line in lines[start:end] if not line.startswith("pytest-jallm: ")]


@pytest.mark.slow
def test_xdist_gives_the_same_results_as_one_process(regressed, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester, script = regressed
    pytester.makeconftest(GPU_PROBE)
    log = pytester.path / "calls.jsonl"
    monkeypatch.setenv("JALLM_SCRIPTED_LOG", str(log))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    extra = ("--jallm-items", "--jallm-gpus-per-worker", "2")

    single = pytester.runpytest(*base_args(script, "-n", "0", "--jallm-results-json", "single.json", *extra))
    assert single.ret == pytest.ExitCode.TESTS_FAILED
    assert [json.loads(x)["prompts"] for x in log.read_text().splitlines()] == [N_ITEMS]  # one call, as before
    log.unlink()

    dist = pytester.runpytest_subprocess(*base_args(script, "-n", "2", "-v", "--jallm-results-json", "dist.json", *extra))
    assert dist.ret == pytest.ExitCode.TESTS_FAILED
    # --dist loadfile (set by the plugin): each benchmark and its per-example tests on one worker,
    # so each benchmark is generated exactly once, whole.
    calls = sorted(json.loads(x)["prompts"] for x in log.read_text().splitlines())
    assert calls == sorted(n for _, n, _ in BENCHMARKS.values())
    worker_of: dict[str, set[str]] = {}
    for line in dist.stdout.lines:
        if line.startswith("[gw") and "benchmarks/" in line:
            node = line.split("benchmarks/", 1)[1].split()[0]
            worker_of.setdefault(node.split(".yaml")[0], set()).add(line[1:4])
    assert set(worker_of) == set(BENCHMARKS)
    assert all(len(w) == 1 for w in worker_of.values()), worker_of

    a, b = _load(pytester.path / "single.json"), _load(pytester.path / "dist.json")
    # One process applies Holm; a worker sees only its own benchmarks and applies Bonferroni over
    # all three, and says so. Here the two give the same p-values, so all else is equal to the digit.
    assert {x["gate"]["family"]["method"] for x in a["benchmarks"]} == {"holm"}
    assert {x["gate"]["family"]["method"] for x in b["benchmarks"]} == {"bonferroni"}
    mc = next(x for x in b["benchmarks"] if x["name"] == "toy_mc")
    assert "(Bonferroni-adjusted over 3 paired tests: p=0.023)" in mc["message"]
    assert comparable(_as_holm(a)) == comparable(_as_holm(b))
    verdicts = {x["name"]: x["verdict"] for x in a["benchmarks"]}
    assert verdicts == {"toy_mc": "regressed", "toy_nli": "pass", "toy_he": "pass"}
    # The controller's table is the same as one process's, to the digit, but for that label.
    assert _table(single) and _table(single) == [line.replace("Bonferroni", "Holm") for line in _table(dist)]
    # Each worker got its own pair of the GPUs the controller could see.
    seen = sorted(json.loads(p.read_text()) for p in pytester.path.glob("gpus-gw*.json"))
    assert seen == ["4,5", "6,7"]


def test_shards_merge_into_the_unsharded_run(regressed) -> None:
    pytester, script = regressed
    whole = pytester.runpytest(*base_args(script, "--jallm-results-json", "whole.json", "--jallm-items"))
    assert whole.ret == pytest.ExitCode.TESTS_FAILED
    owners: dict[str, int] = {}
    for i in (1, 2, 3):
        res = pytester.runpytest(*base_args(script, "--jallm-shard", f"{i}/3", "--jallm-items",
                                            "--jallm-results-json", f"shard{i}.json"))
        doc = _load(pytester.path / f"shard{i}.json")
        assert doc["shard"]["index"] == i and doc["shard"]["benchmarks"] == sorted(BENCHMARKS)
        for b in doc["benchmarks"]:
            assert b["name"] not in owners, "a benchmark ran in two shards"
            owners[b["name"]] = i
        has_failure = {"toy_mc", "toy_he"} & set(doc["shard"]["assigned"])  # toy_he: one per-example test fails
        assert res.ret == (pytest.ExitCode.TESTS_FAILED if has_failure else pytest.ExitCode.OK)
    assert sorted(owners) == sorted(BENCHMARKS) and len(set(owners.values())) == 3

    files = [str(pytester.path / f"shard{i}.json") for i in (1, 2, 3)]
    merged = pytester.path / "merged.json"
    assert cli(["merge", *files, "-o", str(merged), "--markdown", str(pytester.path / "merged.md")]) == 1  # toy_mc regressed
    assert comparable(_load(merged)) == comparable(_load(pytester.path / "whole.json"))
    assert "❌ gate failed" in (pytester.path / "merged.md").read_text(encoding="utf-8")


def test_merge_refuses_files_that_are_not_one_run(regressed, capsys: pytest.CaptureFixture[str]) -> None:
    pytester, script = regressed
    for i in (1, 2):
        pytester.runpytest(*base_args(script, "--jallm-shard", f"{i}/3", "--jallm-results-json", f"s{i}.json"))
    pytester.runpytest(*base_args(script, "--jallm-shard", "1/2", "--jallm-results-json", "other.json"))
    s1, s2, other = (str(pytester.path / f) for f in ("s1.json", "s2.json", "other.json"))

    assert cli(["merge", s1, s2]) == 2
    assert "no file for shard 3/3" in capsys.readouterr().err
    assert cli(["merge", s1, s1]) == 2
    assert "shard 1/3 also comes from" in capsys.readouterr().err
    assert cli(["merge", s1, other]) == 2
    assert "shard plan differs" in capsys.readouterr().err
    (pytester.path / "bad.json").write_text('{"schema": "pytest-jallm/results", "schema_version": 99}')
    assert cli(["merge", str(pytester.path / "bad.json")]) == 2
    assert "schema_version" in capsys.readouterr().err


def test_unsharded_passing_run_merges_with_exit_0(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path)
    script = write_script(pytester.path)
    pytester.runpytest(*base_args(script, "--jallm-results-json", "ok.json")).assert_outcomes(passed=3)
    assert cli(["merge", str(pytester.path / "ok.json")]) == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0/3", "*shards are numbered from 1, so INDEX must be 1..3 (got 0)*"),
        ("4/3", "*INDEX must be 1..3 (got 4)*"),
        ("1/0", "*the shard count must be at least 1*"),
        ("first", "*expected INDEX/COUNT with shards numbered from 1, e.g. 1/3*"),
        ("2/5", "*only 3 benchmarks are selected, so some shards would be empty; use at most 3 shards*"),
    ],
)
def test_bad_shard_is_a_usage_error(pytester: pytest.Pytester, value: str, message: str) -> None:
    write_suite(pytester.path)
    result = pytester.runpytest("benchmarks", "--collect-only", "-q", "--jallm-shard", value)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_shard_plan_is_deterministic_complete_and_balanced() -> None:
    weights = {f"b{i:02d}": w for i, w in enumerate([50, 40, 30, 20, 10, 10, 5, 1, 1, 1])}
    plans = [assign_shards(weights, 3) for _ in range(3)]
    assert plans[0] == plans[1] == plans[2]
    assert set(plans[0]) == set(weights) and set(plans[0].values()) == {1, 2, 3}
    loads = [sum(w for b, w in weights.items() if plans[0][b] == s) for s in (1, 2, 3)]
    assert max(loads) - min(loads) <= max(weights.values()) // 2
    assert parse_shard("2/3") == (2, 3) and parse_shard(None) is None


def test_coverage_check_names_missing_benchmarks() -> None:
    from pytest_jallm.scale import ShardPlan

    plan = lambda i, assigned: ShardPlan(i, 2, ("a", "b", "c"), assigned)  # noqa: E731
    assert check_coverage([("1.json", plan(1, ("a", "b"))), ("2.json", plan(2, ("c",)))], {"a": "1", "b": "1", "c": "2"}) == []
    problems = check_coverage([("1.json", plan(1, ("a", "b")))], {"a": "1", "b": "1"})
    assert problems == ["benchmarks of the run have no results: c (no file for shard 2/2)"]


def test_worker_gpu_slices() -> None:
    assert worker_gpus("gw0", 2, None) == "0,1"
    assert worker_gpus("gw1", 2, None) == "2,3"
    assert worker_gpus("gw1", 1, "4,5,6") == "5"
    with pytest.raises(pytest.UsageError, match="has only 3"):
        worker_gpus("gw1", 2, "4,5,6")


def test_whole_benchmarks_dist_only_when_dist_was_not_given() -> None:
    ns = argparse.Namespace(numprocesses=2, dist="no", distload=False)
    assert prefer_whole_benchmarks(ns) and ns.dist == "loadfile"
    explicit = argparse.Namespace(numprocesses=2, dist="loadscope", distload=False)
    assert not prefer_whole_benchmarks(explicit) and explicit.dist == "loadscope"
    assert not prefer_whole_benchmarks(argparse.Namespace(numprocesses=None, dist="no", distload=False))


def test_failure_summary_keeps_teardown_sections_with_the_index(pytester: pytest.Pytester) -> None:
    # The plugin swaps pytest's per-failure scan of all reports for an index
    # (pytest's summary is otherwise quadratic in per-example tests). The
    # summary must read the same: every failure keeps its own teardown output,
    # and the lookup agrees with pytest's own method for every test.
    pytester.makeconftest(
        """
        import pytest

        @pytest.hookimpl(wrapper=True)
        def pytest_terminal_summary(terminalreporter):
            tr = terminalreporter
            patched = tr.__dict__.get("_get_teardown_reports")
            assert patched is not None, "the index is not installed"
            for rep in tr.getreports("failed") + tr.getreports("passed"):
                key = getattr(rep, "id", rep.nodeid)
                assert patched(key) == type(tr)._get_teardown_reports(tr, key)
            return (yield)
        """
    )
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture(params=range(30))
        def noisy(request):
            yield request.param
            print(f"teardown of case {request.param}")

        def test_case(noisy):
            assert noisy % 3 != 0
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=20, failed=10)
    out = result.stdout.str()
    for case in range(30):
        assert f"teardown of case {case}" in out
    assert out.count("Captured stdout teardown") == 30  # each failure and (with -rA) each pass
    assert "the index is not installed" not in out


@pytest.mark.slow
def test_unused_threshold_entries_are_reported_under_xdist_and_strict_fails_the_run(pytester: pytest.Pytester) -> None:
    # The xdist controller collects nothing: the workers tell it what they collected.
    write_suite(pytester.path)
    script = write_script(pytester.path)
    pytester.runpytest(*base_args(script, "--jallm-update-baseline")).assert_outcomes(passed=3)
    thresholds = pytester.path / "thresholds"
    (thresholds / "model.yaml").write_text("benchmarks:\n  toy_mc: {min_score: 50}\n  toy_mcc: {min_score: 50}\n")
    (thresholds / "model" / "toy_gone.baseline.jsonl").write_text("")
    unused = ["*2 threshold entr(y/ies) or baseline file(s) match no benchmark spec (typo? removed benchmark?): "
              "*model.yaml: benchmarks.toy_mcc, *toy_gone.baseline.jsonl*"]
    lax = pytester.runpytest_subprocess(*base_args(script, "-n", "2"))
    lax.assert_outcomes(passed=3)
    assert lax.ret == pytest.ExitCode.OK
    lax.stdout.fnmatch_lines(unused)
    strict = pytester.runpytest_subprocess(*base_args(script, "-n", "2", "--jallm-strict"))
    strict.assert_outcomes(passed=3)  # every benchmark passes; the run fails for the typo
    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.stdout.fnmatch_lines([unused[0] + " — failed by --jallm-strict"])
