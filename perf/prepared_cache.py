#!/usr/bin/env python
"""What the prepared-benchmark cache (pytest_jallm/prepcache.py) saves on real benchmarks.

For each group of real specs (default: the five wiki_* benchmarks, whose KNP files need a real
parser; JCommonsenseQA under --jallm-limit), in fresh pytest processes with a scripted backend (no
model, so the figures are the plugin's own) and a filled generation cache:

  cold     the prepared cache emptied first: every file read and parsed, every prompt rendered
           (what every run cost before the cache)
  warm     the same run again: answered from .jallm/prepared/ (files only stat'ed)
  new-limit  --jallm-limit changed (the prepared entry misses): a JSON Lines split is read only up to
           the limit, the few-shots come from their own entry

Each figure is the fastest of --repeat runs: wall time of the process and the benchmarks' own
preparation seconds (results JSON, `run.seconds.prepare`, summed). Needs the real data (../shared/data or --data-dir).

    python perf/prepared_cache.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "perf"))
from run import base_env, measure  # noqa: E402

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"
GROUPS = {
    "wiki_*": (["wiki_reading", "wiki_ner", "wiki_dependency", "wiki_pas", "wiki_coreference"], None, None),
    "jcommonsenseqa --jallm-limit 300 (then 200)": (["jcommonsenseqa"], 300, 200),
}


def prepare_seconds(results_json: Path) -> float:
    """The benchmarks' own preparation seconds (data, few-shots, prompts: `run.seconds.prepare`)."""
    doc = json.loads(results_json.read_text(encoding="utf-8"))
    return round(sum(b["run"]["seconds"]["prepare"] for b in doc["benchmarks"]), 4)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    if not (args.data_dir / "jglue").is_dir():
        raise SystemExit(f"no real data at {args.data_dir} (--data-dir)")
    tmp = Path(tempfile.mkdtemp(prefix="jallm-prepcache-"))
    env = base_env()
    env["JALLM_HASH_MEMO"] = str(tmp / "file-hashes.json")
    script = tmp / "script.json"
    script.write_text(json.dumps({"rules": [], "default": "0"}), encoding="utf-8")
    results = {}
    try:
        for group, (names, limit, new_limit) in GROUPS.items():
            cache = tmp / group.split()[0].replace("*", "all") / "generations.sqlite"

            def cmd(lim: int | None, names: list[str] = names, cache: Path = cache) -> list[str]:
                out = [sys.executable, "-m", "pytest", *(str(ROOT / "benchmarks" / f"{n}.yaml") for n in names),
                       "--jallm-backend", SCRIPTED, "--model", str(script), "--jallm-data-dir", str(args.data_dir),
                       "--jallm-cache", str(cache), "--jallm-thresholds-dir", str(tmp / "thresholds"),
                       "--rootdir", str(tmp), "-p", "no:cacheprovider", "-q", "-W", "ignore",
                       "--jallm-results-json", str(tmp / "results.json")]
                return out + (["--jallm-limit", str(lim)] if lim is not None else [])

            def run(lim: int | None) -> dict:
                m = measure(cmd(lim), cwd=tmp, env=env, check=False)
                if "prompts," not in m["output"]:
                    raise SystemExit(f"run failed:\n{m['output'][-2000:]}")
                return {"wall_s": m["wall_s"], "data_s": prepare_seconds(tmp / "results.json")}

            prepared = cache.parent / "prepared"
            run(limit)  # fills the generation cache (and the page cache)
            if new_limit is not None:
                run(new_limit)
            cold, warm, fresh = [], [], []
            for _ in range(args.repeat):
                shutil.rmtree(prepared, ignore_errors=True)
                cold.append(run(limit))
                warm.append(run(limit))
                if new_limit is not None:
                    for entry in prepared.glob("*.prepared.*.json"):
                        entry.unlink()  # the limited run's entry gone, its data and shots entries kept
                    fresh.append(run(new_limit))
            best = lambda xs: min(xs, key=lambda x: x["wall_s"]) if xs else None  # noqa: E731
            results[group] = {"cold": best(cold), "warm": best(warm), "new_limit": best(fresh)}
            row = results[group]
            print(f"{group}: cold {row['cold']['wall_s']:.2f} s (data and prompts {row['cold']['data_s']} s), "
                  f"warm {row['warm']['wall_s']:.2f} s ({row['warm']['data_s']} s)"
                  + (f", new limit {row['new_limit']['wall_s']:.2f} s ({row['new_limit']['data_s']} s)" if fresh else ""),
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
