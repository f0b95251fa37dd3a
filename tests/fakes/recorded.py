"""A backend that answers from recorded outputs, matched by the request's item and turn (test double).

    Recorded("japanese-stablelm-instruct-alpha-7b", {("11", 1): "…", ("11", 2): "…"})

serves the text recorded for ``(request.item.item_id, request.item.turn)``; a request with no
recording gets ``default`` (or fails on its own, as a server's rejected request does, when
``default`` is None). Every request is kept in ``requests``. Used on both sides of the judged
flow: the model's recorded answers and the judge's recorded judgments.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from pytest_jallm.backends.base import (
    BackendIdentity,
    GenerationRequest,
    RequestErrors,
    ResultCallback,
    SamplingSettings,
)


class Recorded:
    def __init__(self, model: str, outputs: Mapping[tuple[str, int], str], default: str | None = None):
        self.model = model
        self.outputs = dict(outputs)
        self.default = default
        self.requests: list[GenerationRequest] = []
        self.samplings: list[SamplingSettings] = []
        self.calls = 0

    def identity(self) -> BackendIdentity:
        return BackendIdentity("recorded", "1", self.model, "recorded", {})

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingSettings,
                 on_result: ResultCallback | None = None) -> list[str]:
        self.calls += 1
        self.samplings.append(sampling)
        out: list[str | None] = []
        failures = {}
        for i, r in enumerate(requests):
            self.requests.append(r)
            assert r.item is not None, "every request names its item"
            text = self.outputs.get((r.item.item_id, r.item.turn), self.default)
            if text is None:
                failures[i] = f"nothing recorded for {r.item.item_id} turn {r.item.turn}"
            elif on_result is not None:
                on_result(i, text)
            out.append(text)
        if failures:
            raise RequestErrors(failures, out)
        return out  # type: ignore[return-value]

    def close(self) -> None:
        pass
