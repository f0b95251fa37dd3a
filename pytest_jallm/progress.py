"""Progress bars on the real terminal while a run generates, judges or downloads (pytest's output
capture is suspended while a bar is open, so the bar is seen as it moves)."""

from __future__ import annotations

import sys
from typing import Any

import pytest


class TerminalProgress:
    def __init__(self, config: pytest.Config):
        self.config = config

    def generating(self, total: int):
        # xdist workers inherit the terminal's stderr: name the worker so interleaved bars can be told apart.
        worker = getattr(self.config, "workerinput", {}).get("workerid")
        desc = f"pytest-jallm generating [{worker}]" if worker else "pytest-jallm generating"
        return self.bar(desc, total, unit="prompt")

    def judging(self, total: int):
        return self.bar("pytest-jallm judging", total, unit="prompt")

    def downloading(self, desc: str, total: int | None):
        return self.bar(desc, total, unit="B", unit_scale=True, unit_divisor=1024)

    def bar(self, desc: str, total: int | None, **kwargs: Any):
        """A tqdm bar (None without tqdm); closing it resumes output capture."""
        try:
            from tqdm import tqdm
        except ImportError:  # pragma: no cover - tqdm ships with transformers
            return None
        capman = self.config.pluginmanager.getplugin("capturemanager")
        ctx = capman.global_and_fixture_disabled() if capman else None
        if ctx is not None:
            ctx.__enter__()
        reporter = self.config.pluginmanager.getplugin("terminalreporter")
        if reporter is not None:
            reporter.ensure_newline()  # don't draw the bar after "file.yaml " on the same line
        bar = tqdm(total=total, desc=desc, file=sys.stderr, mininterval=1.0,
                   disable=self.config.getoption("verbose") < 0, **kwargs)
        original_close = bar.close

        def close() -> None:
            original_close()
            if ctx is not None:
                ctx.__exit__(None, None, None)

        bar.close = close  # type: ignore[method-assign]
        return bar
