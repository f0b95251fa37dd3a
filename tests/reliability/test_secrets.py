"""The API key is read from the environment and never written anywhere: not to the terminal,
logs, results JSON, Markdown, HTML, JUnit XML, the baseline files or the generation cache -- also
when a server quotes it back in an error body."""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

import pytest

from .toy import write_suite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.openai_stub import OpenAIStub, Reply, completion_json  # noqa: E402

BENCHES = {"toy_a": 6, "toy_b": 6}


def _answer(req) -> Reply:
    m = re.search(r"問題(\d+)番", req.text)
    return Reply(json=completion_json(req.path, str(int(m.group(1)) % 3) if m else ""))


def test_api_key_never_leaves_the_environment(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"sk-jallm-{uuid.uuid4().hex}"
    monkeypatch.setenv("JALLM_TEST_KEY", key)
    write_suite(pytester.path, BENCHES)
    seen_auth: list[str] = []

    def flaky(req) -> Reply:
        seen_auth.append(req.headers.get("Authorization", ""))
        if req.path.endswith("/completions") and req.n == 1:  # the first generation request fails once,
            return Reply(status=500, json={"error": f"bad header {req.headers.get('Authorization')}"},  # quoting the key
                         headers={"Retry-After": "0"})
        return _answer(req)

    def refusing(req) -> Reply:
        return Reply(status=401, json={"error": f"invalid key {req.headers.get('Authorization')}"})

    outputs: list[str] = []
    with OpenAIStub(flaky) as stub:
        common = ["benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "openai", "--jallm-base-url", stub.base_url,
                  "--model", "stub-model", "--jallm-api-key-env", "JALLM_TEST_KEY", "--jallm-cache", "gen.sqlite",
                  "--jallm-timeout", "5", "--jallm-engine-arg", "backoff_base_s=0.01", "-l", "-rA",
                  "--log-level", "DEBUG", "--log-file-level", "DEBUG"]
        ok = pytester.runpytest(*common, "--log-file", "ok.log", "--jallm-update-baseline", "--junitxml", "ok.xml", "--jallm-results-json", "ok.json",
                                "--jallm-report-md", "ok.md", "--jallm-report-html", "ok.html")
        ok.assert_outcomes(passed=2)
        outputs.append(ok.stdout.str() + ok.stderr.str())
        stub.handler = refusing
        denied = pytester.runpytest(*common, "--log-file", "denied.log", "--jallm-cache-clear", "--junitxml", "denied.xml",
                                    "--jallm-results-json", "denied.json", "--jallm-report-md", "denied.md")
        denied.assert_outcomes(failed=2)
        denied.stdout.fnmatch_lines(["*BackendError: openai backend: request * failed: HTTP 401: *invalid key Bearer [*][*][*]*"])
        outputs.append(denied.stdout.str() + denied.stderr.str())

    assert f"Bearer {key}" in seen_auth  # the key was used ...
    assert "retry" in (pytester.path / "ok.log").read_text(encoding="utf-8")  # ... the retry was logged ...
    written = {p.name: p.read_bytes() for p in pytester.path.rglob("*") if p.is_file() and p.suffix != ".py"}
    # (denied.json/.md are not written: no benchmark produced a score. If they were, they are checked below.)
    for name in ("ok.xml", "ok.json", "ok.md", "ok.html", "denied.xml", "ok.log", "denied.log", "toy_a.baseline.jsonl", "gen.sqlite"):
        assert name in written, name
    for name, data in written.items():  # ... and it is nowhere: files (the cache with its WAL) and output
        assert key.encode() not in data, f"API key leaked into {name}"
    for text in outputs:
        assert key not in text, "API key leaked into the terminal output"


# --- redirects: the key never reaches another origin -------------------------------------------

def test_redirect_is_not_followed_and_the_key_stays_with_its_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    from pytest_jallm.backends.base import BackendError, GenerationRequest, SamplingSettings
    from pytest_jallm.backends.openai import OpenAIBackend

    key = f"sk-jallm-{uuid.uuid4().hex}"
    monkeypatch.setenv("JALLM_TEST_KEY", key)
    with OpenAIStub(_answer) as elsewhere:
        target = elsewhere.base_url

        def redirecting(req) -> Reply:
            status = 302 if req.path.endswith("/version") else 307
            return Reply(status=status, raw=b"", headers={"Location": target + req.path})

        with OpenAIStub(redirecting) as origin:
            backend = OpenAIBackend("m", base_url=origin.base_url, api_key_env="JALLM_TEST_KEY", max_retries=0,
                                    timeout_s=5)
            backend.identity()  # GET /version -> 302
            with pytest.raises(BackendError) as ei:
                backend.generate([GenerationRequest(prompt="問題1番", max_new_tokens=4)], SamplingSettings())
        assert any(r.headers.get("Authorization") == f"Bearer {key}" for r in origin.requests)
        assert elsewhere.requests == [], "a redirect was followed (with the API key) to another origin"
    message = str(ei.value)
    assert "HTTP 307 redirect" in message and "not followed" in message and target in message
    assert key not in message


# --- redaction: the key's common encodings in error bodies --------------------------------------

def _encodings(key: str) -> dict[str, str]:
    import base64
    import json as _json
    import urllib.parse

    return {
        "raw": key,
        "url (every character)": "".join(f"%{b:02X}" for b in key.encode()),
        "url (lower-case, dash only)": key.replace("-", "%2d"),
        "url quote_plus": urllib.parse.quote_plus(key, safe=""),
        "json \\u escapes": _json.dumps(key, ensure_ascii=True).strip('"').replace("-", "\\u002d"),
        "json \\/": key.replace("/", "\\/"),
        "html entities": key.replace("-", "&#45;").replace("j", "&#x6a;"),
        "base64 user:key": base64.b64encode(f"user:{key}".encode()).decode(),
        "base64 :key": base64.b64encode(f":{key}".encode()).decode(),
        "base64 key": base64.b64encode(key.encode()).decode(),
        "base64url apikey:key": base64.urlsafe_b64encode(f"apikey:{key}".encode()).decode(),
        "double url": urllib.parse.quote(urllib.parse.quote(key.replace("-", "%2D"), safe="")),
    }


def test_redaction_covers_the_keys_common_encodings() -> None:
    from pytest_jallm.backends.openai import redact_secret

    key = "sk-jallm/" + uuid.uuid4().hex + "+Q=="
    for name, encoded in _encodings(key).items():
        text = f'{{"error": "invalid key {encoded} (check it)"}}'
        redacted = redact_secret(text, key)
        for other in _encodings(key).values():
            assert other not in redacted, (name, redacted)
        assert "invalid key" in redacted or "withheld" in redacted, (name, redacted)
    assert redact_secret("nothing secret here", key) == "nothing secret here"


def test_encoded_key_in_an_error_body_reaches_neither_terminal_nor_junit(pytester: pytest.Pytester,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"sk-jallm-{uuid.uuid4().hex}"
    monkeypatch.setenv("JALLM_TEST_KEY", key)
    write_suite(pytester.path, BENCHES)
    encoded = _encodings(key)
    variants = list(encoded.values())

    def refusing(req) -> Reply:
        echo = variants[req.n % len(variants)]
        return Reply(status=401 if req.n % 2 else 500, json={"error": f"invalid key {echo}"}, headers={"Retry-After": "0"})

    with OpenAIStub(refusing) as stub:
        for round_ in range(3):  # each round the first failure quotes another encoding
            result = pytester.runpytest(
                "benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "openai", "--jallm-base-url", stub.base_url,
                "--model", "stub-model", "--jallm-api-key-env", "JALLM_TEST_KEY", "--jallm-no-cache",
                "--jallm-timeout", "5", "--jallm-engine-arg", "backoff_base_s=0.001", "--jallm-engine-arg",
                "max_retries=1", "--junitxml", f"r{round_}.xml", "-rA", "--log-level", "DEBUG",
            )
            result.assert_outcomes(failed=2)
            text = result.stdout.str() + result.stderr.str() + (pytester.path / f"r{round_}.xml").read_text()
            assert "invalid key" in text or "withheld" in text
            for name, value in encoded.items():
                assert value not in text, f"the key ({name}) leaked"
