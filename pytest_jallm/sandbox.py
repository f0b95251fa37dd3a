"""Run untrusted, model-generated Python code (``code_exec``) in a contained child process.

What the child gets, in order of strength (each layer is tried; a layer that the kernel or the
privileges refuse is skipped and the rest still apply -- :func:`features` says which are active):

1. **Namespaces** (Linux): ``unshare`` of a new network, mount and PID namespace (plus a user
   namespace when not root).  The network namespace has only a downed loopback: nothing can be
   reached, not even 127.0.0.1, also from subprocesses or ctypes.  In the mount namespace the whole
   file tree is made read-only (``mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)``) and one private
   tmpfs of ``max_disk_mb`` (64 MB) holds every writable place: ``/tmp``, ``/var/tmp``, ``/dev/shm``
   and the working directory.  Nothing the code writes reaches the host's disk, the total is
   capped, and it all vanishes with the namespace (RAM, charged to the caller's memory cgroup).  The code runs as PID 1 of the PID namespace, so when it
   exits or is killed every process it started dies with it, including ones that called setsid().
2. **Unprivileged user**: when started as root the code runs as a per-run unused uid/gid (no
   supplementary groups, ``PR_SET_NO_NEW_PRIVS``), so ``RLIMIT_NPROC`` is enforced (root is exempt)
   and counts only this run's processes, and file permissions apply.
3. **Resource limits** in the child: ``RLIMIT_CPU`` (timeout), ``RLIMIT_AS`` (memory_mb),
   ``RLIMIT_FSIZE`` (max_file_mb; also bounds captured stdout/stderr), ``RLIMIT_NPROC`` (max_procs)
   and ``RLIMIT_CORE`` = 0.
4. **Process**: ``sys.executable -I -S -B`` (isolated mode: no ``PYTHON*`` variables, no user or
   site packages, no .pyc writes), a new session killed as a whole (SIGKILL to the process group)
   at the wall-clock timeout, a scrubbed environment (PATH, HOME/TMPDIR = the working directory,
   LANG; nothing of the caller's, so no API keys), stdin from the parent only to pass the code.
5. **Python-level guard** installed before the code runs: creating any socket raises
   ``PermissionError("blocked: network ...")``.
6. **Pass signal** (``run_python(code, tests=...)``, what ``code_exec`` uses): the harness compiles the
   tests and takes every reference it needs before the code runs, runs the code, restores pristine
   builtins, evaluates each ``assert`` itself (operands must be plain values: built-in types, or
   subclasses such as namedtuple/Counter whose comparison methods are untouched) and only then
   writes a per-run random secret (sent on stdin, never in argv or the environment) to a private
   pipe.  No secret, no pass: ``os._exit(0)``, ``SystemExit``, patched ``traceback``/``sys``/
   ``builtins`` and objects that equal everything all fail.

What is *not* contained (documented limits):

* Without namespaces (kernel or container refuses ``unshare``): the network is blocked only at the
  Python level (a subprocess or ctypes can still connect), and the code can write wherever its uid
  may -- as root-started, world-writable places such as /tmp; as a normal user, all of that user's
  files.  Timeout kills the process group, so a process that calls setsid() may survive; when
  started as root, every process of the run's private uid is killed afterwards, which covers that.
* Reading: the file tree stays readable (as the sandbox uid when started as root; with your own uid
  otherwise) -- the code can read world-readable files; it cannot send them anywhere when the network
  namespace is active.  CPU/memory are per process: a forked child has its own limits.  There is no
  seccomp filter: kernel attack surface is the normal one.  Not a defence against a determined
  attacker with a kernel exploit; it is meant for buggy or sloppy generated code.
* Third-party packages are not importable (``-S``); the standard library is.
* The pass signal stops casual and accidental forgery, not a determined one: the code runs in the
  harness's process, so it can walk the harness's frames or the garbage collector to find the secret
  or the expected values, patch a standard-library function the tests call (``math.isclose``), or
  rewrite memory with ctypes.  Asserts nested inside other statements (``for``/``if``) are
  evaluated by Python's own ``assert``.
"""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass

__all__ = ["SandboxResult", "features", "run_python", "run_python_verbose"]

