#!/usr/bin/env python
"""What pytest-jallm costs on a GPU, against raw transformers generation of the same prompts.

One run, three timings on the same prompt list (the list the plugin itself builds):

  (a) raw      a fresh process: transformers' batched greedy `generate` over the prompts,
               same batch size, dtype, max new tokens and stop strings, longest first
  (b) plugin   `pytest benchmarks/… --jallm-backend hf --jallm-device DEVICE --jallm-no-cache`
  (c) cached   the same pytest run twice with the cache on: the first fills it (reported too),
               the second is answered from it and never loads the model

and prints tokens per second, the ratio (b)/(a) and (c), and writes them as JSON.

No weights can be downloaded on a lent GPU machine, so by default the model is a randomly
initialised Llama of a realistic shape (`--shape 2048x24x99000`: hidden, layers, vocabulary —
the shape of a 1.8B Japanese model), built on the device and saved with the bundled tokenizer.
Random weights make the answers meaningless and the timing real. `--model DIR` uses a real one.

The benchmark files come from `--data-dir` (the `--jallm-data-dir` layout: JGLUE under
`jglue/…`). On a machine that can reach nothing, copy them into a folder of the repository
that git ignores and carry it along.

    python perf/gpu.py --data-dir DATA --device cuda              # JCommonsenseQA 4-shot + JSQuAD
    python perf/gpu.py --data-dir DATA --device cpu --shape 64x2x3000 --limit 20   # a dry run

It is a script, not a test: its figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKENIZER_DIR = ROOT / "models" / "tiny-ja-good"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def parse_shape(text: str) -> tuple[int, int, int]:
    try:
        hidden, layers, vocab = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--shape {text!r}: expected HIDDENxLAYERSxVOCAB, e.g. 2048x24x99000") from None
    if hidden % 64:
        raise SystemExit(f"--shape {text!r}: hidden size must be a multiple of 64 (the head size)")
    return hidden, layers, vocab


def build_random_model(out: Path, shape: tuple[int, int, int], device: str, dtype: str) -> dict[str, Any]:
    """A randomly initialised Llama of the given shape, saved with the bundled tokenizer."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, vocab = shape
    config = LlamaConfig(
        hidden_size=hidden, num_hidden_layers=layers, vocab_size=vocab,
        intermediate_size=int(hidden * 2.6875) // 64 * 64,  # Llama's ~8/3 ratio, rounded to 64
        num_attention_heads=hidden // 64, num_key_value_heads=hidden // 64,
        max_position_embeddings=4096, tie_word_embeddings=False,
        bos_token_id=1, eos_token_id=2, pad_token_id=2, dtype=dtype,
    )
    torch.manual_seed(0)
    started = time.perf_counter()
    with torch.device(device):
        model = LlamaForCausalLM(config).to(getattr(torch, dtype))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in TOKENIZER_FILES:
        if (TOKENIZER_DIR / name).exists():
            shutil.copy(TOKENIZER_DIR / name, out / name)
    params = sum(p.numel() for p in model.parameters())
    del model
    return {"params_b": params / 1e9, "shape": {"hidden": hidden, "layers": layers, "vocab": vocab},
            "build_s": time.perf_counter() - started}


def render_prompts(benchmarks: list[str], data_dir: Path, limit: int | None, num_fewshot: int) -> list[dict[str, Any]]:
    """The exact requests the plugin sends, built by its own code."""
    from pytest_jallm.evaluation import RunSettings, prepare
    from pytest_jallm.specfile import load_spec

    settings = RunSettings(model="", data_dir=data_dir, limit=limit, num_fewshot=num_fewshot)
    rows = []
    for name in benchmarks:
        spec_path = ROOT / "benchmarks" / f"{name}.yaml"
        prep = prepare(load_spec(spec_path), spec_path, settings)
        rows += [{"benchmark": name, "prompt": r.prompt, "max_new_tokens": r.max_new_tokens, "stop": list(r.stop)}
                 for r in prep.requests]
    return rows


# Run in a fresh process so that imports, CUDA start-up and model loading count as on the plugin's side.
RAW_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model_dir, prompts_file, batch_size, device, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = json.load(open(prompts_file, encoding="utf-8"))
tok = AutoTokenizer.from_pretrained(model_dir)
tok.padding_side = "left"
if tok.pad_token_id is None:
    tok.pad_token = tok.eos_token
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
if device.startswith("cuda"):
    torch.cuda.synchronize()
t1 = time.perf_counter()
groups = {}
for i, r in enumerate(rows):
    groups.setdefault((r["max_new_tokens"], tuple(r["stop"])), []).append(i)
new_tokens = 0
with torch.inference_mode():
    for (max_new, stop), idx in groups.items():
        idx.sort(key=lambda i: -len(rows[i]["prompt"]))
        for s in range(0, len(idx), batch_size):
            batch = idx[s:s + batch_size]
            enc = tok([rows[i]["prompt"] for i in batch], return_tensors="pt", padding=True).to(device)
            extra = {"stop_strings": list(stop), "tokenizer": tok} if stop else {}
            out = model.generate(**enc, max_new_tokens=max_new, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tok.pad_token_id, **extra)
            gen = out[:, enc["input_ids"].shape[1]:]
            new_tokens += int((gen != tok.pad_token_id).sum())
            tok.batch_decode(gen, skip_special_tokens=True)
