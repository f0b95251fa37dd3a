"""Recorded model outputs: the files the replay backend reads, and the one this plugin writes.

Formats, told apart by their content (the first record of a file decides; every line must then
fit that format, or the error names the file, the line and what was expected):

* **M-IFEval response files** (lightblue-tech/M-IFEval ``data/*_input_response_data_<model>.jsonl``):
  JSON lines ``{"prompt", "response"}``. Matched by prompt only.
* **FastChat model answers** (``llm_judge/data/<bench>/model_answer/<model>.jsonl``): JSON lines
  ``{"question_id", "model_id", "choices": [{"index": 0, "turns": [...]}]}``. Turn N of question Q
  answers the item ``Q`` (as text), turn N; the file names no benchmark.
* **FastChat judgments** (``llm_judge/data/<bench>/model_judgment/<judge>_single.jsonl``): JSON lines
  ``{"question_id", "model", "judge", "user_prompt", "judgment", "score", "turn"}``, what an LLM
  judge answered (``judgment``) to the user prompt it was sent (``user_prompt``) about ``model``'s
  answer to turn ``turn`` of question ``question_id``: a judge replaying them answers the same user
  prompt, else (bound to one judged model) question Q, turn N. Several models' judgments share a file.
* **pytest-jallm outputs** (``--jallm-save-outputs FILE``): JSON lines ``{"benchmark", "id",
  "turn", "prompt", "messages", "output"}``, the raw output of every request of a run.
* **pytest-jallm baselines** (``thresholds/<model>/<benchmark>.baseline.jsonl``): their
  ``pred`` per item is the *extracted, normalised* answer, capped at 200 characters, so a
  replay of them is a fallback, not a faithful re-run.

:class:`OutputsWriter` writes the third format crash-safely: one ``write(2)`` of a whole line
per output, appended as outputs arrive (several xdist workers may share the file).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .atomic import atomic_write_text
from .backends.base import BackendError, GenerationRequest

log = logging.getLogger(__name__)

OUTPUT_KEYS = ("benchmark", "id", "turn", "prompt", "messages", "output")
KINDS = {
    "m-ifeval": "M-IFEval response file",
    "fastchat": "FastChat model_answer file",
    "fastchat-judgment": "FastChat model_judgment file",
    "outputs": "pytest-jallm --jallm-save-outputs file",
    "baseline": "pytest-jallm baseline file (extracted answers, capped at 200 characters)",
}
RECORDING_SUFFIXES = (".jsonl", ".json")
_QUOTE = 60  # characters of a bad value quoted in an error


class RecordingError(BackendError):
    """A recorded-outputs file cannot be read; the message names the file and the line."""


class _FieldError(ValueError):
    """A record's field is not what its format holds (the caller adds the file and line)."""


@dataclass(frozen=True)
class Recording:
    """One recorded output and what it answers."""

    output: str
    where: str  # file name:line
    kind: str
    benchmark: str | None = None
    item_id: str | None = None
    turn: int = 1
    prompt: str | None = None  # the raw prompt, or (USER_PROMPT_KINDS) the last user message
    messages: tuple[tuple[str, str], ...] | None = None  # (role, content) per chat turn
    judged_model: str | None = None  # FastChat judgments: the model whose answer was judged


# Formats that record only the user's message (no system prompt, no chat template): a chat
# request matches them by its last user turn, a raw one by its prompt.
USER_PROMPT_KINDS = ("m-ifeval", "fastchat-judgment")


def messages_key(messages: Sequence[Mapping[str, Any]] | Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """Chat messages as comparable (role, content) pairs."""
    return tuple((m["role"], m["content"]) if isinstance(m, Mapping) else (m[0], m[1]) for m in messages)


def _short(value: Any) -> str:
    """A value for an error message: text quoted, anything else as JSON, at most _QUOTE characters."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)[: _QUOTE * 2]
    text = text if len(text) <= _QUOTE else text[:_QUOTE] + "…"
    return repr(text) if isinstance(value, str) else text


# --- finding and reading files ------------------------------------------------------------------


def recording_files(model: str) -> list[Path]:
    """``--model FILE_OR_DIR``: the file, or every ``*.jsonl`` / ``*.json`` file directly in the
    directory (hidden ones excepted), sorted by name."""
    path = Path(model)
    if path.is_dir():
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and p.suffix in RECORDING_SUFFIXES and not p.name.startswith("."))
        if not files:
            raise RecordingError(f"replay backend: --model {model}: the directory holds no *.jsonl or *.json file")
        return files
    if path.is_file():
        return [path]
    raise RecordingError(f"replay backend: --model {model}: no such file or directory (give a recorded-outputs "
                         "file or a directory of them)")


def content_sha256(files: Sequence[Path]) -> str:
    """A hash of the files' contents, independent of their names and order."""
    digests = []
    for path in files:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digests.append(h.hexdigest())
    return hashlib.sha256("\n".join(sorted(digests)).encode("ascii")).hexdigest()


def _json_lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) per non-blank line; errors name the file and the line."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise RecordingError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line_no = data.count(b"\n", 0, e.start) + 1
        start = data.rfind(b"\n", 0, e.start) + 1
        raise RecordingError(f"{path}: line {line_no}: not UTF-8 text ({e.reason} at byte {e.start - start} of the "
                             "line): not a recorded-outputs file") from None
    lines = text.split("\n")  # not splitlines(): U+2028 may sit inside a JSON string
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            truncated = number == len(lines) and not text.endswith("\n")
            hint = " (the last line, unterminated: an interrupted write?)" if truncated else ""
            raise RecordingError(f"{path}: line {number}: not JSON ({e.msg} at column {e.colno}){hint}; "
                                 "a recorded-outputs file holds one JSON object per line") from None
        except RecursionError:
            raise RecordingError(f"{path}: line {number}: JSON nested too deeply to be a recorded output") from None
        if not isinstance(value, dict):
            raise RecordingError(f"{path}: line {number}: expected a JSON object, got {type(value).__name__} "
                                 f"{_short(value)}")
        yield number, value


