#!/usr/bin/env python
"""pytest-jallm performance harness: what the plugin costs on top of the model.

Prints six figures for the bundled small model on CPU, on the same prompts:

  1. raw backend time      transformers' batched generate on the rendered prompts (no pytest-jallm)
  2. plugin end to end     `pytest <benchmarks> --model … --jallm-no-cache`
  3. ratio 2/1             goal: at most 1.05
  4. cached re-run         10,000 items answered from the caches, next to pytest's start-up (goal: at most +1 s)
  5. collection            time and peak memory at 1,000 / 10,000 / 50,000 items, --jallm-items off/on
                           (goal: linear, < 1 ms of plugin overhead per item)
  6. lm-evaluation-harness the same prompts through `lm_eval --model hf`, and the wall-time ratio

Every figure is the wall time of a fresh process, measured from outside, so
interpreter start-up, imports and model loading count the same on both sides.
Writes JSON (default perf/results/<git-sha>.json); --compare OLD.json prints the change.

It is a script, not a test: `python perf/run.py` (about 6 minutes on 2 cores).
lm-eval runs from its own virtualenv (perf/.venv-lm-eval, made by --setup-lm-eval)
because it pins packages the plugin's environment must not inherit.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "tiny-ja-good"
SAMPLE_DATA = ROOT / "samples" / "data" / "sample_mc"
LM_EVAL_VENV = ROOT / "perf" / ".venv-lm-eval"
LM_EVAL_VERSION = "0.4.13"
BATCH_SIZE = 32

SPEC_TEMPLATE = """\
name: perf_mc
category: MC
description: {n} synthetic 5-choice items built from the sample benchmark's questions (choices permuted).
source:
  path: data/test.jsonl
fields:
  id: q_id
  answer: label
  choices: [choice0, choice1, choice2, choice3, choice4]
  question: question
instruction: 質問と回答の選択肢を入力として受け取り、選択肢から回答を選択してください。なお、回答は選択肢の番号（例：0）でお答えください。
input: "質問：{{question}}\\n選択肢：{{choices}}"
choice_format: {{label: "{{index}}.", joiner: ","}}
labels: ["0", "1", "2", "3", "4"]
max_new_tokens: 3
metrics: [exact_match]
"""

# --------------------------------------------------------------------------- workspace


def synthetic_items(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """n distinct MC items: the sample benchmark's questions with their choices permuted."""
    base, seen = [], set()
    for name in ("test.jsonl", "train.jsonl"):
        with open(SAMPLE_DATA / name, encoding="utf-8") as fh:
            for row in (json.loads(line) for line in fh if line.strip()):
                key = (row["question"], frozenset(row[f"choice{k}"] for k in range(5)))
                if key not in seen:  # the same question with the same choices would repeat prompts
                    seen.add(key)
                    base.append(row)
    perms = list(itertools.permutations(range(5)))
    pairs = [(b, p) for p in perms for b in range(len(base))]
    if n > len(pairs):
        raise SystemExit(f"at most {len(pairs)} distinct items can be made, {n} asked")
    random.Random(seed).shuffle(pairs)
    items = []
    for i, (b, perm) in enumerate(pairs[:n]):
        row = base[b]
        choices = [row[f"choice{k}"] for k in perm]
        items.append({"q_id": i, "question": row["question"], **{f"choice{k}": c for k, c in enumerate(choices)},
                      "label": perm.index(row["label"])})
    return items


