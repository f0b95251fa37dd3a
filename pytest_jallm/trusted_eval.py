"""The trusted interpreter behind :mod:`pytest_jallm.code_check`: plain data in, a verdict's values out.

:func:`decode` rebuilds the child's report values (untrusted JSON) as built-in types, and
:func:`evaluate` runs the trusted part of a test over them.  Nothing here calls ``eval``/``exec``
or code the child sent: the values are data, every callable reachable from a test is listed
below, and every operation whose cost grows with its input is bounded, so that a value the
generated code chose (a huge integer, a million-element list, a set crafted so that all its
elements share one hash) costs the harness at most a bounded amount of work:

* ``MAX_ITEMS`` elements in any container built here (also iterables consumed by ``sum``,
  ``sorted``, ...), ``MAX_DEPTH`` levels of nesting in a decoded value;
* ``MAX_CHARS`` characters in a string or bytes built here (``*``, ``join``, ``replace``, ...);
* ``INT_BITS`` bits in an operand of integer arithmetic (``**`` also bounds its result);
* ``MAX_STEPS`` interpreter steps per assert (lambdas and comprehensions count each element);
* at most ``HASH_CROWD`` distinct values sharing one hash in a set or dict built here (the
  quadratic case of hash tables).
"""

from __future__ import annotations

import ast
import collections
import datetime
import decimal
import fractions
import itertools
import math
import operator
import sys
from typing import Any, Callable

MAX_ITEMS = 1_000_000
MAX_DEPTH = 100
MAX_CHARS = 16 * 1024 * 1024
INT_BITS = 100_000
MAX_STEPS = 1_000_000
HASH_CROWD = 32


class Limit(ArithmeticError):
    """A value or an operation over this module's bounds."""


class StepRaised(Exception):
    """The child reported that evaluating a step raised (the message is the child's)."""