def detect_kind(record: Mapping[str, Any]) -> str | None:
    """Which format a file's first record belongs to, or None."""
    if record.get("format") == "pytest-jallm/baseline":
        return "baseline"
    if "question_id" in record and "choices" in record:
        return "fastchat"
    if "question_id" in record and "judgment" in record and "user_prompt" in record:
        return "fastchat-judgment"
    if "output" in record and "benchmark" in record:
        return "outputs"
    if "prompt" in record and "response" in record:
        return "m-ifeval"
    return None


def _not_a_recording(path: Path, number: int, record: Mapping[str, Any]) -> RecordingError:
    keys = ", ".join(_short(k) for k in list(record)[:8]) + (", …" if len(record) > 8 else "")
    hint = " (it holds prompts but no outputs: a benchmark's questions, or a prompts file?)" if (
        {"prompt", "turns"} & set(record)) else ""
    return RecordingError(
        f"{path}: line {number}: not a recorded-outputs record{hint}: expected M-IFEval's {{prompt, response}}, "
        "FastChat's {question_id, choices: [{turns}]} or {question_id, model, user_prompt, judgment, turn}, "
        "--jallm-save-outputs' {benchmark, id, turn, prompt, "
        f"messages, output}} or a baseline file's header; got keys {keys or 'none'}"
    )


def read_recordings(path: Path, benchmark: str | None = None) -> tuple[str | None, list[Recording]]:
    """``(kind, recordings)`` of one file (kind None: an empty file). ``benchmark``: the
    benchmark FastChat answers are bound to (they name none)."""
    lines = _json_lines(path)
    first = next(lines, None)
    if first is None:
        return None, []
    number, record = first
    kind = detect_kind(record)
    if kind is None:
        raise _not_a_recording(path, number, record)
    if kind == "baseline":
        for _ in lines:  # every line is a JSON object (named if not) before the baseline reader's checks
            pass
        return kind, _baseline(path)
    parse = {"m-ifeval": _m_ifeval, "fastchat": _fastchat, "fastchat-judgment": _fastchat_judgment,
             "outputs": _outputs}[kind]
    out: list[Recording] = []
    for number, record in [first, *lines]:
        if detect_kind(record) != kind:
            raise RecordingError(f"{path}: line {number}: not a record of this {KINDS[kind]} (line "
                                 f"{first[0]} is one): keys {', '.join(_short(k) for k in list(record)[:8])}")
        try:
            out.extend(parse(record, f"{path.name}:{number}", benchmark))
        except _FieldError as e:
            raise RecordingError(f"{path}: line {number}: {e}") from None
    return kind, out


def _field(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...], expected: str) -> Any:
    value = record.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _FieldError(f"field '{key}': expected {expected}, got {_short(value)}")
    return value


def _m_ifeval(record: Mapping[str, Any], where: str, benchmark: str | None) -> list[Recording]:
    prompt = _field(record, "prompt", str, "the prompt as text")
    response = _field(record, "response", str, "the response as text")
    return [Recording(output=response, where=where, kind="m-ifeval", prompt=prompt)]


def _fastchat(record: Mapping[str, Any], where: str, benchmark: str | None) -> list[Recording]:
    qid = _field(record, "question_id", (int, str), "a question id (number or text)")
    choices = _field(record, "choices", list, "a list of choices")
    if not choices or not isinstance(choices[0], dict):
        raise _FieldError(f"field 'choices': expected [{{\"index\": 0, \"turns\": [...]}}, ...], got {_short(choices)}")
    turns = _field(choices[0], "turns", list, "the answer of each turn (a list of texts)")
    for n, text in enumerate(turns, 1):
        if not isinstance(text, str):
            raise _FieldError(f"field 'choices[0].turns[{n - 1}]': expected text, got {_short(text)}")
    return [Recording(output=text, where=where, kind="fastchat", benchmark=benchmark, item_id=str(qid), turn=n)
            for n, text in enumerate(turns, 1)]


