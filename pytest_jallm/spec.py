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
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .strict_yaml import DuplicateKeyError, FileKeyError, error_location, load_strict, validation_problem

# llm-jp-eval's categories plus medical QA; the marker is the lower-case name.
CATEGORIES: dict[str, str] = {
    "NLI": "natural language inference",
    "QA": "question answering",
    "RC": "reading comprehension",
    "MC": "multiple-choice commonsense",
    "EL": "entity linking",
    "FA": "fundamental analysis",
    "MR": "mathematical reasoning",
    "MT": "machine translation",
    "STS": "semantic textual similarity",
    "HE": "human examination",
    "SUM": "summarization",
    "CG": "code generation",
    "MED": "medical question answering",
    "IF": "instruction following (M-IFEval)",
    "CHAT": "multi-turn chat quality judged by an LLM (Japanese MT-Bench)",
}
# The leaderboard reports STS but keeps it out of AVG; medical QA, instruction following and
# judged chat are not llm-jp-eval categories, so they are reported beside AVG rather than moving it.
CATEGORIES_OUT_OF_AVERAGE = frozenset({"STS", "MED", "IF", "CHAT"})

# Markers derived from a spec's `license` field (`-m "not noncommercial"`).
LICENSE_MARKERS: dict[str, str] = {
    "noncommercial": "the dataset's licence forbids commercial use (CC BY-NC…)",
    "sharealike": "the dataset's licence is share-alike (CC BY-SA…): derived data keeps the licence",
    "license_unknown": "the spec's license field names no licence this plugin recognises: check the homepage",
}
_OPEN_LICENSES = re.compile(r"\b(?:CC0|CC[- ]BY|CREATIVE COMMONS|MIT|APACHE|BSD|ODC|PDDL|UNLICENSE)\b")


def license_markers(license: str) -> list[str]:
    """The LICENSE_MARKERS that apply to a licence as a spec writes it ("CC BY-NC-SA 4.0")."""
    text = license.upper()
    tokens = set(re.split(r"[^A-Z0-9]+", text))
    marks = []
    if "NC" in tokens or re.search(r"NON-?COMMERCIAL", text):
        marks.append("noncommercial")
    if "SA" in tokens or re.search(r"SHARE-?ALIKE", text):
        marks.append("sharealike")
    if not marks and not _OPEN_LICENSES.search(text):
        marks.append("license_unknown")
    return marks

DATA_FORMATS = ("json", "jsonl", "csv", "tsv", "parquet")
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
        from .fetch import SHA256_RE, check_mirror_path

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
            pins.update(read_pins_file(Path(spec_dir or ".") / self.sha256_file))
        pins.update(self.sha256)
        return pins


def read_pins_file(path: Path) -> dict[str, str]:
    """A sha256sum-format file: '<64 hex>  <path>' per line; '#' starts a comment."""
    from .errors import DataError
    from .fetch import SHA256_RE, check_mirror_path

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read the sha256 pins file ({e.strerror or e})") from None
    pins: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        digest, _, name = line.strip().partition(" ")
        name = name.strip().lstrip("*")
        if not SHA256_RE.match(digest) or not name or check_mirror_path(name):
            raise DataError(f"{path}: line {n}: expected '<64 hex digits>  <relative path>', got {line.strip()[:120]!r}")
        pins[name] = digest
    return pins


class Fields(_Strict):
    """Column mapping: template variable -> column name; `id`, `answer`, `choices` are roles."""

    model_config = ConfigDict(extra="allow", frozen=True)
    id: Optional[str] = Field(None, description="column with a unique item id (default: row number)")
    answer: str = Field(..., description="column with the gold answer")
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


class Thresholds(_Strict):
    """Threshold defaults a spec may carry; `thresholds/*.yaml` overrides them."""

    min_score: Optional[float] = Field(None, ge=0, le=100)
    max_ooc_rate: Optional[float] = Field(None, ge=0, le=100)
    max_drop: Optional[float] = Field(None, ge=0, le=100)


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
    answer_pattern: Optional[str] = Field(None, description="regex whose group 1 is the answer")
    answer_extraction: Literal["first-paragraph", "raw"] = Field(
        "first-paragraph",
        description="first-paragraph: llm-jp-eval's cut and NFKC (or answer_pattern); raw: the whole output, "
                    "untouched, for metrics that judge the response itself (instruction following)",
    )
    metrics: list[str] = Field(..., min_length=1)
    in_average: Optional[bool] = None
    item_pass_score: float = Field(1.0, ge=0, le=1)
    thresholds: Thresholds = Field(default_factory=Thresholds)

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
            try:
                compiled = regex.compile(v, regex.DOTALL)  # the engine metrics.extract_answer matches with
            except regex.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
            if compiled.groups < 1:
                raise ValueError("needs one capturing group holding the answer")
        return v

    @model_validator(mode="after")
    def _raw_has_no_pattern(self) -> "BenchmarkSpec":
        if self.answer_extraction == "raw" and self.answer_pattern:
            raise ValueError("answer_extraction 'raw' keeps the whole output: remove answer_pattern")
        return self

    @property
    def counts_in_average(self) -> bool:
        if self.in_average is not None:
            return self.in_average
        return self.category not in CATEGORIES_OUT_OF_AVERAGE

    @property
    def primary_metric(self) -> str:
        return self.metrics[0]


