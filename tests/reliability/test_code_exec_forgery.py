"""Generated code that tries to *forge* a `code_exec` pass (issue 22 item 1, issue 20 item 4).

Every probe below is a wrong answer plus a trick; it must score 0.  The probes in ``BEAT_OLD``
passed on the harness that checked the asserts inside the generated code's process (they reached
its frames, its garbage collector, the built-ins and standard modules it called, or its per-run
secret); the ones in ``REGRESSION`` were already stopped there and must stay stopped.  A correct
answer in the same shape must still pass (``test_honest_answers_in_the_same_shapes_pass``)."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from pytest_jallm import sandbox
from pytest_jallm.metrics import get_metric

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")

ADD_TESTS = ["assert add(1, 2) == 3", "assert add(-1, 1) == 0"]
WRONG_ADD = "def add(a, b):\n    return 0\n"


def _probe(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


STEAL_SECRET = _probe("""
    import gc, os
    def steal():
        # the old harness kept its per-run pass secret in a closure cell: write it on every descriptor
        for obj in gc.get_objects():
            for cell in getattr(obj, "__closure__", None) or ():
                try:
                    value = cell.cell_contents
                except ValueError:
                    continue
                if isinstance(value, bytes) and len(value) == 32:
                    for fd in range(3, 64):
                        try:
                            os.write(fd, value)
                        except OSError:
                            pass
