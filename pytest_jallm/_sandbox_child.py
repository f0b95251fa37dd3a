"""The sandbox's child program: the *untrusted* side of :mod:`pytest_jallm.sandbox`.

Run by path, never imported by the harness at run time::

    python -I -S -B .../_sandbox_child.py '<config JSON>'      (the input JSON on stdin)

It imports the standard library only -- nothing of this package -- so that it works with ``-S``
in any working directory.  It contains itself (namespaces, read-only file tree and tmpfs,
unprivileged uid, no capabilities, a fresh ``/proc``, rlimits, socket guard; see the sandbox's
module notes), then runs the generated code.

Everything here runs in the process the generated code controls, so nothing here decides a
verdict.  With tests, this program only *reports*: it runs the steps the trusted side planned
(test statements, and the test expressions that call into the generated code, e.g. ``add(1, 2)``
of ``assert add(1, 2) == 3``) and writes each step's outcome as one JSON line on the report file
descriptor.  Values go out as plain data (see :func:`encode`); the comparisons, the assert logic
and the verdict happen in the parent process (:mod:`pytest_jallm.code_check`), which treats every
line as untrusted.  The code can forge these lines -- that only lets it choose the values of its
own calls, which it can do anyway by returning them.

Report lines, in order: ``{"code": "ok"}`` or ``{"code": "raised", "error": ...}``; then per step
``k``: ``{"k": k}`` (statement ran), ``{"k": k, "failed": ...}`` (statement raised: the run stops),
``{"k": k, "v": <encoded value>}`` or ``{"k": k, "raised": ...}`` (expression); finally
``{"end": n}``.
"""

from __future__ import annotations

import collections
import collections.abc
import ctypes
import datetime
import decimal
import fractions
import json
import os
import resource
import sys

MAX_NODES = 1_000_000  # values with more parts than this are refused (the trusted side has the same cap)
MAX_DEPTH = 100
INT_JSON_BITS = 62  # larger ints travel as hex strings (JSON readers may limit digits)

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 1, 2, 4, 8, 32, 4096
MS_REC, MS_PRIVATE = 0x4000, 1 << 18
SYS_MOUNT_SETATTR, AT_FDCWD, AT_RECURSIVE, MOUNT_ATTR_RDONLY = 442, -100, 0x8000, 1
PR_SET_NO_NEW_PRIVS = 38

libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.syscall.restype = ctypes.c_long


# --- input -----------------------------------------------------------------------------------


def read_input() -> dict:
    data = json.loads(sys.stdin.buffer.read().decode("utf-8", "replace"))

    def fix(s):  # lone surrogates cannot be compiled: make them U+FFFD, as the old harness did
        return None if s is None else s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")

    steps = data.get("steps")
    return {
        "code": fix(data["code"]),
        "steps": None if steps is None else [(kind, fix(src)) for kind, src in steps],
    }


# --- containment -------------------------------------------------------------------------------


def mount(src, dst, fstype, flags, data=None) -> None:
    def enc(s):
        return None if s is None else s.encode()

    if libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), "mount " + str(dst))


