"""Paths stay where they belong (issue 22 item 6): a symlink inside the data directory that leads
out of it is refused, for reads and for `data fetch` writes; `file://` URLs (in specs and in URL
maps) are read only with --jallm-allow-file-urls, other schemes never."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from file_server import serve_directory
from pytest_jallm.data import DataError, load_rows
from pytest_jallm.datadir import fetch
from pytest_jallm.sources import DataConfig
from pytest_jallm.spec import Source

pytestmark = pytest.mark.filterwarnings("ignore::pytest_jallm.sources.UnpinnedDataWarning")
UPSTREAM = "https://upstream.invalid/org/repo/"
ROWS = [{"id": f"q{i}", "question": f"問{i}", "label": str(i % 2)} for i in range(4)]
BODY = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS).encode("utf-8")
SPEC = """\
name: toy_url
category: MC
source: {{url: "{url}", mirror: repo/data/test.jsonl, format: jsonl}}
fields: {{id: id, answer: label, question: question}}
instruction: 答えてください。
input: "{{question}}"
labels: ["0", "1"]
max_new_tokens: 2
metrics: [exact_match]
"""


def _source(url: str = UPSTREAM + "data/test.jsonl", pinned: bool = False) -> Source:
    pins = {"repo/data/test.jsonl": hashlib.sha256(BODY).hexdigest()} if pinned else {}
    return Source(url=url, format="jsonl", mirror="repo/data/test.jsonl", sha256=pins)


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    (outside / "data").mkdir(parents=True)
    (outside / "data" / "test.jsonl").write_bytes(BODY)
    return outside


@pytest.mark.parametrize("link", ["directory", "file"])
def test_symlink_leading_out_of_the_data_dir_is_refused_on_read(tmp_path: Path, link: str) -> None:
    outside = _outside(tmp_path)
    data_dir = tmp_path / "data-dir"
    if link == "directory":
        data_dir.mkdir()
        (data_dir / "repo").symlink_to(outside)
    else:
        (data_dir / "repo" / "data").mkdir(parents=True)
        (data_dir / "repo" / "data" / "test.jsonl").symlink_to(outside / "data" / "test.jsonl")
    with pytest.raises(DataError) as err:
        load_rows(_source(pinned=True), tmp_path, data_dir, "t: source", DataConfig(cache_dir=tmp_path / "cache"))
    message = str(err.value)
    assert "t: source: refused" in message and "symlink" in message and "outside" in message, message


def test_symlink_inside_the_data_dir_and_a_linked_data_dir_are_fine(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "store").mkdir(parents=True)
    (real / "store" / "test.jsonl").write_bytes(BODY)
    (real / "repo" / "data").mkdir(parents=True)
    (real / "repo" / "data" / "test.jsonl").symlink_to(real / "store" / "test.jsonl")
    linked = tmp_path / "linked"
    linked.symlink_to(real)  # as ../shared is a link to /work/shared/data
    rows, _ = load_rows(_source(pinned=True), tmp_path, linked, "t: source", DataConfig(cache_dir=tmp_path / "cache"))
    assert [r["id"] for r in rows] == ["q0", "q1", "q2", "q3"]


def test_data_fetch_does_not_write_through_a_symlink(tmp_path: Path) -> None:
    served = tmp_path / "served" / "data"
    served.mkdir(parents=True)
    (served / "test.jsonl").write_bytes(BODY)
    outside = tmp_path / "outside"
    outside.mkdir()
    to = tmp_path / "to"
    to.mkdir()
    (to / "repo").symlink_to(outside)
    with serve_directory(tmp_path / "served") as server:
        spec = tmp_path / "specs" / "toy_url.yaml"
        spec.parent.mkdir()
        spec.write_text(SPEC.format(url=UPSTREAM + "data/test.jsonl"), encoding="utf-8")
        config = DataConfig(cache_dir=tmp_path / "cache", url_map=((UPSTREAM, server.base_url + "/"),))
        _, failures = fetch([spec], to, config, log=lambda line: None)
    assert len(failures) == 1 and "refused" in failures[0] and "symlink" in failures[0], failures
    assert list(outside.rglob("*")) == [], "data fetch wrote outside its directory"


def test_file_urls_need_the_option(tmp_path: Path) -> None:
    local = _outside(tmp_path) / "data" / "test.jsonl"
    config = DataConfig(cache_dir=tmp_path / "cache")
    with pytest.raises(DataError) as err:
        load_rows(_source(local.as_uri()), tmp_path, None, "t: source", config)
    assert "--jallm-allow-file-urls" in str(err.value) and "file://" in str(err.value)
    rows, _ = load_rows(_source(local.as_uri()), tmp_path, None, "t: source", DataConfig(cache_dir=tmp_path / "c2",
                                                                                         allow_file_urls=True))
    assert len(rows) == 4


def test_url_map_to_file_or_other_schemes_is_refused(tmp_path: Path) -> None:
    folder = _outside(tmp_path)
    for target, allowed in ((folder.as_uri() + "/", False), ("ftp://127.0.0.1:9/", False),
                            (folder.as_uri() + "/", True)):
        config = DataConfig(cache_dir=tmp_path / f"cache-{allowed}", url_map=((UPSTREAM, target),),
                            allow_file_urls=allowed)
        if allowed:
            rows, _ = load_rows(_source(), tmp_path, None, "t: source", config)
            assert len(rows) == 4
            continue
        with pytest.raises(DataError) as err:
            load_rows(_source(), tmp_path, None, "t: source", config)
        message = str(err.value)
        assert "refused" in message and target.split(":")[0] + "://" in message, message


def test_a_spec_url_must_be_a_url() -> None:
    with pytest.raises(ValueError, match="'url' must be an http\\(s\\) URL"):
        Source(url="/etc/passwd", format="jsonl")


def test_allow_file_urls_option_in_a_run(pytester: pytest.Pytester, tmp_path: Path) -> None:
    from .toy import SCRIPTED

    local = _outside(tmp_path) / "data" / "test.jsonl"
    (pytester.path / "benchmarks").mkdir()
    (pytester.path / "benchmarks" / "toy_url.yaml").write_text(SPEC.format(url=local.as_uri()), encoding="utf-8")
    script = pytester.path / "model.json"
    script.write_text(json.dumps({"rules": [], "default": "0"}), encoding="utf-8")
    args = ["benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED, "--model", str(script),
            "--jallm-no-cache", "--jallm-data-cache", str(tmp_path / "cache")]
    refused = pytester.runpytest(*args)
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*refused file://* URL*--jallm-allow-file-urls*"])
    pytester.runpytest(*args, "--jallm-allow-file-urls").assert_outcomes(passed=1)
