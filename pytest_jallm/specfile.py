"""Reading a benchmark spec file: YAML (strict) -> the schema (spec.py) -> what its template and
its metrics need. Errors name the file and the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .loaders import LOADERS
from .metrics import METRICS
from .prompt import TEMPLATES, HarnessTemplate, TemplateSpecError, harness_template_names, template_names
from .registry import ExtensionError, Registry
from .spec import DATA_FORMATS, BenchmarkSpec, SpecError
from .strict_yaml import DuplicateKeyError, error_location, load_strict, validation_problem


def parse_spec(data: Any, path: Path) -> BenchmarkSpec:
    """Validate parsed YAML; errors become SpecError naming file and key."""
    if not isinstance(data, dict):
        raise SpecError(path, "<top level>", f"expected a mapping of spec keys, got {type(data).__name__}")
    data = dict(data)
    data.setdefault("name", path.stem.lower().replace(".", "_"))
    template = data.get("prompt_template")
    if isinstance(template, str) and _usable(TEMPLATES, template):
        for key, value in TEMPLATES[template].spec_defaults().items():
            data.setdefault(key, value)
    try:
        spec = BenchmarkSpec.model_validate(data)
    except ValidationError as e:
        if isinstance(template, str) and _usable(TEMPLATES, template) is None:
            _require(TEMPLATES, template, path, "prompt_template")  # its defaults are missing: say why
        key, msg = validation_problem(e)
        more = f" (and {e.error_count() - 1} more problem(s))" if e.error_count() > 1 else ""
        raise SpecError(path, key, msg + more) from None
    check_spec(spec, path)
    for mode in spec.modes:
        check_spec(spec.in_mode(mode), path, f"modes.{mode}.")
    return spec


def check_spec(spec: BenchmarkSpec, where: Path | str, key_prefix: str = "") -> None:
    """What the spec's metrics and template need (the schema is checked already). A name whose
    installed extension cannot be imported passes here: the benchmark fails alone when it runs
    (`check_extensions`), and the others still run."""
    for i, name in enumerate(spec.metrics):
        if _usable(METRICS, name) is False:
            raise SpecError(where, f"{key_prefix}metrics.{i}",
                            f"unknown metric {name!r}; expected one of {', '.join(sorted(METRICS))}")
    template = _usable(TEMPLATES, spec.prompt_template)
    if template is False:
        raise SpecError(where, key_prefix + "prompt_template",
                        f"unknown template {spec.prompt_template!r}; expected one of {', '.join(template_names())}")
    if template:
        try:
            TEMPLATES[spec.prompt_template].check_spec(spec)
        except TemplateSpecError as e:
            raise SpecError(where, key_prefix + e.key, str(e)) from None


def check_extensions(spec: BenchmarkSpec, where: Path | str) -> None:
    """The installed extensions the spec names (metrics, template, loaders) can be imported; else
    a SpecError naming the key, the entry point and its package. Called when the benchmark runs."""
    for i, name in enumerate(spec.metrics):
        _require(METRICS, name, where, f"metrics.{i}")
    _require(TEMPLATES, spec.prompt_template, where, "prompt_template")
    for key, source in (("source", spec.source), ("fewshot.source", spec.fewshot.source)):
        if source is not None and source.format and source.format not in DATA_FORMATS:
            _require(LOADERS, source.format, where, f"{key}.format")


def _usable(registry: Registry[Any], name: str) -> bool | None:
    """True: registered; False: unknown; None: an installed extension of that name cannot be imported."""
    try:
        return name in registry
    except ExtensionError:
        return None


def _require(registry: Registry[Any], name: str, where: Path | str, key: str) -> None:
    try:
        name in registry  # noqa: B015 - the lookup imports the extension
    except ExtensionError as e:
        raise SpecError(where, key, str(e)) from None


def with_harness_template(spec: BenchmarkSpec, name: str, where: str) -> BenchmarkSpec:
    """`--jallm-med-template NAME`: a MED spec prompted with one of japanese-lm-med-harness's
    templates (other categories are returned unchanged)."""
    if spec.category != "MED":
        return spec
    if name not in TEMPLATES or not isinstance(TEMPLATES[name], HarnessTemplate):
        raise SpecError(where, "--jallm-med-template",
                        f"unknown template {name!r}; expected one of {', '.join(harness_template_names())}")
    changed = spec.model_copy(update={"prompt_template": name, "answer_pattern": None,
                                      "answer_extraction": type(spec.answer_extraction)()})
    check_spec(changed, f"{where} (with --jallm-med-template {name})")
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