_TAIL_BYTES = 4096
_MARK = "__jallm_sandbox__"


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    reason: str  # "ok", "timeout", "memory", "file size limit", "blocked: network", "exit code N: ..."


# The child's bootstrap.  It runs as `python -I -S -B -c BOOT <json>` with the code on stdin.
# Kept free of imports from this package so it works with -S and in any working directory.
_BOOT = r"""
import ctypes, json, os, resource, sys
cfg = json.loads(sys.argv[1])
def _input():
    d = json.loads(sys.stdin.buffer.read().decode("utf-8", "replace"))
    fix = lambda s: None if s is None else s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return fix(d["code"]), fix(d.get("tests")), d.get("token")
code, tests, _secret = _input()
MARK = cfg["mark"]
feats = []
libc = ctypes.CDLL(None, use_errno=True)
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
libc.syscall.restype = ctypes.c_long
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x20000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 0x4000, 1 << 18
workdir = cfg["workdir"]
root = os.geteuid() == 0
def mount(src, dst, fstype, flags, data=None):
    enc = lambda s: None if s is None else s.encode()
    if libc.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)) != 0:
        raise OSError(ctypes.get_errno(), "mount " + str(dst))
def write(path, text):
    with open(path, "w") as f:
        f.write(text)
if cfg["namespaces"]:
    uid, gid = os.getuid(), os.getgid()
    flags = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID | (0 if root else CLONE_NEWUSER)
    if libc.unshare(flags) == 0:
        feats += ["netns", "pidns"]
        try:
            if not root:
                write("/proc/self/setgroups", "deny")
                write("/proc/self/uid_map", "%d %d 1" % (uid, uid))
                write("/proc/self/gid_map", "%d %d 1" % (gid, gid))
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            wfd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY)
            class Attr(ctypes.Structure):
                _fields_ = [(n, ctypes.c_uint64) for n in ("set", "clr", "prop", "userns")]
            attr = Attr(1, 0, 0, 0)  # MOUNT_ATTR_RDONLY
            if libc.syscall(442, -100, b"/", 0x8000, ctypes.byref(attr), ctypes.sizeof(attr)) == 0:
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
if cfg["uid"] is None or "mountns" not in feats:
    # Imports the sandbox uid may not be able to do later.
    for m in ("math", "re", "collections", "itertools", "functools", "heapq", "bisect", "string",
              "operator", "copy", "random", "statistics", "decimal", "fractions", "datetime", "json",
              "typing", "array", "cmath", "time", "unittest", "sys", "os", "traceback"):
        try:
            __import__(m)
        except ImportError:
            pass
import socket, _socket, traceback, signal
def print_candidate_error():
    # The candidate's traceback for its stderr, without the harness's own frame; best effort,
    # since the candidate may have broken traceback (the verdict never depends on it).
    try:
        et, ev, tb = sys.exc_info()
        traceback.print_exception(et, ev, tb.tb_next if tb is not None else None)
    except BaseException:
        pass
def make_judge(secret, fd):
    # Everything the verdict needs is taken now, before the candidate runs: it may patch os, sys,
    # traceback, builtins or its own classes, but not these references. The asserts are compiled
    # now and evaluated by the judge, each operand required to be a plain value (built-in types,
    # or subclasses such as namedtuple and collections.Counter whose comparison methods are the
    # untouched originals), so an object that "equals everything" fails. A pass is the secret,
    # written on fd `fd` only after the last assert: an early exit, SystemExit or a patched
    # exit path leaves it unwritten.
    import ast, builtins, collections, datetime, decimal, fractions, operator
    W, X, T, TGA, MRO = os.write, os._exit, type, type.__getattribute__, type.__dict__["__mro__"].__get__
    TDICT = type.__dict__["__dict__"].__get__
    DICT_ITEMS, EVAL, EXEC, NONE = dict.items, eval, exec, type(None)
    pristine = dict(builtins.__dict__)
    os.set_inheritable(fd, False)
    token = secret.encode()
    plain = (int, float, complex, str, bytes, bool, NONE, list, tuple, dict, set, frozenset, range, bytearray,
             datetime.date, datetime.datetime, datetime.time, datetime.timedelta)
    dunders = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__", "__bool__",
               "__len__", "__iter__", "__hash__")
    stdlib = {t: {n: TGA(t, n) for n in dunders if hasattr(t, n)} for t in (
        collections.Counter, collections.OrderedDict, collections.defaultdict, collections.deque,
        decimal.Decimal, fractions.Fraction)}
    ops = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
           ast.In: lambda a, b: operator.contains(b, a), ast.NotIn: lambda a, b: not operator.contains(b, a)}
    def fail(msg):
        try:
            W(2, ("\n" + msg + "\n").encode("utf-8", "replace"))
        finally:
            X(1)
    def is_plain(v, budget):
        stack = [(v, 0)]
        while stack:
            v, depth = stack.pop()
            budget[0] -= 1
            if depth > 64 or budget[0] < 0:
                return False
            t = T(v)
            if t in stdlib:
                if any(TGA(t, n) is not f for n, f in stdlib[t].items()):
                    return False
                base = dict if issubclass(t, dict) else (collections.deque if t is collections.deque else None)
            else:
                base = next((b for b in MRO(t) if b in plain), None)
                if base is None:
                    return False
                if t is not base and any(TGA(t, n) is not TGA(base, n) for n in dunders if hasattr(base, n)):
                    return False
            if base is dict:
                for k, x in DICT_ITEMS(v):
                    stack += [(k, depth + 1), (x, depth + 1)]
            elif base in (list, tuple, set, frozenset, collections.deque):
                stack += [(x, depth + 1) for x in base.__iter__(v)]
        return True
    def default_truthy(v):
        # No __bool__/__len__ anywhere in its class chain (e.g. re.Match): always true, like True itself.
        return not any("__bool__" in TDICT(c) or "__len__" in TDICT(c) for c in MRO(T(v)))
    def value(code, g, src, truth=False):
        try:
            v = EVAL(code, g)
        except BaseException as e:
            fail("test raised %s: %s" % (T(e).__name__, src))
        if truth and default_truthy(v):
            return True
        if not is_plain(v, [1_000_000]):
            fail("test value is not a plain value (type %s): %s" % (T(v).__name__, src))
        return v
    def compile_tests(text):
        steps = []
        for node in ast.parse(text, "<tests>").body:
            src = ast.get_source_segment(text, node) or "assert"
            expr = lambda e: compile(ast.fix_missing_locations(ast.Expression(e)), "<tests>", "eval")
            if isinstance(node, ast.Assert) and isinstance(node.test, ast.Compare):
                steps.append(("compare", [expr(e) for e in (node.test.left, *node.test.comparators)],
                              [ops[T(o)] for o in node.test.ops], src))
            elif isinstance(node, ast.Assert) and isinstance(node.test, ast.UnaryOp) and isinstance(node.test.op, ast.Not):
                steps.append(("falsy", expr(node.test.operand), None, src))
            elif isinstance(node, ast.Assert):
                steps.append(("truthy", expr(node.test), None, src))
            else:
                steps.append(("exec", compile(ast.Module([node], []), "<tests>", "exec"), None, src))
        return steps
    def judge(code, tests, g):
        try:
            steps = compile_tests(tests)
            program = compile(code, "<generated>", "exec")
        except BaseException as e:
            fail("%s: %s" % (T(e).__name__, e))
        try:
            EXEC(program, g)
        except BaseException:
            print_candidate_error()
            fail("the generated code raised before the tests ran")
        g["__builtins__"] = dict(pristine)
        for kind, code_, cmp, src in steps:
            if kind == "exec":
                try:
                    EXEC(code_, g)
                except BaseException as e:
                    fail("test raised %s: %s" % (T(e).__name__, src))
            elif kind == "compare":
                vals = [value(c, g, src) for c in code_]
                for i, op in enumerate(cmp):
                    try:
                        ok = op(vals[i], vals[i + 1])
                    except BaseException as e:
                        fail("test raised %s: %s" % (T(e).__name__, src))
                    if ok is not True:
                        fail("AssertionError: " + src)
            elif kind == "truthy":
                if not value(code_, g, src, truth=True):
                    fail("AssertionError: " + src)
            elif value(code_, g, src):
                fail("AssertionError: " + src)
        try:
            W(fd, token)
        finally:
            X(0)
    return judge
judge = make_judge(_secret, cfg["report_fd"]) if tests is not None else None
del _secret
def child():
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.chdir(workdir)
    if root and cfg["uid"] is not None:
        os.setgroups([])
        os.setgid(cfg["uid"])
        os.setuid(cfg["uid"])
        feats.append("uid:%d" % cfg["uid"])
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
    lim = cfg["limits"]
    for name, value in (("RLIMIT_CORE", 0), ("RLIMIT_CPU", lim["cpu"]), ("RLIMIT_AS", lim["as"]),
                        ("RLIMIT_FSIZE", lim["fsize"]), ("RLIMIT_NPROC", lim["nproc"])):
        try:
            resource.setrlimit(getattr(resource, name), (value, value))
            feats.append(name)
        except (ValueError, OSError):
            pass
    def blocked(*args, **kwargs):
        raise PermissionError("blocked: network (" + MARK + ")")
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
    if cfg["report"]:
        sys.stderr.write(MARK + " features " + json.dumps(feats) + "\n")
        sys.stderr.flush()
    g = {"__name__": "__main__", "__builtins__": __builtins__}
    if judge is not None:
        judge(code, tests, g)  # never returns
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
        sys.stderr.write("MemoryError\n" + MARK + " memory\n")
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
if "pidns" in feats:
    pid = os.fork()
    if pid == 0:
        child()
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        sys.stderr.write("\n%s signal %d\n" % (MARK, sig))
        sys.stderr.flush()
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status))
child()
"""

