"""An installed extension that fails to import fails only the runs that use it (issue: reliability,
item 5). Before, a backend whose module raised made every pytest run in the environment stop with
an internal error (exit 3), whatever it ran, and a broken metric, loader or template failed every
benchmark of the run.

The packages are installed as `pip install` leaves them (a module and a `.dist-info` with
`entry_points.txt` on sys.path) and pytest runs in a fresh interpreter, as a user's would. Each
broken module writes a marker file before it raises, so a test can tell whether it was imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .toy import FAST, SCRIPTED, SPEC, env, write_script, write_suite

# distribution name -> (module, entry-point group, entry-point name, object)
BROKEN = {
    "jallm-broken-backend": ("jallm_broken_backend", "pytest_jallm.backends", "broken", "Backend"),
    "jallm-broken-metric": ("jallm_broken_metric", "pytest_jallm.metrics", "broken_metric", "metric"),
    "jallm-broken-loader": ("jallm_broken_loader", "pytest_jallm.loaders", "broken-rows", "rows"),
    "jallm-broken-template": ("jallm_broken_template", "pytest_jallm.templates", "broken-tmpl", "TEMPLATE"),
}
BROKEN_VERSION = "2.3"

# A working installed backend with its own option: answers item i with (i + offset) % 3.
ORACLE = '''
import re

from pytest_jallm.backends import BackendIdentity, BackendOption


class OracleBackend:
    cli_options = (BackendOption("offset", "--oracle-offset", type=int, default=0, help="added to every answer"),)

    def __init__(self, model, *, offset):
        self.model, self.offset = model, offset

    def identity(self):
        return BackendIdentity("oracle", "1", self.model, "r1", {"offset": self.offset})

    def generate(self, requests, sampling, on_result=None):
        out = []
        for i, request in enumerate(requests):
            asked = re.findall(r"の問題(\\d+)番", request.prompt)
            out.append(str((int(asked[-1]) + self.offset) % 3) if asked else "")
            if on_result is not None:
                on_result(i, out[-1])
        return out

    def close(self):
        pass
'''


def install(site: Path, dist: str, version: str, module: str, source: str, entry_points: str) -> None:
    """What `pip install` leaves behind: the module and a dist-info with entry_points.txt."""
    (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(entry_points, encoding="utf-8")


def install_all(root: Path, broken_backend: bool = True) -> Path:
    site = root / "site"
    site.mkdir()
    for dist, (module, group, name, attr) in BROKEN.items():
        if group == "pytest_jallm.backends" and not broken_backend:
            continue
        marker = root / f"imported-{module}"
        source = f"open({str(marker)!r}, 'w').close()\nraise RuntimeError('{module} needs a GPU driver')\n"
        install(site, dist, BROKEN_VERSION, module, source, f"[{group}]\n{name} = {module}:{attr}\n")
    install(site, "jallm-oracle", "1.0", "jallm_oracle", ORACLE, "[pytest_jallm.backends]\noracle = jallm_oracle:OracleBackend\n")
    return site


def imported(root: Path) -> list[str]:
    return sorted(p.name[len("imported-"):] for p in root.glob("imported-*"))


def pytest_run(root: Path, site: Path, *args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "pytest", *FAST, *args], cwd=root, env=env(PYTHONPATH=path),
                          capture_output=True, text=True, timeout=300)


def origin(dist: str) -> str:
    module, group, name, attr = BROKEN[dist]
    return f"entry point {name} = {module}:{attr} in group {group} (package {dist} {BROKEN_VERSION})"


def cause(dist: str) -> str:
    module = BROKEN[dist][0]
    return f"cannot be imported: RuntimeError: {module} needs a GPU driver"


def test_an_unrelated_test_file_runs_and_imports_no_extension(tmp_path: Path) -> None:
    site = install_all(tmp_path)
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n", encoding="utf-8")
    run = pytest_run(tmp_path, site, "test_plain.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout
    assert imported(tmp_path) == []  # nothing at start-up imported an installed extension


def write_broken_suite(root: Path) -> None:
    write_suite(root, {"toy_a": 6, "toy_m": 3, "toy_l": 3, "toy_t": 3})
    bench = root / "benchmarks"
    edits = {
        "toy_m": ("metrics: [exact_match]", "metrics: [broken_metric]"),
        "toy_l": ("source: {path: data/toy_l.jsonl}", "source: {path: data/toy_l.jsonl, format: broken-rows}"),
        "toy_t": ("max_new_tokens: 2", "max_new_tokens: 2\nprompt_template: broken-tmpl"),
    }
    for name, (old, new) in edits.items():
        spec = bench / f"{name}.yaml"
        text = spec.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in the toy spec"
        spec.write_text(text.replace(old, new), encoding="utf-8")
    assert SPEC  # the toy spec the edits above apply to


@pytest.mark.slow
@pytest.mark.parametrize("broken_backend", [True, False], ids=["with-broken-backend", "without"])
def test_only_the_benchmarks_using_a_broken_extension_fail(tmp_path: Path, broken_backend: bool) -> None:
    site = install_all(tmp_path, broken_backend)
    write_broken_suite(tmp_path)
    script = write_script(tmp_path, {"toy_a": 6, "toy_m": 3, "toy_l": 3, "toy_t": 3})
    run = pytest_run(tmp_path, site, "benchmarks", "--jallm-backend", SCRIPTED, "--model", script, "--jallm-no-cache", "-rA")
    out = run.stdout + run.stderr
    assert run.returncode == 1, out  # tests failed, not an internal error (3) or a usage error (4)
    assert "PASSED benchmarks/toy_a.yaml::toy_a" in out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    # Each benchmark names the entry point it could not use, with its package and version, on one line.
    for dist, bench in (("jallm-broken-metric", "toy_m"), ("jallm-broken-loader", "toy_l"), ("jallm-broken-template", "toy_t")):
        lines = [line for line in out.splitlines() if origin(dist) in line]
        assert lines, f"{bench}: no line names {origin(dist)}:\n{out}"
        assert any(cause(dist) in line and bench in line for line in lines), f"{bench}:\n" + "\n".join(lines)
    # Not imported: the broken backend, which this run does not select.
    assert imported(tmp_path) == ["jallm_broken_loader", "jallm_broken_metric", "jallm_broken_template"]


@pytest.mark.slow
def test_another_installed_backend_runs_with_its_own_option(tmp_path: Path) -> None:
    site = install_all(tmp_path)
    write_suite(tmp_path, {"toy_a": 6})
    scores = {}
    for offset in ("0", "1"):
        report = tmp_path / f"results-{offset}.json"
        run = pytest_run(tmp_path, site, "benchmarks", "--jallm-backend", "oracle", "--oracle-offset", offset,
                         "--model", "m", "--jallm-no-cache", "--jallm-results-json", str(report))
        assert run.returncode == 0 and "1 passed" in run.stdout, run.stdout + run.stderr
        [bench] = json.loads(report.read_text(encoding="utf-8"))["benchmarks"]
        scores[offset] = bench["score"]
    assert scores == {"0": 100.0, "1": 0.0}  # the option reached the backend
    assert "jallm_broken_backend" not in imported(tmp_path)


@pytest.mark.parametrize("option", ["--jallm-backend", "--jallm-judge-backend"])
def test_selecting_the_broken_backend_fails_with_one_line(tmp_path: Path, option: str) -> None:
    site = install_all(tmp_path)
    write_suite(tmp_path, {"toy_a": 6})
    args = ["--model", "m", option, "broken"] + (["--jallm-judge-model", "j"] if "judge" in option else [])
    run = pytest_run(tmp_path, site, "benchmarks", *args)
    out = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, out
    assert "Traceback" not in out and "INTERNALERROR" not in out
    dist = "jallm-broken-backend"
    [line] = [line for line in out.splitlines() if line.strip()]
    assert line.startswith(f"ERROR: {option} broken: {origin(dist)}: {cause(dist)}"), out


def test_help_lists_the_working_backends_options_despite_a_broken_one(tmp_path: Path) -> None:
    site = install_all(tmp_path)
    run = pytest_run(tmp_path, site, "--help")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "--oracle-offset" in run.stdout and "--jallm-judge-oracle-offset" in run.stdout
    assert "--jallm-base-url" in run.stdout and "--jallm-judge-dtype" in run.stdout
