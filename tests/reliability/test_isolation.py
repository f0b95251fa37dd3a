"""One bad response does not fail every benchmark: a completion with invalid UTF-8 or with
`choices: []` is retried, then recorded as that item's backend error; the other benchmarks are
scored, every good completion is cached, and only benchmarks whose backend-error share exceeds
--jallm-max-backend-errors (default 0 %) fail, with the count and the first error."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from .toy import cache_rows, write_suite

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fakes.openai_stub import OpenAIStub, Reply, completion_json  # noqa: E402

BENCHES = {"toy_a": 6, "toy_b": 6, "toy_c": 6}
INVALID_UTF8 = b'{"choices": [{"index": 0, "text": "\xff\xfe", "finish_reason": "stop"}]}'


def _handler(req) -> Reply:
    m = re.search(r"(toy_\w)の問題(\d+)番", req.text)
    if not m:
        return Reply(json=completion_json(req.path, ""))
    bench, i = m.group(1), int(m.group(2))
    if (bench, i) == ("toy_a", 2):
        return Reply(raw=INVALID_UTF8)
    if (bench, i) == ("toy_b", 3):
        return Reply(json={"id": "x", "object": "text_completion", "choices": []})
    return Reply(json=completion_json(req.path, str(i % 3)))


def _args(stub: OpenAIStub, *more: str) -> list[str]:
    return ["benchmarks", "-p", "no:cacheprovider", "--jallm-backend", "openai", "--jallm-base-url", stub.base_url,
            "--model", "stub-model", "--jallm-cache", "gen.sqlite", "--jallm-engine-arg", "max_retries=2",
            "--jallm-engine-arg", "backoff_base_s=0.001", "-rA", *more]


def test_one_bad_response_fails_only_its_benchmark(pytester: pytest.Pytester) -> None:
    write_suite(pytester.path, BENCHES)
    with OpenAIStub(_handler) as stub:
        first = pytester.runpytest(*_args(stub))
        bad = [r for r in stub.posts() if re.search(r"toy_aの問題2番|toy_bの問題3番", r.text)]
        first.assert_outcomes(passed=1, failed=2)
        first.stdout.fnmatch_lines([
            "*BackendError: toy_a: 1 of 6 requests failed in the backend (allowed: 0%, --jallm-max-backend-errors);"
            " first: item toy_a-2: response is not JSON or not UTF-8*",
            "*BackendError: toy_b: 1 of 6 requests failed in the backend (allowed: 0%, --jallm-max-backend-errors);"
            " first: item toy_b-3: response has no choices[[]0] text*",
            "PASSED benchmarks/toy_c.yaml::toy_c",
        ])
        assert len(bad) == 2 * 3  # each bad request: 1 + max_retries attempts
        assert cache_rows(pytester.path / "gen.sqlite") == 16  # every good completion is kept

        stub.requests.clear()
        again = pytester.runpytest(*_args(stub, "--jallm-max-backend-errors", "20"))
        again.assert_outcomes(passed=3)  # 1 of 6 is 16.7 % <= 20 %: scored on the other 5 items
        assert len(stub.posts()) == 2 * 3  # only the two missing completions were asked for again
    again.stdout.fnmatch_lines(["*toy_a*MC*exact_match*5*100.00*"])
