"""The trusted half of ``code_exec``: what the tests ask, and whether the generated code's values pass.

The generated code runs in the sandbox's child (:mod:`pytest_jallm._sandbox_child`), and nothing
in that process decides anything.  This module, in the harness's process, which the code cannot
reach, splits each test with :mod:`ast` (nothing here ``eval``s or ``exec``s):

* the **calls** that need the generated code -- maximal sub-expressions that name something the
  trusted side does not know (``add(1, 2)``, ``root``, ``set(f(x))``), or that it cannot compute --
  become *steps* the child evaluates; their values come back as plain data
  (:func:`_sandbox_child.encode`) and are rebuilt here as built-in types only, so an object that
  "equals everything" arrives as an opaque token that equals nothing;
* the **check** -- comparisons, ``not``/``and``/``or``, ``math.isclose``, and every sub-expression
  the trusted side can compute (literals, the dataset's expected values, ``set([...])``,
  ``sorted``, ``math.pi``, ...) -- is evaluated here by a small interpreter over those values,
  with the real built-ins and bounded work.

A comparison needs one side computed here (``f(x) == 3``): one between two values that both come
from the child (``f(a) == f(b)``, or ``set(f(x)) == set([1])`` where the code defines its own
``set``) fails, since the code would choose both.  Test statements that are not asserts
(``import math``, ``root = Node(1)``) run in the child too; ``NAME = <value computable here>`` is
also kept here.  Names the generated code binds at module level (other than plain imports of the
modules below) are the code's: ``sum(10, 15)`` calls its ``sum``; the built-ins and modules it did
not rebind are the real ones, whatever it does to ``builtins``, ``math`` or ``operator`` at run time.

Not checkable (a :class:`TestsNotCheckable`, a data error, not a score): tests that do not parse,
asserts nested inside other statements (``for``/``if``/``def``), and comprehensions or lambdas that
would call the code once per element (``all(f(i) == i for i in ...)``; ``all(x > 0 for x in f())``
is fine) -- those would have to run where the code could change them.  When only the answer's own
module-level names make a test uncheckable (it defines ``abs`` used inside such a comprehension),
that answer fails instead.
"""

from __future__ import annotations

import ast
import collections
import datetime
import decimal
import fractions
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from . import trusted_eval as te
from .errors import DataError

__all__ = ["Plan", "TestsNotCheckable", "Verdict", "judge", "plan"]


class TestsNotCheckable(DataError):
    """The item's tests cannot be checked outside the generated code's process."""

    __test__ = False  # not a pytest test class


class Leaf(ast.expr):
    """A sub-expression the child evaluates: its value is step ``step``'s report."""

    _fields = ("step",)
    step: int

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step


class Obj(ast.expr):
    """A trusted object (a built-in, a module's function) resolved when the tests were split."""

    _fields = ("value",)
    value: Any

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


@dataclass
class Plan:
    steps: list[tuple[str, str]] = field(default_factory=list)  # ("exec"|"eval", source) for the child
    ops: list[tuple] = field(default_factory=list)  # ("step", k) | ("assign", name, expr) | ("assert", src, expr)


@dataclass(frozen=True)
class Verdict:
    passed: bool
    reason: str
    complete: bool = True  # False: the child stopped before reporting what the check needs


_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_SCOPED = (ast.Lambda, *_COMPREHENSIONS)


# --- what the generated code binds ---------------------------------------------------------------