class Opaque:
    """An object the child could not send as data: it equals only itself and is true."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name

    def __repr__(self) -> str:
        return "<%s object>" % self.type_name


class Module:
    """The part of a standard module a test may use here."""

    def __init__(self, name: str, attrs: dict[str, Any], public: tuple[str, ...] = ()) -> None:
        self.name, self.attrs, self.public = name, attrs, public


METHOD = object()  # a call's function is a method of a value (str.lower, dict.items, ...)
LOCAL_CALL = object()  # a call's function is a lambda of the test, or a name a comprehension bound

SUPPORTED = (ast.Constant, ast.Name, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.Starred, ast.UnaryOp, ast.BinOp,
             ast.BoolOp, ast.Compare, ast.IfExp, ast.Call, ast.Attribute, ast.Subscript, ast.Slice, ast.keyword,
             ast.Lambda, ast.arguments, ast.arg, ast.comprehension, ast.ListComp, ast.SetComp, ast.GeneratorExp,
             ast.DictComp, ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)


# --- bounds -----------------------------------------------------------------------------------------


def _items(iterable: Any) -> list:
    """``iterable`` as a list of at most MAX_ITEMS elements, or Limit."""
    if hasattr(iterable, "__len__") and len(iterable) > MAX_ITEMS:
        raise Limit("more than %d elements" % MAX_ITEMS)
    out = list(itertools.islice(iterable, MAX_ITEMS + 1))
    if len(out) > MAX_ITEMS:
        raise Limit("more than %d elements" % MAX_ITEMS)
    return out


def crowd_check(items: list) -> list:
    """Refuse elements crafted to collide: many distinct values with one hash make a set or dict
    quadratic.  Grouped by hash modulo the hash modulus (so the grouping dict cannot collide)."""
    if len(items) <= HASH_CROWD:
        return items
    modulus = sys.hash_info.modulus
    groups: dict[int, list] = {}
    for x in items:
        groups.setdefault(hash(x) % modulus, []).append(x)
    for group in groups.values():
        if len(group) > HASH_CROWD:
            distinct: list = []
            for x in group:
                if not any(x == d for d in distinct):
                    distinct.append(x)
                    if len(distinct) > HASH_CROWD:
                        raise Limit("more than %d distinct values share one hash" % HASH_CROWD)
    return items


def int_ok(*values: Any) -> None:
    for v in values:
        parts = (v.numerator, v.denominator) if isinstance(v, fractions.Fraction) else (v,)
        if any(isinstance(p, int) and p.bit_length() > INT_BITS for p in parts):
            raise Limit("an integer of more than %d bits in arithmetic" % INT_BITS)


def _size_ok(kind: Any, n: int) -> None:
    if isinstance(kind, (list, tuple)) and n > MAX_ITEMS:
        raise Limit("more than %d elements" % MAX_ITEMS)
    _chars_ok(n)


def _chars_ok(n: int) -> None:
    if n > MAX_CHARS:
        raise Limit("a string of more than %d characters" % MAX_CHARS)


# --- guarded callables -------------------------------------------------------------------------------


def _set(iterable: Any = ()) -> set:
    return set(crowd_check(_items(iterable)))


def _frozenset(iterable: Any = ()) -> frozenset:
    return frozenset(crowd_check(_items(iterable)))


def _pairs(arg: Any) -> list:
    pairs = _items(arg.items() if isinstance(arg, dict) else arg)
    crowd_check([k for k, _ in pairs])
    return pairs


def _dict(arg: Any = (), **kw: Any) -> dict:
    return dict(_pairs(arg), **kw)


def _counter(arg: Any = (), **kw: Any) -> collections.Counter:
    if isinstance(arg, dict):
        return collections.Counter(dict(_pairs(arg)), **kw)
    return collections.Counter(crowd_check(_items(arg)), **kw)


def _ordered_dict(arg: Any = (), **kw: Any) -> collections.OrderedDict:
    return collections.OrderedDict(_pairs(arg), **kw)


def _str(x: Any = "", *rest: Any) -> str:
    if rest:  # str(bytes, encoding)
        return str(x, *rest)
    if isinstance(x, int) and x.bit_length() > INT_BITS:
        raise Limit("str() of an integer of more than %d bits" % INT_BITS)
    text = str(x)
    _chars_ok(len(text))
    return text


def _int(x: Any = 0, *base: Any) -> int:
    if isinstance(x, (str, bytes)) and len(x) > 5000:
        raise Limit("int() of more than 5000 characters")
    return int(x, *base)


def _round(x: Any, ndigits: Any = None) -> Any:
    if ndigits is not None and abs(ndigits) > 1000:
        raise Limit("round() to more than 1000 digits")
    return round(x) if ndigits is None else round(x, ndigits)


def _over_items(fn: Callable) -> Callable:
    def call(iterable: Any, *args: Any, **kw: Any) -> Any:
        return fn(_items(iterable), *args, **kw)

    return call


def _minmax(fn: Callable) -> Callable:
    def call(*args: Any, **kw: Any) -> Any:
        return fn(_items(args[0]), **kw) if len(args) == 1 else fn(*args, **kw)

    return call


def _sum(iterable: Any, start: Any = 0) -> Any:
    items = _items(iterable)
    if not isinstance(start, (int, float, complex, decimal.Decimal, fractions.Fraction)):
        if len(items) > 10_000:  # sum(lists, []) copies quadratically
            raise Limit("sum() of more than 10000 sequences")
    return sum(items, start)


def _prod(iterable: Any, start: Any = 1) -> Any:
    items = _items([start, *_items(iterable)])
    if sum(x.bit_length() for x in items if isinstance(x, int)) > 10 * INT_BITS:
        raise Limit("a product of more than %d bits" % (10 * INT_BITS))
    return math.prod(items[1:], start=items[0])


def _range(*args: Any) -> range:
    int_ok(*args)
    return range(*args)


def _small_int_args(fn: Callable, limit: int = 10_000) -> Callable:
    def call(*args: Any) -> Any:
        if any(isinstance(a, int) and abs(a) > limit for a in args):
            raise Limit("%s() of a number above %d" % (fn.__name__, limit))
        return fn(*args)

    return call


def _int_args(fn: Callable) -> Callable:
    def call(*args: Any, **kw: Any) -> Any:
        int_ok(*args)
        return fn(*args, **kw)

    return call


math_isclose = math.isclose

_PURE: list[Any] = [abs, bool, callable, chr, ord, hex, oct, bin, len, isinstance, type, float, complex, repr, hash, divmod,
         enumerate, zip, map, filter, reversed, slice, tuple, list, iter, next]
BUILTINS: dict[str, Any] = {f.__name__: f for f in _PURE}
BUILTINS.update({t.__name__: t for t in (int, str, bytes, bytearray, set, frozenset, dict, range, object)})
BUILTINS.update({"round": round, "sum": sum, "sorted": sorted, "min": min, "max": max, "all": all, "any": any})

_NUMERIC_MATH = ["ceil", "floor", "trunc", "fabs", "sqrt", "exp", "expm1", "log", "log2", "log10", "log1p", "sin",
                 "cos", "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh", "degrees", "radians", "hypot",
                 "copysign", "fmod", "modf", "frexp", "isnan", "isinf", "isfinite", "pow", "erf", "erfc", "gamma",
                 "lgamma", "dist", "fsum", "isqrt"]
MODULES: dict[str, Module] = {
    "math": Module("math", {
        **{n: getattr(math, n) for n in _NUMERIC_MATH if hasattr(math, n)},
        "isclose": math_isclose, "pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf, "nan": math.nan,
        "factorial": math.factorial, "comb": math.comb, "perm": math.perm, "gcd": math.gcd, "lcm": getattr(
            math, "lcm", math.gcd), "prod": math.prod,
    }, tuple(n for n in dir(math) if not n.startswith("_"))),
    "sys": Module("sys", {"getsizeof": sys.getsizeof, "maxsize": sys.maxsize}),
    "collections": Module("collections", {"Counter": collections.Counter, "OrderedDict": collections.OrderedDict,
                                          "deque": collections.deque}),
    "decimal": Module("decimal", {"Decimal": decimal.Decimal}),
    "fractions": Module("fractions", {"Fraction": fractions.Fraction}),
    "datetime": Module("datetime", {n: getattr(datetime, n) for n in ("date", "datetime", "time", "timedelta")}),
}

# How a trusted callable is called here: the guarded version, or the callable itself (pure and cheap).
_GUARDED: dict[Any, Callable] = {
    set: _set, frozenset: _frozenset, dict: _dict, collections.Counter: _counter,
    collections.OrderedDict: _ordered_dict, str: _str, repr: lambda x: _str(repr(x)), int: _int, round: _round,
    tuple: lambda x=(): tuple(_items(x)), list: lambda x=(): _items(x), sorted: _over_items(sorted),
    sum: lambda it, start=0: _sum(it, start), all: _over_items(all), any: _over_items(any),
    min: _minmax(min), max: _minmax(max), range: _range, bytes: lambda x=b"", *e: bytes(
        _items(x) if isinstance(x, (list, tuple, range)) else x, *e) if not isinstance(x, int) else _bytes_n(x),
    bytearray: lambda x=b"", *e: bytearray(_guarded_bytes_arg(x), *e),
    collections.deque: lambda x=(), maxlen=None: collections.deque(_items(x), maxlen),
    math.factorial: _small_int_args(math.factorial), math.comb: _small_int_args(math.comb),
    math.perm: _small_int_args(math.perm), math.prod: lambda it, start=1: _prod(it, start),
    math.fsum: lambda it: math.fsum(_items(it)), math.gcd: _int_args(math.gcd), math.isqrt: _int_args(math.isqrt),
    math.pow: _int_args(math.pow), divmod: _int_args(divmod), hex: _int_args(hex), oct: _int_args(oct),
    bin: _int_args(bin), sys.getsizeof: lambda x: sys.getsizeof(x), type: lambda x: type(x),
    decimal.Decimal: _int_args(decimal.Decimal), fractions.Fraction: _int_args(fractions.Fraction),
}
if hasattr(math, "lcm"):
    _GUARDED[math.lcm] = _int_args(math.lcm)
_CALLABLE_OK = {id(f) for f in [*BUILTINS.values(), *[v for m in MODULES.values() for v in m.attrs.values()]]
                if callable(f)}


def _bytes_n(n: int) -> bytes:
    _chars_ok(n)
    return bytes(n)


def _guarded_bytes_arg(x: Any) -> Any:
    if isinstance(x, int):
        _chars_ok(x)
        return x
    return _items(x) if isinstance(x, (list, tuple, range)) else x


# Methods a test may call on a value, by exact type (the values here are built-in types only).
_STR_METHODS = {"lower", "upper", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith",
                "endswith", "count", "find", "rfind", "index", "rindex", "isdigit", "isalpha", "isalnum", "isspace",
                "islower", "isupper", "isnumeric", "isdecimal", "istitle", "title", "capitalize", "casefold",
                "swapcase", "partition", "rpartition", "removeprefix", "removesuffix", "encode", "decode", "hex",
                "join", "replace", "zfill", "center", "ljust", "rjust"}
_MAPPING_METHODS = {"keys", "values", "items", "get", "copy"}
_SET_METHODS = {"union", "intersection", "difference", "symmetric_difference", "issubset", "issuperset",
                "isdisjoint", "copy"}
_METHODS: dict[type, set[str]] = {
    str: _STR_METHODS, bytes: _STR_METHODS, bytearray: _STR_METHODS,
    list: {"count", "index", "copy"}, tuple: {"count", "index"}, collections.deque: {"count", "index"},
    dict: _MAPPING_METHODS, collections.OrderedDict: _MAPPING_METHODS,
    collections.Counter: _MAPPING_METHODS | {"most_common", "total", "elements"},
    set: _SET_METHODS, frozenset: _SET_METHODS, int: {"bit_length", "conjugate"}, float: {"is_integer", "hex"},
}
METHOD_NAMES = frozenset().union(*_METHODS.values())


def _call_method(obj: Any, name: str, args: list, kw: dict) -> Any:
    allowed = _METHODS.get(type(obj))
    if allowed is None or name not in allowed:
        raise TypeError("%s.%s() is not evaluated by the checker" % (type(obj).__name__, name))
    if name == "join":
        parts = _items(args[0])
        _chars_ok(sum(len(p) for p in parts if isinstance(p, (str, bytes))) + len(obj) * len(parts))
        args = [parts]
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], (str, bytes)):
        hits = obj.count(args[0]) if args[0] else len(obj) + 1
        _chars_ok(len(obj) + hits * len(args[1]))
    elif name in ("zfill", "center", "ljust", "rjust") and args:
        _chars_ok(args[0])
    elif name in _SET_METHODS and name not in ("issubset", "issuperset", "isdisjoint", "copy"):
        args = [crowd_check(_items(a)) for a in args]
    return getattr(obj, name)(*args, **kw)


# --- evaluating the trusted part of a test ------------------------------------------------------------


def truth(value: Any) -> bool:
    return bool(value)


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
           ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
           ast.BitXor: operator.xor, ast.BitAnd: operator.and_}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
           ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_SEQ = (str, bytes, bytearray, list, tuple)


def _binop(op: ast.operator, a: Any, b: Any) -> Any:
    fn = _BINOPS.get(type(op))
    if fn is None:
        raise TypeError("the operator %s is not evaluated by the checker" % type(op).__name__)
    if isinstance(a, (str, bytes)) and type(op) is ast.Mod:
        raise TypeError("%-formatting is not evaluated by the checker")
    int_ok(a, b)
    if type(op) is ast.Mult:
        for seq, n in ((a, b), (b, a)):
            if isinstance(seq, _SEQ) and isinstance(n, int):
                _size_ok(seq, len(seq) * max(n, 0))
    elif type(op) is ast.Add and isinstance(a, _SEQ) and isinstance(b, _SEQ):
        _size_ok(a, len(a) + len(b))
    elif type(op) is ast.Pow and isinstance(a, (int, fractions.Fraction)) and isinstance(b, int):
        size = a.bit_length() if isinstance(a, int) else max(a.numerator.bit_length(), a.denominator.bit_length())
        if abs(b) * max(size, 1) > INT_BITS:
            raise Limit("a power of more than %d bits" % INT_BITS)
    elif type(op) is ast.LShift and isinstance(a, int) and isinstance(b, int) and b + a.bit_length() > INT_BITS:
        raise Limit("a shift to more than %d bits" % INT_BITS)
    return fn(a, b)


class _Closure:
    """A lambda of the test, evaluated here."""

    def __init__(self, node: ast.Lambda, ev: _Evaluator, env: dict) -> None:
        args = node.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
            raise TypeError("only plain lambda parameters are evaluated by the checker")
        self.names = [a.arg for a in args.args]
        defaults = [ev.eval(d, env) for d in args.defaults]
        self.defaults = dict(zip(self.names[len(self.names) - len(defaults):], defaults, strict=True))
        self.node, self.ev, self.env = node, ev, env

    def __call__(self, *args: Any, **kw: Any) -> Any:
        if len(args) > len(self.names):
            raise TypeError("too many arguments for a lambda")
        bound = {**self.defaults, **dict(zip(self.names, args, strict=False)), **kw}
        if set(bound) != set(self.names):
            raise TypeError("lambda arguments do not match")
        return self.ev.eval(self.node.body, {**self.env, **bound})


class _Evaluator:
    def __init__(self, leaf: Callable[[int], Any]) -> None:
        self.leaf = leaf
        self.steps = 0

    def call(self, fn: Any, args: list, kw: dict) -> Any:
        # A callable handed on (map(set, ...), key=str) is handed on guarded as well.
        args = [_GUARDED.get(a, a) if id(a) in _CALLABLE_OK else a for a in args]
        kw = {k: _GUARDED.get(v, v) if id(v) in _CALLABLE_OK else v for k, v in kw.items()}
        if isinstance(fn, _Closure):
            return fn(*args, **kw)
        guarded = _GUARDED.get(fn) if isinstance(fn, collections.abc.Hashable) else None
        if guarded is not None:
            return guarded(*args, **kw)
        if id(fn) in _CALLABLE_OK:
            return fn(*args, **kw)
        raise TypeError("%r is not callable by the checker" % (fn,))

    def comprehension(self, node: ast.AST, env: dict) -> list:
        """The (element) values of a comprehension, evaluated eagerly within the bounds."""
        out: list = []

        def loop(i: int, env: dict) -> None:
            if i == len(node.generators):  # type: ignore[attr-defined]
                if isinstance(node, ast.DictComp):
                    out.append((self.eval(node.key, env), self.eval(node.value, env)))
                else:
                    out.append(self.eval(node.elt, env))  # type: ignore[attr-defined]
                if len(out) > MAX_ITEMS:
                    raise Limit("more than %d elements" % MAX_ITEMS)
                return
            gen = node.generators[i]  # type: ignore[attr-defined]
            for item in _items(self.eval(gen.iter, env)):
                inner = dict(env)
                self.bind(gen.target, item, inner)
                if all(truth(self.eval(cond, inner)) for cond in gen.ifs):
                    loop(i + 1, inner)

        loop(0, env)
        return out

    def bind(self, target: ast.expr, value: Any, env: dict) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = value
        elif isinstance(target, (ast.Tuple, ast.List)) and not any(isinstance(e, ast.Starred) for e in target.elts):
            values = _items(value)
            if len(values) != len(target.elts):
                raise ValueError("cannot unpack %d values into %d names" % (len(values), len(target.elts)))
            for t, v in zip(target.elts, values, strict=False):
                self.bind(t, v, env)
        else:
            raise TypeError("this loop target is not evaluated by the checker")

    def elements(self, elts: list, env: dict) -> list:
        out: list = []
        for e in elts:
            if isinstance(e, ast.Starred):
                out.extend(_items(self.eval(e.value, env)))
            else:
                out.append(self.eval(e, env))
            if len(out) > MAX_ITEMS:
                raise Limit("more than %d elements" % MAX_ITEMS)
        return out

    def eval(self, node: ast.AST, env: dict) -> Any:  # noqa: C901 -- one case per node type
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise Limit("more than %d evaluation steps" % MAX_STEPS)
        kind = type(node).__name__
        if kind == "Leaf":
            return self.leaf(node.step)  # type: ignore[attr-defined]
        if kind in ("Obj", "Constant"):
            return node.value  # type: ignore[attr-defined]
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.List):
            return self.elements(node.elts, env)
        if isinstance(node, ast.Tuple):
            return tuple(self.elements(node.elts, env))
        if isinstance(node, ast.Set):
            return set(crowd_check(self.elements(node.elts, env)))
        if isinstance(node, ast.Dict):
            pairs: list = []
            for k, v in zip(node.keys, node.values, strict=True):
                pairs.extend(_pairs(self.eval(v, env)) if k is None else [(self.eval(k, env), self.eval(v, env))])
            return dict(_pairs(pairs))
        if isinstance(node, ast.UnaryOp):
            v = self.eval(node.operand, env)
            if isinstance(node.op, ast.Not):
                return not truth(v)
            unary: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos,
                                                       ast.Invert: operator.invert}
            return unary[type(node.op)](v)
        if isinstance(node, ast.BinOp):
            return _binop(node.op, self.eval(node.left, env), self.eval(node.right, env))
        if isinstance(node, ast.BoolOp):
            last: Any = None
            for operand in node.values:
                last = self.eval(operand, env)
                if truth(last) == isinstance(node.op, ast.Or):
                    return last
            return last
        if isinstance(node, ast.Compare):
            left = self.eval(node.left, env)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self.eval(comparator, env)
                if not truth(_CMPOPS[type(op)](left, right)):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return self.eval(node.body if truth(self.eval(node.test, env)) else node.orelse, env)
        if isinstance(node, ast.Call):
            args = self.elements(node.args, env)
            kw: dict = {}
            for keyword in node.keywords:
                value = self.eval(keyword.value, env)
                if keyword.arg is None:
                    if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
                        raise TypeError("** needs a dict with string keys")
                    kw.update(value)
                else:
                    kw[keyword.arg] = value
            if isinstance(node.func, ast.Attribute):
                return _call_method(self.eval(node.func.value, env), node.func.attr, args, kw)
            return self.call(self.eval(node.func, env), args, kw)
        if isinstance(node, ast.Subscript):
            return self.eval(node.value, env)[self.eval(node.slice, env)]
        if isinstance(node, ast.Slice):
            parts = [None if p is None else self.eval(p, env) for p in (node.lower, node.upper, node.step)]
            return slice(*parts)
        if isinstance(node, ast.Lambda):
            return _Closure(node, self, env)
        if isinstance(node, ast.ListComp):
            return self.comprehension(node, env)
        if isinstance(node, ast.GeneratorExp):
            return iter(self.comprehension(node, env))
        if isinstance(node, ast.SetComp):
            return set(crowd_check(self.comprehension(node, env)))
        if isinstance(node, ast.DictComp):
            return dict(_pairs(self.comprehension(node, env)))
        raise TypeError("%s is not evaluated by the checker" % kind)


def evaluate(node: ast.AST, env: dict, leaf: Callable[[int], Any]) -> Any:
    """The value of the trusted tree ``node``; ``leaf(step)`` gives the child's value of a step."""
    return _Evaluator(leaf).eval(node, env)