def make_suite(parent: Path, n: int) -> Path:
    """A pytest-jallm project with one n-item benchmark; returns its directory."""
    suite = parent / f"suite-{n}"
    (suite / "benchmarks" / "data").mkdir(parents=True, exist_ok=True)
    (suite / "thresholds").mkdir(exist_ok=True)
    (suite / "benchmarks" / "perf_mc.yaml").write_text(SPEC_TEMPLATE.format(n=n), encoding="utf-8")
    with open(suite / "benchmarks" / "data" / "test.jsonl", "w", encoding="utf-8") as fh:
        for row in synthetic_items(n):
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    (suite / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # pins rootdir to the suite
    return suite


def render_prompts(suite: Path) -> list[dict[str, Any]]:
    """The exact prompts the plugin sends, rendered by the plugin's own code (outside any timing)."""
    from pytest_jallm.evaluation import RunSettings, prepare
    from pytest_jallm.specfile import load_spec

    spec_path = suite / "benchmarks" / "perf_mc.yaml"
    prep = prepare(load_spec(spec_path), spec_path, RunSettings(model=""))
    return [{"id": ex.id, "prompt": r.prompt, "gold": ex.gold, "max_new_tokens": r.max_new_tokens, "stop": list(r.stop)}
            for ex, r in zip(prep.examples, prep.requests, strict=False)]


# --------------------------------------------------------------------------- measuring


def measure(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
            check: bool = True) -> dict[str, Any]:
    """Wall time and peak RSS of one fresh process (os.wait4 gives that child's own rusage)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out_chunks = []
    assert proc.stdout is not None
    for chunk in iter(lambda: proc.stdout.read(65536), b""):
        out_chunks.append(chunk)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    output = b"".join(out_chunks).decode("utf-8", "replace")
    if check and proc.returncode not in (0,):
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{output[-3000:]}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "rc": proc.returncode, "output": output}


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               TOKENIZERS_PARALLELISM="false", PYTHONHASHSEED="0")
    env.pop("PYTEST_ADDOPTS", None)
    # Users' Pythons cache bytecode; without it every run recompiles the plugin and pytest
    # re-does its assertion rewriting of hypothesis (about 1 s a process, on both sides).
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


RAW_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, prompts_file, batch_size = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = json.load(open(prompts_file, encoding="utf-8"))
tok = AutoTokenizer.from_pretrained(model_dir)
tok.padding_side = "left"
if tok.pad_token_id is None:
    tok.pad_token = tok.eos_token
model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
t1 = time.perf_counter()
# The straightforward fast loop: longest first, fixed batches, greedy.
order = sorted(range(len(rows)), key=lambda i: -len(rows[i]["prompt"]))
outputs = [None] * len(rows)
with torch.inference_mode():
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        enc = tok([rows[i]["prompt"] for i in idx], return_tensors="pt", padding=True)
        out = model.generate(**enc, max_new_tokens=rows[idx[0]]["max_new_tokens"], do_sample=False,
                             temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
        for i, text in zip(idx, tok.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)):
            outputs[i] = text
t2 = time.perf_counter()
import unicodedata
norm = lambda s: unicodedata.normalize("NFKC", s).strip()
correct = sum(norm(o) == norm(r["gold"]) for o, r in zip(outputs, rows))
print("RAW " + json.dumps({"load_s": t1 - t0, "generate_s": t2 - t1, "score": 100 * correct / len(rows)}))
"""


def pytest_cmd(suite: Path, model: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", str(suite / "benchmarks"), "--model", str(model),
            "--jallm-thresholds-dir", str(suite / "thresholds"), "--jallm-device", "cpu",
            "--jallm-batch-size", str(BATCH_SIZE), "-p", "no:cacheprovider", "-q", *extra]


def plugin_score(output: str) -> float | None:
    """The score column of the perf_mc row in the terminal table."""
    for line in output.splitlines():
        cells = line.split()
        if len(cells) > 4 and cells[0] == "perf_mc":
            try:
                return float(cells[4])
            except ValueError:
                return None
    return None


def plugin_timings(output: str) -> str:
    """The plugin's own account of where the time went (its summary line)."""
    for line in output.splitlines():
        if line.startswith("pytest-jallm:") and " prompts, " in line:
            return line.split("cache", 1)[-1].strip(" ()")
    return ""


# --------------------------------------------------------------------------- figures


def fig_generation(tmp: Path, model: Path, n: int, repeat: int) -> dict[str, Any]:
    suite = make_suite(tmp, n)
    prompts = render_prompts(suite)
    prompts_file = tmp / f"prompts-{n}.json"
    prompts_file.write_text(json.dumps(prompts, ensure_ascii=False), encoding="utf-8")
    # Warm-up: bytecode caches written, files in the page cache, before anything is timed.
    measure(pytest_cmd(suite, model, "--co"), cwd=suite, env=base_env())
    measure([sys.executable, "-c", "import torch, transformers.models.llama"], env=base_env())

    def run_raw() -> dict[str, Any]:
        raw = measure([sys.executable, "-c", RAW_SCRIPT, str(model), str(prompts_file), str(BATCH_SIZE)], env=base_env())
        raw.update(json.loads(raw["output"].split("RAW ", 1)[1].splitlines()[0]))
        return raw

    def run_plugin() -> dict[str, Any]:
        plug = measure(pytest_cmd(suite, model, "--jallm-no-cache"), cwd=suite, env=base_env(), check=False)
        if plug["rc"] not in (0, 1):  # 1: a threshold failed, which still measured the run
            raise SystemExit(f"pytest-jallm run failed ({plug['rc']}):\n{plug['output'][-3000:]}")
        plug["score"] = plugin_score(plug["output"])
        plug["timings"] = plugin_timings(plug["output"])
        return plug

    raw_runs, plugin_runs = [], []
    for r in range(repeat):  # alternating order, so drift in the machine's speed hits both alike
        if r % 2 == 0:
            raw_runs.append(run_raw())
            plugin_runs.append(run_plugin())
        else:
            plugin_runs.append(run_plugin())
            raw_runs.append(run_raw())
        print(f"  run {r + 1}/{repeat}: raw {raw_runs[-1]['wall_s']:.2f} s, plugin {plugin_runs[-1]['wall_s']:.2f} s", flush=True)
    raw_best = min(raw_runs, key=lambda x: x["wall_s"])
    plug_best = min(plugin_runs, key=lambda x: x["wall_s"])
    return {
        "items": n,
        "raw": {k: raw_best[k] for k in ("wall_s", "cpu_s", "load_s", "generate_s", "peak_rss_mb", "score")},
        "raw_all_s": [x["wall_s"] for x in raw_runs],
        "plugin": {k: plug_best[k] for k in ("wall_s", "cpu_s", "peak_rss_mb", "score", "timings")},
        "plugin_all_s": [x["wall_s"] for x in plugin_runs],
        "ratio": plug_best["wall_s"] / raw_best["wall_s"],
        # CPU seconds are less disturbed than wall time by other tenants of a shared machine.
        "cpu_ratio": min(x["cpu_s"] for x in plugin_runs) / min(x["cpu_s"] for x in raw_runs),
        "overhead_s": plug_best["wall_s"] - raw_best["wall_s"],
        "same_score": plug_best["score"] is not None and abs(plug_best["score"] - raw_best["score"]) < 0.01,
        "prompts_file": str(prompts_file),
        "suite": str(suite),
    }


def fig_cached(tmp: Path, model: Path, suite: Path, pairs: int = 5, against: Path | None = None) -> dict[str, Any]:
    """A fully cached re-run next to pytest's own start-up, in alternating pairs of fresh processes
    (so drift in the machine's speed hits both alike); the fastest of each side counts. With
    ``against`` (another checkout of pytest-jallm), its re-run and start-up are measured in the same
    rounds, the code taken from there through PYTHONPATH: a before/after in one run."""
    cache = tmp / "cache.sqlite"
    cached_cmd = pytest_cmd(suite, model, "--jallm-cache", str(cache))
    # pytest's floor: collecting an empty folder, same flags, same interpreter, plugin loaded.
    startup_cmd = [sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", str(suite / "thresholds")]
    sides = {"now": base_env()}
    if against is not None:
        sides["against"] = {**base_env(), "PYTHONPATH": str(against.resolve())}
    fill = measure(cached_cmd, cwd=suite, env=sides["now"], check=False)  # generations and the prepared benchmark
    for env in sides.values():
        measure(cached_cmd, cwd=suite, env=env, check=False)  # warm-up: page cache, bytecode, the other side's caches
    timed: dict[tuple[str, str], list[dict[str, Any]]] = {(side, kind): [] for side in sides for kind in ("run", "startup")}
    for r in range(pairs):
        order = [(side, kind) for side in sides for kind in ("run", "startup")]
        for side, kind in (order if r % 2 == 0 else order[::-1]):
            cmd = cached_cmd if kind == "run" else startup_cmd
            timed[(side, kind)].append(measure(cmd, cwd=suite, env=sides[side], check=False))
    out: dict[str, Any] = {"fill_wall_s": fill["wall_s"]}
    for side in sides:
        runs, startups = timed[(side, "run")], timed[(side, "startup")]
        best = min(runs, key=lambda x: x["wall_s"])
        if "0 generated" not in best["output"]:
            raise SystemExit(f"cached re-run ({side}) generated something:\n" + best["output"][-2000:])
        startup = min(x["wall_s"] for x in startups)
        figures = {
            "timings": plugin_timings(best["output"]),
            "wall_s": best["wall_s"],
            "all_s": [x["wall_s"] for x in runs],
            "cpu_s": min(x["cpu_s"] for x in runs),
            "peak_rss_mb": best["peak_rss_mb"],
            "pytest_startup_s": startup,
            "pytest_startup_all_s": [x["wall_s"] for x in startups],
            "pytest_startup_cpu_s": min(x["cpu_s"] for x in startups),
            "beyond_startup_s": best["wall_s"] - startup,
            "ratio_to_startup": best["wall_s"] / startup,
        }
        if side == "now":
            out.update(figures)
        else:
            out["against"] = {"checkout": str(against), **figures}
    out["per_item_mode_wall_s"] = measure(pytest_cmd(suite, model, "--jallm-cache", str(cache), "--jallm-items"),
                                          cwd=suite, env=base_env(), check=False)["wall_s"]
    return out


PARAM_TEST = "import pytest\n\n@pytest.mark.parametrize('i', range({n}))\ndef test_item(i):\n    pass\n"


def fig_collection(tmp: Path, model: Path, sizes: list[int]) -> dict[str, Any]:
    rows = []
    for n in sizes:
        suite = tmp / f"suite-{n}" if (tmp / f"suite-{n}").exists() else make_suite(tmp, n)
        row: dict[str, Any] = {"items": n}
        for mode, extra in (("benchmark", ()), ("per_item", ("--jallm-items",))):
            m = measure(pytest_cmd(suite, model, "--co", *extra), cwd=suite, env=base_env())
            row[mode] = {"wall_s": m["wall_s"], "peak_rss_mb": m["peak_rss_mb"]}
        # pytest's own floor for n items: a plain parametrized test, collected the same way.
        floor_dir = tmp / f"floor-{n}"
        floor_dir.mkdir(exist_ok=True)
        (floor_dir / "pytest.ini").write_text("[pytest]\n")
        (floor_dir / "test_floor.py").write_text(PARAM_TEST.format(n=n))
        m = measure([sys.executable, "-m", "pytest", "--co", "-q", "-p", "no:cacheprovider", str(floor_dir)],
                    cwd=floor_dir, env=base_env())
        row["pytest_floor"] = {"wall_s": m["wall_s"], "peak_rss_mb": m["peak_rss_mb"]}
        print(f"  {n:>6} items: benchmark {row['benchmark']['wall_s']:.2f} s, per-item {row['per_item']['wall_s']:.2f} s"
              f" ({row['per_item']['peak_rss_mb']:.0f} MB), pytest floor {row['pytest_floor']['wall_s']:.2f} s", flush=True)
        rows.append(row)
    # Marginal cost per item between the smallest and the largest size, so start-up cancels out.
    lo, hi = rows[0], rows[-1]
    span = hi["items"] - lo["items"]
    marg = {}
    for mode in ("benchmark", "per_item", "pytest_floor"):
        marg[mode] = 1000 * (hi[mode]["wall_s"] - lo[mode]["wall_s"]) / span if span else None
    plugin_ms = None if marg["per_item"] is None else marg["per_item"] - marg["pytest_floor"]
    return {"sizes": rows, "marginal_ms_per_item": marg, "plugin_overhead_ms_per_item": plugin_ms}


LM_EVAL_TASK = """\
task: jallm_perf_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{gold}}}}"
generation_kwargs:
  until: ["<|endoftext|>"]
  max_gen_toks: {max_new}
  do_sample: false
  temperature: 0.0
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def setup_lm_eval() -> Path:
    python = LM_EVAL_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LM_EVAL_VENV)], check=True)
        # torch first and pinned: a bare torch would pull the CUDA build.
        subprocess.run([str(python), "-m", "pip", "install", "-q", "torch==2.13.0"], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"lm-eval[hf]=={LM_EVAL_VERSION}"], check=True)
    return python


def fig_lm_eval(tmp: Path, model: Path, gen: dict[str, Any], runs_wanted: int = 1) -> dict[str, Any]:
    python = LM_EVAL_VENV / "bin" / "python"
    if not python.exists():
        return {"skipped": f"no {LM_EVAL_VENV} (run with --setup-lm-eval once)"}
    prompts = json.loads(Path(gen["prompts_file"]).read_text(encoding="utf-8"))
    task_dir = tmp / "lm_eval_task"
    task_dir.mkdir(exist_ok=True)
    data = task_dir / "data.jsonl"
    with open(data, "w", encoding="utf-8") as fh:
        for p in prompts:
            fh.write(json.dumps({"prompt": p["prompt"], "gold": p["gold"]}, ensure_ascii=False) + "\n")
    (task_dir / "jallm_perf_mc.yaml").write_text(
        LM_EVAL_TASK.format(data=data, max_new=prompts[0]["max_new_tokens"]), encoding="utf-8")
    out_dir = tmp / "lm_eval_out"
    env = base_env()
    env["HF_HOME"] = str(tmp / "hf_home")  # datasets' cache of the JSON file: fresh, like pytest-jallm's load
    runs = []
    for _ in range(runs_wanted):
        shutil.rmtree(env["HF_HOME"], ignore_errors=True)
        m = measure([str(python), "-m", "lm_eval", "--model", "hf",
                     "--model_args", f"pretrained={model},dtype=float32",
                     "--tasks", "jallm_perf_mc", "--include_path", str(task_dir), "--device", "cpu",
                     "--batch_size", str(BATCH_SIZE), "--output_path", str(out_dir)], env=env, check=False)
        if m["rc"] != 0:
            return {"skipped": f"lm_eval failed ({m['rc']}): " + m["output"].strip().splitlines()[-1][:300]}
        runs.append(m)
    best = min(runs, key=lambda x: x["wall_s"])
    score = None
    for path in sorted(out_dir.rglob("results_*.json")):
        res = json.loads(path.read_text(encoding="utf-8"))["results"]["jallm_perf_mc"]
        score = 100 * next(v for k, v in res.items() if k.startswith("exact_match,"))
    version = subprocess.run([str(python), "-c", "import importlib.metadata as m; print(m.version('lm_eval'))"],
                             capture_output=True, text=True).stdout.strip()
    return {
        "lm_eval_version": version,
        "wall_s": best["wall_s"],
        "all_s": [x["wall_s"] for x in runs],
        "peak_rss_mb": best["peak_rss_mb"],
        "score": score,
        "ratio_plugin_to_lm_eval": gen["plugin"]["wall_s"] / best["wall_s"],
    }


# --------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    import torch
    import transformers

    import pytest_jallm

    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        sha = ""
    cpu = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu,
            "cores": os.cpu_count(), "torch": torch.__version__, "transformers": transformers.__version__,
            "pytest_jallm": pytest_jallm.__version__, "git": sha,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def cached_row(c: dict[str, Any]) -> list[str]:
    detail = (f"{c['items']} items; pytest start-up {c['pytest_startup_s']:.2f} s, beyond it {c['beyond_startup_s']:+.2f} s "
              f"(goal ≤ +1 s: {'met' if c['beyond_startup_s'] <= 1 else 'NOT met'}), ratio {c['ratio_to_startup']:.2f}; "
              f"fastest of {len(c['all_s'])} alternating pairs; with --jallm-items {c['per_item_mode_wall_s']:.2f} s")
    a = c.get("against")
    if a:
        detail += (f"; {a['checkout']} in the same rounds: {a['wall_s']:.2f} s, start-up {a['pytest_startup_s']:.2f} s, "
                   f"beyond it {a['beyond_startup_s']:+.2f} s")
    return ["4 cached re-run", f"{c['wall_s']:.2f} s", detail]


def table(results: dict[str, Any]) -> str:
    from tabulate import tabulate

    if "generation" not in results:  # --only cached
        return tabulate([cached_row(results["cached"])], headers=["figure", "value", "detail"], tablefmt="github")
    g, c, col = results["generation"], results["cached"], results["collection"]
    spread = lambda xs: f"runs {min(xs):.1f}-{max(xs):.1f} s"  # noqa: E731
    rows = [
        ["1 raw backend (transformers generate)", f"{g['raw']['wall_s']:.2f} s",
         f"{g['items']} prompts; load {g['raw']['load_s']:.2f} s + generate {g['raw']['generate_s']:.2f} s; score {g['raw']['score']:.2f}; {spread(g['raw_all_s'])}"],
        ["2 pytest-jallm end to end, no cache", f"{g['plugin']['wall_s']:.2f} s",
         f"score {g['plugin']['score']}, same as raw: {'yes' if g['same_score'] else 'NO'}; {g['plugin']['timings']}; {spread(g['plugin_all_s'])}"],
        ["3 ratio 2/1", f"{g['ratio']:.3f}",
         f"goal ≤ 1.05: {'met' if g['ratio'] <= 1.05 else 'NOT met'}; +{g['overhead_s']:.2f} s; CPU-time ratio {g['cpu_ratio']:.3f}"],
        cached_row(c),
    ]
    for s in col["sizes"]:
        rows.append([f"5 collect {s['items']} items", f"{s['benchmark']['wall_s']:.2f} s / {s['per_item']['wall_s']:.2f} s",
                     f"per benchmark / --jallm-items; peak {s['benchmark']['peak_rss_mb']:.0f} / {s['per_item']['peak_rss_mb']:.0f} MB;"
                     f" pytest floor {s['pytest_floor']['wall_s']:.2f} s"])
    m = col["marginal_ms_per_item"]
    po = col["plugin_overhead_ms_per_item"]
    rows.append(["5 marginal cost per item", f"{m['per_item']:.3f} ms",
                 f"--jallm-items; pytest's own {m['pytest_floor']:.3f} ms, plugin {po:.3f} ms "
                 f"(goal < 1 ms: {'met' if po < 1 else 'NOT met'}); per benchmark {m['benchmark']:.4f} ms"])
    le = results.get("lm_eval") or {}
    if "wall_s" in le:
        rows.append([f"6 lm-evaluation-harness {le['lm_eval_version']}", f"{le['wall_s']:.2f} s",
                     f"score {le['score']:.2f}; pytest-jallm / lm-eval = {le['ratio_plugin_to_lm_eval']:.3f}"])
    else:
        rows.append(["6 lm-evaluation-harness", "skipped", le.get("skipped", "")])
    return tabulate(rows, headers=["figure", "value", "detail"], tablefmt="github")


def headline(results: dict[str, Any]) -> dict[str, float | None]:
    c = results["cached"]
    if "generation" not in results:
        return {"cached_s": c["wall_s"], "cached_beyond_startup_s": c.get("beyond_startup_s")}
    g, col = results["generation"], results["collection"]
    le = results.get("lm_eval") or {}
    return {
        "raw_s": g["raw"]["wall_s"], "plugin_s": g["plugin"]["wall_s"], "ratio": g["ratio"], "cpu_ratio": g.get("cpu_ratio"),
        "cached_s": c["wall_s"], "cached_beyond_startup_s": c.get("beyond_startup_s"), "collect_50k_items_s": col["sizes"][-1]["per_item"]["wall_s"],
        "plugin_ms_per_item": col["plugin_overhead_ms_per_item"], "lm_eval_s": le.get("wall_s"),
    }


def compare(old_path: Path, results: dict[str, Any]) -> str:
    from tabulate import tabulate

    old = json.loads(old_path.read_text(encoding="utf-8"))
    before, now = headline(old), headline(results)
    rows = []
    for k, v in now.items():
        o = before.get(k)
        change = f"{100 * (v - o) / o:+.1f}%" if (o and v is not None) else ""
        rows.append([k, "" if o is None else f"{o:.3f}", "" if v is None else f"{v:.3f}", change])
    return tabulate(rows, headers=["figure", old_path.name, "now", "change"], tablefmt="github")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--items", type=int, default=10_000, help="items for figures 1-4 and 6")
    ap.add_argument("--sizes", default="1000,10000,50000", help="item counts for figure 5")
    ap.add_argument("--repeat", type=int, default=3, help="runs of figures 1-2 (the fastest of each counts)")
    ap.add_argument("--skip-lm-eval", action="store_true")
    ap.add_argument("--lm-eval-runs", type=int, default=1, help="runs of figure 6 (the fastest counts)")
    ap.add_argument("--setup-lm-eval", action="store_true", help=f"create {LM_EVAL_VENV} with lm-eval {LM_EVAL_VERSION}")
    ap.add_argument("--json", type=Path, default=None, help="where to write the figures (default perf/results/<git-sha>.json)")
    ap.add_argument("--compare", type=Path, default=None, help="an earlier JSON to compare with")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    ap.add_argument("--only", choices=["cached"], help="only figure 4: the cached re-run next to pytest's start-up")
    ap.add_argument("--pairs", type=int, default=5, help="alternating (cached re-run, start-up) pairs of figure 4")
    ap.add_argument("--against", type=Path, default=None,
                    help="another pytest-jallm checkout whose figure 4 is measured in the same rounds (before/after)")
    args = ap.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    if args.setup_lm_eval:
        setup_lm_eval()

    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="jallm-perf-"))
    # Data files' hashes remembered in the workspace (pytest_jallm.filehash): the first run writes them.
    os.environ["JALLM_HASH_MEMO"] = str(tmp / "file-hashes.json")
    try:
        results: dict[str, Any] = {"machine": machine(), "model": str(args.model)}
        phase = time.perf_counter()

        def done() -> None:
            nonlocal phase
            print(f"  ({time.perf_counter() - phase:.0f} s)", flush=True)
            phase = time.perf_counter()

        if args.only == "cached":
            print(f"[4] cached re-run, {args.items} items", flush=True)
            suite = make_suite(tmp, args.items)
            results["cached"] = fig_cached(tmp, args.model, suite, args.pairs, args.against)
            results["cached"]["items"] = args.items
            done()
            return report(args, results, started, tmp)
        print(f"[1-3] raw backend vs pytest-jallm, {args.items} items", flush=True)
        results["generation"] = fig_generation(tmp, args.model, args.items, args.repeat)
        done()
        print("[4] cached re-run", flush=True)
        results["cached"] = fig_cached(tmp, args.model, Path(results["generation"]["suite"]), args.pairs, args.against)
        results["cached"]["items"] = args.items
        done()
        print(f"[5] collection at {sizes}", flush=True)
        results["collection"] = fig_collection(tmp, args.model, sizes)
        done()
        if args.skip_lm_eval:
            results["lm_eval"] = {"skipped": "--skip-lm-eval"}
        else:
            print("[6] lm-evaluation-harness", flush=True)
            results["lm_eval"] = fig_lm_eval(tmp, args.model, results["generation"], args.lm_eval_runs)
            done()
        for key in ("prompts_file", "suite"):
            results["generation"].pop(key, None)
        return report(args, results, started, tmp)
    finally:
        if args.keep:
            print(f"workspace kept: {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(args: argparse.Namespace, results: dict[str, Any], started: float, tmp: Path) -> int:
    results["harness_wall_s"] = time.perf_counter() - started
    m = results["machine"]
    print(f"\npytest-jallm {m['pytest_jallm']} ({m['git']}) on {m['cpu']}, {m['cores']} cores; "
          f"torch {m['torch']}, transformers {m['transformers']}; model {args.model.name}\n")
    print(table(results))
    suffix = "-cached" if args.only == "cached" else ""
    out = args.json or ROOT / "perf" / "results" / f"{m['git'] or 'unknown'}{suffix}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"\nfigures written to {out} (harness took {results['harness_wall_s']:.0f} s)")
    if args.compare:
        print("\n" + compare(args.compare, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
