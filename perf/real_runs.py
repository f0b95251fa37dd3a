#!/usr/bin/env python
"""Full-size real runs: pytest-jallm end to end against bare transformers, on real benchmark files.

For each benchmark (default: JCommonsenseQA valid, 1,119 items, 4-shot; JNLI valid, 2,434 items,
0-shot) it measures, in one run and alternating the two sides:

  (a) raw     a bare transformers script generating over exactly the prompts the plugin sends
              (written beforehand, outside the timing, by `python -m pytest_jallm prompts`), with
              the hf backend's batch size, dtype ("auto": the checkpoint's), greedy settings,
              max_new_tokens and stop handling (grouped by limits, longest first);
  (b) plugin  `pytest benchmarks/<name>.yaml --model … --jallm-data-dir … --jallm-no-cache`.

Each side is a fresh process timed from outside (`os.wait4`: wall time, CPU time, peak RSS), so
interpreter start-up, imports and model loading count alike. The fastest of N runs of each side
counts; the table gives the wall-time ratio (b)/(a) and the CPU-time ratio (less disturbed by
other tenants of a shared machine). The goal is (b)/(a) <= 1.05.

A prompt that occurs twice is generated once on both sides (the plugin does so; JNLI valid has 11).
The raw side's outputs are scored afterwards by the plugin's own scorer; the table says whether
that score equals the plugin's (same prompts, same greedy decoding: it must).

    python perf/real_runs.py --data-dir ../shared/data              # about 25 minutes on 2 cores
    python perf/real_runs.py --data-dir ../shared/data --repeat 1 --limit 200   # a quick look
    python perf/real_runs.py --data-dir ../shared/data --raw-gc-freeze   # raw script with the plugin's gc.freeze()

It is a script, not a test: its figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "tiny-ja-good"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
BATCH_SIZE = 32  # the hf backend's default (--jallm-batch-size)
DEFAULT_BENCHMARKS = "jcommonsenseqa:4,jnli:0"


def _harness() -> Any:
    """perf/run.py's measuring helpers (one place for how a process is timed)."""
    spec = importlib.util.spec_from_file_location("jallm_perf_run", Path(__file__).with_name("run.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The hf backend's generate() (pytest_jallm/backends/hf.py), written out with nothing of the
# plugin: same tokenizer call, grouping, order, batch size, greedy kwargs, stop handling.
RAW_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, prompts_file, batch_size, out_file, freeze = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5] == "1"
rows = [json.loads(line) for line in open(prompts_file, encoding="utf-8") if line.strip()]
# A prompt that occurs twice is generated once, as the plugin does (JNLI valid has 11 such).
first = {}
for i, r in enumerate(rows):
    first.setdefault((r["prompt"], r["max_new_tokens"], tuple(r["stop"])), i)
unique = sorted(first.values())
tok = AutoTokenizer.from_pretrained(model_dir)
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").to("cpu").eval()
tok.padding_side = "left"
if tok.pad_token_id is None:
    tok.pad_token = tok.eos_token
if freeze:  # as the plugin's session does once the model is loaded (--raw-gc-freeze)
    import gc
    gc.freeze()
t1 = time.perf_counter()
groups = {}
for i in unique:
    r = rows[i]
    groups.setdefault((r["max_new_tokens"], tuple(r["stop"])), []).append(i)
torch.manual_seed(0)
outputs = [None] * len(rows)
for (max_new, stop), idx in groups.items():
    idx.sort(key=lambda i: -len(rows[i]["prompt"]))
    for s in range(0, len(idx), batch_size):
        batch = idx[s:s + batch_size]
        enc = tok([rows[i]["prompt"] for i in batch], return_tensors="pt", padding=True, add_special_tokens=True)
        extra = {"stop_strings": list(stop), "tokenizer": tok} if stop else {}
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, temperature=None, top_p=None,
                                 top_k=None, pad_token_id=tok.pad_token_id, **extra)
        for i, text in zip(batch, tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)):
            cuts = [text.find(x) for x in stop if x and x in text]
            outputs[i] = text[:min(cuts)] if cuts else text
for i, r in enumerate(rows):
    outputs[i] = outputs[first[(r["prompt"], r["max_new_tokens"], tuple(r["stop"]))]]
