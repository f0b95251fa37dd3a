"""Deadlines and size caps on whole HTTP exchanges (issue 22 items 2 and 3).

A server that sends one byte at a time, stops sending, or never stops is stopped by the
client: the openai backend's --jallm-timeout bounds connect, headers and body together; a
download has an overall deadline, a stall timeout and a size cap, each named in its error,
and leaves no partial file. Assertions are on outcomes (what the server managed to send,
what was left on disk), never on elapsed time."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

from drip_server import DripServer, dripped, http_head, self_signed
from pytest_jallm.backends.base import BackendError, GenerationRequest, SamplingSettings
from pytest_jallm.backends.openai import OpenAIBackend
from pytest_jallm.data import DataError, load_rows
from pytest_jallm.sources import DataConfig
from pytest_jallm.spec import Source

UPSTREAM = "https://upstream.invalid/org/"
BODY = b"".join(json.dumps({"id": f"q{i}", "question": "x", "label": "0"}).encode() + b"\n" for i in range(4))


def _completion() -> bytes:
    body = json.dumps({"choices": [{"text": "0", "index": 0}]}).encode()
    return http_head(200, len(body), Content_Type="application/json") + body


@pytest.mark.parametrize("phase", ["headers", "body"])
def test_openai_timeout_bounds_the_whole_request(phase: str) -> None:
    """A response trickling in a byte every 0.05 s (each read well inside the timeout) takes
    several seconds; a 1 s --jallm-timeout ends the request, whichever part is trickling."""
    response = _completion()
    split = 0 if phase == "headers" else response.index(b"\r\n\r\n") + 4
    steps = [(0.0, response[:split])] + dripped(response[split:], 0.05)
    with DripServer(steps) as server:
        backend = OpenAIBackend("m", base_url=server.base_url, timeout_s=1, max_retries=0)
        with pytest.raises(BackendError) as err:
            backend.generate([GenerationRequest(prompt="q", max_new_tokens=2)], SamplingSettings())
    assert server.completed == 0, "the client waited for the whole trickling response"
    assert server.sent < len(response)
    message = str(err.value)
    assert "--jallm-timeout" in message and "1 s" in message, message


@pytest.mark.parametrize("phase", ["handshake", "body"])
def test_openai_timeout_bounds_a_tls_request(phase: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same over https: a server that never answers the TLS handshake, or trickles the body."""
    pair = self_signed(tmp_path)
    if pair is None:
        pytest.skip("no `openssl` command to make a test certificate")
    cert, key = pair
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts it through the default context
    response = _completion()
    split = response.index(b"\r\n\r\n") + 4
    steps = [(0.0, response[:split])] + dripped(response[split:], 0.05)
    with DripServer(steps, tls=server_tls, stall_handshake=phase == "handshake") as server:
        backend = OpenAIBackend("m", base_url=server.base_url, timeout_s=1, max_retries=0)
        with pytest.raises(BackendError) as err:
            backend.generate([GenerationRequest(prompt="q", max_new_tokens=2)], SamplingSettings())
    assert server.completed == 0 and server.sent < len(response)
    assert "timed out: no complete response within 1 s (--jallm-timeout)" in str(err.value), str(err.value)


def _source() -> Source:
    return Source(url=UPSTREAM + "test.jsonl", format="jsonl", mirror="org/test.jsonl")


def _load(tmp_path: Path, server: DripServer, **limits) -> None:
    config = DataConfig(cache_dir=tmp_path / "cache", url_map=((UPSTREAM, server.base_url + "/"),), **limits)
    load_rows(_source(), tmp_path, None, "t: source", config)


def _cache_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "cache").rglob("*") if p.is_file())


def test_download_has_an_overall_deadline(tmp_path: Path) -> None:
    """Each byte arrives well inside the stall timeout; the overall deadline ends it."""
    steps = [(0.0, http_head(200, len(BODY)))] + dripped(BODY, 0.05)
    with DripServer(steps) as server, pytest.raises(DataError) as err:
        _load(tmp_path, server, download_timeout_s=1.0, stall_timeout_s=30.0)
    assert server.completed == 0 and server.sent < len(BODY)
    message = str(err.value)
    assert "--jallm-download-timeout" in message and "1 s" in message, message
    assert _cache_files(tmp_path) == []


def test_download_stall_is_named(tmp_path: Path) -> None:
    """Headers, a few bytes, then silence."""
    steps = [(0.0, http_head(200, len(BODY)) + BODY[:10]), (10.0, BODY[10:])]
    with DripServer(steps) as server, pytest.raises(DataError) as err:
        _load(tmp_path, server, download_timeout_s=60.0, stall_timeout_s=0.5)
    assert server.completed == 0
    message = str(err.value)
    assert "--jallm-download-stall-timeout" in message and "0.5 s" in message, message
    assert _cache_files(tmp_path) == []


def test_endless_download_stops_at_the_cap_and_leaves_nothing(tmp_path: Path) -> None:
    """No Content-Length and a body that does not end (64 MB at most, then the server gives up)."""
    chunk = b"x" * 65536
    steps = [(0.0, http_head(200))] + [(0.0, chunk)] * 1024
    with DripServer(steps) as server, pytest.raises(DataError) as err:
        _load(tmp_path, server, max_download_mb=1)
    assert server.completed == 0
    assert server.sent < 16 * 2**20, server.sent  # the client stopped reading near 1 MB
    message = str(err.value)
    assert "--jallm-download-max-mb" in message and "1 MB" in message, message
    assert _cache_files(tmp_path) == []


def test_announced_length_above_the_cap_is_refused_before_reading(tmp_path: Path) -> None:
    steps = [(0.0, http_head(200, 10 * 2**30))] + [(0.0, b"x" * 65536)] * 256
    with DripServer(steps) as server, pytest.raises(DataError) as err:
        _load(tmp_path, server, max_download_mb=1)
    assert server.completed == 0
    assert "announces 10737418240 bytes" in str(err.value) and "--jallm-download-max-mb" in str(err.value)
    assert _cache_files(tmp_path) == []
