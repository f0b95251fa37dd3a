"""The examples the documentation shows, run as written and compared with what they print.

An example is a fenced code block whose first line starts with ``$ ``: each ``$ `` line (with its
``\\``-continued lines) is a shell command, and the lines up to the next command are what it prints
on standard output. In the shown output

- a line that is only ``…`` stands for any number of lines (pytest's header, a long failure);
- ``…`` inside a line stands for any text on that line (a long note cut for the page);
- everything else is compared exactly, tables to the character, after both sides are normalised:
  timings (``in 5.60s``, ``model load 5.2 s``) become ``<T>``, the run's own directory is dropped
  from paths, trailing spaces are ignored.

Commands run in a fresh copy of the checkout's `samples/`, `models/`, `benchmarks/`, `thresholds/`
and `pyproject.toml` (so results files and the generation cache start empty and stay out of the
checkout), with `pytest` and `python` meaning this interpreter, 80 columns, and `../shared` the one
beside the checkout where there is one (an example that needs it is skipped without it).

    python tests/doc_examples.py README.md        # print what each example prints now, normalised
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
COPIED = ("samples", "models", "benchmarks", "thresholds", "pyproject.toml", "conftest.py")
ELLIPSIS = "…"
_FENCE = re.compile(r"^(`{3,})(.*)$")


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


@dataclass
class Example:
    source: str  # file:line of the block
    steps: list[Step]

    @property
    def needs_shared(self) -> bool:
        return any("../shared" in s.command for s in self.steps)


def examples(path: Path) -> list[Example]:
    """Every fenced block of a Markdown file whose first line is a `$ ` command."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out: list[Example] = []
    i = 0
    while i < len(lines):
        fence = _FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == fence.group(1))
        body = lines[i + 1 : end]
        if body and body[0].startswith("$ "):
            out.append(Example(f"{path.name}:{i + 2}", _steps(body)))
        i = end + 1
    return out


def _steps(body: list[str]) -> list[Step]:
    steps: list[Step] = []
    continued = False
    for line in body:
        if line.startswith("$ ") or continued:
            text = line[2:] if line.startswith("$ ") and not continued else line
            if continued:
                steps[-1].command += "\n" + text
            else:
                steps.append(Step(text))
            continued = line.rstrip().endswith("\\")
        else:
            steps[-1].expected.append(line)
    return steps


# --- running ---------------------------------------------------------------------------------


def workspace(base: Path) -> Path:
    """A checkout-like folder the examples may write into; `../shared` beside it when there is one."""
    ws = base / "checkout"
    ws.mkdir(parents=True)
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, ws / name, symlinks=True)
        elif src.is_file():
            shutil.copy2(src, ws / name)
    if SHARED.is_dir() and not (base / "shared").exists():
        (base / "shared").symlink_to(SHARED, target_is_directory=True)
    bin_dir = base / "bin"
    bin_dir.mkdir()
    for name, argv in (("pytest", f'"{sys.executable}" -m pytest'), ("python", f'"{sys.executable}"'),
                       ("python3", f'"{sys.executable}"')):
        wrapper = bin_dir / name
        wrapper.write_text(f'#!/bin/sh\nexec {argv} "$@"\n', encoding="utf-8")
        wrapper.chmod(0o755)
    return ws


def run(command: str, ws: Path, timeout: float = 300) -> str:
    """Standard output of one documented command, run as a shell would (pytest: this interpreter)."""
    env = dict(os.environ)
    env.update(PATH=f"{ws.parent / 'bin'}{os.pathsep}{env.get('PATH', '')}", COLUMNS="80", LINES="40", NO_COLOR="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.pop("PYTEST_ADDOPTS", None)
    env.pop("PYTEST_XDIST_WORKER", None)
    done = subprocess.run(["bash", "-c", command], cwd=ws, env=env, capture_output=True, text=True, timeout=timeout)
    return done.stdout


# --- comparing -------------------------------------------------------------------------------

_TIMINGS = [
    (re.compile(r"\bin \d+\.\d+s( \(\d+:\d\d:\d\d\))?"), "in <T>"),  # pytest's last line
    (re.compile(r"\b\d+\.\d+ s\b"), "<T> s"),  # pytest-jallm's "model load 5.2 s, generation 0.2 s"
    (re.compile(r"^=+ (.+?) =+$"), r"= \1 ="),  # pytest centres a title in '=': its width follows the timing's
]


def normalise(text: str, ws: Path | None = None) -> list[str]:
    if ws is not None:
        text = text.replace(str(ws) + os.sep, "").replace(str(ws.resolve()) + os.sep, "")
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if "\r" in line:  # a progress bar redrawn in place: what it showed last
            line = line.rsplit("\r", 1)[-1]
        for pattern, repl in _TIMINGS:
            line = pattern.sub(repl, line)
        out.append(line.rstrip())
    while out and not out[-1]:
        out.pop()
    return out


def pattern(expected: list[str]) -> re.Pattern[str]:
    parts = []
    for line in normalise("\n".join(expected)):
        if line.strip() == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(".*?".join(re.escape(piece) for piece in line.split(ELLIPSIS)) + r"\n")
    return re.compile("".join(parts))  # `.` stops at line ends: an inline … never spans lines


def mismatch(expected: list[str], actual: list[str]) -> str | None:
    """None when the output matches what the documentation shows; else a diff to read."""
    text = "".join(line + "\n" for line in actual)
    if pattern(expected).fullmatch(text):
        return None
    shown = normalise("\n".join(expected))
    return "\n".join(difflib.unified_diff(shown, actual, "documented", "actual", lineterm="", n=2))


def main(argv: list[str]) -> int:
    import tempfile

    for doc in argv or ["README.md"]:
        with tempfile.TemporaryDirectory() as tmp:
            ws = workspace(Path(tmp))
            for ex in examples(ROOT / doc):
                for step in ex.steps:
                    print(f"===== {ex.source}\n$ {step.command}")
                    print("\n".join(normalise(run(step.command, ws), ws)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
