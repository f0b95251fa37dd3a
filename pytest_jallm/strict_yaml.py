"""Hand-written files (specs, thresholds): one YAML loader, one error type, one way to word a problem.

A key given twice is an error.
PyYAML's own loaders keep the last of two equal keys silently, so a threshold written twice
would quietly lose its first value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from .errors import JallmError

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser when PyYAML was built with it


class DuplicateKeyError(yaml.YAMLError):
    def __init__(self, key: Any, line: int):
        super().__init__(f"duplicate key {key!r} at line {line}")
        self.key, self.line = key, line


class UniqueKeyLoader(_Base):  # type: ignore[misc, valid-type]
    """A safe loader that refuses a key given twice in one mapping."""

    def construct_mapping(self, node, deep=False):  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=deep)
                try:
                    if key in seen:
                        raise DuplicateKeyError(key, key_node.start_mark.line + 1)
                    seen.add(key)
                except TypeError:  # an unhashable key: the safe loader reports it
                    break
        return super().construct_mapping(node, deep=deep)


def load_strict(text: str) -> Any:
    """Parse YAML text; DuplicateKeyError for a repeated key, yaml.YAMLError for anything malformed."""
    return yaml.load(text, Loader=UniqueKeyLoader)


def error_location(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"


class FileKeyError(JallmError):
    show_type = False

    """A hand-written file is invalid; the message names the file, the key and what was expected."""

    def __init__(self, path: Path | str, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: key '{key}': {problem}")


def validation_problem(e: ValidationError) -> tuple[str, str]:
    """The first problem pydantic found, as (dotted key, what is wrong in words)."""
    err = e.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "<top level>"
    if err["type"] == "extra_forbidden":
        return key, "unknown key (typo?)"
    if err["type"] == "missing":
        return key, "required key is missing"
    if err["type"] == "finite_number":  # NaN or inf: not "must be <= 100"
        return key, f"must be a number (got {err.get('input')!r})"
    return key, err["msg"]
