"""Scaling out: xdist defaults, one GPU slice per xdist worker, shards across machines.

Plain functions; the pytest hooks in plugin.py only call them.

Shards are numbered from 1: `--jallm-shard 2/3` is the second of three, the
numbering a CI matrix (`shard: [1, 2, 3]`) gives. Every benchmark (with its
per-example tests, when --jallm-items is on) lands in exactly one shard. The
plan is greedy longest-processing-time over the collected test count of each
benchmark, ties broken by name, so it depends only on what was collected and
every machine computes the same plan from the same checkout and options.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import pytest

SHARD_KEY = pytest.StashKey["ShardPlan"]()
SHARD_PROPERTY = "jallm_shard"

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


# --- xdist -------------------------------------------------------------------


DEFAULT_DIST = "loadfile"


def prefer_whole_benchmarks(option: Any) -> bool:
    """With `-n N` and no explicit --dist, send each benchmark whole to one worker.

    A spec file is exactly one benchmark (its benchmark test and its per-example
    tests), so `--dist loadfile` — scope = the node id up to "::" — keeps a
    benchmark together. `loadgroup` with the items' `xdist_group` mark would do
    the same, but it mutates node ids, which pytest >= 9.2 no longer honours
    (pytest-xdist issue 1386: the groups are silently ignored); loadfile needs
    neither. Must run before xdist's own pytest_cmdline_main, which turns dist
    "no" into "load" when -n is given. Returns whether it changed anything.
    """
    numprocesses = getattr(option, "numprocesses", None)
    if not numprocesses or getattr(option, "dist", None) != "no" or getattr(option, "distload", False):
        return False
    option.dist = DEFAULT_DIST
    return True


def worker_index(workerid: str) -> int:
    m = re.fullmatch(r"gw(\d+)", workerid or "")
    if not m:
        raise pytest.UsageError(f"--jallm-gpus-per-worker: cannot read a worker number from xdist worker id {workerid!r}")
    return int(m.group(1))


def worker_gpus(workerid: str, per_worker: int, visible: str | None) -> str:
    """CUDA_VISIBLE_DEVICES for one worker: gw0 -> 0..K-1, gw1 -> K..2K-1, …

    When the controller already had CUDA_VISIBLE_DEVICES (say "4,5,6,7"), the
    slice is taken from that list instead of from 0.
    """
    if per_worker < 1:
        raise pytest.UsageError(f"--jallm-gpus-per-worker {per_worker}: must be at least 1")
    i = worker_index(workerid)
    pool = [d.strip() for d in visible.split(",") if d.strip()] if visible else None
    start, stop = i * per_worker, (i + 1) * per_worker
    if pool is None:
        return ",".join(str(d) for d in range(start, stop))
    if stop > len(pool):
        raise pytest.UsageError(
            f"--jallm-gpus-per-worker {per_worker}: worker {workerid} needs devices {start}..{stop - 1} of "
            f"CUDA_VISIBLE_DEVICES={visible!r}, which has only {len(pool)}; use fewer workers (-n) or fewer GPUs per worker"
        )
    return ",".join(pool[start:stop])


def configure_worker_gpus(config: pytest.Config) -> str | None:
    """On an xdist worker, before anything touches CUDA, pin its GPU slice."""
    per_worker = config.getoption("jallm_gpus_per_worker")
    if per_worker is None:
        return None
    if per_worker < 1:
        raise pytest.UsageError(f"--jallm-gpus-per-worker {per_worker}: must be at least 1")
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None:
        return None  # the controller (or a run without -n) keeps the devices it has
    devices = worker_gpus(workerinput.get("workerid", ""), per_worker, os.environ.get("CUDA_VISIBLE_DEVICES"))
    os.environ["CUDA_VISIBLE_DEVICES"] = devices
    return devices


# --- shards ------------------------------------------------------------------


@dataclass(frozen=True)
class ShardPlan:
    index: int  # 1-based
    count: int
    benchmarks: tuple[str, ...]  # every benchmark of the whole (unsharded) run, sorted
    assigned: tuple[str, ...]  # this shard's benchmarks, sorted

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "benchmarks": list(self.benchmarks), "assigned": list(self.assigned)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ShardPlan":
        return cls(int(data["index"]), int(data["count"]), tuple(data["benchmarks"]), tuple(data.get("assigned", ())))


def parse_shard(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    m = _SHARD_RE.match(text)
    if not m:
        raise pytest.UsageError(f"--jallm-shard {text!r}: expected INDEX/COUNT with shards numbered from 1, e.g. 1/3")
    index, count = int(m.group(1)), int(m.group(2))
    if count < 1:
        raise pytest.UsageError(f"--jallm-shard {text!r}: the shard count must be at least 1")
    if not 1 <= index <= count:
        raise pytest.UsageError(
            f"--jallm-shard {text!r}: shards are numbered from 1, so INDEX must be 1..{count} (got {index})"
        )
    return index, count


def assign_shards(weights: Mapping[str, int], count: int) -> dict[str, int]:
    """Benchmark name -> 1-based shard. Greedy LPT: heaviest first onto the lightest shard."""
    loads = [0] * count
    out: dict[str, int] = {}
    for name in sorted(weights, key=lambda n: (-weights[n], n)):
        k = min(range(count), key=lambda s: (loads[s], s))
        out[name] = k + 1
        loads[k] += max(1, weights[name])
    return out


def _group_of(item: pytest.Item) -> str:
    spec = getattr(item, "spec", None)
    return spec.name if spec is not None else f"::{item.nodeid}"


def apply_shard(config: pytest.Config, items: list[pytest.Item]) -> ShardPlan | None:
    """Keep only this shard's items (deselecting the rest); other tests are sharded alike, by node id."""
    parsed = parse_shard(config.getoption("jallm_shard"))
    if parsed is None:
        return None
    index, count = parsed
    weights: dict[str, int] = {}
    for it in items:
        g = _group_of(it)
        weights[g] = weights.get(g, 0) + 1
    benchmarks = sorted(g for g in weights if not g.startswith("::"))
    if benchmarks and count > len(benchmarks):
        raise pytest.UsageError(
            f"--jallm-shard {index}/{count}: only {len(benchmarks)} benchmarks are selected, so some shards would be "
            f"empty; use at most {len(benchmarks)} shards"
        )
    plan_of = assign_shards(weights, count)
    keep: list[Any] = []
    drop: list[Any] = []
    for it in items:
        (keep if plan_of[_group_of(it)] == index else drop).append(it)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    plan = ShardPlan(
        index=index,
        count=count,
        benchmarks=tuple(benchmarks),
        assigned=tuple(sorted(b for b in benchmarks if plan_of[b] == index)),
    )
    config.stash[SHARD_KEY] = plan
    prop = (SHARD_PROPERTY, json.dumps(plan.to_dict(), ensure_ascii=False))
    from .items import BenchmarkItem

    for it in keep:
        if isinstance(it, BenchmarkItem):
            it.user_properties.append(prop)
    return plan


