"""A workaround for pytest's end-of-run failure summary, quadratic in the number of tests."""

from __future__ import annotations

from typing import Any


def index_teardown_reports(terminalreporter: Any) -> Any:
    """Make pytest's end-of-run failure summary linear in the number of tests.

    For every failed (or passed, with -rP) report, pytest's TerminalReporter looks up that
    test's teardown reports by scanning *all* reports (`_get_teardown_reports`), so the
    summary costs failures × tests: minutes for a benchmark of 10,000 per-example tests of
    which thousands fail (pytest-dev/pytest#13360). This gives the reporter instance the
    same lookup from an index built once. Returns a function that removes it again; does
    nothing when pytest no longer has that method.
    """
    cls_method = getattr(type(terminalreporter), "_get_teardown_reports", None)
    if cls_method is None or not hasattr(terminalreporter, "getreports"):
        return lambda: None
    index: dict[str, list[Any]] | None = None

    def teardown_reports(node_id: Any) -> list[Any]:
        nonlocal index
        if index is None:
            index = {}
            for report in terminalreporter.getreports(""):
                if report.when == "teardown":
                    # pytest >= 9.2 passes the structured `report.id`, earlier ones the nodeid string.
                    index.setdefault(getattr(report, "id", report.nodeid), []).append(report)
        return list(index.get(node_id, ()))

    terminalreporter._get_teardown_reports = teardown_reports

    def restore() -> None:
        terminalreporter.__dict__.pop("_get_teardown_reports", None)

    return restore


def take_warnings(terminalreporter: Any, category: str) -> list[str]:
    """Remove the warnings of one category (by class name) from pytest's warnings summary and return
    their messages, so that the plugin says them once, in one line with counts, instead of a block each
    (pytest groups warnings only when their text is identical). Filters still apply where the warning
    is raised: `-W error::…` fails as before."""
    stats = getattr(terminalreporter, "stats", None)
    if not isinstance(stats, dict) or not stats.get("warnings"):
        return []
    marker = f"{category}: "
    kept, taken = [], []
    for report in stats["warnings"]:
        text = str(getattr(report, "message", ""))
        line = next((x for x in text.splitlines() if marker in x), None)
        if line is None:
            kept.append(report)
        else:
            taken.append(line.split(marker, 1)[1].strip())
    if taken:
        stats["warnings"] = kept
        if not kept:
            stats.pop("warnings")
    return taken
