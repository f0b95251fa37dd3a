"""What the plugin costs a pytest run that uses no benchmark: teams install pytest-jallm into the
environment of their other tests, and pytest loads it in every session there.

The plugin module imports only what declaring options and markers and recognising a spec file need;
the engine, the gate, the reports and their libraries load when a benchmark spec is collected or a
jallm option is used. These tests assert *which modules* a run imports (in a fresh interpreter), not
how long it takes: `perf/startup.py` measures the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jallm_toy import write_suite
from pytest_jallm.backend_options import BUILTIN_BACKEND_OPTIONS, builtin_cli_options

# Never imported by a run without benchmarks: the libraries the engine needs, and the engine.
HEAVY = ("pydantic", "yaml", "regex", "tabulate", "torch", "transformers", "datasets", "numpy", "scipy")
ENGINE = ("pytest_jallm.evaluation", "pytest_jallm.gate", "pytest_jallm.reporting", "pytest_jallm.backends",
          "pytest_jallm.session", "pytest_jallm.items", "pytest_jallm.spec", "pytest_jallm.specfile",
          "pytest_jallm.metrics", "pytest_jallm.loaders", "pytest_jallm.prompt", "pytest_jallm.data")

RECORDER = """\
import json, os, sys

def pytest_unconfigure(config):
    with open(os.environ["JALLM_MODULES_LOG"], "w", encoding="utf-8") as fh:
        json.dump(sorted(sys.modules), fh)
"""


def modules_after(root: Path, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run pytest in a fresh interpreter; the modules loaded when it ends (a conftest writes them)."""
    (root / "conftest.py").write_text(RECORDER, encoding="utf-8")
    log = root / "modules.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env["JALLM_MODULES_LOG"] = str(log)
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    return run, set(json.loads(log.read_text(encoding="utf-8"))) if log.exists() else set()


def under(modules: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes))


def write_plain_test(root: Path) -> None:
    (root / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n", encoding="utf-8")


def test_a_plain_test_file_imports_neither_the_engine_nor_its_libraries(tmp_path: Path) -> None:
    write_plain_test(tmp_path)
    (tmp_path / "config.yaml").write_text("not: a benchmark\n", encoding="utf-8")  # a YAML file outside benchmarks/
    run, modules = modules_after(tmp_path, ".")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pytest_jallm.plugin" in modules  # the plugin was loaded: the check below is not vacuous
    assert under(modules, HEAVY) == [] and under(modules, ENGINE) == []
    _, without = modules_after(tmp_path, "test_plain.py", "-p", "no:jallm")
    extra = modules - without
    # Whatever the plugin adds at start-up is its own, and small (no third-party library at all).
    assert sorted(m for m in extra if m != "pytest_jallm" and not m.startswith("pytest_jallm.")) == []
    assert len(extra) <= 15, sorted(extra)


def test_a_jallm_option_starts_the_session_at_once(tmp_path: Path) -> None:
    write_plain_test(tmp_path)
    run, modules = modules_after(tmp_path, "test_plain.py", "--jallm-limit", "3")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pytest_jallm.session" in modules and "pydantic" in modules
    # ... so that its errors are still usage errors before collection, whatever the test files.
    bad = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_plain.py",
                          "--jallm-update-baseline", "--jallm-limit", "3"], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "JALLM_MODULES_LOG": str(tmp_path / "bad.json")})
    assert bad.returncode == pytest.ExitCode.USAGE_ERROR and "--jallm-accept-partial" in bad.stderr, bad.stderr


def test_a_collected_spec_starts_the_session(tmp_path: Path) -> None:
    write_suite(tmp_path)
    run, modules = modules_after(tmp_path, "benchmarks", "--co", "-q")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "benchmarks/toy_mc.yaml::toy_mc" in run.stdout
    assert "pytest_jallm.session" in modules


def test_a_bad_ini_key_found_when_a_spec_is_collected_is_one_usage_error(tmp_path: Path) -> None:
    write_suite(tmp_path)
    (tmp_path / "pytest.ini").write_text("[pytest]\njallm_family = bogus\n", encoding="utf-8")
    run = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "benchmarks", "--co"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, run.stdout + run.stderr
    assert "jallm_family = 'bogus': expected one of holm, bonferroni, none" in run.stderr
    assert "Traceback" not in run.stdout + run.stderr and "UsageError" not in run.stdout + run.stderr


def test_the_option_table_is_what_the_builtin_backends_declare() -> None:
    from pytest_jallm.backends import BACKENDS, cli_options

    builtin = BACKENDS.registered_by("pytest_jallm.backends")
    assert builtin == list(BUILTIN_BACKEND_OPTIONS)  # every built-in backend is in the table, in its order
    for name, declared in BUILTIN_BACKEND_OPTIONS.items():
        assert BACKENDS[name].cli_options == declared, name
    assert [o.flag for o in cli_options()] == [o.flag for o in builtin_cli_options()]  # no other backend here


def test_builtin_flags_and_judge_copies_are_registered(pytester: pytest.Pytester) -> None:
    config = pytester.parseconfig()
    for option in builtin_cli_options():
        assert config.getoption(option.option_dest) == option.default
    assert config.getoption("jallm_judge_base_url") is None and config.getoption("jallm_judge_dtype") == "auto"
    config = pytester.parseconfig("--jallm-tp", "2", "--jallm-judge-concurrency", "3", "--no-jallm-add-special-tokens")
    assert (config.getoption("jallm_tp"), config.getoption("jallm_judge_concurrency")) == (2, 3)
    assert config.getoption("jallm_add_special_tokens") is False