def plan_from_properties(properties: Iterable[tuple[str, Any]]) -> ShardPlan | None:
    for key, value in properties:
        if key == SHARD_PROPERTY:
            return ShardPlan.from_dict(json.loads(value))
    return None


def check_coverage(plans: Sequence[tuple[str, ShardPlan | None]], found: Mapping[str, str]) -> list[str]:
    """Problems that make a set of shard files not one whole run. `found` maps benchmark -> file."""
    problems: list[str] = []
    sharded = [(path, p) for path, p in plans if p is not None]
    if not sharded:
        return problems
    if len(sharded) != len(plans):
        plain = [path for path, p in plans if p is None]
        problems.append(f"some files are shards and some are not: {', '.join(plain)} has no shard plan")
    first_path, first = sharded[0]
    for path, p in sharded[1:]:
        if (p.count, p.benchmarks) != (first.count, first.benchmarks):
            problems.append(
                f"{path}: shard plan differs from {first_path} (were the shards run from the same checkout and options?)"
            )
    seen: dict[int, str] = {}
    for path, p in sharded:
        if p.index in seen:
            problems.append(f"{path}: shard {p.index}/{p.count} also comes from {seen[p.index]}")
        seen[p.index] = path
    missing = [b for b in first.benchmarks if b not in found]
    if missing:
        absent = sorted(set(range(1, first.count + 1)) - set(seen))
        where = f" (no file for shard {', '.join(f'{i}/{first.count}' for i in absent)})" if absent else ""
        problems.append(f"benchmarks of the run have no results: {', '.join(missing)}{where}")
    extra = sorted(set(found) - set(first.benchmarks))
    if extra:
        problems.append(f"benchmarks not in the shard plan: {', '.join(extra)}")
    return problems