if device.startswith("cuda"):
    torch.cuda.synchronize()
t2 = time.perf_counter()
print("RAW " + json.dumps({"load_s": t1 - t0, "generate_s": t2 - t1, "new_tokens": new_tokens}))
"""


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> tuple[float, str, int]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return time.perf_counter() - started, proc.stdout, proc.returncode


def plugin_line(output: str) -> str:
    return next((ln for ln in output.splitlines() if ln.startswith("pytest-jallm:") and " prompts, " in ln), "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True, help="the --jallm-data-dir layout (jglue/…)")
    ap.add_argument("--model", type=Path, default=None, help="a local model directory (default: a random one)")
    ap.add_argument("--shape", default="2048x24x99000", help="random model: HIDDENxLAYERSxVOCAB")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--benchmarks", default="jcommonsenseqa,jsquad")
    ap.add_argument("--limit", type=int, default=1119, help="items per benchmark (JCommonsenseQA valid has 1,119)")
    ap.add_argument("--num-fewshot", type=int, default=4)
    ap.add_argument("--json", type=Path, default=None, help="where to write the figures")
    args = ap.parse_args(argv)

    benchmarks = [b for b in args.benchmarks.split(",") if b]
    work = Path(tempfile.mkdtemp(prefix="jallm-gpu-"))
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_VERBOSITY="error",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    env.pop("PYTEST_ADDOPTS", None)
    figures: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": platform.platform(),
                               "device": args.device, "dtype": args.dtype, "batch_size": args.batch_size,
                               "benchmarks": benchmarks, "limit": args.limit, "num_fewshot": args.num_fewshot}
    try:
        import torch

        if args.device.startswith("cuda"):
            figures["gpu"] = torch.cuda.get_device_name(0)
        model = args.model
        if model is None:
            model = work / "model"
            figures["model"] = build_random_model(model, parse_shape(args.shape), args.device, args.dtype)
        else:
            figures["model"] = {"dir": str(model)}
        print(f"model: {figures['model']}", flush=True)

        prompts = render_prompts(benchmarks, args.data_dir, args.limit, args.num_fewshot)
        prompts_file = work / "prompts.json"
        prompts_file.write_text(json.dumps(prompts, ensure_ascii=False), encoding="utf-8")
        figures["prompts"] = len(prompts)
        print(f"prompts: {len(prompts)} ({', '.join(benchmarks)}, {args.num_fewshot}-shot)", flush=True)

        wall, out, rc = run([sys.executable, "-c", RAW_SCRIPT, str(model), str(prompts_file),
                             str(args.batch_size), args.device, args.dtype], env)
        if rc != 0:
            raise SystemExit(f"raw generation failed ({rc}):\n{out[-3000:]}")
        raw = json.loads(out.split("RAW ", 1)[1].splitlines()[0])
        raw["wall_s"] = wall
        raw["tokens_per_s"] = raw["new_tokens"] / raw["generate_s"] if raw["generate_s"] else None
        figures["raw"] = raw
        print(f"(a) raw: {wall:.1f} s (load {raw['load_s']:.1f} s, generate {raw['generate_s']:.1f} s, "
              f"{raw['tokens_per_s']:.0f} new tokens/s)", flush=True)

        cache = work / "cache.sqlite"
        thresholds = work / "thresholds"
        thresholds.mkdir()
        base = [sys.executable, "-m", "pytest", *(str(ROOT / "benchmarks" / f"{b}.yaml") for b in benchmarks),
                "--model", str(model), "--jallm-backend", "hf", "--jallm-device", args.device,
                "--jallm-dtype", args.dtype, "--jallm-batch-size", str(args.batch_size),
                "--jallm-data-dir", str(args.data_dir), "--jallm-limit", str(args.limit),
                "--jallm-num-fewshot", str(args.num_fewshot), "--jallm-thresholds-dir", str(thresholds),
                "-p", "no:cacheprovider", "-q"]
        for key, extra in (("plugin", ["--jallm-no-cache"]), ("cache_fill", ["--jallm-cache", str(cache)]),
                           ("cached", ["--jallm-cache", str(cache)])):
            wall, out, rc = run(base + extra, env, cwd=ROOT)
            if rc not in (0, 1):  # 1: a verdict failed, which still measured the run
                raise SystemExit(f"pytest run '{key}' failed ({rc}):\n{out[-3000:]}")
            figures[key] = {"wall_s": wall, "summary": plugin_line(out)}
            print(f"({ {'plugin': 'b', 'cache_fill': 'b2', 'cached': 'c'}[key] }) {key}: {wall:.1f} s — "
                  f"{plugin_line(out)}", flush=True)
        figures["ratio_plugin_over_raw"] = figures["plugin"]["wall_s"] / figures["raw"]["wall_s"]
        print(f"ratio (b)/(a): {figures['ratio_plugin_over_raw']:.3f}; cached re-run (c): {figures['cached']['wall_s']:.1f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = json.dumps(figures, indent=2, ensure_ascii=False)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
