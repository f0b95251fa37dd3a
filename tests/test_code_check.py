"""The trusted half of code_exec without a sandbox: how tests are split between the child and the
checker, how the child's report is read (as hostile bytes), and the checker's bounds."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import json
import math
from typing import Any

import pytest

from pytest_jallm import _sandbox_child, code_check
from pytest_jallm import trusted_eval as te
from pytest_jallm.code_check import TestsNotCheckable, decode, judge, plan


def _report(code_ok: bool = True, values: list | None = None, end: bool = True) -> bytes:
    lines: list[Any] = [{"code": "ok"} if code_ok else {"code": "raised", "error": "ZeroDivisionError: x"}]
    for k, v in enumerate(values or []):
        lines.append({"k": k} if v == "exec-ok" else {"k": k, "v": _sandbox_child.encode(v)})
    if end:
        lines.append({"end": len(values or [])})
    return "".join(json.dumps(x) + "\n" for x in lines).encode()


def _eval_steps(p: code_check.Plan) -> list[str]:
    return [src for kind, src in p.steps if kind == "eval"]


# --- splitting ------------------------------------------------------------------------------------


def test_the_child_gets_the_calls_and_never_the_expected_values() -> None:
    p = plan("assert add(1, 2) == 3\nassert add(-10, 7) == -3", "def add(a, b):\n    return a + b\n")
    assert p.steps == [("eval", "add(1, 2)"), ("eval", "add(-10, 7)")]
    assert "3" not in "".join(src for _, src in p.steps).replace("add(1, 2)", "")
    assert judge(p, _report(values=[3, -3])).passed
    verdict = judge(p, _report(values=[3, 0]))
    assert not verdict.passed and verdict.reason == "AssertionError: assert add(-10, 7) == -3"


def test_wrappers_around_the_call_run_in_the_child_and_the_comparison_here() -> None:
    p = plan("assert set(f([1, 2, 2])) == set([1, 2])", "def f(x):\n    return x\n")
    assert _eval_steps(p) == ["set(f([1, 2, 2]))"]
    assert judge(p, _report(values=[{1, 2}])).passed
    assert not judge(p, _report(values=[[1, 2]])).passed  # a list is no set, here as in Python


def test_names_the_code_binds_are_its_own_and_a_comparison_needs_a_side_of_the_checkers() -> None:
    # MBPP task 126: the answer must define `sum`, and the tests call it.
    p = plan("assert sum(10, 15) == 6", "def sum(a, b):\n    return 6\n")
    assert _eval_steps(p) == ["sum(10, 15)"]
    # The code defines `set`: `set([1, 2])` is then the code's too, and both sides would be its choice.
    p = plan("assert set(f(x)) == set([1, 2])", "def set(v):\n    return 0\ndef f(x):\n    return x\n")
    verdict = judge(p, _report(values=[0, 0]))
    assert not verdict.passed and "both come from the generated code" in verdict.reason
    # Patching at run time is not a binding: the real built-in stays the checker's.
    p = plan("assert set(f(x)) == set([1, 2])", "import builtins\nbuiltins.set = lambda v: 0\ndef f(x):\n    return x\n")
    assert _eval_steps(p) == ["set(f(x))"]


def test_imports_of_trusted_modules_keep_them_trusted() -> None:
    tests = "import math\nassert math.isclose(area(2), 12.566370614359172)"
    for code in ("import math\ndef area(r):\n    return math.pi * r * r\n",
                 "from math import pi\nimport math as m\ndef area(r):\n    return pi * r * r\n"):
        p = plan(tests, code)
        assert _eval_steps(p) == ["area(2)"]
        assert judge(p, _report(values=["exec-ok", 4 * math.pi])).passed
        assert not judge(p, _report(values=["exec-ok", 12.5])).passed
    # The code rebinding `math` makes it the code's: math.isclose(...) then has no side of the checker's.
    p = plan("assert math.isclose(area(2), 12.566370614359172)", "class math:\n    isclose = print\n")
    assert _eval_steps(p) == ["math.isclose(area(2), 12.566370614359172)"]


def test_values_the_tests_assign_stay_here_unless_the_child_reads_them() -> None:
    p = plan("expected = [1, 2]\nassert f() == expected", "def f():\n    return [1, 2]\n")
    assert p.steps == [("exec", "pass"), ("eval", "f()")]
    assert judge(p, _report(values=["exec-ok", [1, 2]])).passed
    p = plan("xs = [3, 1]\nassert f(xs) == [1, 3]", "def f(v):\n    return sorted(v)\n")
    assert p.steps == [("exec", "xs = [3, 1]"), ("eval", "f(xs)")]
    # A statement that may change the value makes it the child's from then on.
    p = plan("xs = [3, 1]\nxs.sort()\nassert f() == xs", "def f():\n    return [1, 3]\n")
    assert _eval_steps(p) == ["f()", "xs"]


def test_setup_code_runs_in_the_child_with_the_codes_own_classes() -> None:
    tests = "root = Node(1)\nroot.left = Node(2)\nassert is_balanced(root) == True"
    p = plan(tests, "class Node:\n    pass\ndef is_balanced(r):\n    return True\n")
    assert p.steps == [("exec", "root = Node(1)"), ("exec", "root.left = Node(2)"), ("eval", "is_balanced(root)")]
    assert judge(p, _report(values=["exec-ok", "exec-ok", True])).passed


def test_truthiness_negation_membership_chains_and_the_message() -> None:
    p = plan("assert odd(3)\nassert not odd(4)\nassert 0 < f() <= 10\nassert f() in [3, 4], 'a message'",
             "")
    assert _eval_steps(p) == ["odd(3)", "odd(4)", "f()", "f()"]
    assert judge(p, _report(values=[True, False, 10, 4])).passed
    assert not judge(p, _report(values=[True, False, 11, 4])).passed
    assert not judge(p, _report(values=[True, [0], 5, 4])).passed  # a non-empty list is true


@pytest.mark.parametrize("tests", [
    "for x in [1, 2]:\n    assert f(x) == x",
    "def check(candidate):\n    assert candidate(1) == 1\ncheck(f)",
    "assert all(f(i) == i for i in range(3))",
    "assert f(",
])
def test_tests_that_cannot_be_checked_outside_the_child_are_an_error(tests: str) -> None:
    with pytest.raises(TestsNotCheckable):
        plan(tests, "def f(x):\n    return x\n")


def test_a_comprehension_over_the_codes_values_is_evaluated_here() -> None:
    p = plan("assert all(x > 0 for x in f())\nassert {k: v < 0 for k, v in g().items()} == {'a': True}", "")
    assert _eval_steps(p) == ["f()", "g().items()"]
    assert judge(p, _report(values=[[1, 2], {"a": -1}.items()])).passed
    assert not judge(p, _report(values=[[1, 0], {"a": -1}.items()])).passed
    assert not judge(p, _report(values=[[1, 2], {"a": 1}.items()])).passed


def test_an_answer_whose_own_names_make_the_tests_uncheckable_fails_without_an_error() -> None:
    tests = "assert all(abs(x) > 0 for x in f())"
    assert plan(tests, "def f():\n    return [1]\n").steps == [("eval", "f()")]
    p = plan(tests, "def abs(x):\n    return 1\ndef f():\n    return [0]\n")  # abs is the answer's now
    verdict = judge(p, _report(values=[]))
    assert not verdict.passed and "rebinds a name the check needs" in verdict.reason


def test_the_metric_names_the_item_whose_tests_cannot_be_checked() -> None:
    from pytest_jallm.metrics import get_metric

    golds = ["['assert True']", "['for x in [1]:\\n    assert f(x) == x']"]
    with pytest.raises(TestsNotCheckable, match=r"^code_exec: item 2 \(id 7\): an assert inside a For statement"):
        get_metric("code_exec")(["", ""], golds, [{}, {"task_id": 7}])


# --- the report is untrusted ------------------------------------------------------------------------


ADD = plan("assert add(1, 2) == 3\nassert add(-1, 1) == 0", "")


@pytest.mark.parametrize("report, complete", [
    (b"", False),  # nothing: the code never finished
    (b'{"code":"ok"}\n{"k":0,"v":3}\n', False),  # stopped after one step
    (b'{"code":"ok"}\n{"k":0,"v":3}\n{"k":1,"v":0', False),  # cut mid-line
    (b'{"code":"ok"}\n{"code":"ok"}\n{"k":0,"v":3}\n{"k":1,"v":0}\n', True),  # a second outcome line
    (b'{"code":"ok"}\n{"k":1,"v":0}\n{"k":0,"v":3}\n', True),  # out of order
    (b'{"code":"ok"}\n{"k":0,"v":3}\n{"k":0,"v":3}\n{"k":1,"v":0}\n', True),  # a step twice
    (b'{"code":"ok"}\n{"k":0}\n{"k":1,"v":0}\n', True),  # an expression step reported as a statement
    (b'{"code":"ok"}\n{"k":0,"v":3,"pass":true}\n{"k":1,"v":0}\n', True),  # an extra field
    (b'{"code":"ok"}\n{"k":0,"v":3}\n{"k":1,"v":0}\n{"end":2}\n{"end":2}\n', True),  # after the end
    (b'{"code":"ok"}\n{"k":0,"v":{"t":"opaque","type":"Anything"}}\n{"k":1,"v":0}\n', True),  # equals nothing
    (b'{"code":"ok"}\n{"k":0,"v":{"t":"bool","v":true}}\n{"k":1,"v":0}\n', True),  # an unknown tag
    (b'\x00\xff' * 10, False),  # not even one whole line
    (b'\x00\xff' * 10 + b"\n", True),
    (b"[" * 100_000 + b"\n", True),
])
def test_a_report_that_is_not_the_childs_sequence_never_passes(report: bytes, complete: bool) -> None:
    verdict = judge(ADD, report)
    assert not verdict.passed
    assert verdict.complete is complete


def test_the_exact_sequence_passes() -> None:
    assert judge(ADD, b'{"code":"ok"}\n{"k":0,"v":3}\n{"k":1,"v":0}\n{"end":2}\n').passed


def test_a_step_that_raised_fails_its_assert_with_the_childs_message() -> None:
    verdict = judge(ADD, b'{"code":"ok"}\n{"k":0,"raised":"ZeroDivisionError: division by zero"}\n{"k":1,"v":0}\n')
    assert verdict.reason == "test raised ZeroDivisionError: division by zero: assert add(1, 2) == 3"


# --- values as plain data ------------------------------------------------------------------------------


HONEST_VALUES = [
    None, True, 0, -7, 2 ** 200, 1.5, float("inf"), -0.0, "日本\ud800", b"\x00\xff", bytearray(b"ab"), 1 + 2j,
    [1, [2, [3]]], (1, "a"), {1, 2}, frozenset({(1, 2)}), {"a": [1], 2: (3,)}, collections.Counter("aab"),
    collections.OrderedDict(b=1, a=2), collections.deque([1, 2], maxlen=5), range(1, 10, 2),
    decimal.Decimal("1.10"), fractions.Fraction(1, 3), datetime.date(2024, 1, 2), datetime.time(1, 2, 3, 4),
    datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=9))),
    datetime.timedelta(days=1, seconds=2), ...,
]


@pytest.mark.parametrize("value", HONEST_VALUES, ids=lambda v: type(v).__name__)
def test_plain_values_cross_unchanged(value: Any) -> None:
    back = decode(json.loads(json.dumps(_sandbox_child.encode(value))))
    assert type(back) is type(value) and back == value


def test_subclasses_cross_as_their_built_in_base() -> None:
    import enum

    Point = collections.namedtuple("Point", "x y")

    class Color(enum.IntEnum):
        RED = 1

    assert decode(_sandbox_child.encode(Point(1, 2))) == (1, 2)
    assert type(decode(_sandbox_child.encode(Color.RED))) is int
    assert type(decode(_sandbox_child.encode(collections.defaultdict(int, a=1)))) is dict
    assert decode(_sandbox_child.encode({}.keys())) == set()
    assert list(decode(_sandbox_child.encode(x * x for x in range(3)))) == [0, 1, 4]


def test_objects_that_are_not_data_cross_as_tokens_that_equal_nothing() -> None:
    class Anything:
        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = object.__hash__

    token = decode(_sandbox_child.encode(Anything()))
    assert isinstance(token, te.Opaque) and token != token.__class__("x") and token != 0 and bool(token)
    with pytest.raises(ValueError, match="not plain data"):
        _sandbox_child.encode(type("Sized", (), {"__len__": lambda self: 0})())
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="contains itself"):
        _sandbox_child.encode(loop)


def test_decoding_is_bounded() -> None:
    nested: Any = 0
    for _ in range(te.MAX_DEPTH + 5):
        nested = [nested]
    with pytest.raises(ValueError):
        decode(nested)
    colliding = [1 + i * __import__("sys").hash_info.modulus for i in range(te.HASH_CROWD + 1)]
    with pytest.raises(ValueError, match="share one hash"):
        decode({"t": "set", "v": colliding})
    assert decode({"t": "set", "v": list(range(10_000))}) == set(range(10_000))


@pytest.mark.parametrize("expr", [
    "[0] * 10 ** 9", "'x' * 10 ** 9", "2 ** (10 ** 7)", "1 << 10 ** 7", "sum(range(10 ** 12))",
    "list(range(10 ** 9))", "math.factorial(10 ** 6)", "'a'.join(['b'] * 10 ** 5) * 10 ** 4",
    "[i for i in range(10 ** 5) for j in range(10 ** 5)]", "'%s' % 1",
])
def test_the_checkers_own_work_is_bounded(expr: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(te, "MAX_STEPS", 50_000)  # the same check, sooner
    p = plan("import math\nassert f() == " + expr, "import math\n")
    verdict = judge(p, _report(values=["exec-ok", 0]))
    assert not verdict.passed and verdict.reason.startswith("test raised"), verdict.reason


def test_the_checker_evaluates_common_test_forms_itself() -> None:
    tests = ("import math\nfrom collections import Counter\n"
             "assert f() == sorted([3, 1, 2], reverse=True)\n"
             "assert f() == [x for x in range(4) if x][::-1]\n"
             "assert Counter(g()) == Counter({'a': 2})\n"
             "assert round(h(), 2) == round(math.sqrt(2), 2)\n"
             "assert h() > 1 and 'AB'.lower() in g()\n"
             "assert max(f(), key=lambda v: -v) == 1")
    p = plan(tests, "")
    # The largest parts that need the code go to the child; what holds the expected values stays here.
    assert _eval_steps(p) == ["f()", "f()", "Counter(g())", "round(h(), 2)", "h()", "g()",
                              "max(f(), key=lambda v: -v)"]
    values = ["exec-ok", "exec-ok", [3, 2, 1], [3, 2, 1], collections.Counter("aa"), 1.41, 1.5, "xab", 1]
    assert judge(p, _report(values=values)).reason == "ok"
    values[4] = {"a": 2}  # a dict equals a Counter with the same counts, as in Python
    assert judge(p, _report(values=values)).passed
    values[4] = collections.Counter("aab")
    assert judge(p, _report(values=values)).reason.startswith("AssertionError: assert Counter(g())")
