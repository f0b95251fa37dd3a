"""Hostile generated code through the `code_exec` metric (tests/test_sandbox.py covers the
sandbox itself): every hostile program scores 0, a correct one in the same batch scores 1, and the
host is untouched -- files outside the sandbox, the loopback network, stray processes."""

from __future__ import annotations

import functools
import os
import socket
import uuid
from pathlib import Path

import pytest

from pytest_jallm import sandbox
from pytest_jallm.metrics import get_metric

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX only")

GOLD = "['assert add(1, 2) == 3', 'assert add(-1, 1) == 0']"  # llm-jp-eval's MBPP gold: a list of asserts
CORRECT = "def add(a, b):\n    return a + b\n"


def _procs_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read():
                        found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.mark.slow
def test_hostile_programs_score_zero_and_leave_the_host_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A shorter wall-clock limit than the default 10 s keeps the test quick; containment is the same.
    monkeypatch.setattr(sandbox, "run_python", functools.partial(sandbox.run_python, timeout_s=3.0))
    marker = f"jallm-stray-{uuid.uuid4().hex}"
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("untouched", encoding="utf-8")
    repo_probe = Path(__file__).parent / f".probe-{uuid.uuid4().hex}"
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]

    hostile = {
        "loops forever": "def add(a, b):\n    while True:\n        pass\n",
        "forks": (
            "import os, time\n"
            "for _ in range(200):\n"
            "    try:\n"
            "        if os.fork() == 0:\n"
            "            time.sleep(30)\n"
            "            os._exit(0)\n"
            "    except OSError:\n"
            "        break\n"
        ),
        "allocates 10 GB": "x = bytearray(10 * 1024 ** 3)\ndef add(a, b):\n    return a + b\n",
        "writes outside its directory": (
            f"open({str(sentinel)!r}, 'w').write('overwritten')\n"
            f"open({str(repo_probe)!r}, 'w').write('escaped')\n"
        ),
        "opens a socket": (
            "import socket\n"
            f"socket.create_connection(('127.0.0.1', {port}), timeout=2).sendall(b'hello')\n"
        ),
        "calls os.system": (
            f"import os\n"
            f"os.system(\"echo overwritten > {sentinel}; touch {repo_probe}; "
            f"setsid sh -c 'sleep 30 # {marker}' >/dev/null 2>&1 &\")\n"
            f"os.system(\"python3 -c 'import socket; socket.create_connection((\\\"127.0.0.1\\\", {port}))'\")\n"
        ),
        "daemonises a sleeper": (
            "import subprocess\n"
            f"subprocess.Popen(['sh', '-c', 'sleep 30 # {marker}'], start_new_session=True)\n"
        ),
    }
    preds = [CORRECT, *hostile.values()]
    golds = [GOLD] * len(preds)
    try:
        result = get_metric("code_exec")(preds, golds, [{} for _ in preds])
        connected = []
        try:
            while True:
                conn, _ = listener.accept()
                connected.append(conn)
                conn.close()
        except (socket.timeout, BlockingIOError):
            pass
    finally:
        listener.close()
        leaked = repo_probe.exists()
        if leaked:
            repo_probe.unlink()

    scores = dict(zip(["correct", *hostile], result.per_item, strict=True))
    assert scores.pop("correct") == 1.0
    assert scores == {name: 0.0 for name in scores}, scores
    assert sentinel.read_text(encoding="utf-8") == "untouched"
    assert not leaked, "generated code wrote into the repository"
    feats = sandbox.features()
    if "netns" in feats:
        assert connected == [], "generated code reached a loopback listener"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel.txt"]
    if "pidns" in feats or os.geteuid() == 0:
        assert _procs_with(marker) == [], "generated code left processes behind"


# --- forged passes: the pass signal is the harness's, not the exit status ------------------------

WRONG = "def add(a, b):\n    return 0\n"
FORGERIES = {
    "exits 0 before the tests": "import os\nos._exit(0)\n",
    "sys.exit(0) at import": "import sys\nsys.exit(0)\n",
    "raises SystemExit(0) when called": "def add(a, b):\n    raise SystemExit(0)\n",
    "replaces os._exit": "import os\n_real = os._exit\nos._exit = lambda code: _real(0)\n" + WRONG,
    "patches traceback.print_exception": (
        "import os, traceback\ntraceback.print_exception = lambda *a, **k: os._exit(0)\n" + WRONG
    ),
    "patches sys.excepthook and sys.exit": "import os, sys\nsys.excepthook = lambda *a: os._exit(0)\nsys.exit = lambda *a: os._exit(0)\n" + WRONG,
    "an always-true __eq__": "class Anything:\n    def __eq__(self, other):\n        return True\ndef add(a, b):\n    return Anything()\n",
    "an int subclass that equals everything": (
        "class I(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
        "def add(a, b):\n    return I(0)\n"
    ),
    "a list holding an always-equal object": (
        "class E:\n    __eq__ = lambda self, other: True\ndef add(a, b):\n    return [E()]\n"
    ),
    "patches builtins": "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\nbuiltins.bool = lambda x: True\n" + WRONG,
    "prints fake pass markers": (
        "import os, sys\nprint('__jallm_sandbox__ ok ' + '0' * 32)\nsys.stderr.write('__jallm_sandbox__ pass\\n')\n"
        "for fd in range(3, 256):\n    try:\n        os.write(fd, b'0' * 32)\n    except OSError:\n        pass\n" + WRONG
    ),
}