def write_file(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


class MountAttr(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("attr_set", "attr_clr", "propagation", "userns_fd")]


def enter_namespaces(cfg: dict, feats: list) -> None:
    """New network, mount and PID namespaces (and a user namespace when not root); the file tree
    read-only; one size-capped tmpfs for every writable place."""
    root = os.geteuid() == 0
    uid, gid = os.getuid(), os.getgid()
    workdir = cfg["workdir"]
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | (0 if root else CLONE_NEWUSER)
    if libc.unshare(flags) != 0:
        return
    feats += ["netns", "pidns"]
    try:
        if not root:
            write_file("/proc/self/setgroups", "deny")
            write_file("/proc/self/uid_map", "%d %d 1" % (uid, uid))
            write_file("/proc/self/gid_map", "%d %d 1" % (gid, gid))
        mount(None, "/", None, MS_REC | MS_PRIVATE)
        wfd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
        attr = MountAttr(MOUNT_ATTR_RDONLY, 0, 0, 0)
        if libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr), ctypes.sizeof(attr)) == 0:
            feats.append("readonly-root")
        # One size-limited tmpfs holds every writable place (the working directory, /tmp, /var/tmp,
        # /dev/shm): the code's writes never reach the host's disk and cannot total more than
        # disk_mb; it vanishes with the namespace.
        scratch = None
        for d in ("/tmp", "/var/tmp", "/dev/shm"):
            if os.path.isdir(d) and not os.path.islink(d):
                try:
                    if scratch is None:
                        mount("tmpfs", d, "tmpfs", MS_NOSUID | MS_NODEV, "size=%dm,mode=1777" % cfg["disk_mb"])
                        scratch = d
                    else:
                        sub = scratch + "/.jallm" + d.replace("/", "-")
                        os.mkdir(sub)
                        os.chmod(sub, 0o1777)
                        mount(sub, d, None, MS_BIND)
                    feats.append("tmpfs:" + d)
                except OSError:
                    pass
        os.makedirs(workdir, exist_ok=True)  # made anew inside the tmpfs when it lies under /tmp
        if scratch is not None:
            if os.stat(workdir).st_dev != os.stat(scratch).st_dev:
                os.mkdir(scratch + "/.jallm-work")
                mount(scratch + "/.jallm-work", workdir, None, MS_BIND)
            if cfg["uid"] is not None:
                os.chown(workdir, cfg["uid"], cfg["uid"])
            os.chmod(workdir, 0o700)
            feats.append("disk-cap:%dm" % cfg["disk_mb"])
        else:
            mount("/proc/self/fd/%d" % wfd, workdir, None, MS_BIND)
            mount(None, workdir, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV)
        os.close(wfd)
        # The interpreter may live where the sandbox uid cannot read (e.g. under /root):
        # show it at a neutral path inside the private /tmp and import from there.
        if root and cfg["uid"] is not None and "tmpfs:/tmp" in feats:
            base = os.path.realpath(sys.base_prefix)
            alias = "/tmp/.jallm-python"
            os.makedirs(alias, exist_ok=True)
            mount(base, alias, None, MS_BIND | MS_REC)
            sys.path[:] = [alias + p[len(base):] if p.startswith(base) else p for p in sys.path]
        feats.append("mountns")
    except OSError as exc:
        feats.append("mountns-failed:%s" % exc)


PRELOAD = ("math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string", "operator", "copy",
           "random", "statistics", "decimal", "fractions", "datetime", "json", "typing", "array", "cmath", "time",
           "unittest", "sys", "os", "traceback")


def preload() -> None:
    """Imports the sandbox uid may not be able to do later."""
    for m in PRELOAD:
        try:
            __import__(m)
        except ImportError:
            pass


def fresh_proc(feats: list) -> None:
    """PID 1 of the new PID namespace mounts its own /proc: the host's processes (the harness
    among them) are not even nameable, so /proc/PID/mem and friends cannot reach them."""
    try:
        mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
        feats.append("procfs")
    except OSError:
        pass


def drop_privileges(cfg: dict, feats: list) -> None:
    if os.geteuid() == 0 and cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])  # from root to another uid: every capability goes
        feats.append("uid:%d" % cfg["uid"])
    else:  # in a user namespace the process holds every capability there: give them up
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this process
        data = (ctypes.c_uint32 * 6)()
        if libc.capset(header, data) == 0:
            feats.append("no-caps")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    lim = cfg["limits"]
    for name, value in (("RLIMIT_CORE", 0), ("RLIMIT_CPU", lim["cpu"]), ("RLIMIT_AS", lim["as"]),
                        ("RLIMIT_FSIZE", lim["fsize"]), ("RLIMIT_NPROC", lim["nproc"])):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
            feats.append(name)
        except (ValueError, OSError):
            pass


def block_sockets(mark: str) -> None:
    import _socket
    import socket

    def blocked(*args, **kwargs):
        raise PermissionError("blocked: network (" + mark + ")")

    class BlockedSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            blocked()

    for mod in (socket, _socket):
        for attr in ("socket", "SocketType"):
            if hasattr(mod, attr):
                setattr(mod, attr, BlockedSocket)
        for attr in ("socketpair", "fromfd", "create_connection", "create_server", "getaddrinfo"):
            if hasattr(mod, attr):
                setattr(mod, attr, blocked)


# --- values out as plain data ------------------------------------------------------------------


def _small(i: int):
    return i if i.bit_length() <= INT_JSON_BITS else {"t": "int", "v": hex(i)}


def _tz_seconds(v):
    off = v.utcoffset()
    return None if off is None else off // datetime.timedelta(microseconds=1)