def _bindings(stmts: list[ast.stmt]) -> tuple[set[str], dict[str, Any]]:
    """Names module-level statements bind: (rebound, faithful) -- ``faithful`` maps names bound
    only by imports of the trusted modules (``import math``, ``from math import isclose``) to
    what they name here."""
    rebound: set[str] = set()
    faithful: dict[str, Any] = {}

    def visit(node: ast.AST) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            rebound.add(node.name)
            for d in node.decorator_list:
                visit(d)
            return  # their bodies bind local names
        if isinstance(node, ast.Lambda):
            return
        if isinstance(node, ast.Import):
            for a in node.names:
                name = a.asname or a.name.split(".")[0]
                mod = te.MODULES.get(a.name if a.asname else name)
                if mod is not None:
                    faithful.setdefault(name, mod)
                else:
                    rebound.add(name)
            return
        if isinstance(node, ast.ImportFrom):
            mod = te.MODULES.get(node.module or "") if not node.level else None
            for a in node.names:
                if a.name == "*":
                    if mod is None:
                        rebound.add("*")
                    else:
                        faithful.update({k: v for k, v in mod.attrs.items() if k not in faithful})
                        rebound.update(n for n in mod.public if n not in mod.attrs)
                    continue
                name = a.asname or a.name
                if mod is not None and a.name in mod.attrs:
                    faithful.setdefault(name, mod.attrs[a.name])
                else:
                    rebound.add(name)
            return
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            rebound.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            rebound.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            rebound.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            rebound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            rebound.add(node.rest)
        for child in ast.iter_child_nodes(node):
            visit(child)

    for stmt in stmts:
        visit(stmt)
    return rebound, {k: v for k, v in faithful.items() if k not in rebound}


def _candidate_scope(code: str) -> dict[str, Any]:
    scope: dict[str, Any] = dict(te.BUILTINS)
    try:
        body = ast.parse(code).body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return scope  # it will not compile in the child either
    rebound, faithful = _bindings(body)
    if "*" in rebound:  # `from somewhere import *`: any built-in may be the code's now
        rebound |= set(te.BUILTINS)
    for name in rebound:
        scope.pop(name, None)
    scope.update(faithful)
    return scope


# --- splitting the tests --------------------------------------------------------------------------


_VAR = object()  # a name the tests assigned a trusted value to


