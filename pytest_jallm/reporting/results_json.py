"""Results files: every score, verdict and what produced it, in a versioned JSON schema.

Schema history
--------------
1: schema, schema_version, created, pytest_jallm, model, meta (free-form, empty), averages, benchmarks.
2: meta is structured (model, revision, backend and version, few-shot, chat, precision, #params …
   — `RunMeta`); `shard` records the shard plan of a `--jallm-shard` run; benchmark rows gain
   `message` (the gate's failure text). Version 1 files are still read (upgraded on reading).
   Later, optional: benchmark rows gain `run` (`RunStats`: prompts, generated, cache hits,
   repeated prompts, seconds per phase); `p_adjusted` (family-corrected p), `mdd` (minimum
   detectable drop at 80% power, points) and `underpowered`; `extra.gate` (what `merge` needs
   to re-apply the family correction over shards) and `extra.flips` (every item that got worse,
   with input, gold and both answers).
3: benchmark rows gain `gate` (`GateDetails`, typed: every input of the gate's decision, so that
   `merge` decides again with the same function; the family correction as applied; the baseline
   as found, partial or not; the harmless churn the MDD is computed from; every flipped item;
   the written baseline). `extra.gate`, `extra.flips` and `extra.baseline_written` are gone.
   Version 2 files are upgraded on reading (what they recorded only as text, a failure not from
   the paired test, is carried as text: `gate.carried_failures`).

4: every selected benchmark is a row, also one with no score: verdict `error` (its data, spec or
   backend failed: `reason`, one line, and `error_kind`), `skipped` or `not run` (the session
   stopped first), with `score` null; `averages.unscored` names them (AVG leaves them out, not
   counted as 0); `other_failures` says what else failed the run (per-example tests, files that
   could not be collected, unused threshold entries under --jallm-strict), so the file's verdict agrees with pytest's exit status.
   Version 3 files are read as they are (they have no such rows).

`results_json_schema()` gives the JSON Schema of the current version; the pydantic models
below are the single definition, used both to validate on reading and to export it.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections import Counter
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .. import __version__
from ..atomic import atomic_write_text
from ..errors import JallmError
from ..gate import refamily
from ..scale import ShardPlan, check_coverage
from ..strict_yaml import validation_problem
from .record import Averages, BenchmarkRecord, OtherFailures, averages
from .upgrade import upgrade_v1, upgrade_v2

SCHEMA = "pytest-jallm/results"
SCHEMA_VERSION = 4
READABLE_VERSIONS = (1, 2, 3, 4)


class ResultsError(JallmError, ValueError):
    """A results file is unreadable, invalid, or does not combine with the others."""


# --- the schema ----------------------------------------------------------------


class RunMeta(BaseModel):
    """What the leaderboard shows beside the scores. None where unknown; a list where the
    benchmarks of one run disagree (their distinct values)."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    model: str | None = None
    revision: str | list[Any] | None = None
    backend: str | list[Any] | None = None
    backend_version: str | list[Any] | None = None
    num_fewshot: int | None = Field(None, description="few-shot count of the run (max over its benchmarks: MBPP-like specs stay 0-shot)")
    fewshot_setting: int | None = Field(None, description="--jallm-num-fewshot as given; None = each spec's own count")
    chat: bool | list[Any] | None = None
    add_special_tokens: bool | list[Any] | None = None
    precision: str | list[Any] | None = None
    architecture: str | list[Any] | None = None
    params_b: float | list[Any] | None = Field(None, description="number of parameters, in billions")
    type: str | None = Field(None, description="pretrained, instruction-tuned … (given with --jallm-meta type=…)")
    license: str | None = None
    limit: int | list[Any] | None = None
    sampling: dict[str, Any] | list[Any] | None = None
    given: dict[str, Any] = Field(default_factory=dict, description="--jallm-meta KEY=VALUE pairs as given")


class ShardInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=1, description="1-based")
    count: int = Field(ge=1)
    benchmarks: list[str] = Field(description="every benchmark of the whole run")
    assigned: list[str] = Field(default_factory=list, description="this shard's benchmarks")


class ResultsDocument(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, protected_namespaces=())

    schema_: Literal["pytest-jallm/results"] = Field(alias="schema")
    schema_version: Literal[4]
    created: str
    pytest_jallm: str
    model: str | None
    meta: RunMeta
    shard: ShardInfo | None = None
    averages: Averages
    benchmarks: list[BenchmarkRecord]
    other_failures: OtherFailures = Field(default_factory=OtherFailures,
                                          description="what else failed the run besides the benchmark verdicts")


def results_json_schema() -> dict[str, Any]:
    schema = ResultsDocument.model_json_schema(by_alias=True)
    schema["$id"] = f"https://pytest-jallm/results-v{SCHEMA_VERSION}.schema.json"
    schema["title"] = f"pytest-jallm results, schema version {SCHEMA_VERSION}"
    return schema