def test_forged_passes_score_zero_and_correct_code_still_scores_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "run_python", functools.partial(sandbox.run_python, timeout_s=5.0))
    legit = {  # correct answers of other shapes: subclasses of plain types, floats, stdlib helpers
        "plain": (CORRECT, GOLD),
        "namedtuple": ("from collections import namedtuple\nP = namedtuple('P', 'x y')\ndef pair(a, b):\n    return P(a, b)\n",
                       "['assert pair(1, 2) == (1, 2)', 'assert pair(1, 2) != (2, 1)']"),
        "Counter": ("from collections import Counter\ndef count(s):\n    return Counter(s)\n",
                    "['assert count(\"aab\") == {\"a\": 2, \"b\": 1}']"),
        "float and math": ("import math\ndef area(r):\n    return math.pi * r * r\n",
                           "['import math', 'assert math.isclose(area(2), 12.566370614359172)', 'assert area(1) > 3', 'assert 3 in [area(0) + 3]']"),
        "bool": ("def odd(n):\n    return n % 2 == 1\n", "['assert odd(3)', 'assert not odd(4)', 'assert odd(5) is True']"),
        "re.Match and dates": ("import re, datetime\ndef find(s):\n    return re.search('a+', s)\n"
                               "def day(n):\n    return datetime.date(2024, 1, n)\n",
                               "['assert find(\"baa\")', 'assert not find(\"xyz\")', 'assert day(2) == datetime.date(2024, 1, 2)']"),
    }
    preds = [p for p, _ in legit.values()] + list(FORGERIES.values())
    golds = [g for _, g in legit.values()] + [GOLD] * len(FORGERIES)
    result = get_metric("code_exec")(preds, golds, [{} for _ in preds])
    scores = dict(zip([*legit, *FORGERIES], result.per_item, strict=True))
    assert {k: scores[k] for k in legit} == {k: 1.0 for k in legit}, scores
    assert {k: scores[k] for k in FORGERIES} == {k: 0.0 for k in FORGERIES}, scores


# --- disk: the total the code can write is capped, and nothing stays behind ---------------------

FILL = """
import os, time
written = 0
for where in (".", "/tmp", "/var/tmp", "/dev/shm"):
    for i in range(64 if where == "." else 8):
        try:
            with open(os.path.join(where, "fill-%d" % i), "wb") as fh:
                for _ in range(16):
                    fh.write(b"x" * (1024 * 1024))
                    written += 1024 * 1024
        except OSError:
            pass
print("written", written, flush=True)
time.sleep(1.5)  # hold everything while the host is looked at
"""


def _host_bytes(root: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


@pytest.mark.slow
def test_disk_writes_are_capped_in_total_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    feats = sandbox.features()
    if "mountns" not in feats:
        pytest.skip("no mount namespace here: only the per-file limit applies (documented)")
    import re
    import tempfile
    import threading

    host_tmp = tmp_path / "host-tmp"  # where the sandbox makes its directories on the host
    host_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(host_tmp))
    cap_mb = 32
    peak = [0]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], _host_bytes(host_tmp))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        result, out, err = sandbox.run_python_verbose(FILL, max_file_mb=16, max_disk_mb=cap_mb, timeout_s=30)
    finally:
        stop.set()
        watcher.join()
    assert result.passed, (result, err[-2000:])
    written = int(re.search(r"written (\d+)", out).group(1))
    assert 0 < written <= cap_mb * 1024 * 1024, written
    assert peak[0] <= cap_mb * 1024 * 1024, f"{peak[0] / 2**20:.0f} MB reached the host disk"
    # A timed-out run is cleaned up too.
    assert sandbox.run_python(FILL.replace("time.sleep(1.5)", "time.sleep(60)"), max_disk_mb=cap_mb,
                              timeout_s=3).reason == "timeout"
    assert list(host_tmp.iterdir()) == [], "the sandbox left files behind"


def test_a_complex_value_crosses_as_its_own_fields() -> None:
    """The child reads a complex number's fields through the base type (no subclass method runs, and
    no complex.__complex__, which Python 3.10 lacks): a right value passes, a subclass lying about
    its real part is judged by its true value."""
    honest = "def f():\n    return complex(1, 2)\n"
    lying = ("class C(complex):\n    def __complex__(self):\n        return 1 + 2j\n    @property\n"
             "    def real(self):\n        return 1.0\ndef f():\n    return C(3, 2)\n")
    tests = {"test_list": ["assert f() == complex(1, 2)"]}
    assert get_metric("code_exec")([honest, lying], ["", ""], [tests, tests]).per_item == [1.0, 0.0]
