"""Local model revisions: a content hash, remembered while the files are unchanged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from pytest_jallm.backends import revision as rev

ROOT = Path(__file__).resolve().parents[1]
GOOD = ROOT / "models" / "tiny-ja-good"


@pytest.fixture
def memo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "memo" / "local-revisions.json"
    monkeypatch.setenv("JALLM_REVISION_MEMO", str(path))
    return path


def test_the_bundled_models_revision_is_the_one_its_baseline_records(memo: Path) -> None:
    # The bundled baselines record the revision that produced them; the memo
    # must not change what a revision is, or every baseline would look stale.
    for path in (ROOT / "thresholds" / "tiny-ja-good").glob("*.baseline.jsonl"):
        assert '"model_revision": "' + rev.local_revision(str(GOOD)) + '"' in path.read_text(encoding="utf-8")
    assert rev.local_revision(str(GOOD)) == rev.content_hash(str(GOOD), rev._hashed_files(str(GOOD)))


def test_unchanged_files_are_not_hashed_again(memo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = tmp_path / "m"
    shutil.copytree(GOOD, model)
    first = rev.local_revision(str(model))
    assert memo.is_file()

    def no_hashing(*args):
        raise AssertionError("hashed again although nothing changed")

    monkeypatch.setattr(rev, "content_hash", no_hashing)
    assert rev.local_revision(str(model)) == first


def test_a_changed_file_is_hashed_again(memo: Path, tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(GOOD, model)
    first = rev.local_revision(str(model))
    weights = model / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size: only the modification time tells
    weights.write_bytes(bytes(data))
    st = weights.stat()
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    changed = rev.local_revision(str(model))
    assert changed != first
    assert changed == rev.content_hash(str(model), rev._hashed_files(str(model)))


def test_unwritable_memo_still_gives_the_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("JALLM_REVISION_MEMO", str(blocker / "memo.json"))
    assert rev.local_revision(str(GOOD)).startswith("local-sha256:")


def test_hub_ids_and_given_revisions_pass_through(memo: Path) -> None:
    assert rev.resolve_revision("org/model", None, default="main") == "main"
    assert rev.resolve_revision(str(GOOD), "abc123", default="main") == "abc123"
    assert not memo.exists()  # nothing hashed, nothing remembered