# Exact types and what they travel as; a subclass travels as the first of these in its MRO.
_SCALARS = {
    int: lambda v: _small(int.__int__(v)),
    float: lambda v: float.__float__(v),
    str: lambda v: str.__str__(v),
    bytes: lambda v: {"t": "bytes", "v": bytes.hex(v)},
    bytearray: lambda v: {"t": "bytearray", "v": bytearray.hex(v)},
    # The base type's own fields: a subclass's real/imag/__complex__ are never called (complex.__complex__
    # exists only from Python 3.11).
    complex: lambda v: {"t": "complex", "v": [complex.real.__get__(v), complex.imag.__get__(v)]},
    range: lambda v: {"t": "range", "v": [_small(v.start), _small(v.stop), _small(v.step)]},
    decimal.Decimal: lambda v: {"t": "Decimal", "v": decimal.Decimal.__str__(v)},
    fractions.Fraction: lambda v: {"t": "Fraction", "v": [_small(v.numerator), _small(v.denominator)]},
    datetime.datetime: lambda v: {"t": "datetime", "v": [v.year, v.month, v.day, v.hour, v.minute, v.second,
                                                         v.microsecond, _tz_seconds(v)]},
    datetime.date: lambda v: {"t": "date", "v": [v.year, v.month, v.day]},
    datetime.time: lambda v: {"t": "time", "v": [v.hour, v.minute, v.second, v.microsecond, _tz_seconds(v)]},
    datetime.timedelta: lambda v: {"t": "timedelta", "v": [v.days, v.seconds, v.microseconds]},
    type(...): lambda v: {"t": "Ellipsis"},
}
_SEQUENCES = {tuple: "tuple", set: "set", frozenset: "frozenset", collections.deque: "deque",
              type({}.keys()): "keys", type({}.values()): "values"}
_MAPPINGS = {collections.Counter: "Counter", collections.OrderedDict: "OrderedDict", dict: "dict"}
_ITEMS_VIEW: type = type({}.items())


def encode(value):
    """``value`` as JSON-able plain data, or ValueError.

    None, bools, strings, floats (NaN and infinities as JSON's extensions), lists and ints up to 62
    bits are themselves; everything else is an object with a tag ``t``: big ``int`` (hex), ``tuple``,
    ``set``, ``frozenset``, ``deque`` (+ ``maxlen``), ``dict``/``Counter``/``OrderedDict`` (``v``: key-value
    pairs), ``bytes``/``bytearray`` (hex), ``complex``, ``range``, ``Decimal`` (str), ``Fraction``,
    ``date``/``time``/``datetime``/``timedelta`` (fields), ``keys``/``values``/``items`` (dict views),
    ``iter`` (an iterator, run to its end), ``Ellipsis``, ``opaque`` (any other object without
    ``__bool__``/``__len__``: only its type's name, and on the trusted side it equals nothing and is
    true).  Subclasses travel as their built-in base (a namedtuple as a tuple, an IntEnum as an
    int, a defaultdict as a dict).  Cycles, more than MAX_NODES parts or nesting deeper than
    MAX_DEPTH are refused.
    """
    budget = [MAX_NODES]
    active: set = set()

    def enc(v, depth):
        budget[0] -= 1
        if budget[0] < 0:
            raise ValueError("the value has more than %d parts" % MAX_NODES)
        if depth > MAX_DEPTH:
            raise ValueError("the value is nested deeper than %d" % MAX_DEPTH)
        t = type(v)
        if v is None or t is bool or t is str or t is float:
            return v
        if t is int:
            return _small(v)
        for base in t.__mro__:
            if base in _SCALARS:
                return _SCALARS[base](v)
            if base is list or base in _SEQUENCES or base in _MAPPINGS or base is _ITEMS_VIEW:
                if id(v) in active:
                    raise ValueError("the value contains itself")
                active.add(id(v))
                try:
                    if base is list:
                        return [enc(x, depth + 1) for x in list.__iter__(v)]
                    if base in _MAPPINGS:
                        return {"t": _MAPPINGS[base], "v": [[enc(k, depth + 1), enc(x, depth + 1)]
                                                             for k, x in dict.items(v)]}
                    if base is _ITEMS_VIEW:
                        return {"t": "items", "v": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v]}
                    out = {"t": _SEQUENCES[base], "v": [enc(x, depth + 1) for x in base.__iter__(v)]}
                    if base is collections.deque:
                        out["maxlen"] = v.maxlen
                    return out
                finally:
                    active.discard(id(v))
        if isinstance(v, collections.abc.Iterator):
            return {"t": "iter", "v": [enc(x, depth + 1) for x in v]}
        if any("__bool__" in vars(c) or "__len__" in vars(c) for c in t.__mro__ if c is not object):
            raise ValueError("not plain data: a %s" % t.__name__)
        return {"t": "opaque", "type": ("%s.%s" % (t.__module__, t.__qualname__))[:200]}

    return enc(value, 0)