class _Splitter:
    """Turns a test expression into a trusted tree whose untrusted parts are :class:`Leaf` steps."""

    def __init__(self, scope: dict[str, Any], plan: Plan) -> None:
        self.scope = scope
        self.plan = plan

    def module_attr(self, node: ast.expr, local: frozenset) -> Any:
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id not in local:
            mod = self.scope.get(node.value.id)
            if isinstance(mod, te.Module):
                return mod.attrs.get(node.attr)
        return None

    def callee(self, func: ast.expr, local: frozenset) -> Any:
        """What a call's function is: a trusted callable, te.METHOD, te.LOCAL_CALL, or None (untrusted)."""
        if isinstance(func, ast.Name):
            if func.id in local:
                return te.LOCAL_CALL
            obj = self.scope.get(func.id)
            return obj if obj is not _VAR and not isinstance(obj, te.Module) and callable(obj) else None
        if isinstance(func, ast.Attribute):
            obj = self.module_attr(func, local)
            if obj is not None:
                return obj if callable(obj) else None
            is_module = isinstance(func.value, ast.Name) and isinstance(self.scope.get(func.value.id), te.Module)
            return te.METHOD if func.attr in te.METHOD_NAMES and not is_module else None
        return te.LOCAL_CALL if isinstance(func, ast.Lambda) else None

    def facts(self, node: ast.AST, local: frozenset) -> tuple[bool, bool, bool, bool]:
        """(untrusted, uses a trusted variable, uses an enclosing lambda's or comprehension's name,
        holds a comparison or another combining form) for the sub-tree ``node``."""
        untrusted = tvars = refs_local = combiner = False
        stack: list[tuple[ast.AST, frozenset]] = [(node, frozenset())]
        while stack:
            n, inner = stack.pop()
            if not isinstance(n, te.SUPPORTED):
                untrusted = True
            if isinstance(n, ast.Compare | ast.BoolOp | ast.IfExp) or (
                    isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not)):
                combiner = True
            children = list(ast.iter_child_nodes(n))
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load) and n.id not in inner:
                if n.id in local:
                    refs_local = True
                elif n.id not in self.scope or isinstance(self.scope[n.id], te.Module):
                    untrusted = True  # a module itself is no value
                elif self.scope[n.id] is _VAR:
                    tvars = True
            elif isinstance(n, ast.Attribute):
                untrusted = untrusted or self.module_attr(n, local | inner) is None
                children = []
            elif isinstance(n, ast.Call):
                kind = self.callee(n.func, local | inner)
                untrusted = untrusted or kind is None
                combiner = combiner or kind is te.math_isclose
                children = [*n.args, *n.keywords]
                if kind is te.METHOD:
                    children.append(n.func.value)  # type: ignore[attr-defined]
                elif kind is te.LOCAL_CALL:
                    children.append(n.func)
            if isinstance(n, _SCOPED):
                inner = inner | _params(n)
            stack.extend((c, inner) for c in children)
        return untrusted, tvars, refs_local, combiner

    def leaf(self, node: ast.expr) -> Leaf:
        self.plan.steps.append(("eval", ast.unparse(node)))
        return Leaf(step=len(self.plan.steps) - 1)

    def split(self, node: ast.expr, local: frozenset = frozenset()) -> ast.expr:
        if isinstance(node, (ast.Starred, ast.Slice)):  # no expressions of their own: split their parts
            return self.rebuild(node, local)
        untrusted, tvars, refs_local, combiner = self.facts(node, local)
        if not untrusted:
            return self.resolve(node, local)
        if not (combiner or tvars or refs_local):
            return self.leaf(node)  # as large as possible: the child computes what only it can
        if isinstance(node, _COMPREHENSIONS) and not refs_local:
            return self.rebuild_comprehension(node, local)
        rebuildable = isinstance(node, te.SUPPORTED) and not isinstance(node, (*_SCOPED, ast.Attribute)) and not (
            isinstance(node, ast.Call) and self.callee(node.func, local) is None)
        if rebuildable:
            return self.rebuild(node, local)
        if refs_local or combiner:
            raise TestsNotCheckable(
                "the test expression %r compares or combines the generated code's values inside a lambda, a "
                "comprehension or a form this checker does not evaluate itself" % ast.unparse(node)[:200])
        return self.leaf(node)  # it reads a value the tests assigned: that assignment goes to the child too

    def rebuild_comprehension(self, node: ast.expr, local: frozenset) -> ast.expr:
        """``all(x > 0 for x in f())``: the first iterable is split as usual (``f()`` goes to the
        child); everything else must be computable here, since it runs once per element."""
        first, *rest = node.generators  # type: ignore[attr-defined]
        inner = local | _params(node)
        parts = [first.target, *first.ifs, *rest, *(getattr(node, f) for f in ("elt", "key", "value") if
                                                   hasattr(node, f))]
        if any(g.is_async for g in node.generators) or any(  # type: ignore[attr-defined]
                self.facts(part, inner)[0] for part in parts):
            raise TestsNotCheckable(
                "the test expression %r runs the generated code once per element of a comprehension: only its "
                "first iterable may call the code" % ast.unparse(node)[:200])
        new = self.resolve(node, local)
        new.generators[0].iter = self.split(first.iter, local)  # type: ignore[attr-defined]
        return new

    def rebuild(self, node: ast.expr, local: frozenset) -> ast.expr:
        if isinstance(node, ast.Call):
            func = node.func
            if self.callee(func, local) is te.METHOD:
                func = ast.Attribute(value=self.split(func.value, local), attr=func.attr, ctx=ast.Load())  # type: ignore
            else:
                func = self.resolve(func, local)
            return ast.Call(func=func, args=[self.split(a, local) for a in node.args],
                            keywords=[ast.keyword(arg=k.arg, value=self.split(k.value, local)) for k in node.keywords])
        new = type(node)()
        for name, value in ast.iter_fields(node):
            if isinstance(value, ast.expr):
                value = self.split(value, local)
            elif isinstance(value, list):
                value = [self.split(v, local) if isinstance(v, ast.expr) else v for v in value]
            setattr(new, name, value)
        return new

    def resolve(self, node: ast.AST, local: frozenset) -> Any:  # an ast.expr for an expression
        """A wholly trusted sub-tree: built-in and module names become their objects."""
        if isinstance(node, ast.Name) and node.id not in local and node.id in self.scope \
                and self.scope[node.id] is not _VAR:
            return Obj(value=self.scope[node.id])
        if isinstance(node, ast.Attribute) and self.module_attr(node, local) is not None:
            return Obj(value=self.module_attr(node, local))
        new = type(node)()
        inner = local | _params(node) if isinstance(node, _SCOPED) else local
        for name, value in ast.iter_fields(node):
            if isinstance(value, ast.AST):
                value = self.resolve(value, inner)
            elif isinstance(value, list):
                value = [self.resolve(v, inner) if isinstance(v, ast.AST) else v for v in value]
            setattr(new, name, value)
        return new