def _fastchat_judgment(record: Mapping[str, Any], where: str, benchmark: str | None) -> list[Recording]:
    qid = _field(record, "question_id", (int, str), "a question id (number or text)")
    model = _field(record, "model", str, "the name of the model whose answer was judged")
    user_prompt = _field(record, "user_prompt", str, "the user prompt the judge was sent, as text")
    judgment = _field(record, "judgment", str, "the judge's answer as text")
    turn = _field(record, "turn", int, "the judged turn (1 or 2)")
    if turn < 1:
        raise _FieldError(f"field 'turn': expected the judged turn (1 or 2), got {turn}")
    return [Recording(output=judgment, where=where, kind="fastchat-judgment", benchmark=benchmark, item_id=str(qid),
                      turn=turn, prompt=user_prompt, judged_model=model)]


def _outputs(record: Mapping[str, Any], where: str, benchmark: str | None) -> list[Recording]:
    output = _field(record, "output", str, "the generated text")
    bench = record.get("benchmark")
    item_id = record.get("id")
    if bench is None:  # a hand-made file that names no benchmark: --jallm-replay-benchmark binds it
        bench = benchmark
    for key, value in (("benchmark", bench), ("id", item_id)):
        if value is not None and not isinstance(value, str):
            raise _FieldError(f"field '{key}': expected text or null, got {_short(value)}")
    turn = record.get("turn", 1)
    if not isinstance(turn, int) or isinstance(turn, bool) or turn < 1:
        raise _FieldError(f"field 'turn': expected a turn number from 1, got {_short(turn)}")
    prompt = record.get("prompt")
    if prompt is not None and not isinstance(prompt, str):
        raise _FieldError(f"field 'prompt': expected text or null, got {_short(prompt)}")
    raw_messages = record.get("messages")
    messages = None
    if raw_messages is not None:
        if not isinstance(raw_messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in raw_messages
        ):
            raise _FieldError(f"field 'messages': expected null or a list of {{\"role\", \"content\"}} texts, "
                              f"got {_short(raw_messages)}")
        messages = messages_key(raw_messages)
    if prompt is None and messages is None and item_id is None:
        raise _FieldError("neither 'prompt', 'messages' nor 'id': nothing says what this output answers")
    return [Recording(output=output, where=where, kind="outputs", benchmark=bench, item_id=item_id, turn=turn,
                      prompt=prompt, messages=messages)]


def _baseline(path: Path) -> list[Recording]:
    from .baseline import BaselineError, read_baseline

    try:
        baseline = read_baseline(path)
    except BaselineError as e:
        raise RecordingError(str(e)) from None
    assert baseline is not None  # the file exists: we have just read it
    return [Recording(output=pred, where=f"{path.name} (item {item_id!r})", kind="baseline", benchmark=baseline.benchmark,
                      item_id=item_id) for item_id, pred in baseline.predictions.items()]


# --- writing: --jallm-save-outputs --------------------------------------------------------------


def start_outputs_file(path: Path) -> None:
    """Begin a run's outputs file: created empty (a previous run's outputs are replaced)."""
    atomic_write_text(path, "")


def output_record(request: GenerationRequest, text: str) -> dict[str, Any]:
    item = request.item
    return {
        "benchmark": None if item is None else item.benchmark,
        "id": None if item is None else item.item_id,
        "turn": 1 if item is None else item.turn,
        "prompt": request.prompt,
        "messages": None if request.messages is None else [dict(m) for m in request.messages],
        "output": text,
    }


class OutputsWriter:
    """Appends one JSON line per output to ``path`` as outputs arrive.

    Each line goes out in one ``write(2)`` on a file opened with ``O_APPEND``, so a killed run
    keeps every line written before it, and xdist workers sharing the file never interleave
    within a line. A write that fails (disk full, read-only) warns once and stops the writing,
    never the run: the outputs are still scored and cached."""

    def __init__(self, path: Path):
        self.path = path
        self.error: str | None = None
        self._lock = threading.Lock()
        self._fd: int | None = None

    def write(self, request: GenerationRequest, text: str) -> None:
        line = json.dumps(output_record(request, text), ensure_ascii=False) + "\n"
        data = line.encode("utf-8", "backslashreplace")  # a lone surrogate stays a JSON escape, not lost
        with self._lock:
            if self.error is not None:
                return
            try:
                if self._fd is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view):]
            except OSError as e:
                self.error = str(e)
                msg = f"--jallm-save-outputs {self.path}: writing failed ({e}); the run goes on without saving outputs"
                log.warning(msg)
                warnings.warn(msg, RuntimeWarning, stacklevel=2)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                try:
                    os.fsync(self._fd)
                except OSError:
                    pass
                os.close(self._fd)
                self._fd = None
