"""Licences as markers: `-m "not noncommercial"` leaves out NC datasets, derived from each
spec's `license` field; the markers are registered, so --strict-markers accepts them."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_jallm.spec import LICENSE_MARKERS, license_markers
from pytest_jallm.specfile import load_spec

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "license, expected",
    [
        ("CC BY-NC-SA 4.0", {"noncommercial", "sharealike"}),
        ("CC BY-SA 4.0", {"sharealike"}),
        ("CC BY-SA 3.0", {"sharealike"}),
        ("CC BY 4.0", set()),
        ("CC BY-NC 4.0", {"noncommercial"}),
        ("Creative Commons Attribution-NonCommercial-ShareAlike 4.0", {"noncommercial", "sharealike"}),
        ("cc-by-nc-nd-4.0", {"noncommercial"}),
        ("MIT", set()),
        ("Apache-2.0", set()),
        ("BSD-3-Clause", set()),
        ("CC0 1.0", set()),
        ("", {"license_unknown"}),
        ("see homepage (exam text from the Ministry of Health, Labour and Welfare)", {"license_unknown"}),
    ],
)
def test_license_markers_from_the_license_field(license: str, expected: set[str]) -> None:
    assert set(license_markers(license)) == expected
    assert set(license_markers(license)) <= set(LICENSE_MARKERS)


def test_shipped_specs_get_their_markers() -> None:
    marks = {p.stem: set(license_markers(load_spec(p).license)) for p in (ROOT / "benchmarks").glob("*.yaml")}
    assert marks["xlsum_ja"] == {"noncommercial", "sharealike"}
    assert marks["jcommonsenseqa"] == {"sharealike"}
    assert marks["mgsm"] == set() and marks["jsem"] == set()
    assert marks["igakuqa"] == {"license_unknown"}
    assert [name for name, m in marks.items() if "noncommercial" in m] == ["xlsum_ja"]


SPEC = """\
name: {name}
category: MC
license: {license}
source: {{path: data.jsonl}}
fields: {{id: qid, answer: label, question: question}}
instruction: 答えてください。
input: "{{question}}"
max_new_tokens: 2
metrics: [exact_match]
"""


def test_deselect_noncommercial_with_strict_markers(pytester: pytest.Pytester) -> None:
    bench = pytester.mkdir("benchmarks")
    (bench / "data.jsonl").write_text('{"qid": "1", "question": "q", "label": "a"}\n', encoding="utf-8")
    for name, lic in (("open_one", "CC BY 4.0"), ("nc_one", "CC BY-NC-SA 4.0"), ("sa_one", "CC BY-SA 4.0")):
        (bench / f"{name}.yaml").write_text(SPEC.format(name=name, license=lic), encoding="utf-8")
    result = pytester.runpytest("benchmarks", "--collect-only", "-q", "--strict-markers", "-m", "not noncommercial")
    result.stdout.fnmatch_lines(["*open_one*", "*sa_one*", "2/3 tests collected (1 deselected)*"])
    result.stdout.no_fnmatch_line("*nc_one*")
    only_permissive = pytester.runpytest("benchmarks", "--collect-only", "-q", "--strict-markers",
                                         "-m", "not noncommercial and not sharealike and not license_unknown")
    only_permissive.stdout.fnmatch_lines(["*open_one*", "1/3 tests collected (2 deselected)*"])
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.noncommercial:*", "@pytest.mark.sharealike:*", "@pytest.mark.license_unknown:*"])
