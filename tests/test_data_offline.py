"""Loading local files must not touch the network (air-gapped clusters)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pytest_jallm.data import load_rows
from pytest_jallm.spec import Source


def test_local_load_makes_no_network_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets.load  # here, not at the top: collecting the suite should not cost its import

    calls: list[tuple] = []

    class RecordingSession:
        def head(self, *args, **kwargs):
            calls.append(args)
            raise OSError("network is unreachable")

        get = head

    monkeypatch.setattr(datasets.load, "get_session", lambda: RecordingSession())
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_UPDATE_DOWNLOAD_COUNTS", True)
    path = tmp_path / "rows.jsonl"
    # An int and a float in one column: Arrow unifies them, so this goes through datasets.
    lines = [{"q": "問", "n": 1}, {"q": "答", "n": 1.5}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines), encoding="utf-8")
    rows, origin = load_rows(Source(path=str(path)), tmp_path, None, "test")
    assert rows[0]["q"] == "問" and rows[0]["n"] == 1.0 and type(rows[0]["n"]) is float
    assert origin == str(path)
    assert calls == []
