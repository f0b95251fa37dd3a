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

    failed_once: list[int] = []

    def flaky(req) -> Reply:
        seen_auth.append(req.headers.get("Authorization", ""))
        if req.path.endswith("/completions") and not failed_once:  # the first generation request fails once,
            failed_once.append(req.n)
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


# --- credentials in --jallm-url-map / JALLM_URL_MAP (issue 22 item 4) ---------------------------

URL_SPEC = """\
name: {name}
category: MC
source: {{url: "https://upstream.invalid/{folder}/{name}.jsonl", mirror: "{folder}/{name}.jsonl", format: jsonl}}
fields: {{id: qid, answer: label, choices: [c0, c1, c2], question: question}}
instruction: 正しい選択肢の番号で答えてください。
input: "質問：{{question}}\\n選択肢：{{choices}}"
labels: ["0", "1", "2"]
max_new_tokens: 2
metrics: [exact_match]
"""


def test_url_map_credentials_reach_no_output(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL map whose mirrors carry a password, a token in the path and signed-URL query values,
    pointing at a loopback server that fails (quoting the request back): the secrets appear in no
    terminal output, JUnit XML, results JSON, Markdown or HTML report, nor in `data fetch`'s output."""
    import base64
    import subprocess

    from .toy import SCRIPTED, write_script

    secrets = {name: uuid.uuid4().hex for name in ("password", "path_token", "signature", "token")}
    write_suite(pytester.path, {"toy_a": 3})  # one benchmark that scores, so every report is written
    for name, folder in (("toy_c", "c"), ("toy_d", "d")):
        (pytester.path / "benchmarks" / f"{name}.yaml").write_text(URL_SPEC.format(name=name, folder=folder),
                                                                   encoding="utf-8")
    script = write_script(pytester.path, {"toy_a": 3})
    seen: list[str] = []

    def failing(req) -> Reply:  # quotes the request back, as careless servers do
        seen.append(req.path + " " + req.headers.get("Authorization", ""))
        return Reply(status=500, json={"error": f"no such file {req.path} for {req.headers.get('Authorization')}"})

    with OpenAIStub(failing) as server:
        host = server.base_url.removeprefix("http://")
        option_rule = (f"https://upstream.invalid/c/=http://mirror-user:{secrets['password']}@{host}"
                       f"/api_key/{secrets['path_token']}/")
        env_rule = (f"https://upstream.invalid/d/=http://{host}/get?X-Amz-Signature={secrets['signature']}"
                    f"&token={secrets['token']}&file=")
        monkeypatch.setenv("JALLM_URL_MAP", env_rule)
        monkeypatch.setenv("JALLM_DATA_CACHE", str(pytester.path / "data-cache"))
        result = pytester.runpytest(
            "benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED, "--model", script, "--jallm-no-cache",
            "--jallm-url-map", option_rule, "--junitxml", "out.xml", "--jallm-results-json", "out.json",
            "--jallm-report-md", "out.md", "--jallm-report-html", "out.html", "-rA", "-v")
        fetched = subprocess.run(
            [sys.executable, "-m", "pytest_jallm", "data", "fetch", "benchmarks", "--to", "fetched",
             "--url-map", option_rule], cwd=pytester.path, capture_output=True, text=True, timeout=120)
    result.assert_outcomes(passed=1, failed=2)
    assert fetched.returncode == 1, fetched.stdout + fetched.stderr
    # The mirrors were asked, with the credentials (Basic auth from user:password@) ...
    basic = "Basic " + base64.b64encode(f"mirror-user:{secrets['password']}".encode()).decode()
    assert any(secrets["path_token"] in s and basic in s for s in seen), seen
    assert any(secrets["signature"] in s and secrets["token"] in s for s in seen), seen
    # ... and the failures say which mirror failed, without them.
    result.stdout.fnmatch_lines(["*could not download https://upstream.invalid/c/toy_c.jsonl (via "
                                 "http://mirror-user:***@127.0.0.1:*/api_key/***/toy_c.jsonl): HTTP 500*"])
    outputs = {"terminal": result.stdout.str() + result.stderr.str(), "data fetch": fetched.stdout + fetched.stderr}
    for name in ("out.xml", "out.json", "out.md", "out.html"):
        outputs[name] = (pytester.path / name).read_text(encoding="utf-8")
    for where, text in outputs.items():
        if where in ("terminal", "data fetch", "out.xml"):  # the reports list only scored benchmarks
            assert "could not download" in text, where
        for name, secret in secrets.items():
            assert secret not in text, f"the URL map's {name} leaked into {where}"
        assert base64.b64encode(f"mirror-user:{secrets['password']}".encode()).decode()[8:24] not in text


def test_malformed_url_map_rule_is_not_echoed_with_its_password() -> None:
    from pytest_jallm.sources import parse_url_map

    secret = uuid.uuid4().hex
    with pytest.raises(ValueError) as err:
        parse_url_map([f"http://user:{secret}@mirror.example/"])
    assert "is not PREFIX=REPLACEMENT" in str(err.value) and secret not in str(err.value)
