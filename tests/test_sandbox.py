"""Containment tests for pytest_jallm.sandbox.

Every hostile program here is bounded (loops have a count, sleeps a length) so that a broken
sandbox makes a test fail rather than hang or hurt the machine.  Layers that the kernel may refuse
(namespaces) are checked through ``features()`` and skipped, not failed, where they are missing.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from pytest_jallm import sandbox
from pytest_jallm.sandbox import SandboxResult, run_python, run_python_verbose

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")


@pytest.fixture(scope="module")
def feats() -> list[str]:
    return sandbox.features()


def _procs_of_uid(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture
def fixed_uid(monkeypatch: pytest.MonkeyPatch) -> int:
    """Pin the run's private uid so the test can look for its leftovers (only used as root)."""
    uid = 1_400_000 + os.getpid() % 100_000
    monkeypatch.setattr(sandbox, "_next_uid", lambda: uid)
    return uid


def test_passing_program() -> None:
    result, out, _ = run_python_verbose("def add(a, b):\n    return a + b\nassert add(2, 3) == 5\nprint('fine')\n")
    assert result == SandboxResult(True, "ok")
    assert out == "fine\n"


def test_failing_program_reports_exit_code_and_stderr_tail() -> None:
    result = run_python("def add(a, b):\n    return a - b\nassert add(2, 3) == 5, 'wrong sum'\n")
    assert not result.passed
    assert result.reason.startswith("exit code 1:")
    assert "AssertionError: wrong sum" in result.reason


def test_a_raising_candidate_shows_its_own_traceback_with_or_without_tests() -> None:
    # Both exit paths (plain run, and the judge before any assert) print the candidate's frames only.
    for result in (run_python("x = 1\n1 / 0"), run_python("x = 1\n1 / 0", tests="assert x == 1")):
        assert not result.passed
        assert 'File "<generated>", line 2' in result.reason and "ZeroDivisionError" in result.reason
        assert "harness" not in result.reason and "<string>" not in result.reason
    assert "raised before the tests ran" in run_python("1 / 0", tests="assert True").reason


def test_syntax_error_and_sys_exit_fail() -> None:
    assert run_python("def f(:\n").reason.startswith("exit code 1:")
    assert run_python("import sys\nsys.exit(3)\n").reason.startswith("exit code 3")
    assert run_python("import sys\nsys.exit(0)\n").passed


def test_stdlib_imports_work() -> None:
    code = "import heapq, bisect, re, math, collections, itertools, functools, json, decimal, fractions\nprint(math.gcd(12, 18))\n"
    result, out, _ = run_python_verbose(code)
    assert result.passed, result.reason
    assert out == "6\n"


@pytest.mark.slow
def test_infinite_loop_times_out() -> None:
    assert run_python("while True:\n    pass\n", timeout_s=2) == SandboxResult(False, "timeout")


@pytest.mark.slow
def test_sleeping_program_times_out_on_wall_clock() -> None:
    assert run_python("import time\ntime.sleep(20)\n", timeout_s=1) == SandboxResult(False, "timeout")


def test_allocating_10_gb_is_a_memory_failure() -> None:
    result = run_python("x = bytearray(10 * 1024 ** 3)\nprint(len(x))\n", memory_mb=256)
    assert result == SandboxResult(False, "memory")


def test_writing_100_mb_hits_the_file_size_limit() -> None:
    code = "with open('big.bin', 'wb') as f:\n    for _ in range(100):\n        f.write(b'0' * (1024 * 1024))\n"
    assert run_python(code, max_file_mb=4) == SandboxResult(False, "file size limit")


def test_flooding_stdout_is_bounded() -> None:
    result, out, _ = run_python_verbose("import sys\nfor _ in range(64):\n    sys.stdout.write('x' * (1024 * 1024))\n", max_file_mb=2)
    assert result == SandboxResult(False, "file size limit")
    assert len(out) <= 4096


def test_socket_to_localhost_is_blocked() -> None:
    code = "import socket\ns = socket.create_connection(('127.0.0.1', 9), timeout=1)\n"
    assert run_python(code) == SandboxResult(False, "blocked: network")
    code = "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    assert run_python(code) == SandboxResult(False, "blocked: network")
    code = "import _socket\ns = _socket.socket(2, 1)\n"
    assert run_python(code) == SandboxResult(False, "blocked: network")


def test_network_blocked_below_python_in_a_subprocess(feats: list[str]) -> None:
    if "netns" not in feats:
        pytest.skip("no network namespace here: only the Python-level guard blocks sockets")
    if not os.path.exists("/bin/bash"):
        pytest.skip("needs bash for its /dev/tcp")
    # A subprocess has no Python guard: the kernel (empty network namespace) must refuse.
    code = (
        "import subprocess\n"
        "p = subprocess.run(['/bin/bash', '-c', 'echo x > /dev/tcp/127.0.0.1/9'], capture_output=True, text=True)\n"
        "print(p.returncode, p.stderr)\n"
    )
    result, out, _ = run_python_verbose(code)
    assert result.passed, result.reason
    assert not out.startswith("0 ")
    assert "Network is unreachable" in out  # not "Connection refused": loopback is not even up


