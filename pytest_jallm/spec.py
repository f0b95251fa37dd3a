"""Declarative benchmark specs (`benchmarks/*.yaml`), validated with pydantic.

A spec says where the data is, how a row maps to the prompt's fields, what
the gold answer and the closed label set are, and which metrics score it.
Every validation error names the file, the key and what was expected.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional, Union

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The categories and licence markers live in markers.py, which the plugin reads at start-up
# without importing pydantic; importable from here too.
from .markers import CATEGORIES, CATEGORIES_OUT_OF_AVERAGE, LICENSE_MARKERS, license_markers  # noqa: F401
from .strict_yaml import FileKeyError

DATA_FORMATS = ("json", "jsonl", "csv", "tsv", "parquet")
JUDGE_METRIC = "judge_rating"  # the one metric of a benchmark with a `judge` section (metrics.py)
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")


SpecError = FileKeyError  # a benchmark spec is invalid


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    """Where rows come from: exactly one of `hf`, `url`, `path`."""

    hf: Optional[str] = Field(None, description="Hugging Face dataset id")
    hf_config: Optional[str] = None
    split: Optional[str] = None
    url: Optional[Union[str, list[str]]] = None
    path: Optional[Union[str, list[str]]] = Field(
        None, description="local file(s) relative to the spec; globs allowed"
    )
    format: Optional[str] = Field(
        None, description="json|jsonl|csv|tsv|parquet or a named loader; default from the extension"
    )
    mirror: Optional[Union[str, list[str]]] = Field(
        None, description="path(s) under --jallm-data-dir that hold a local copy of this source (one per url)"
    )
    sha256: dict[str, str] = Field(
        default_factory=dict,
        description="mirror path -> sha256 of the file, checked after a download and on every read of a local copy",
    )
    sha256_file: Optional[str] = Field(
        None, description="more pins, sha256sum format ('<hex>  <mirror path>'), relative to the spec (many-file corpora)"
    )
    columns: Optional[list[str]] = Field(None, description="column names for header-less CSV/TSV")
    where: dict[str, Any] = Field(default_factory=dict, description="keep rows whose column equals the value")
    exclude: dict[str, list[Any]] = Field(
        default_factory=dict, description="drop rows whose column takes one of the values"
    )
    loader_options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _exactly_one_location(self) -> "Source":
        given = [k for k in ("hf", "url", "path") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of 'hf', 'url' or 'path' (got {', '.join(given) or 'none'})"
            )
        if self.hf and not self.split:
            raise ValueError("an 'hf' source needs a 'split'")
        if self.url:
            for url in self.locations():
                if not re.match(r"^(?:https?|file)://", url, re.IGNORECASE):
                    raise ValueError(f"'url' must be an http(s) URL (a local file is a 'path'), got {url!r}")
        from .sources import SHA256_RE, check_mirror_path

        for m in self.mirrors():
            problem = check_mirror_path(m)
            if problem:
                raise ValueError(f"mirror {problem}")
        if self.url and self.mirror and len(self.locations()) != len(self.mirrors()):
            raise ValueError(
                f"'mirror' lists {len(self.mirrors())} path(s) for {len(self.locations())} url(s): give one per url, "
                "in the same order"
            )
        for key, digest in self.sha256.items():
            if not isinstance(digest, str) or not SHA256_RE.match(digest):
                raise ValueError(f"sha256 of {key!r} must be 64 lower-case hex digits, got {digest!r}")
            if check_mirror_path(key):
                raise ValueError(f"sha256 key {check_mirror_path(key)}")
        return self

    def locations(self) -> list[str]:
        value = self.url or self.path or []
        return [value] if isinstance(value, str) else list(value)

    def mirrors(self) -> list[str]:
        value = self.mirror or []
        return [value] if isinstance(value, str) else list(value)

    def pins(self, spec_dir: Path | None = None) -> dict[str, str]:
        """sha256 per mirror path (the path under --jallm-data-dir), from `sha256` and `sha256_file`."""
        pins: dict[str, str] = {}
        if self.sha256_file:
            from .sources import read_pins_file

            pins.update(read_pins_file(Path(spec_dir or ".") / self.sha256_file))
        pins.update(self.sha256)
        return pins


class Fields(_Strict):
    """Column mapping: template variable -> column name; `id`, `answer`, `choices` are roles."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: Optional[str] = Field(None, description="column with a unique item id (default: row number)")
    answer: Optional[str] = Field(
        None, description="column with the gold answer (required, except for an LLM-judged benchmark: see 'judge')"
    )
    choices: Optional[Union[str, list[str]]] = Field(
        None, description="a list-valued column, or the list of choice columns"
    )

    def variables(self) -> dict[str, str]:
        return {k: v for k, v in (self.model_extra or {}).items()}


class ChoiceFormat(_Strict):
    """How `{choices}` renders: llm-jp-eval's `0.a,1.b` is label `{index}.` joined by `,`."""

    label: str = "{index}."
    joiner: str = ","

    @field_validator("label")
    @classmethod
    def _known_placeholders(cls, v: str) -> str:
        allowed = {"index", "number", "letter"}
        used = set(re.findall(r"{(\w+)}", v))
        if not used <= allowed:
            raise ValueError(f"label may use only {sorted(allowed)}, got {sorted(used - allowed)}")
        return v