_uid_counter = itertools.count()
_uid_lock = threading.Lock()
_UID_BASE = 1_500_000


def _next_uid() -> int:
    with _uid_lock:
        n = next(_uid_counter)
    return _UID_BASE + (os.getpid() % 4096) * 1024 + n % 1024


def _kill_uid(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` (only ever a run's private uid)."""
    for _ in range(3):
        found = False
        try:
            entries = os.listdir("/proc")
        except OSError:
            return
        for entry in entries:
            if not entry.isdigit():
                continue
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found = True
                    os.kill(int(entry), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass
        if not found:
            return


def _tail(path: str) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_BYTES))
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def _user_tasks(uid: int) -> int:
    count = 0
    try:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.stat(f"/proc/{entry}").st_uid == uid:
                        count += len(os.listdir(f"/proc/{entry}/task"))
                except OSError:
                    pass
    except OSError:
        return 0
    return count


def _run(
    code: str,
    *,
    timeout_s: float,
    memory_mb: int,
    max_file_mb: int,
    max_procs: int,
    max_disk_mb: int = 64,
    namespaces: bool = True,
    report: bool = False,
    tests: str | None = None,
) -> tuple[SandboxResult, str, str]:
    root = os.geteuid() == 0
    secret = secrets.token_hex(16) if tests is not None else None
    report_r, report_w = os.pipe() if tests is not None else (None, None)
    uid = _next_uid() if root else None
    private = tempfile.mkdtemp(prefix="jallm-sbx-io-")
    workdir = tempfile.mkdtemp(prefix="jallm-sbx-")
    out_path, err_path = os.path.join(private, "stdout"), os.path.join(private, "stderr")
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        nproc = max_procs if root else _user_tasks(os.getuid()) + max_procs
        cfg = {
            "mark": _MARK,
            "workdir": os.path.realpath(workdir),
            "uid": uid,
            "namespaces": namespaces and sys.platform.startswith("linux"),
            "report": report,
            "disk_mb": max(1, int(max_disk_mb)),
            "report_fd": report_w,
            "limits": {
                "cpu": max(1, int(timeout_s) + 1),
                "as": max(64, memory_mb) * 1024 * 1024,
                "fsize": max(1, max_file_mb) * 1024 * 1024,
                "nproc": max(1, nproc),
            },
        }
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": cfg["workdir"],
            "TMPDIR": cfg["workdir"],
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }
        argv = [sys.executable, "-I", "-S", "-B", "-c", _BOOT, json.dumps(cfg)]
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=cfg["workdir"],
                env=env,
                start_new_session=True,
                close_fds=True,
                pass_fds=() if report_w is None else (report_w,),
            )
            if report_w is not None:
                os.close(report_w)
                report_w = None
            try:
                assert proc.stdin is not None
                proc.stdin.write(json.dumps({"code": code, "tests": tests, "token": secret}).encode("ascii"))
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                if uid is not None:
                    _kill_uid(uid)
                proc.wait()
        stdout, stderr = _tail(out_path), _tail(err_path)
        result = _classify(proc.returncode, timed_out, stderr)
        if report_r is not None and not timed_out:
            signalled = _read_report(report_r) == secret.encode()  # type: ignore[union-attr]
            if signalled:
                result = SandboxResult(True, "ok")
            elif result.passed:
                result = SandboxResult(False, "no pass signal: the program ended before the tests finished")
        return result, stdout, stderr
    finally:
        for fd in (report_r, report_w):
            if fd is not None:
                os.close(fd)
        _remove(workdir)
        _remove(private)


def _read_report(fd: int) -> bytes:
    """What the judge (or anything else) wrote on the report pipe, without blocking: every writer
    is dead by now, but a stray descendant might still hold the pipe open."""
    os.set_blocking(fd, False)
    data = b""
    try:
        while len(data) < 4096:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
    except BlockingIOError:
        pass
    return data


def _remove(path: str) -> None:
    def fix(func, p, _exc):  # a directory the code made unreadable
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)


def _classify(rc: int, timed_out: bool, stderr: str) -> SandboxResult:
    if timed_out:
        return SandboxResult(False, "timeout")
    if rc == 0:
        return SandboxResult(True, "ok")
    sig = None
    if rc < 0:
        sig = -rc
    elif f"{_MARK} signal " in stderr:
        try:
            sig = int(stderr.rsplit(f"{_MARK} signal ", 1)[1].split()[0])
        except (IndexError, ValueError):
            sig = None
    if sig == signal.SIGXCPU:
        return SandboxResult(False, "timeout")
    if sig == signal.SIGXFSZ or "File too large" in stderr or "[Errno 27]" in stderr:
        return SandboxResult(False, "file size limit")
    if "MemoryError" in stderr or f"{_MARK} memory" in stderr or "Cannot allocate memory" in stderr:
        return SandboxResult(False, "memory")
    if "blocked: network" in stderr:
        return SandboxResult(False, "blocked: network")
    if sig is not None:
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGKILL:
            return SandboxResult(False, "memory" if "MemoryError" in stderr else "killed: SIGKILL")
        return SandboxResult(False, f"killed: {name}")
    tail = "\n".join(line for line in stderr.strip().splitlines() if _MARK not in line)[-500:]
    return SandboxResult(False, f"exit code {rc}: {tail}")


def run_python(
    code: str,
    *,
    tests: str | None = None,
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    max_file_mb: int = 16,
    max_procs: int = 64,
    max_disk_mb: int = 64,
) -> SandboxResult:
    """Run ``code`` as a Python program in the sandbox.

    Without ``tests``: passed iff it exits with status 0 (the program can fake that).
    With ``tests`` (Python source, typically asserts): the harness runs ``code``, then the tests
    itself, and the run passes only if the harness's per-run secret arrives on a private pipe
    after the last assert held -- see the module notes for what this does and does not stop.
    """
    if not isinstance(code, str):
        code = "" if code is None else str(code)
    result, _, _ = _run(
        code, timeout_s=timeout_s, memory_mb=memory_mb, max_file_mb=max_file_mb, max_procs=max_procs,
        max_disk_mb=max_disk_mb, tests=tests,
    )
    return result


def run_python_verbose(code: str, **kwargs) -> tuple[SandboxResult, str, str]:
    """Like :func:`run_python` but also returns the (bounded) stdout and stderr tails."""
    return _run(code, **{"timeout_s": 10.0, "memory_mb": 512, "max_file_mb": 16, "max_procs": 64, **kwargs})


_features_cache: list[str] | None = None


def features() -> list[str]:
    """The containment layers active on this machine (probed once by running an empty program)."""
    global _features_cache
    if _features_cache is None:
        _, _, err = _run("", timeout_s=10.0, memory_mb=512, max_file_mb=16, max_procs=64, report=True)
        feats: list[str] = []
        for line in err.splitlines():
            if line.startswith(f"{_MARK} features "):
                feats = json.loads(line.split(" ", 2)[2])
        if os.geteuid() == 0:
            feats.append("root-start")
        _features_cache = feats
    return list(_features_cache)