def _params(node: ast.AST) -> frozenset:
    if isinstance(node, ast.Lambda):
        a = node.args
        return frozenset(x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, *filter(None, [a.vararg, a.kwarg])])
    names = set()
    for gen in getattr(node, "generators", []):
        names |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
    return frozenset(names)


def _unanchored(expr: ast.expr) -> str | None:
    """The first comparison both of whose sides come from the child, if any."""
    def has_leaf(n: ast.AST) -> bool:
        return any(isinstance(x, Leaf) for x in ast.walk(n))

    for n in ast.walk(expr):
        if isinstance(n, ast.Compare):
            operands = [n.left, *n.comparators]
            if any(has_leaf(a) and has_leaf(b) for a, b in zip(operands, operands[1:], strict=False)):
                return "compares two values that both come from the generated code's process"
        if isinstance(n, ast.Call) and isinstance(n.func, Obj) and n.func.value is te.math_isclose:
            if len(n.args) >= 2 and has_leaf(n.args[0]) and has_leaf(n.args[1]):
                return "compares two values that both come from the generated code's process"
    return None


def plan(tests: str, code: str) -> Plan:
    """Split ``tests`` (Python source, typically asserts) into the child's steps and the trusted check.

    TestsNotCheckable when the tests themselves cannot be checked (a data problem, the same for every
    answer); when only the generated code's own names make them so, a plan that fails that answer."""
    try:
        body = ast.parse(tests, "<tests>").body
    except (SyntaxError, ValueError, RecursionError, MemoryError) as e:
        raise TestsNotCheckable("the tests do not parse as Python (%s: %s)" % (type(e).__name__, e)) from None
    _plan(tests, body, {**te.BUILTINS, **te.MODULES})  # checkable at all, with the best-placed answer
    try:
        return _plan(tests, body, _candidate_scope(code))
    except TestsNotCheckable as e:
        return Plan(ops=[("refuse", "(the tests)", "the generated code rebinds a name the check needs: %s" % e)])


def _plan(tests: str, body: list[ast.stmt], scope: dict[str, Any]) -> Plan:
    result = Plan()
    splitter = _Splitter(scope, result)
    trusted_assignments: dict[int, str] = {}
    for node in body:
        src = ast.get_source_segment(tests, node) or ast.unparse(node)
        if isinstance(node, ast.Assert):  # its message is never evaluated: it cannot change a verdict
            expr = splitter.split(node.test)
            problem = _unanchored(expr)
            result.ops.append(("refuse", src, problem) if problem else ("assert", src, expr))
            continue
        if any(isinstance(n, ast.Assert) for n in ast.walk(node)):
            raise TestsNotCheckable(
                "an assert inside a %s statement (%r) would run where the generated code can change it: "
                "only top-level asserts are checked" % (type(node).__name__, src[:200]))
        result.steps.append(("exec", src))
        result.ops.append(("step", len(result.steps) - 1))
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(node, ast.Assign) and isinstance(target, ast.Name) and not splitter.facts(node.value, frozenset())[0]:
            result.ops.append(("assign", target.id, splitter.resolve(node.value, frozenset())))
            trusted_assignments[len(result.steps) - 1] = target.id
            scope[target.id] = _VAR
            continue
        rebound, faithful = _bindings([node])
        if "*" in rebound:
            rebound |= set(te.BUILTINS)
        # A value the tests assigned here and the statement may change (x.sort()) is the child's from now on.
        rebound |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and scope.get(n.id) is _VAR}
        for name in rebound:
            scope.pop(name, None)
        scope.update(faithful)
    _drop_unneeded_assignments(result, trusted_assignments)
    return result


def _drop_unneeded_assignments(p: Plan, trusted: dict[int, str]) -> None:
    """A value the tests assign and the check computes itself goes to the child only when a step
    there reads it: expected values stay out of the code's reach."""
    read: set[str] = set()
    for k, (_, src) in enumerate(p.steps):
        if k not in trusted:
            read |= {n.id for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Name)}
    for k, name in trusted.items():
        if name not in read:
            p.steps[k] = ("exec", "pass")


# --- the child's values, rebuilt here -------------------------------------------------------------------