class FewShot(_Strict):
    count: int = Field(0, ge=0, le=64)
    source: Optional[Source] = None
    shuffle_seed: Optional[int] = Field(
        None, description="shuffle the few-shot pool with this seed before taking the first `count`"
    )

    @model_validator(mode="after")
    def _source_when_counted(self) -> "FewShot":
        if self.count and self.source is None:
            raise ValueError("few-shot 'count' > 0 needs a 'source'")
        return self


class AnswerExtractionSpec(_Strict):
    """How outputs become answers (pytest_jallm.answers): a preset, and its options."""

    preset: str = Field("first_paragraph", description="first_paragraph | raw | answer_tags | choice_only | json_output | "
                                                      "code_output | latex_boxed | custom")
    pattern: Optional[str] = Field(None, description="the custom preset's regex: group 1 is the answer")
    json_key: str = Field("answer", description="json_output: the key that holds the answer")
    normalize: Optional[bool] = Field(None, description="NFKC + strip (default: on, off for raw)")

    @model_validator(mode="after")
    def _known(self) -> "AnswerExtractionSpec":
        from .answers import PRESETS

        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; expected one of {', '.join(PRESETS)}")
        if self.preset == "custom" and not self.pattern:
            raise ValueError("the custom preset needs a 'pattern' (a regex whose group 1 is the answer)")
        if self.pattern is not None:
            if self.preset != "custom":
                raise ValueError(f"'pattern' is the custom preset's; preset {self.preset!r} takes none")
            _check_pattern(self.pattern)
        return self


def _check_pattern(v: str) -> None:
    try:
        compiled = regex.compile(v, regex.DOTALL)  # the engine answers.extract_answer matches with
    except regex.error as e:
        raise ValueError(f"not a valid regular expression: {e}") from None
    if compiled.groups < 1:
        raise ValueError("needs one capturing group holding the answer")


def _as_extraction(v: Any) -> Any:
    return {"preset": v} if isinstance(v, str) else v


class ModeSpec(_Strict):
    """What a run mode (``--jallm-mode NAME``) changes in this spec, e.g. ``modes: {reasoning: …}``."""

    instruction: Optional[str] = None
    input: Optional[str] = None
    system_prompt: Optional[str] = None
    prompt_template: Optional[str] = None
    answer_extraction: Optional[AnswerExtractionSpec] = None
    max_new_tokens: Optional[int] = Field(None, ge=1, le=131072)
    stop: Optional[list[str]] = None

    _extraction_shorthand = field_validator("answer_extraction", mode="before")(lambda cls, v: _as_extraction(v))


class Thresholds(_Strict):
    """Threshold defaults a spec may carry; `thresholds/*.yaml` overrides them."""

    min_score: Optional[float] = Field(None, ge=0, le=100)
    max_ooc_rate: Optional[float] = Field(None, ge=0, le=100)
    max_oof_rate: Optional[float] = Field(None, ge=0, le=100)
    max_drop: Optional[float] = Field(None, ge=0, le=100)


class JudgeSpec(_Strict):
    """An LLM judge scores the answers, as FastChat's single-answer grading does (Japanese MT-Bench).

    The model answers each question's turns in one conversation; the judge rates every turn 1-10
    with the FastChat prompt for that turn (pytest_jallm/chatjudge/fastchat.py). Which judge model
    runs is a run option (`--jallm-judge-backend`, `--jallm-judge-model`), not part of the spec.
    """

    prompts: Source = Field(..., description="FastChat judge prompt file (JSON Lines): single-v1 and "
                                             "single-math-v1 for turn 1, and the turn-2 ones unless multi_turn_prompts")
    multi_turn_prompts: Optional[Source] = Field(
        None, description="another prompt file holding single-v1-multi-turn and single-math-v1-multi-turn (turn 2)")
    reference_answers: Source = Field(..., description="FastChat answer file (JSON Lines) of the reference answers")
    reference_categories: list[str] = Field(
        default_factory=lambda: ["math", "reasoning", "coding"],
        description="categories judged against the reference answer (FastChat's NEED_REF_CATS)")
    turns: int = Field(2, ge=1, le=2, description="turns answered and judged (FastChat's --max-turns)")
    max_new_tokens: int = Field(2048, ge=1, le=8192, description="the judge's output length (FastChat: 2048)")

    def sources(self) -> list[tuple[Source, str]]:
        """Every file the judge reads, with its key in the spec (for messages and `data fetch`)."""
        out = [(self.prompts, "judge.prompts")]
        if self.multi_turn_prompts is not None:
            out.append((self.multi_turn_prompts, "judge.multi_turn_prompts"))
        out.append((self.reference_answers, "judge.reference_answers"))
        return out