def test_fork_bomb_is_contained(fixed_uid: int) -> None:
    code = (
        "import os, sys, time\n"
        "n = 0\n"
        "for _ in range(1000):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(20)\n"
        "        os._exit(0)\n"
        "    n += 1\n"
        "print(n)\n"
    )
    result, out, _ = run_python_verbose(code, max_procs=32, timeout_s=5)
    assert result.passed, result.reason
    assert int(out) < 32  # RLIMIT_NPROC stopped it (the program itself is one of the 32)
    if os.geteuid() == 0:
        assert _procs_of_uid(fixed_uid) == []  # all sleepers are gone


def test_setsid_escapee_is_killed(fixed_uid: int) -> None:
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(20)\n"
        "    os._exit(0)\n"
    )
    assert run_python(code).passed
    if os.geteuid() != 0:
        pytest.skip("the check below looks for the run's private uid, used only when root")
    assert _procs_of_uid(fixed_uid) == []


def test_shell_write_to_tmp_is_contained(feats: list[str]) -> None:
    name = f"/tmp/jallm-sandbox-probe-{uuid.uuid4().hex}"
    result, out, _ = run_python_verbose(f"import os\nprint(os.system('echo hi > {name}'))\nprint(open('{name}').read())\n")
    # Guaranteed in every mode: the program itself runs.  With a mount namespace the write goes
    # to a private tmpfs that disappears with the run, so the host never sees the file.
    assert result.passed, result.reason
    assert out.split() == ["0", "hi"]
    if "tmpfs:/tmp" not in feats:
        if os.path.exists(name):
            os.unlink(name)
        pytest.skip("no mount namespace: /tmp writes reach the host")
    assert not os.path.exists(name)


def test_writes_outside_the_workdir_fail(feats: list[str]) -> None:
    target = os.path.join(os.path.dirname(__file__), f".sandbox-probe-{uuid.uuid4().hex}")
    result = run_python(f"open({target!r}, 'w').write('x')\n")
    try:
        if "readonly-root" not in feats and os.geteuid() != 0:
            pytest.skip("no read-only mount and not root: the code writes wherever the user can")
        assert not result.passed
        refusals = ["Read-only file system", "Permission denied"]
        if target.startswith(("/tmp/", "/var/tmp/")):
            # The sandbox has a private /tmp: a checkout under /tmp is not even visible.
            refusals.append("No such file or directory")
        assert any(r in result.reason for r in refusals), result.reason
    finally:
        leaked = os.path.exists(target)
        if leaked:
            os.unlink(target)
    assert not leaked


def test_workdir_is_writable_private_and_removed() -> None:
    code = "import os\nopen('a.txt', 'w').write('x')\nprint(os.getcwd())\nprint(os.environ['HOME'])\n"
    result, out, _ = run_python_verbose(code)
    assert result.passed, result.reason
    cwd, home = out.split()
    assert cwd == home
    assert not os.path.exists(cwd)  # removed afterwards


def test_environment_is_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-should-not-leak")
    monkeypatch.setenv("HF_TOKEN", "hf_should_not_leak")
    result, out, _ = run_python_verbose("import os\nprint(sorted(os.environ))\n")
    assert result.passed
    assert "OPENAI_API_KEY" not in out and "HF_TOKEN" not in out
    assert "sk-should-not-leak" not in out


def test_runs_as_unprivileged_user_when_started_as_root(feats: list[str]) -> None:
    if os.geteuid() != 0:
        pytest.skip("only meaningful when started as root")
    result, out, _ = run_python_verbose("import os\nprint(os.getuid(), os.getgid(), os.getgroups())\n")
    assert result.passed
    uid, gid, groups = out.split(" ", 2)
    assert int(uid) >= 1_500_000 and int(gid) == int(uid)
    assert groups.strip() == "[]"


def test_classify_reasons() -> None:
    assert sandbox._classify(0, False, "") == SandboxResult(True, "ok")
    assert sandbox._classify(0, True, "") == SandboxResult(False, "timeout")
    assert sandbox._classify(-signal.SIGXCPU, False, "") == SandboxResult(False, "timeout")
    assert sandbox._classify(-signal.SIGXFSZ, False, "") == SandboxResult(False, "file size limit")
    assert sandbox._classify(128 + 9, False, "__jallm_sandbox__ signal 9\n").reason == "killed: SIGKILL"
    assert sandbox._classify(2, False, "boom\n").reason == "exit code 2: boom"


def test_code_is_any_string() -> None:
    result, out, _ = run_python_verbose("print('a\\x00b')\n")
    assert result.passed and out == "a\x00b\n"
    assert run_python("").passed
    assert not run_python("\ud800").passed  # lone surrogate in source is a syntax error, not a crash


def test_the_code_holds_no_capabilities() -> None:
    result, out, _ = run_python_verbose(
        "print([l.split()[1] for l in open('/proc/self/status') if l.startswith(('CapEff', 'CapPrm'))])\n")
    assert result.passed, result.reason
    assert out.strip() == "['0000000000000000', '0000000000000000']"


def test_the_child_program_is_a_script_of_the_standard_library_only() -> None:
    import ast
    import sys

    tree = ast.parse(open(sandbox._CHILD, encoding="utf-8").read())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))  # nothing of this package
