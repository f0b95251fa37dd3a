"""A scripted backend for testing suites, thresholds and reports without a model.

    pytest benchmarks/ --jallm-backend pytest_jallm.backends.scripted:ScriptedBackend --model script.json

`script.json` holds `{"rules": [{"contains": "...", "output": "..."}], "default": "..."}`:
the first rule whose `contains` occurs in the prompt gives the output;
optional `"fail_after": N` raises after N generations, `"delay": S` sleeps
S seconds before each generation and `"context_window": N` reports a context of
N tokens, one token per character (the context check's tests). When
the environment variable JALLM_SCRIPTED_LOG names a file, each generate()
call appends one JSON line with the number of prompts it received; when
JALLM_SCRIPTED_REQUESTS names a file, every request received is appended as
one JSON line (prompt, messages, max_new_tokens, stop).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from .. import __version__
from .base import BackendError, BackendIdentity, GenerationRequest, ResultCallback, SamplingSettings


class ScriptedBackend:
    def __init__(self, model: str, **options: Any):
        path = Path(model)
        try:
            script = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise BackendError(f"scripted backend: --model {model!r} must be a JSON script file: {e}") from e
        self.model = model
        self.rules: list[dict[str, str]] = list(script.get("rules", []))
        self.default: str = script.get("default", "")
        self.fail_after: int | None = script.get("fail_after")
        self.delay: float = float(script.get("delay", 0))  # seconds per generation (interrupt tests)
        # "context_window": N makes the backend report a context of N tokens, one token per character.
        self.window: int | None = script.get("context_window")
        self.options = options

    def identity(self) -> BackendIdentity:
        return BackendIdentity(
            backend="scripted",
            backend_version=__version__,
            model=self.model,
            model_revision=str(len(self.rules)),
            settings=dict(self.options),
        )

    def _answer(self, request: GenerationRequest) -> str:
        for rule in self.rules:
            if rule["contains"] in request.prompt:
                return rule["output"]
        return self.default

    def generate(
        self,
        requests: Sequence[GenerationRequest],
        sampling: SamplingSettings,
        on_result: ResultCallback | None = None,
    ) -> list[str]:
        log = os.environ.get("JALLM_SCRIPTED_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"prompts": len(requests)}) + "\n")
        requests_log = os.environ.get("JALLM_SCRIPTED_REQUESTS")
        if requests_log:
            with open(requests_log, "a", encoding="utf-8") as fh:
                for r in requests:
                    record = {"prompt": r.prompt, "messages": [dict(m) for m in r.messages] if r.messages else None,
                              "max_new_tokens": r.max_new_tokens, "stop": list(r.stop)}
                    fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        out = []
        for i, r in enumerate(requests):
            if self.fail_after is not None and i >= self.fail_after:
                raise BackendError(f"scripted failure after {self.fail_after} generations")
            if self.delay:
                time.sleep(self.delay)
            text = self._answer(r)
            out.append(text)
            if on_result is not None:
                on_result(i, text)
        return out

    def context_window(self) -> int | None:
        return self.window

    def count_prompt_tokens(self, requests: Sequence[GenerationRequest]) -> list[int]:
        return [len(r.prompt) if r.messages is None else sum(len(m["content"]) for m in r.messages) for r in requests]

    def close(self) -> None:
        pass