class BenchmarkSpec(_Strict):
    name: str
    category: str
    description: str = ""
    language: Literal["ja", "en"] = "ja"
    license: str = ""
    homepage: str = ""
    source: Source
    fields: Fields
    instruction: str
    input: str = Field(..., description="template of the input block, e.g. '質問：{question}\\n選択肢：{choices}'")
    choice_format: ChoiceFormat = Field(default_factory=ChoiceFormat)
    answer_map: dict[str, str] = Field(
        default_factory=dict, description="raw answer value -> gold string"
    )
    labels: Optional[list[str]] = Field(None, description="closed label set (enables OoC)")
    fewshot: FewShot = Field(default_factory=FewShot)
    prompt_template: str = "llm-jp-eval-v1"
    system_prompt: Optional[str] = None
    max_new_tokens: int = Field(..., ge=1, le=8192)
    stop: list[str] = Field(default_factory=list)
    answer_pattern: Optional[str] = Field(None, description="regex whose group 1 is the answer (the custom preset)")
    answer_extraction: AnswerExtractionSpec = Field(
        default_factory=AnswerExtractionSpec,
        description="a preset name (first_paragraph: llm-jp-eval 1.3's cut; raw: the whole output, untouched) or "
                    "{preset, pattern, json_key, normalize}",
    )
    modes: dict[str, ModeSpec] = Field(default_factory=dict, description="overrides per run mode (--jallm-mode)")
    metrics: list[str] = Field(..., min_length=1)
    in_average: Optional[bool] = None
    item_pass_score: float = Field(1.0, ge=0, le=1)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    judge: Optional[JudgeSpec] = Field(None, description="an LLM judge scores the answers (multi-turn chat)")

    @field_validator("name")
    @classmethod
    def _name_is_identifier(cls, v: str) -> str:
        if not _NAME_RE.match(v):
            raise ValueError("must be lower-case letters, digits, '_' or '-' (it becomes the test id)")
        return v

    @field_validator("category")
    @classmethod
    def _known_category(cls, v: str) -> str:
        if v.upper() not in CATEGORIES:
            raise ValueError(f"unknown category {v!r}; expected one of {', '.join(CATEGORIES)}")
        return v.upper()

    @field_validator("answer_map", mode="before")
    @classmethod
    def _keys_as_str(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): str(val) for k, val in v.items()}
        return v

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_as_str(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(x) for x in v]
        return v

    @field_validator("answer_pattern")
    @classmethod
    def _pattern_compiles(cls, v: Optional[str]) -> Optional[str]:
        if v is not None:
            _check_pattern(v)
        return v

    _extraction_shorthand = field_validator("answer_extraction", mode="before")(lambda cls, v: _as_extraction(v))

    @model_validator(mode="after")
    def _one_extraction(self) -> "BenchmarkSpec":
        if self.answer_pattern and self.answer_extraction.preset != "first_paragraph":
            raise ValueError(f"answer_pattern is the custom preset; answer_extraction {self.answer_extraction.preset!r} "
                             "says otherwise: give one of them")
        return self

    @model_validator(mode="after")
    def _judged_or_gold(self) -> "BenchmarkSpec":
        if self.judge is None:
            if self.fields.answer is None:
                raise ValueError("fields.answer: map the column with the gold answer (only a benchmark with a "
                                 "'judge' section, scored by an LLM judge, has none)")
            if JUDGE_METRIC in self.metrics:
                raise ValueError(f"metric {JUDGE_METRIC!r} reads an LLM judge's ratings: it needs a 'judge' section")
        elif self.metrics != [JUDGE_METRIC]:
            raise ValueError(f"metrics: a benchmark with a 'judge' section is scored by the judge's ratings: "
                             f"metrics: [{JUDGE_METRIC}]")
        return self

    def extraction(self):
        """The spec's answer extraction (pytest_jallm.answers.Extraction), before a run's reasoning removal."""
        from .answers import Extraction

        e = self.answer_extraction
        if self.answer_pattern:  # the older spelling of the custom preset
            return Extraction(preset="custom", pattern=self.answer_pattern, normalize=e.normalize is not False)
        normalize = e.normalize if e.normalize is not None else e.preset != "raw"
        return Extraction(preset=e.preset, pattern=e.pattern, json_key=e.json_key, normalize=normalize)

    def in_mode(self, mode: str) -> "BenchmarkSpec":
        """This spec as run mode ``mode`` changes it (unchanged when it names no such mode). A mode that
        switches to a preset with a format of its own and gives no instruction asks for that format
        at the end of the spec's instruction, as llm-jp-eval 2.x adds its pattern text."""
        over = self.modes.get(mode)
        if over is None:
            return self
        changes = over.model_dump(exclude_none=True, exclude={"answer_extraction"})
        if over.answer_extraction is not None:
            changes["answer_extraction"] = over.answer_extraction
            changes["answer_pattern"] = None
            if over.instruction is None:
                from .answers import ask_for

                ask = ask_for(over.answer_extraction.preset, self.language)
                if ask and ask not in self.instruction:
                    changes["instruction"] = f"{self.instruction}{ask}" if self.instruction else ask
        return self.model_validate({**self.model_dump(), **changes, "modes": self.modes})

    @property
    def counts_in_average(self) -> bool:
        if self.in_average is not None:
            return self.in_average
        return self.category not in CATEGORIES_OUT_OF_AVERAGE

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]