""")

# Each probe: (candidate code, tests).
BEAT_OLD: dict[str, tuple[str, list[str]]] = {
    "frame walking: evaluates the expected side found in the checker's frame": (_probe("""
        import sys
        def add(a, b):
            frame = sys._getframe(1)
            while frame is not None:
                found = frame.f_locals.get("code_")
                if isinstance(found, list) and len(found) == 2:
                    return eval(found[1], frame.f_locals.get("g"))
                frame = frame.f_back
            return 0
        """), ADD_TESTS),
    "gc walking: finds the tests' source and returns the expected values": (_probe("""
        import ast, gc
        def add(*args):
            for obj in gc.get_objects():
                texts = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
                for text in list(texts):
                    if isinstance(text, str) and "assert add(" in text:
                        try:
                            body = ast.parse(text).body
                        except SyntaxError:
                            continue
                        for node in body:
                            if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
                                call = node.test.left
                                if tuple(ast.literal_eval(a) for a in call.args) == args:
                                    return ast.literal_eval(node.test.comparators[0])
            return 0
        """), ADD_TESTS),
    "gc walking: steals the per-run secret and exits 0": (STEAL_SECRET + "steal()\nos._exit(0)\n", ADD_TESTS),
    "fork: a child steals the secret, the parent answers wrong": (STEAL_SECRET + _probe("""
        pid = os.fork()
        if pid == 0:
            steal()
            os._exit(0)
        os.waitpid(pid, 0)
        """) + WRONG_ADD, ADD_TESTS),
    "gc walking: adds its always-equal class to the checker's table of plain types": (_probe("""
        import collections, gc
        class Anything:
            def __eq__(self, other):
                return True
            __hash__ = object.__hash__
        for obj in gc.get_objects():
            if isinstance(obj, dict) and collections.Counter in obj:
                obj[Anything] = {}
        def add(a, b):
            return Anything()
        """), ADD_TESTS),
    "builtin replacement: enumerate yields nothing": (
        "import builtins\nbuiltins.enumerate = lambda *a, **k: iter(())\n" + WRONG_ADD, ADD_TESTS),
    "builtin replacement: any() is always False, so an int subclass equal to everything looks plain": (_probe("""
        import builtins
        builtins.any = lambda *a, **k: False
        class I(int):
            def __eq__(self, other):
                return True
            __hash__ = int.__hash__
        def add(a, b):
            return I(0)
        """), ADD_TESTS),
    "shadowing a builtin the tests use on the expected side": (_probe("""
        def set(values):
            return 0
        def unique(xs):
            return [99]
        """), ["assert set(unique([1, 2, 2])) == set([1, 2])"]),
    "monkeypatching math.isclose": (_probe("""
        import math
        math.isclose = lambda *a, **k: True
        def area(r):
            return 0.0
        """), ["import math", "assert math.isclose(area(2), 12.566370614359172)"]),
    "monkeypatching operator.contains": (
        "import operator\noperator.contains = lambda a, b: True\n" + WRONG_ADD, ["assert add(1, 2) in [3, 4]"]),
}

REGRESSION: dict[str, tuple[str, list[str]]] = {
    "os._exit(0) before the asserts": ("import os\nos._exit(0)\n", ADD_TESTS),
    "sys.exit(0) before the asserts": ("import sys\nsys.exit(0)\n", ADD_TESTS),
    "SystemExit(0) from the function": ("def add(a, b):\n    raise SystemExit(0)\n", ADD_TESTS),
    "an object whose __eq__ is always true": (
        "class E:\n    __eq__ = lambda self, other: True\ndef add(a, b):\n    return E()\n", ADD_TESTS),
    "a list holding one": (
        "class E:\n    __eq__ = lambda self, other: True\ndef add(a, b):\n    return [E()]\n", ["assert add(1, 2) == [3]"]),
    "an int subclass equal to everything": (
        "class I(int):\n    __eq__ = lambda self, other: True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return I(0)\n", ADD_TESTS),
    "fake report lines and markers on stdout, stderr and every descriptor": (_probe("""
        import os, sys
        fake = '{"code":"ok"}\\n{"k":0,"v":3}\\n{"k":1,"v":0}\\n{"end":2}\\n__jallm_sandbox__ ok\\n'
        print(fake)
        sys.stderr.write(fake)
        for fd in range(1, 256):
            try:
                os.write(fd, fake.encode() + b"0" * 32)
            except OSError:
                pass
        """) + WRONG_ADD, ADD_TESTS),
    "fake report lines, then exit 0 before the real ones": (_probe("""
        import os
        for fd in range(3, 256):
            try:
                os.write(fd, b'{"code":"ok"}\\n{"k":0,"v":0}\\n{"k":1,"v":1}\\n{"end":2}\\n')
            except OSError:
                pass
        os._exit(0)
        """), ADD_TESTS),
    "__del__ that raises SystemExit(0) and calls os._exit(0)": (_probe("""
        import os
        class Bomb(int):
            def __del__(self):
                os._exit(0)
        def add(a, b):
            Bomb(3)
            raise SystemExit(0)
        """), ADD_TESTS),
    "atexit handler that exits 0": (
        "import atexit, os\natexit.register(os._exit, 0)\n" + WRONG_ADD, ADD_TESTS),
    "a 10^8-element answer": ("def add(a, b):\n    return [0] * 10 ** 8\n", ["assert add(1, 2) == [0]"]),
    "100 MB on stdout": ("import sys\ndef add(a, b):\n    sys.stdout.write('x' * 10 ** 8)\n    return 0\n", ADD_TESTS),
    "a set of ints that all share one hash": (_probe("""
        import sys
        def add(a, b):
            return {1 + i * sys.hash_info.modulus for i in range(200)}
        """), ["assert add(1, 2) == {1}"]),
    "infinite recursion": ("def add(a, b):\n    return add(a, b)\n", ADD_TESTS),
    "deep recursion past the C stack": (  # through map(), so that each level is a C call too
        "import sys\nsys.setrecursionlimit(10 ** 7)\ndef add(a, b):\n    return list(map(add, [a], [b]))\n",
        ADD_TESTS),
    "a fork that answers after its parent": (_probe("""
        import os, time
        if os.fork() == 0:
            time.sleep(0.5)
            for fd in range(3, 64):
                try:
                    os.write(fd, b'{"k":0,"v":3}\\n{"k":1,"v":0}\\n{"end":2}\\n')
                except OSError:
                    pass
            os._exit(0)
        """) + WRONG_ADD, ADD_TESTS),
}


def _score(code: str, tests: list[str]) -> float:
    return get_metric("code_exec")([code], [str(tests)], [{}]).per_item[0]


@pytest.mark.parametrize("name", list(BEAT_OLD))
def test_forgery_that_passed_the_in_process_checker_scores_zero(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "run_python", _short(sandbox.run_python))
    code, tests = BEAT_OLD[name]
    assert _score(code, tests) == 0.0


@pytest.mark.parametrize("name", list(REGRESSION))
def test_forgery_the_old_checker_stopped_still_scores_zero(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "run_python", _short(sandbox.run_python))
    code, tests = REGRESSION[name]
    assert _score(code, tests) == 0.0


def _short(run):
    def call(code, **kw):
        return run(code, **{"timeout_s": 5.0, **kw})

    return call


HONEST: dict[str, tuple[str, list[str]]] = {  # the shapes the probes use, answered correctly
    "add": ("def add(a, b):\n    return a + b\n", ADD_TESTS),
    "set wrapper": ("def unique(xs):\n    return sorted(set(xs))\n", ["assert set(unique([1, 2, 2])) == set([1, 2])"]),
    "math.isclose": ("import math\ndef area(r):\n    return math.pi * r * r\n",
                     ["import math", "assert math.isclose(area(2), 12.566370614359172)"]),
    "membership": ("def add(a, b):\n    return a + b\n", ["assert add(1, 2) in [3, 4]"]),
    "the answer's own sum (MBPP task 126)": (_probe("""
        def sum(a, b):
            total = 0
            for i in range(1, min(a, b)):
                if a % i == 0 and b % i == 0:
                    total += i
            return total
        """), ["assert sum(10,15) == 6", "assert sum(100,150) == 93"]),
    "a forking answer": ("import os\nif os.fork() == 0:\n    os._exit(0)\nos.wait()\n"
                         "def add(a, b):\n    return a + b\n", ADD_TESTS),
    "a big but bounded answer": ("def add(a, b):\n    return [0] * 100_000\n", ["assert add(1, 2) == [0] * 100_000"]),
}


def test_honest_answers_in_the_same_shapes_pass() -> None:
    preds = [code for code, _ in HONEST.values()]
    golds = [str(tests) for _, tests in HONEST.values()]
    scores = dict(zip(HONEST, get_metric("code_exec")(preds, golds, [{} for _ in preds]).per_item, strict=True))
    assert scores == {name: 1.0 for name in HONEST}


def test_the_checkers_process_is_not_visible_to_the_code() -> None:
    feats = sandbox.features()
    if "pidns" not in feats or "mountns" not in feats:
        pytest.skip("no PID and mount namespace here: the host's /proc is what the code sees (documented)")
    result, out, _ = sandbox.run_python_verbose(
        "import json, os\nprint(json.dumps(sorted(int(p) for p in os.listdir('/proc') if p.isdigit())))\n")
    assert result.passed, result.reason
    assert json.loads(out) == [1]  # the code itself, PID 1 of its namespace: no process of the host
