"""tests/conftest.py's rule for pytester's in-process runs: libraries an inline run imports stay
loaded (a C extension such as torch or pyarrow cannot be imported twice in one process), while
the run's own test modules are reverted as pytester always did. This is what lets the heavy
libraries be imported by the first test that needs them instead of before every test."""

from __future__ import annotations

import sys

import pytest


def test_inline_runs_keep_the_libraries_they_import_and_drop_their_test_modules(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "tabnanny", raising=False)  # a pure-Python stdlib module no test uses
    pytester.makepyfile(test_probe="import tabnanny\n\n\ndef test_imports() -> None:\n    assert tabnanny.check\n")
    pytester.inline_run("-p", "no:cacheprovider").assertoutcome(passed=1)
    assert "tabnanny" in sys.modules
    assert "test_probe" not in sys.modules
