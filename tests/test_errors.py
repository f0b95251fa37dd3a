"""One error base: every error pytest-jallm reports about its inputs is a JallmError, which a failing
benchmark test shows as its message (never a traceback)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import pytest_jallm
from pytest_jallm.errors import JallmError

# Raised and caught inside one module (never reach a user), or re-worded into a JallmError at the
# boundary: they need not share the base.
INTERNAL = {
    "pytest_jallm.prompt.TemplateSpecError",  # becomes a SpecError naming the spec file and key
    "pytest_jallm.strict_yaml.DuplicateKeyError",  # a yaml.YAMLError; becomes a SpecError/ThresholdError
    "pytest_jallm.ifeval.evaluate.InputError",  # becomes a DataError naming the file and line
    "pytest_jallm.ifeval.instructions.InstructionArgsError",  # likewise
}


def _error_classes():
    for info in pkgutil.walk_packages(pytest_jallm.__path__, "pytest_jallm."):
        if info.name.endswith("_sandbox_child"):  # runs as a script in the sandbox, imports nothing of ours
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == info.name
                    and name.endswith("Error") and not name.startswith("_")):
                yield f"{info.name}.{name}", obj


def test_every_public_error_class_shares_the_base() -> None:
    found = dict(_error_classes())
    assert len(found) >= 15, sorted(found)
    outside = sorted(name for name, cls in found.items() if not issubclass(cls, JallmError) and name not in INTERNAL)
    assert outside == [], f"errors outside JallmError: {outside}"
    assert INTERNAL <= set(found), "an INTERNAL entry names no class any more: remove it"


SPEC = ("name: t\ncategory: MC\nsource: {path: d.jsonl}\nfields: {answer: a, q: q}\ninstruction: i\n"
        "input: '{q}'\nmax_new_tokens: 1\nmetrics: [exact_match]\n")


@pytest.mark.parametrize(("data", "script", "shown"), [
    # the backend fails: its type says what failed
    ('{"q": "x", "a": "y"}\n', {"rules": [], "fail_after": 0}, "BackendError: scripted failure after 0 generations"),
    # the data is malformed: the message names the file and the line
    ('{"q": "x", "a": "y"}\n{"q": \n', {"rules": []}, "d.jsonl: line 2: not valid JSON"),
])
def test_a_benchmark_failing_with_one_shows_its_message_not_a_traceback(pytester: pytest.Pytester, data: str,
                                                                        script: dict, shown: str) -> None:
    import json

    bench = pytester.mkdir("benchmarks")
    (bench / "t.yaml").write_text(SPEC, encoding="utf-8")
    (bench / "d.jsonl").write_text(data, encoding="utf-8")
    (pytester.path / "s.json").write_text(json.dumps(script), encoding="utf-8")
    result = pytester.runpytest("benchmarks", "--model", "s.json", "--jallm-no-cache", "--jallm-backend",
                                "pytest_jallm.backends.scripted:ScriptedBackend")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert shown in out and "Traceback" not in out and "raise " not in out
