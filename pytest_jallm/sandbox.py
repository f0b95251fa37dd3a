"""Run untrusted, model-generated Python code (``code_exec``) in a contained child process.

The child is a real program, :mod:`pytest_jallm._sandbox_child`, run by path with the code on
stdin.  What it gets, in order of strength (each layer is tried; a layer that the kernel or the
privileges refuse is skipped and the rest still apply -- :func:`features` says which are active):

1. **Namespaces** (Linux): ``unshare`` of a new network, mount and PID namespace (plus a user
   namespace when not root).  The network namespace has only a downed loopback: nothing can be
   reached, not even 127.0.0.1, also from subprocesses or ctypes.  In the mount namespace the whole
   file tree is made read-only (``mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)``) and one private
   tmpfs of ``max_disk_mb`` (64 MB) holds every writable place: ``/tmp``, ``/var/tmp``, ``/dev/shm``
   and the working directory.  Nothing the code writes reaches the host's disk, the total is
   capped, and it all vanishes with the namespace (RAM, charged to the caller's memory cgroup).
   The code runs as PID 1 of the PID namespace, so when it exits or is killed every process it
   started dies with it, including ones that called setsid(); it mounts its own ``/proc``, so no
   process outside the namespace -- the harness included -- can even be named (``procfs``).
2. **Unprivileged user**: when started as root the code runs as a per-run unused uid/gid (no
   supplementary groups, ``PR_SET_NO_NEW_PRIVS``), so ``RLIMIT_NPROC`` is enforced (root is exempt)
   and counts only this run's processes, and file permissions apply.  Started as a normal user,
   the code keeps your uid inside its user namespace and gives up the capabilities it holds
   there (``no-caps``), so it cannot undo the read-only mounts.
3. **Resource limits** in the child: ``RLIMIT_CPU`` (timeout), ``RLIMIT_AS`` (memory_mb),
   ``RLIMIT_FSIZE`` (max_file_mb; also bounds captured stdout/stderr and the report), ``RLIMIT_NPROC``
   (max_procs) and ``RLIMIT_CORE`` = 0.
4. **Process**: ``sys.executable -I -S -B`` (isolated mode: no ``PYTHON*`` variables, no user or
   site packages, no .pyc writes), a new session killed as a whole (SIGKILL to the process group)
   at the wall-clock timeout, a scrubbed environment (PATH, HOME/TMPDIR = the working directory,
   LANG; nothing of the caller's, so no API keys), stdin from the parent only to pass the input.
5. **Python-level guard** installed before the code runs: creating any socket raises
   ``PermissionError("blocked: network ...")``.

**The verdict** (``run_python(code, tests=...)``, what ``code_exec`` uses) is never taken in the
child.  :mod:`pytest_jallm.code_check` splits the tests in this process: the child runs the code,
the tests' statements and the calls into the code (``add(1, 2)`` of ``assert add(1, 2) == 3``)
and writes each value as plain data on a report file; this process rebuilds the values as
built-in types and evaluates the asserts itself.  Threat model -- the code controls everything in
its process (memory, built-ins, modules, stdout, stderr, exit status, the report) and so the
*values of its own calls*, which it could choose anyway by returning them; it does not control the
expected values (they never enter its process), the comparisons, the assert logic, the built-ins
and modules the check uses, or the verdict.  Exit status, stdout and stderr only explain a failure.

What is *not* contained (documented limits):

* Without namespaces (kernel or container refuses ``unshare``): the network is blocked only at the
  Python level (a subprocess or ctypes can still connect), and the code can write wherever its uid
  may -- as root-started, world-writable places such as /tmp; as a normal user, all of that user's
  files, and with your uid and no Yama ptrace restriction it could attach to your processes, this
  harness included.  Timeout kills the process group, so a process that calls setsid() may survive;
  when started as root, every process of the run's private uid is killed afterwards.
* Reading: the file tree stays readable (as the sandbox uid when started as root; with your own uid
  otherwise) -- the code can read world-readable files, the benchmark's own data among them; it
  cannot send them anywhere when the network namespace is active.  CPU/memory are per process: a
  forked child has its own limits.  There is no seccomp filter: kernel attack surface is the normal
  one.  Not a defence against a determined attacker with a kernel exploit.
* Third-party packages are not importable (``-S``); the standard library is.
* The tests are shown to the model in its prompt: an answer that hard-codes the expected values
  passes, here as under any harness (see ``code_check`` for which tests cannot be checked at all).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

from . import code_check
from .code_check import TestsNotCheckable

__all__ = ["SandboxResult", "TestsNotCheckable", "features", "run_python", "run_python_verbose"]

_TAIL_BYTES = 4096
_MARK = "__jallm_sandbox__"


@dataclass(frozen=True)
class SandboxResult:
    passed: bool
    reason: str  # "ok", "timeout", "memory", "file size limit", "blocked: network", "exit code N: ..."


# The child program, run by path (it imports nothing of this package): see its docstring.
_CHILD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_sandbox_child.py")


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


def _tail(f) -> str:
    """The last _TAIL_BYTES of a file the harness holds open (read through its own descriptor: code
    running with the harness's uid could have swapped the path for a FIFO)."""
    try:
        size = os.fstat(f.fileno()).st_size
        data = os.pread(f.fileno(), _TAIL_BYTES, max(0, size - _TAIL_BYTES))
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def _read_all(f, limit: int) -> bytes:
    try:
        return os.pread(f.fileno(), limit, 0)
    except OSError:
        return b""


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
    plan = code_check.plan(tests, code) if tests is not None else None  # TestsNotCheckable before anything runs
    root = os.geteuid() == 0
    uid = _next_uid() if root else None
    private = tempfile.mkdtemp(prefix="jallm-sbx-io-")
    workdir = tempfile.mkdtemp(prefix="jallm-sbx-")
    try:
        if uid is not None:
            os.chown(workdir, uid, uid)
        nproc = max_procs if root else _user_tasks(os.getuid()) + max_procs
        cfg: dict[str, Any] = {
            "mark": _MARK,
            "workdir": os.path.realpath(workdir),
            "uid": uid,
            "namespaces": namespaces and sys.platform.startswith("linux"),
            "report": report,
            "disk_mb": max(1, int(max_disk_mb)),
            "report_fd": None,
            "limits": {
                "cpu": max(1, int(timeout_s) + 1),
                "as": max(64, memory_mb) * 1024 * 1024,
                "fsize": max(1, max_file_mb) * 1024 * 1024,
                "nproc": max(1, nproc),
            },
        }
        env: dict[str, str] = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": cfg["workdir"],
            "TMPDIR": cfg["workdir"],
            "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8",
        }
        timed_out = False
        with contextlib.ExitStack() as stack:
            out, err, rep = (stack.enter_context(open(os.path.join(private, n), "w+b"))
                             for n in ("stdout", "stderr", "report"))
            if plan is not None:
                cfg["report_fd"] = rep.fileno()
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-B", _CHILD, json.dumps(cfg)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
                cwd=cfg["workdir"],
                env=env,
                start_new_session=True,
                close_fds=True,
                pass_fds=() if plan is None else (rep.fileno(),),
            )
            try:
                assert proc.stdin is not None
                steps = None if plan is None else plan.steps
                proc.stdin.write(json.dumps({"code": code, "steps": steps}).encode("ascii"))
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
            stdout, stderr = _tail(out), _tail(err)
            result = _classify(proc.returncode, timed_out, stderr)
            if plan is not None:
                result = _checked(plan, _read_all(rep, cfg["limits"]["fsize"] + 1), result, stderr)
        return result, stdout, stderr
    finally:
        _remove(workdir)
        _remove(private)


def _checked(plan: code_check.Plan, report: bytes, process: SandboxResult, stderr: str) -> SandboxResult:
    """The trusted check's verdict; when the child stopped short of what it needs, why it stopped."""
    verdict = code_check.judge(plan, report)
    if verdict.passed:
        return SandboxResult(True, "ok")
    if verdict.complete:
        if verdict.reason.startswith("the generated code raised"):  # its traceback is on stderr
            tail = "\n".join(line for line in stderr.strip().splitlines() if _MARK not in line)[-500:]
            return SandboxResult(False, "the generated code raised before the tests ran: " + tail)
        return SandboxResult(False, verdict.reason)
    if not process.passed:
        return process
    return SandboxResult(False, "no report: the program ended before the tests finished")


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
    With ``tests`` (Python source, typically asserts): passed iff every assert holds, evaluated in
    this process over the plain values of the calls the child made into the code (module notes;
    :mod:`pytest_jallm.code_check`).  Raises :class:`TestsNotCheckable` for tests that cannot be
    checked that way (they do not parse, or nest asserts in other statements).
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