def parse_spec(data: Any, path: Path) -> BenchmarkSpec:
    """Validate parsed YAML; errors become SpecError naming file and key."""
    if not isinstance(data, dict):
        raise SpecError(path, "<top level>", f"expected a mapping of spec keys, got {type(data).__name__}")
    data = dict(data)
    data.setdefault("name", path.stem.lower().replace(".", "_"))
    from .medharness import HARNESS_TEMPLATES

    if data.get("prompt_template") in HARNESS_TEMPLATES:
        # A japanese-lm-med-harness template fills in the question and the choices itself.
        data.setdefault("instruction", "")
        data.setdefault("input", "{question}")
    try:
        spec = BenchmarkSpec.model_validate(data)
    except ValidationError as e:
        key, msg = validation_problem(e)
        more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
        raise SpecError(path, key, msg + more) from None
    _check_metrics(spec, path)
    _check_templates(spec, path)
    return spec


def _check_metrics(spec: BenchmarkSpec, path: Path) -> None:
    from .metrics import METRICS

    for i, name in enumerate(spec.metrics):
        if name not in METRICS:
            raise SpecError(
                path, f"metrics.{i}", f"unknown metric {name!r}; expected one of {', '.join(sorted(METRICS))}"
            )


def _check_templates(spec: BenchmarkSpec, path: Path) -> None:
    from .prompt import TEMPLATES, template_names

    if spec.prompt_template not in TEMPLATES:
        if spec.prompt_template in template_names():
            check_harness_template(spec, path)
            return
        raise SpecError(
            path, "prompt_template", f"unknown template {spec.prompt_template!r}; expected one of {', '.join(template_names())}"
        )
    known = set(spec.fields.variables()) | {"choices"}
    for var in re.findall(r"{(\w+)}", spec.input):
        if var not in known:
            raise SpecError(
                path, "input", f"placeholder {{{var}}} is not mapped under 'fields' (mapped: {', '.join(sorted(known))})"
            )
    if "{choices}" in spec.input and spec.fields.choices is None:
        raise SpecError(path, "fields.choices", "the input uses {choices} but no choice columns are mapped")


def check_harness_template(spec: BenchmarkSpec, path: Path | str, key: str = "prompt_template") -> None:
    """What a japanese-lm-med-harness template needs: a question and choices, zero-shot,
    its own answer extraction."""
    name = spec.prompt_template
    if "question" not in spec.fields.variables():
        raise SpecError(path, "fields.question", f"template {name!r} (japanese-lm-med-harness) puts the question in its "
                        "instruction slot: map a 'question' field")
    if spec.fields.choices is None:
        raise SpecError(path, "fields.choices", f"template {name!r} (japanese-lm-med-harness) lists the choices: map 'choices'")
    if spec.fewshot.count:
        raise SpecError(path, "fewshot.count", f"template {name!r} (japanese-lm-med-harness) is zero-shot; set 0")
    if spec.answer_pattern:
        raise SpecError(path, "answer_pattern", f"template {name!r} cuts the answer out as the harness does; "
                        "remove answer_pattern")


def with_harness_template(spec: BenchmarkSpec, name: str, where: str) -> BenchmarkSpec:
    """`--jallm-med-template NAME`: a MED spec prompted with one of japanese-lm-med-harness's
    templates (other categories are returned unchanged)."""
    from .medharness import HARNESS_TEMPLATES

    if spec.category != "MED":
        return spec
    if name not in HARNESS_TEMPLATES:
        raise SpecError(where, "--jallm-med-template", f"unknown template {name!r}; expected one of {', '.join(HARNESS_TEMPLATES)}")
    changed = spec.model_copy(update={"prompt_template": name, "answer_pattern": None})
    check_harness_template(changed, f"{where} (with --jallm-med-template {name})")
    return changed


def load_spec(path: Path | str) -> BenchmarkSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(path, "<file>", f"not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        data = load_strict(text)
    except DuplicateKeyError as e:
        raise SpecError(path, str(e.key), f"duplicate key at line {e.line} (only one value may be given)") from None
    except yaml.YAMLError as e:
        raise SpecError(path, "<yaml>", f"malformed YAML at {error_location(e)}: {getattr(e, 'problem', e)}") from None
    return parse_spec(data, path)
