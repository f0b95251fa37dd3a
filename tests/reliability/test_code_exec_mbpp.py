"""`code_exec` on 20 real MBPP items (tests/fixtures/mbpp, CC BY 4.0): the checker that evaluates
the asserts outside the generated code's process agrees with llm-jp-eval's exit-status check on
honest answers -- every reference solution passes, a wrong answer derived from each fails."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest

from pytest_jallm import sandbox
from pytest_jallm.metrics import get_metric

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")

FIXTURE = Path(__file__).parent.parent / "fixtures" / "mbpp" / "mbpp.jsonl"
ITEMS = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def _entry_point(item: dict) -> str:
    call = ast.parse(item["test_list"][0]).body[0].test.left  # MBPP: `assert f(...) == expected`
    return call.func.id


def _wrong(item: dict) -> str:
    """The reference solution with its result changed: an answer that must fail."""
    name = _entry_point(item)
    return item["code"] + (
        f"\n_jallm_ref = {name}\n"
        f"def {name}(*args, **kwargs):\n"
        "    v = _jallm_ref(*args, **kwargs)\n"
        "    if isinstance(v, bool):\n"
        "        return not v\n"
        "    if isinstance(v, (int, float)):\n"
        "        return v + 1\n"
        "    if isinstance(v, (str, list, tuple)):\n"
        "        return v + type(v)('x')\n"
        "    if isinstance(v, dict):\n"
        "        return {**v, 'x': 1}\n"
        "    if isinstance(v, (set, frozenset)):\n"
        "        return set(v) | {'x'}\n"
        "    return 'x'\n"
    )


def _tests(item: dict) -> str:
    return "\n".join([item["test_setup_code"], *item["test_list"], *item["challenge_test_list"]])


def test_the_fixture_is_twenty_real_items_of_varied_shapes() -> None:
    assert len(ITEMS) == 20 and len({i["task_id"] for i in ITEMS}) == 20
    assert all(11 <= i["task_id"] <= 510 for i in ITEMS)  # MBPP's evaluation split
    assert set(ITEMS[0]) == {"text", "code", "task_id", "test_setup_code", "test_list", "challenge_test_list"}
    assert any(i["test_setup_code"] for i in ITEMS) and any(i["challenge_test_list"] for i in ITEMS)


@pytest.mark.slow
def test_reference_solutions_pass_and_wrong_answers_fail_with_their_setup_and_challenge_tests() -> None:
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(i["task_id"], kind, code, _tests(i)) for i in ITEMS for kind, code in
            (("reference", i["code"]), ("wrong", _wrong(i)))]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda j: sandbox.run_python(j[2], tests=j[3]), jobs))
    verdicts = {(tid, kind): r for (tid, kind, _, _), r in zip(jobs, results, strict=True)}
    failing_references = {k: r.reason for k, r in verdicts.items() if k[1] == "reference" and not r.passed}
    passing_wrong = [k for k, r in verdicts.items() if k[1] == "wrong" and r.passed]
    assert failing_references == {}
    assert passing_wrong == []
    assert verdicts[(367, "reference")].passed  # test_setup_code built the answer's own Node objects
    assert verdicts[(126, "reference")].passed  # the answer's own `sum`, as the tests ask


@pytest.mark.slow
def test_metric_matches_llm_jp_eval_exit_status_on_honest_answers() -> None:
    """The metric as the mbpp spec feeds it (gold: the test_list as a Python list literal, no
    setup code, as llm-jp-eval does) against llm-jp-eval's way: the code and the asserts as one
    program, passed when it exits 0."""
    preds = [code for i in ITEMS for code in (i["code"], _wrong(i))]
    golds = [str(i["test_list"]) for i in ITEMS for _ in range(2)]
    scores = get_metric("code_exec")(preds, golds, [{} for _ in preds]).per_item
    exit_status = [1.0 if sandbox.run_python(p + "\n" + "\n".join(ast.literal_eval(g))).passed else 0.0
                   for p, g in zip(preds, golds, strict=True)]
    assert scores == exit_status
    assert scores[0::2].count(1.0) == 19  # task 367 needs its test_setup_code, which neither side sends
    assert scores[1::2] == [0.0] * 20