# --- metadata ------------------------------------------------------------------


def _uniform(values: list[Any]) -> Any:
    """The one value all rows agree on; else the sorted distinct values."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    distinct: dict[str, Any] = {}
    for v in present:
        distinct.setdefault(json.dumps(v, sort_keys=True, default=str), v)
    if len(distinct) == 1:
        return next(iter(distinct.values()))
    return [distinct[k] for k in sorted(distinct)]


def _params_b(settings: Mapping[str, Any]) -> float | None:
    for key in ("params_b", "num_parameters", "num_params", "n_params"):
        v = settings.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return round(v / 1e9, 3) if key != "params_b" else float(v)
    return None


def run_meta(
    rows: Sequence[BenchmarkRecord],
    *,
    model: str | None,
    fewshot_setting: int | None = None,
    given: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Metadata of a run: derived from the rows' provenance, then what was given on the command line."""
    pbs = [r.extra.get("produced_by") or {} for r in rows]
    settings = [pb.get("settings") or {} for pb in pbs]
    shots: list[int] = [pb["num_fewshot"] for pb in pbs if isinstance(pb.get("num_fewshot"), int)]
    meta: dict[str, Any] = {
        "model": model,
        "revision": _uniform([pb.get("model_revision") for pb in pbs]),
        "backend": _uniform([pb.get("backend") for pb in pbs]),
        "backend_version": _uniform([pb.get("backend_version") for pb in pbs]),
        "num_fewshot": max(shots) if shots else fewshot_setting,
        "fewshot_setting": fewshot_setting,
        "chat": _uniform([pb.get("chat") for pb in pbs]),
        "add_special_tokens": _uniform([s.get("add_special_tokens") for s in settings]),
        "precision": _uniform([s.get("dtype") or s.get("precision") for s in settings]),
        "architecture": _uniform([s.get("architecture") for s in settings]),
        "params_b": _uniform([_params_b(s) for s in settings]),
        "type": None,
        "license": None,
        "limit": _uniform([pb.get("limit") for pb in pbs]),
        "sampling": _uniform([pb.get("sampling") for pb in pbs]),
        # japanese-lm-med-harness's leaderboard reports runs with and without shuffled choices.
        "shuffle_choices": _uniform([pb.get("shuffle_choices") for pb in pbs]),
        "given": dict(given or {}),
    }
    for key, value in (given or {}).items():
        meta[key] = value  # what the user states wins over what was derived
    return meta


