"""Public extension points: a package installed beside this one adds a metric, a backend (with
its own command-line option), a loader and a prompt template through entry points, and a
plugin receives every benchmark's result through the `pytest_jallm_result` hook.

The first test runs docs/architecture.md's "add a metric, a backend, a benchmark" guide: its
code blocks are the package and the spec.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import sys
import textwrap
from pathlib import Path

import pytest

from jallm_toy import BENCHMARKS, SCRIPTED, base_args, write_script, write_suite
from pytest_jallm.registry import ExtensionError, Registry

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"


def guide_blocks() -> dict[str, str]:
    """The guide's code blocks, by what they hold: the test runs exactly what the guide says."""
    blocks: dict[str, str] = {}
    for lang, body in re.findall(r"```(\w+)\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S):
        if lang == "python" and "@register_metric" in body:
            blocks["metric"] = body
        elif lang == "python" and "cli_options" in body:
            blocks["backend"] = body
        elif lang == "toml":
            blocks["entry_points"] = body
        elif lang == "yaml" and "name: demo_capitals" in body:
            blocks["spec"] = body
    assert set(blocks) == {"metric", "backend", "entry_points", "spec"}, f"{GUIDE}: a guide block is missing"
    return blocks


def entry_points_txt(pyproject: str) -> str:
    """`[project.entry-points."group"]` / `name = "value"` as pip writes it into entry_points.txt."""
    out = re.sub(r'^\[project\.entry-points\."([^"]+)"\]$', r"[\1]", pyproject, flags=re.M)
    return re.sub(r'^(\S+) = "([^"]+)"$', r"\1 = \2", out, flags=re.M)


# What the test adds to the guide's package: the loader and template the guide's spec names,
# and a check (wrapping the guide's backend) that every prompt it gets is in the demo template.
EXTRAS = '''
from pytest_jallm.prompt import Template


def tab_lines(files, options):
    """`id<TAB>question<TAB>answer` lines."""
    rows = []
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                qid, question, answer = line.rstrip("\\n").split("\\t")
                rows.append({"id": qid, "question": question, "answer": answer})
    return rows


TEMPLATE = Template(preamble="DEMO PREAMBLE", instruction_header="\\n# task\\n", input_header="\\n# in\\n",
                    response_header="\\n# out\\n")

_guide_generate = ConstantBackend.generate


def _generate_checked(self, requests, sampling, on_result=None):
    assert all(r.prompt.startswith("DEMO PREAMBLE") for r in requests), "a prompt outside the demo template"
    return _guide_generate(self, requests, sampling, on_result)


ConstantBackend.generate = _generate_checked
'''

EXTRA_ENTRY_POINTS = """
[pytest_jallm.loaders]
tab-lines = my_ext:tab_lines

[pytest_jallm.templates]
demo = my_ext:TEMPLATE
"""

# Results written by a conftest plugin through the hook, one JSON line each.
RESULT_LOGGER = """\
import json, os

def pytest_jallm_result(result, config):
    with open(os.environ["JALLM_RESULT_LOG"], "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"name": result.name, "metric": result.metric, "score": result.score,
                             "n": result.n, "verdict": result.verdict}) + "\\n")
"""


def install_package(site: Path, name: str, module: str, entry_points: str) -> None:
    """What `pip install` leaves behind: the module and a dist-info with entry_points.txt."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{name}.py").write_text(textwrap.dedent(module), encoding="utf-8")
    dist = site / f"{name}-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text(entry_points, encoding="utf-8")


def with_site(monkeypatch: pytest.MonkeyPatch, site: Path) -> None:
    path = [str(site), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))


def results(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]


@pytest.mark.slow
def test_installed_package_adds_metric_backend_loader_and_template(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    guide = guide_blocks()
    site = pytester.path / "site"
    module = guide["metric"] + "\n\n" + guide["backend"] + EXTRAS
    install_package(site, "my_ext", module, entry_points_txt(guide["entry_points"]) + EXTRA_ENTRY_POINTS)
    with_site(monkeypatch, site)
    bench = pytester.mkdir("benchmarks")
    (bench / "data").mkdir()
    (bench / "demo_capitals.yaml").write_text(guide["spec"], encoding="utf-8")
    rows = "q1\t日本\t東京\nq2\t日本の首都\t東京\nq3\tフランス\tパリ\n"
    (bench / "data" / "capitals.txt").write_text(rows, encoding="utf-8")
    pytester.makeconftest(RESULT_LOGGER)
    log = pytester.path / "results.jsonl"
    monkeypatch.setenv("JALLM_RESULT_LOG", str(log))

    # A fresh interpreter, as a user's would be: the entry points are found on sys.path.
    result = pytester.runpytest_subprocess(
        "benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "constant", "--demo-answer", "東京です",
        "--model", "demo-model", "--jallm-no-cache",
    )
    result.assert_outcomes(passed=1)
    # Two of three answers start with the gold (exact_match would give 0); the rows came through
    # tab-lines, and a prompt outside the demo template would have failed the backend.
    assert results(log) == [{"name": "demo_capitals", "metric": "starts_with_gold",
                             "score": pytest.approx(200 / 3, abs=0.01), "n": 3, "verdict": "no baseline"}]
    helped = pytester.runpytest_subprocess("--help")
    helped.stdout.fnmatch_lines(["*--demo-answer=DEMO_ANSWER*", "*what the demo backend says*"])


def test_broken_entry_point_names_the_package(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    site = pytester.path / "site"
    entry_points = "[pytest_jallm.metrics]\nbroken = jallm_broken_ext:NOT_A_METRIC\n"
    install_package(site, "jallm_broken_ext", "NOT_A_METRIC = 3\n", entry_points)
    monkeypatch.syspath_prepend(str(site))
    metrics = Registry("metric", "pytest_jallm.metrics", lambda name, obj: _must_be_callable(obj))
    expected = r"entry point broken = jallm_broken_ext:NOT_A_METRIC .*jallm_broken_ext 0.1.*not callable"
    assert "anything" not in metrics  # another name's lookup does not fail (it used to)
    with pytest.raises(ExtensionError, match=expected):
        "broken" in metrics  # noqa: B015 - the lookup imports the entry point
    assert list(metrics) == [] and metrics.broken().keys() == {"broken"}


def _must_be_callable(obj: object) -> object:
    if not callable(obj):
        raise TypeError(f"{obj!r} is not callable")
    return obj


def test_entry_points_are_read_once_and_a_broken_one_keeps_failing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = pytester.path / "site"
    install_package(site, "jallm_counted_ext", "def rows(files, options):\n    return []\n",
                    "[pytest_jallm.test-counted]\nrows = jallm_counted_ext:rows\n")
    monkeypatch.syspath_prepend(str(site))
    scans = []
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda **kw: scans.append(kw) or real(**kw))
    loaders: Registry[object] = Registry("loader", "pytest_jallm.test-counted")
    assert "rows" in loaders and list(loaders) == ["rows"] and callable(loaders["rows"])
    assert scans == [{"group": "pytest_jallm.test-counted"}]
    assert loaders.origin("rows").endswith("(package jallm_counted_ext 0.1)")

    install_package(site, "jallm_raising_ext", "raise RuntimeError('no GPU here')\n",
                    "[pytest_jallm.test-raising]\nx = jallm_raising_ext:x\n")
    broken: Registry[object] = Registry("backend", "pytest_jallm.test-raising")
    for _ in range(2):  # the second lookup does not pretend the extension is merely absent
        with pytest.raises(ExtensionError, match="jallm_raising_ext:x .*cannot be imported: RuntimeError: no GPU here"):
            broken.get("x")


def test_a_builtin_metric_name_cannot_be_taken() -> None:
    from pytest_jallm.metrics import MetricResult, get_metric, register_metric

    clash = r"metric 'exact_match' is registered twice: by pytest_jallm.metrics.text and by test_extensions"
    with pytest.raises(ExtensionError, match=clash):
        @register_metric("exact_match", per_item=True, binary=True)
        def exact_match(preds, golds, contexts):
            return MetricResult(1.0, [1.0] * len(preds))
    assert get_metric("exact_match")(["a"], ["b"]).score == 0.0  # the built-in is still the one


def test_a_name_registered_twice_is_refused() -> None:
    registry: Registry[object] = Registry("metric", "pytest_jallm.test-none")
    registry.register("twice", len)
    registry.register("twice", len)  # the same object again: a module imported twice
    with pytest.raises(ExtensionError, match="metric 'twice' is registered twice: by builtins and by builtins"):
        registry.register("twice", abs)


def test_backend_options_come_from_the_backend_class() -> None:
    from pytest_jallm.backends import BackendOptionError, backend_kwargs

    given = {"jallm_base_url": None, "jallm_engine_arg": ["max_retries=1"], "jallm_chat": True}

    def getoption(dest: str):
        return given.get(dest, f"<{dest}>")

    with pytest.raises(BackendOptionError, match="--jallm-backend openai needs --jallm-base-url"):
        backend_kwargs("openai", getoption)
    given["jallm_base_url"] = "http://127.0.0.1:1/v1"
    assert backend_kwargs("openai", getoption) == {
        "base_url": "http://127.0.0.1:1/v1", "api_key_env": "<jallm_api_key_env>", "mode": "chat",
        "max_concurrency": "<jallm_concurrency>", "timeout_s": "<jallm_timeout>", "revision": "<jallm_revision>",
        "max_retries": 1,
    }
    hf = backend_kwargs("hf", getoption)
    assert set(hf) == {"revision", "device", "dtype", "batch_size", "trust_remote_code", "add_special_tokens"}
    assert backend_kwargs("vllm", getoption)["engine_kwargs"] == {"max_retries": 1}
    # A factory that declares nothing gets the engine arguments as keywords, as before.
    assert backend_kwargs(SCRIPTED, getoption) == {"max_retries": 1}


def test_result_hook_receives_every_benchmark(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path)
    script = write_script(pytester.path, wrong={"toy_mc": 2})

    class Receiver:
        def __init__(self) -> None:
            self.results: list = []

        def pytest_jallm_result(self, result, config) -> None:
            self.results.append(result)

    receiver = Receiver()
    run = pytester.inline_run(*base_args(script), plugins=[receiver])
    run.assertoutcome(passed=len(BENCHMARKS))
    got = {r.name: r for r in receiver.results}
    assert len(receiver.results) == len(BENCHMARKS) and set(got) == set(BENCHMARKS)
    assert got["toy_mc"].score == pytest.approx(80.0) and got["toy_nli"].score == pytest.approx(100.0)


@pytest.mark.slow
def test_result_hook_runs_once_per_benchmark_under_xdist(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_suite(pytester.path)
    script = write_script(pytester.path)
    pytester.makeconftest(RESULT_LOGGER)
    log = pytester.path / "results.jsonl"
    monkeypatch.setenv("JALLM_RESULT_LOG", str(log))
    result = pytester.runpytest_subprocess(*base_args(script), "-n", "2")
    result.assert_outcomes(passed=len(BENCHMARKS))
    assert sorted(r["name"] for r in results(log)) == sorted(BENCHMARKS)



def test_builtin_modules_register_at_the_first_lookup_and_a_broken_one_keeps_failing(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """How pytest_jallm.ifeval.benchmark registers its metrics and loader: a module named in
    `builtin_modules` is imported at the first lookup and registers through the decorator."""
    site = pytester.path / "site"
    site.mkdir()
    (site / "jallm_builtin_probe.py").write_text(
        "from pytest_jallm.registry import Registry\n"
        "REG = Registry('loader', 'pytest_jallm.test-builtin', builtin_modules=('jallm_builtin_probe_impl',))\n",
        encoding="utf-8")
    (site / "jallm_builtin_probe_impl.py").write_text(
        "from jallm_builtin_probe import REG\n@REG.register('probe')\ndef probe(files, options):\n    return []\n",
        encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    import jallm_builtin_probe

    assert "jallm_builtin_probe_impl" not in sys.modules  # nothing imported until a lookup
    assert list(jallm_builtin_probe.REG) == ["probe"]
    assert jallm_builtin_probe.REG.origin("probe") == "jallm_builtin_probe_impl"
    broken: Registry[object] = Registry("metric", "pytest_jallm.test-none", builtin_modules=("jallm_no_such_module",))
    for _ in range(2):
        with pytest.raises(ExtensionError, match="built-in metric module jallm_no_such_module cannot be imported"):
            broken.get("x")


def test_a_module_imported_anew_registers_its_objects_again_but_one_import_cannot_clash(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytester's in-process runs drop the package's modules and import them again: a module that
    registers objects (a Metric, a Template: no qualified name to compare) must not clash with itself."""
    site = pytester.path / "site"
    site.mkdir()
    (site / "jallm_reimport_reg.py").write_text(
        "from pytest_jallm.registry import Registry\nREG = Registry('metric', 'pytest_jallm.test-none')\n", encoding="utf-8")
    (site / "jallm_reimport_ext.py").write_text(
        "from jallm_reimport_reg import REG\nclass Thing:\n    pass\nREG.register('thing', Thing(), origin=__name__)\n",
        encoding="utf-8")
    (site / "jallm_reimport_twice.py").write_text(
        "from jallm_reimport_reg import REG\nREG.register('dup', object(), origin=__name__)\n"
        "REG.register('dup', object(), origin=__name__)\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    import importlib

    import jallm_reimport_ext
    import jallm_reimport_reg

    first = jallm_reimport_reg.REG["thing"]
    del sys.modules["jallm_reimport_ext"]
    importlib.import_module("jallm_reimport_ext")  # registers a new Thing() under the same name
    assert jallm_reimport_reg.REG["thing"] is not first and jallm_reimport_ext is not sys.modules["jallm_reimport_ext"]
    with pytest.raises(ExtensionError, match="'dup' is registered twice: by jallm_reimport_twice and by jallm_reimport_twice"):
        importlib.import_module("jallm_reimport_twice")
