"""Every example the README and docs/variants.md show with its output (a fenced block starting with
`$ `) is run as written, in a fresh copy of the checkout, and fails when what it prints no longer
matches what the page shows (timings excepted; see tests/doc_examples.py for the rules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from doc_examples import ROOT, SHARED, examples, mismatch, normalise, pattern, run, workspace

DOCS = ("README.md", "docs/variants.md")
EXAMPLES = [ex for doc in DOCS for ex in examples(ROOT / doc)]


def test_the_docs_show_the_examples_this_test_runs() -> None:
    # If the blocks lose their `$ ` prompts, this test would silently check nothing.
    shown = {ex.source.split(":")[0] for ex in EXAMPLES}
    assert shown == {"README.md", "variants.md"}
    commands = [step.command for ex in EXAMPLES for step in ex.steps]
    assert "pytest samples --model models/tiny-ja-good" in commands
    assert any("leaderboard" in c for c in commands) and any("--jallm-variants 8" in c for c in commands)


@pytest.mark.slow  # each example loads the bundled model in a subprocess: seconds apiece
@pytest.mark.parametrize("example", EXAMPLES, ids=[ex.source for ex in EXAMPLES])
def test_documented_example_prints_what_the_docs_show(example, tmp_path: Path) -> None:
    if example.needs_shared and not SHARED.is_dir():
        pytest.skip(f"{example.source} needs ../shared/data beside the checkout (not at {SHARED})")
    ws = workspace(tmp_path)
    for step in example.steps:
        actual = normalise(run(step.command, ws), ws)
        problem = mismatch(step.expected, actual)
        assert problem is None, f"{example.source}: `{step.command}` no longer prints what the docs show:\n{problem}"


# --- the comparison itself ----------------------------------------------------------------------


def test_timings_paths_and_title_padding_are_normalised(tmp_path: Path) -> None:
    out = (f"==== 2 passed in 5.60s ====\n{tmp_path}/thresholds/x.yaml: benchmarks.a\n"
           "pytest-jallm: 70 prompts (model load 12.3 s, generation 0.2 s)\n")
    assert normalise(out, tmp_path) == ["= 2 passed in <T> =", "thresholds/x.yaml: benchmarks.a",
                                        "pytest-jallm: 70 prompts (model load <T> s, generation <T> s)"]
    # A progress bar redrawn in place leaves only what it showed last.
    assert normalise("bar  10%\rbar 100%\ndone") == ["bar 100%", "done"]


def test_tables_must_match_exactly_and_ellipses_skip_only_what_they_stand_for() -> None:
    shown = ["…", "benchmark    score", "sample_mc    100.00", "note: AVG over …", "…"]
    actual = ["header", "header 2", "benchmark    score", "sample_mc    100.00", "note: AVG over 2 categories", "tail"]
    assert mismatch(shown, actual) is None
    assert mismatch(shown, [*actual[:3], "sample_mc    99.00", *actual[4:]]) is not None  # a changed score
    assert mismatch(shown, [*actual[:4], "AVG over 2 categories", "tail"]) is not None  # an inline … keeps its prefix
    assert mismatch(["a", "b"], ["a", "x", "b"]) is not None  # without a line "…", no line may be skipped
    assert pattern(["a … b"]).fullmatch("a x\n") is None  # an inline … does not span lines