def decode(data: Any) -> Any:
    """A report value (see ``_sandbox_child.encode``) rebuilt as built-in types; ValueError when it is
    not one."""
    budget = [te.MAX_ITEMS]

    def dec(x: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0 or depth > te.MAX_DEPTH + 1:
            raise ValueError("a value over the size or nesting limit")
        t = type(x)
        if x is None or t in (bool, int, float, str):
            return x
        if t is list:
            return [dec(v, depth + 1) for v in x]
        if t is not dict or type(x.get("t")) is not str:
            raise ValueError("not a value")
        tag, keys = x["t"], set(x)

        def field(expected: type) -> Any:
            if keys != {"t", "v"} and not (tag == "deque" and keys == {"t", "v", "maxlen"}):
                raise ValueError("%s: unexpected fields" % tag)
            if type(x["v"]) is not expected:
                raise ValueError("%s: not a %s" % (tag, expected.__name__))
            return x["v"]

        def ints(n: int) -> list:
            v = [dec(i, depth + 1) for i in field(list)]
            if len(v) != n or any(type(i) is not int for i in v):
                raise ValueError("%s: not %d integers" % (tag, n))
            return v

        if tag == "Ellipsis" and keys == {"t"}:
            return ...
        if tag == "opaque" and keys == {"t", "type"} and type(x["type"]) is str:
            return te.Opaque(x["type"][:200])
        if tag == "int":
            return int(field(str), 16)
        if tag in ("tuple", "set", "frozenset", "deque", "iter", "keys", "values"):
            items = [dec(v, depth + 1) for v in field(list)]
            if tag in ("set", "frozenset", "keys"):
                te.crowd_check(items)
            if tag == "deque":
                maxlen = x.get("maxlen")
                if maxlen is not None and (type(maxlen) is not int or not 0 <= maxlen <= te.MAX_ITEMS):
                    raise ValueError("deque: bad maxlen")
                return collections.deque(items, maxlen)
            makers: dict[str, Callable[[list[Any]], Any]] = {
                "tuple": tuple, "set": set, "frozenset": frozenset, "iter": iter,
                "keys": lambda v: dict.fromkeys(v).keys(), "values": lambda v: dict(enumerate(v)).values()}
            return makers[tag](items)
        if tag in ("dict", "Counter", "OrderedDict", "items"):
            pairs = [dec(p, depth + 1) for p in field(list)]
            if any(type(p) is not list or len(p) != 2 for p in pairs):
                raise ValueError("%s: not key-value pairs" % tag)
            te.crowd_check([k for k, _ in pairs])
            made = {"dict": dict, "items": dict, "Counter": collections.Counter,
                    "OrderedDict": collections.OrderedDict}[tag]()
            for k, v in pairs:
                made[k] = v
            return made.items() if tag == "items" else made
        if tag in ("bytes", "bytearray"):
            return bytes.fromhex(field(str)) if tag == "bytes" else bytearray.fromhex(field(str))
        if tag == "complex":
            re_im = [dec(v, depth + 1) for v in field(list)]
            if len(re_im) != 2 or any(type(v) is not float for v in re_im):
                raise ValueError("complex: not two floats")
            return complex(*re_im)
        if tag == "range":
            start, stop, step = ints(3)
            te.int_ok(start, stop, step)
            return range(start, stop, step)
        if tag == "Decimal":
            return decimal.Decimal(field(str)[:10_000])
        if tag == "Fraction":
            num, den = ints(2)
            te.int_ok(num, den)
            return fractions.Fraction(num, den)
        if tag in ("date", "time", "datetime", "timedelta"):
            raw = field(list)
            n = {"date": 3, "time": 5, "datetime": 8, "timedelta": 3}[tag]
            if len(raw) != n or any(type(v) is not int for v in raw if v is not None) or (
                    None in raw[:-1] if tag in ("time", "datetime") else None in raw):
                raise ValueError("%s: bad fields" % tag)
            if tag == "timedelta":
                return datetime.timedelta(*raw)
            tz = None if raw[-1] is None else datetime.timezone(datetime.timedelta(microseconds=raw[-1]))
            if tag == "date":
                return datetime.date(*raw)
            if tag == "time":
                return datetime.time(raw[0], raw[1], raw[2], raw[3], tzinfo=tz)
            return datetime.datetime(raw[0], raw[1], raw[2], raw[3], raw[4], raw[5], raw[6], tzinfo=tz)
        raise ValueError("unknown tag %r" % tag[:40])

    try:
        return dec(data, 0)
    except (TypeError, OverflowError, ArithmeticError, decimal.InvalidOperation) as e:
        raise ValueError(str(e)[:200]) from None


# --- judging the child's report --------------------------------------------------------------------


class _Incomplete(Exception):
    pass


def _records(data: bytes, kinds: list[str]) -> tuple[str | None, dict[int, dict], bool]:
    """(the code's error or None, the records by step, whether the code finished) from the report; ValueError if it is not
    the sequence the child writes.  A last line without its newline was cut short: ignored."""
    lines = data.split(b"\n")[:-1]
    n_steps = len(kinds)
    records: dict[int, dict] = {}
    code_error: str | None = None
    expect: int | str = "code"
    for line in lines:
        rec = json.loads(line)
        if type(rec) is not dict:
            raise ValueError("a line is not a JSON object")
        if expect == "code":
            if rec == {"code": "ok"}:
                expect = 0
            elif set(rec) == {"code", "error"} and rec["code"] == "raised" and type(rec["error"]) is str:
                code_error, expect = rec["error"], "nothing"
            else:
                raise ValueError("the first line is not the code's outcome")
        elif isinstance(expect, int) and expect < n_steps and type(rec.get("k")) is int and rec["k"] == expect:
            fields = set(rec) - {"k"}
            if fields not in (({"failed"}, set()) if kinds[expect] == "exec" else ({"v"}, {"raised"})):
                raise ValueError("step %d: unexpected fields %s" % (expect, sorted(fields)[:5]))
            if any(type(rec[f]) is not str for f in fields & {"raised", "failed"}):
                raise ValueError("step %d: a message that is not a string" % expect)
            records[expect] = rec
            expect = "nothing" if "failed" in rec else expect + 1
        elif expect == n_steps and rec == {"end": n_steps}:
            expect = "nothing"
        else:
            raise ValueError("a line out of sequence: %r" % line[:80])
    return code_error, records, expect != "code"


def judge(p: Plan, data: bytes) -> Verdict:
    """The verdict on the child's report ``data`` (untrusted bytes)."""
    steps = p.steps
    try:
        code_error, records, ran = _records(data, [kind for kind, _ in steps])
    except (ValueError, RecursionError, MemoryError) as e:
        return Verdict(False, "the report is not the child's (%s): the generated code wrote on it" % str(e)[:200])
    if code_error is not None:
        return Verdict(False, "the generated code raised before the tests ran: " + code_error)
    if not ran:  # not even the code's outcome: it never finished
        return Verdict(False, "the generated code did not finish", complete=False)
    values: dict[int, Any] = {}

    def leaf(step: int) -> Any:
        if step not in values:
            rec = records.get(step)
            if rec is None:
                raise _Incomplete
            if "raised" in rec:
                raise te.StepRaised(rec["raised"])
            values[step] = decode(rec["v"])
        return values[step]

    env: dict[str, Any] = {}
    for op in p.ops:
        try:
            if op[0] == "step":
                rec = records.get(op[1])
                if rec is None:
                    raise _Incomplete
                if "failed" in rec:
                    return Verdict(False, "test raised %s: %s" % (rec["failed"], steps[op[1]][1][:300]))
            elif op[0] == "assign":
                env[op[1]] = te.evaluate(op[2], env, leaf)
            elif op[0] == "refuse":
                return Verdict(False, "%s: %s" % (op[2], op[1][:300]))
            elif not te.truth(te.evaluate(op[2], env, leaf)):
                return Verdict(False, "AssertionError: " + op[1][:300])
        except _Incomplete:
            return Verdict(False, "the program stopped before the tests finished", complete=False)
        except te.StepRaised as e:
            return Verdict(False, "test raised %s: %s" % (e, op[1][:300]))
        except Exception as e:  # the trusted evaluation itself: TypeError, a value over a limit, ...
            return Verdict(False, "test raised %s: %s: %s" % (type(e).__name__, str(e)[:200], str(op[1])[:300]))
    if len(records) < len(steps):
        return Verdict(False, "the program stopped before the tests finished", complete=False)
    return Verdict(True, "ok")
