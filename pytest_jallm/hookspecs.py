"""Hooks pytest-jallm calls on other plugins (registered in `pytest_addhooks`).

Implement them in a conftest.py or an installed pytest plugin, as any pytest hook::

    def pytest_jallm_result(result, config):
        send_to_dashboard(result.name, result.score, result.verdict)
"""

from __future__ import annotations

import pytest


@pytest.hookspec
def pytest_jallm_result(result, config: pytest.Config) -> None:
    """One benchmark's result, once its test has run: score, baseline, verdict, p-values.

    `result` is the `reporting.record.BenchmarkRecord` every report and the results JSON are
    made from (one per benchmark test, in the order the tests finish). Called in the controlling process, so under xdist once per benchmark too,
    never on the workers. A benchmark test that failed before scoring (its data, spec or backend) or was
    skipped is reported too, with `verdict` "error" or "skipped", `score` None and its one-line `reason`.
    """