# --- running -------------------------------------------------------------------------------------


def describe(exc: BaseException) -> str:
    try:
        text = "%s: %s" % (type(exc).__name__, exc)
    except BaseException:
        text = type(exc).__name__
    return text[:500]


def print_candidate_error() -> None:
    """The candidate's traceback on its stderr, without this program's frame; best effort, since
    the candidate may have broken traceback (no verdict depends on it)."""
    try:
        import traceback

        et, ev, tb = sys.exc_info()
        traceback.print_exception(et, ev, tb.tb_next if tb is not None else None)
    except BaseException:
        pass


def run_plain(code: str, g: dict, mark: str) -> None:
    """No tests: the verdict is the exit status (the old llm-jp-eval way; the code can fake it)."""
    try:
        exec(compile(code, "<generated>", "exec"), g)
    except SystemExit as exc:
        c = exc.code
        if c is not None and not isinstance(c, int):
            sys.stderr.write(str(c) + "\n")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(c if isinstance(c, int) else (0 if c is None else 1))
    except MemoryError:
        sys.stderr.write("MemoryError\n" + mark + " memory\n")
        os._exit(1)
    except BaseException:
        print_candidate_error()
        os._exit(1)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        os._exit(1)
    os._exit(0)


def run_steps(code: str, steps: list, g: dict, fd: int, mark: str) -> None:
    """Run the code, then each planned step, reporting every outcome on ``fd``; never returns."""
    dumps, write, exit_ = json.dumps, os.write, os._exit

    def emit(record: dict) -> None:
        data = (dumps(record, separators=(",", ":")) + "\n").encode("ascii")
        while data:
            data = data[write(fd, data):]

    try:
        program = compile(code, "<generated>", "exec")
        exec(program, g)
    except BaseException as exc:
        if isinstance(exc, MemoryError):
            sys.stderr.write("MemoryError\n" + mark + " memory\n")
        else:
            print_candidate_error()
        emit({"code": "raised", "error": describe(exc)})
        exit_(1)
    emit({"code": "ok"})
    for k, (kind, src) in enumerate(steps):
        if kind == "exec":
            try:
                exec(compile(src, "<tests>", "exec"), g)
            except BaseException as exc:
                emit({"k": k, "failed": describe(exc)})
                exit_(1)
            emit({"k": k})
            continue
        try:
            record = {"k": k, "v": encode(eval(compile(src, "<tests>", "eval"), g))}
        except BaseException as exc:
            record = {"k": k, "raised": describe(exc)}
        emit(record)
    emit({"end": len(steps)})
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        exit_(0)


def child(cfg: dict, inp: dict, feats: list) -> None:
    if "pidns" in feats and "mountns" in feats:
        fresh_proc(feats)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.chdir(cfg["workdir"])
    drop_privileges(cfg, feats)
    block_sockets(cfg["mark"])
    if cfg["report"]:
        sys.stderr.write(cfg["mark"] + " features " + json.dumps(feats) + "\n")
        sys.stderr.flush()
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    if inp["steps"] is None:
        run_plain(inp["code"], g, cfg["mark"])
    run_steps(inp["code"], inp["steps"], g, cfg["report_fd"], cfg["mark"])


def main() -> None:
    cfg = json.loads(sys.argv[1])
    inp = read_input()
    feats: list = []
    if cfg["namespaces"]:
        enter_namespaces(cfg, feats)
    if cfg["uid"] is None or "mountns" not in feats:
        preload()
    import _socket  # noqa: F401  (imported while the interpreter is surely readable)
    import signal  # noqa: F401
    import socket  # noqa: F401
    import traceback  # noqa: F401
    if cfg["report_fd"] is not None:
        os.set_inheritable(cfg["report_fd"], False)  # a process the code starts does not get it for free
    if "pidns" not in feats:
        child(cfg, inp, feats)
    pid = os.fork()
    if pid == 0:
        child(cfg, inp, feats)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        sys.stderr.write("\n%s signal %d\n" % (cfg["mark"], sig))
        sys.stderr.flush()
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