def parse_meta_pairs(pairs: Sequence[str]) -> dict[str, Any]:
    """`--jallm-meta KEY=VALUE` pairs; VALUE is read as JSON when it can be (7.2 -> float)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--jallm-meta {pair!r}: expected KEY=VALUE, e.g. params_b=7.2 or type=pretrained")
        key = key.strip()
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key in RunMeta.model_fields:
            if key in ("given", "model"):
                raise ValueError(f"--jallm-meta {pair!r}: {key!r} cannot be set this way")
            try:
                value = getattr(RunMeta.model_validate({key: value}), key)
            except ValidationError as e:
                try:  # revision=0123abc reads as a number but is meant as text
                    value = getattr(RunMeta.model_validate({key: raw}), key)
                except ValidationError:
                    raise ValueError(f"--jallm-meta {pair!r}: {e.errors()[0]['msg']}") from None
        out[key] = value
    return out


# --- writing and reading ---------------------------------------------------------


def results_document(
    rows: Sequence[BenchmarkRecord],
    *,
    model: str | None,
    meta: Mapping[str, Any] | None = None,
    shard: ShardPlan | Mapping[str, Any] | None = None,
    other_failures: OtherFailures | None = None,
) -> dict[str, Any]:
    av = averages(rows)
    if meta is None:
        meta = run_meta(rows, model=model)
    if isinstance(shard, ShardPlan):
        shard = shard.to_dict()
    doc = {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pytest_jallm": __version__,
        "model": model,
        "meta": dict(meta),
        "shard": dict(shard) if shard else None,
        "averages": av.model_dump(by_alias=True),
        "benchmarks": [r.to_dict() for r in sorted(rows, key=lambda r: r.name)],
        "other_failures": (other_failures or OtherFailures()).model_dump(),
    }
    ResultsDocument.model_validate(doc)  # never write what we would refuse to read
    return doc


def write_results(
    path: Path,
    rows: Sequence[BenchmarkRecord],
    *,
    model: str | None,
    meta: Mapping[str, Any] | None = None,
    shard: ShardPlan | Mapping[str, Any] | None = None,
    other_failures: OtherFailures | None = None,
) -> None:
    doc = results_document(rows, model=model, meta=meta, shard=shard, other_failures=other_failures)
    atomic_write_text(Path(path), json.dumps(doc, ensure_ascii=False, indent=2) + "\n")


def validate_document(doc: Any, where: str = "results") -> dict[str, Any]:
    """Check a parsed document against its schema version; return it in the current version."""
    if not isinstance(doc, dict):
        raise ResultsError(f"{where}: expected a JSON object, got {type(doc).__name__}")
    if doc.get("schema") != SCHEMA:
        raise ResultsError(f"{where}: key 'schema': expected {SCHEMA!r}, got {doc.get('schema')!r}")
    version = doc.get("schema_version")
    if version not in READABLE_VERSIONS:
        raise ResultsError(
            f"{where}: key 'schema_version': this pytest-jallm reads versions {list(READABLE_VERSIONS)}, got {version!r}"
        )
    try:
        if version == 1:
            doc = upgrade_v1(doc, run_meta)
        if doc.get("schema_version") == 2:
            doc = upgrade_v2(doc)
        if doc.get("schema_version") == 3:
            doc = {**doc, "schema_version": 4}  # 4 only adds rows and fields
    except (ValidationError, TypeError, KeyError, AttributeError) as e:
        raise ResultsError(f"{where}: a version {version} file that cannot be upgraded: {e}") from None
    try:
        ResultsDocument.model_validate(doc)
    except ValidationError as e:
        key, problem = validation_problem(e)
        raise ResultsError(f"{where}: key '{key}': {problem} ({e.error_count()} problem(s))") from None
    return doc


def read_results(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ResultsError(f"{path}: not a readable results file: {e}") from None
    return validate_document(doc, str(path))


def rows_of(doc: Mapping[str, Any]) -> list[BenchmarkRecord]:
    return [BenchmarkRecord.from_dict(b) for b in doc["benchmarks"]]


def other_failures_of(doc: Mapping[str, Any]) -> OtherFailures:
    return OtherFailures.model_validate(doc.get("other_failures") or {})


# --- merging shards ------------------------------------------------------------

# Provenance every shard of one run must share (few-shot counts may differ per benchmark).
_RUN_KEYS = ("model_revision", "backend", "backend_version", "chat", "limit", "sampling", "shuffle_choices")


def merge_documents(docs: Sequence[tuple[str, Mapping[str, Any]]]) -> dict[str, Any]:
    """Shard files of one run -> the document one unsharded run would have written.

    Raises ResultsError listing every reason the files do not make one run.
    """
    if not docs:
        raise ResultsError("no results files to merge")
    problems: list[str] = []
    models = {doc.get("model") for _, doc in docs}
    if len(models) > 1:
        problems.append(f"results come from different models: {sorted(map(str, models))}")
    settings = Counter(json.dumps(doc["meta"].get("fewshot_setting")) for _, doc in docs)
    if len(settings) > 1:
        problems.append(f"results come from different --jallm-num-fewshot settings: {sorted(settings)}")
    givens = {json.dumps(doc["meta"].get("given") or {}, sort_keys=True) for _, doc in docs}
    if len(givens) > 1:
        problems.append(f"results were given different --jallm-meta values: {sorted(givens)}")
    rows: dict[str, BenchmarkRecord] = {}
    found: dict[str, str] = {}
    provenance: dict[str, tuple[str, Any]] = {}
    for path, doc in docs:
        for row in rows_of(doc):
            if row.name in rows and rows[row.name] != row:
                problems.append(f"{path}: benchmark {row.name!r} also appears in {found[row.name]} with other results")
                continue
            rows[row.name] = row
            found.setdefault(row.name, path)
            pb = row.extra.get("produced_by")
            if not pb:  # a benchmark with no score (error, skipped) records no provenance
                continue
            for key in _RUN_KEYS:
                value = json.dumps(pb.get(key), sort_keys=True)
                if key in provenance and provenance[key][1] != value:
                    problems.append(
                        f"{path}: {row.name} was produced with {key}={value}, but {provenance[key][0]} with {provenance[key][1]}"
                    )
                provenance.setdefault(key, (f"{path} ({row.name})", value))
    plans = [(path, ShardPlan.from_dict(doc["shard"]) if doc.get("shard") else None) for path, doc in docs]
    problems += check_coverage(plans, found)
    if problems:
        raise ResultsError("cannot merge into one run:\n  - " + "\n  - ".join(dict.fromkeys(problems)))
    merged = refamily(list(rows.values()))
    model = next(iter(models))
    first_meta = docs[0][1]["meta"]
    meta = run_meta(merged, model=model, fewshot_setting=first_meta.get("fewshot_setting"), given=first_meta.get("given"))
    other = OtherFailures.merged([other_failures_of(doc) for _, doc in docs])
    return results_document(merged, model=model, meta=meta, other_failures=other)