t2 = time.perf_counter()
json.dump(outputs, open(out_file, "w", encoding="utf-8"), ensure_ascii=False)
print("RAW " + json.dumps({"load_s": t1 - t0, "generate_s": t2 - t1}))
"""


def write_prompts(spec: Path, data_dir: Path, num_fewshot: int, limit: int | None, out: Path, env: dict[str, str]) -> int:
    """The exact requests of the plugin's run, by its own command (outside any timing)."""
    cmd = [sys.executable, "-m", "pytest_jallm", "prompts", str(spec), "--data-dir", str(data_dir),
           "--num-fewshot", str(num_fewshot), "-o", str(out)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    subprocess.run(cmd, check=True, env=env, cwd=ROOT)
    return sum(1 for line in out.open(encoding="utf-8") if line.strip())


def plugin_cmd(spec: Path, model: Path, data_dir: Path, num_fewshot: int, limit: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "pytest", str(spec), "--model", str(model), "--jallm-data-dir", str(data_dir),
           "--jallm-no-cache", "--jallm-num-fewshot", str(num_fewshot), "--jallm-device", "cpu",
           "--jallm-batch-size", str(BATCH_SIZE), "-p", "no:cacheprovider", "-q"]
    return cmd + (["--jallm-limit", str(limit)] if limit is not None else [])


def plugin_score(output: str, name: str) -> float | None:
    """The score column of the benchmark's row in the plugin's terminal table."""
    for line in output.splitlines():
        cells = line.split()
        if len(cells) > 4 and cells[0] == name:
            try:
                return float(cells[4])
            except ValueError:
                return None
    return None


def plugin_phases(output: str) -> str:
    """The plugin's own account of what it generated and where its time went (its summary line)."""
    for line in output.splitlines():
        if line.startswith("pytest-jallm:") and " prompts, " in line:
            return line.removeprefix("pytest-jallm:").strip()
    return ""


def score_raw_outputs(spec_path: Path, data_dir: Path, num_fewshot: int, limit: int | None, outputs_file: Path) -> float:
    """The raw side's outputs scored by the plugin's own scorer (after the timing)."""
    from pytest_jallm.backends.base import BackendIdentity
    from pytest_jallm.evaluation import RunSettings, prepare, score_benchmark
    from pytest_jallm.specfile import load_spec

    settings = RunSettings(model="", data_dir=data_dir, limit=limit, num_fewshot=num_fewshot)
    prep = prepare(load_spec(spec_path), spec_path, settings)
    outputs = json.loads(outputs_file.read_text(encoding="utf-8"))
    identity = BackendIdentity(backend="raw", backend_version="", model="", model_revision="", settings={})
    return score_benchmark(prep, outputs, identity, settings).score


def compare_one(h: Any, work: Path, model: Path, data_dir: Path, name: str, num_fewshot: int, limit: int | None,
                repeat: int, raw_freeze: bool) -> dict[str, Any]:
    env = h.base_env()
    env["PYTHONPATH"] = str(ROOT) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    spec = ROOT / "benchmarks" / f"{name}.yaml"
    prompts = work / f"{name}.prompts.jsonl"
    n = write_prompts(spec, data_dir, num_fewshot, limit, prompts, env)
    outputs = work / f"{name}.raw-outputs.json"
    raw_cmd = [sys.executable, "-c", RAW_SCRIPT, str(model), str(prompts), str(BATCH_SIZE), str(outputs), "1" if raw_freeze else "0"]
    plug_cmd = plugin_cmd(spec, model, data_dir, num_fewshot, limit)
    # Warm-up, untimed: bytecode caches written and files in the page cache on both sides.
    h.measure(plug_cmd[:3] + ["--co"] + plug_cmd[3:], cwd=ROOT, env=env)
    h.measure([sys.executable, "-c", "import torch, transformers.models.llama"], env=env)

    def run_raw() -> dict[str, Any]:
        m = h.measure(raw_cmd, cwd=ROOT, env=env)
        m.update(json.loads(m["output"].split("RAW ", 1)[1].splitlines()[0]))
        return m

    def run_plugin() -> dict[str, Any]:
        m = h.measure(plug_cmd, cwd=ROOT, env=env, check=False)
        if m["rc"] not in (0, 1):  # 1: a gate failed, which still measured the run
            raise SystemExit(f"pytest-jallm run failed ({m['rc']}):\n{m['output'][-3000:]}")
        m["score"] = plugin_score(m["output"], name)
        m["phases"] = plugin_phases(m["output"])
        return m

    raw_runs: list[dict[str, Any]] = []
    plug_runs: list[dict[str, Any]] = []
    for r in range(repeat):  # alternating, so drift in the machine's speed hits both sides alike
        order = (run_raw, run_plugin) if r % 2 == 0 else (run_plugin, run_raw)
        for fn in order:
            (raw_runs if fn is run_raw else plug_runs).append(fn())
        print(f"  {name} run {r + 1}/{repeat}: raw {raw_runs[-1]['wall_s']:.1f} s wall / {raw_runs[-1]['cpu_s']:.1f} s CPU,"
              f" plugin {plug_runs[-1]['wall_s']:.1f} s / {plug_runs[-1]['cpu_s']:.1f} s", flush=True)
    raw_best = min(raw_runs, key=lambda x: x["wall_s"])
    plug_best = min(plug_runs, key=lambda x: x["wall_s"])
    raw_cpu = min(x["cpu_s"] for x in raw_runs)
    plug_cpu = min(x["cpu_s"] for x in plug_runs)
    raw_score = score_raw_outputs(spec, data_dir, num_fewshot, limit, outputs)
    return {
        "benchmark": name, "num_fewshot": num_fewshot, "prompts": n, "repeat": repeat,
        "raw": {"wall_s": raw_best["wall_s"], "cpu_s": raw_cpu, "load_s": raw_best["load_s"],
                "generate_s": raw_best["generate_s"], "peak_rss_mb": raw_best["peak_rss_mb"], "score": raw_score,
                "all_wall_s": [x["wall_s"] for x in raw_runs], "all_cpu_s": [x["cpu_s"] for x in raw_runs]},
        "plugin": {"wall_s": plug_best["wall_s"], "cpu_s": plug_cpu, "phases": plug_best["phases"],
                   "peak_rss_mb": plug_best["peak_rss_mb"], "score": plug_best["score"],
                   "all_wall_s": [x["wall_s"] for x in plug_runs], "all_cpu_s": [x["cpu_s"] for x in plug_runs]},
        "wall_ratio": plug_best["wall_s"] / raw_best["wall_s"],
        "cpu_ratio": plug_cpu / raw_cpu,
        "same_score": plug_best["score"] is not None and abs(plug_best["score"] - raw_score) < 0.01,  # table: 2 decimals
    }


def table(rows: list[dict[str, Any]]) -> str:
    from tabulate import tabulate

    out = []
    for r in rows:
        raw, plug = r["raw"], r["plugin"]
        out.append([
            f"{r['benchmark']} ({r['prompts']}, {r['num_fewshot']}-shot)",
            f"{raw['wall_s']:.1f} / {raw['cpu_s']:.1f}",
            f"{plug['wall_s']:.1f} / {plug['cpu_s']:.1f}",
            f"{r['wall_ratio']:.3f}",
            f"{r['cpu_ratio']:.3f}",
            f"{raw['score']:.2f} / {plug['score']}" + ("" if r["same_score"] else " DIFFER"),
        ])
    return tabulate(out, headers=["benchmark (prompts)", "raw s wall / CPU", "plugin s wall / CPU",
                                  "wall ratio", "CPU ratio", "score raw / plugin"], tablefmt="github")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="the --jallm-data-dir layout (jglue/…)")
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--benchmarks", default=DEFAULT_BENCHMARKS, help="NAME:SHOTS,… (specs in benchmarks/)")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side (the fastest counts)")
    ap.add_argument("--limit", type=int, default=None, help="the first K items only (a quick look)")
    ap.add_argument("--raw-gc-freeze", action="store_true",
                    help="the raw script also freezes the heap after loading the model, as the plugin does")
    ap.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = ap.parse_args(argv)
    if not (args.data_dir / "jglue").is_dir():
        raise SystemExit(f"--data-dir {args.data_dir}: no jglue/ folder (the real JGLUE files are needed)")
    h = _harness()
    started = time.perf_counter()
    results: dict[str, Any] = {"machine": h.machine(), "model": str(args.model), "batch_size": BATCH_SIZE,
                               "raw_gc_freeze": args.raw_gc_freeze, "rows": []}
    with tempfile.TemporaryDirectory(prefix="jallm-real-") as tmp:
        for item in args.benchmarks.split(","):
            name, _, shots = item.partition(":")
            print(f"[{name}] {shots or '?'}-shot, {args.repeat} run(s) of each side", flush=True)
            results["rows"].append(compare_one(h, Path(tmp), args.model.resolve(), args.data_dir.resolve(), name,
                                               int(shots or 0), args.limit, args.repeat, args.raw_gc_freeze))
    results["harness_wall_s"] = time.perf_counter() - started
    m = results["machine"]
    print(f"\npytest-jallm {m['pytest_jallm']} ({m['git']}) on {m['cpu']}, {m['cores']} cores; torch {m['torch']}, "
          f"transformers {m['transformers']}; model {args.model.name}; batch {BATCH_SIZE}; fastest of {args.repeat}; "
          f"raw script {'with' if args.raw_gc_freeze else 'without'} gc.freeze(); "
          f"{m['when']}\n")
    print(table(results["rows"]))
    for r in results["rows"]:
        print(f"\n{r['benchmark']}: raw load {r['raw']['load_s']:.1f} s + generate {r['raw']['generate_s']:.1f} s; "
              f"plugin {r['plugin']['phases']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"\nfigures written to {args.json}")
    print(f"(harness took {results['harness_wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
