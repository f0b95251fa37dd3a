"""A tiny three-benchmark suite and scripted answers, for the scale and report tests."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

SCRIPTED = "pytest_jallm.backends.scripted:ScriptedBackend"

# name -> (category, number of examples, question marker)
BENCHMARKS = {"toy_mc": ("MC", 10, "問題"), "toy_nli": ("NLI", 6, "前提"), "toy_he": ("HE", 8, "試験")}

SPEC = """\
name: {name}
category: {category}
source: {{path: data/{name}.jsonl}}
fields: {{id: qid, answer: label, choices: [c0, c1, c2], question: question}}
instruction: 正しい選択肢の番号で答えてください。
input: "質問：{{question}}\\n選択肢：{{choices}}"
labels: ["0", "1", "2"]
max_new_tokens: 2
metrics: [exact_match]
"""


def write_suite(root: Path) -> None:
    bench = root / "benchmarks"
    (bench / "data").mkdir(parents=True, exist_ok=True)
    for name, (cat, n, marker) in BENCHMARKS.items():
        (bench / f"{name}.yaml").write_text(SPEC.format(name=name, category=cat), encoding="utf-8")
        rows = [
            {"qid": f"{name}-{i}", "question": f"{marker}{i}番", "c0": "いぬ", "c1": "ねこ", "c2": "とり", "label": i % 3}
            for i in range(n)
        ]
        with open(bench / "data" / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_script(root: Path, wrong: dict[str, int] | None = None, name: str = "model.json") -> str:
    """Right answers except the first `wrong[benchmark]` items of each benchmark."""
    wrong = wrong or {}
    rules = []
    for bench, (_, n, marker) in BENCHMARKS.items():
        for i in range(n):
            out = str((i + 1) % 3) if i < wrong.get(bench, 0) else str(i % 3)
            rules.append({"contains": f"{marker}{i}番", "output": out})
    path = root / name
    path.write_text(json.dumps({"rules": rules, "default": ""}, ensure_ascii=False), encoding="utf-8")
    return str(path)


def base_args(script: str, *more: str) -> list[str]:
    return ["benchmarks", "-p", "no:cacheprovider", "--jallm-backend", SCRIPTED, "--model", script, "--jallm-no-cache", *more]


def comparable(doc: dict) -> dict:
    """A results document without what legitimately differs between equal runs: when it was
    written, the shard plan, and each benchmark's seconds and which benchmarks shared its
    generation call (one process generates all together, xdist workers one by one)."""
    out = {k: v for k, v in doc.items() if k not in ("created", "shard")}
    if "benchmarks" in out:
        out["benchmarks"] = [
            {**b, "run": {k: v for k, v in b["run"].items() if k not in ("seconds", "generation_shared_by")}}
            if b.get("run") else b
            for b in out["benchmarks"]
        ]
    return out


def cache_rows(path: Path) -> int:
    """Rows in a generation cache, read through an independent connection (what another
    process sees); 0 while the file or its table does not exist yet."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(str(path), timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM generations").fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0
    finally:
        conn.close()
