"""perf/run.py's own logic: its workload, and how it reads the plugin's and lm-eval's output.

The timings themselves are printed by the script, never asserted here.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("jallm_perf_run", ROOT / "perf" / "run.py")
perf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(perf)  # type: ignore[union-attr]


def test_synthetic_items_are_distinct_answerable_and_deterministic() -> None:
    items = perf.synthetic_items(3000)
    assert len(items) == 3000 and items == perf.synthetic_items(3000)
    keys = {(it["question"], *(it[f"choice{k}"] for k in range(5))) for it in items}
    assert len(keys) == 3000  # distinct prompts, so nothing is served by de-duplication
    for it in items:
        assert 0 <= it["label"] <= 4
    # Every item keeps its source question's correct answer, wherever it moved.
    source = {}
    for name in ("test.jsonl", "train.jsonl"):
        for line in (perf.SAMPLE_DATA / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            source.setdefault(row["question"], set()).add(row[f"choice{row['label']}"])
    assert all(it[f"choice{it['label']}"] in source[it["question"]] for it in items)


def test_suite_renders_the_plugins_prompts(tmp_path: Path) -> None:
    suite = perf.make_suite(tmp_path, 50)
    prompts = perf.render_prompts(suite)
    assert len(prompts) == 50
    first = prompts[0]
    assert first["prompt"].startswith("以下は、タスクを説明する指示と") and first["prompt"].endswith("### 応答:\n")
    assert first["gold"] in "01234" and first["max_new_tokens"] == 3


def test_lm_eval_task_sends_the_same_prompt_unchanged(tmp_path: Path) -> None:
    task = yaml.safe_load(perf.LM_EVAL_TASK.format(data=tmp_path / "d.jsonl", max_new=3))
    assert task["doc_to_text"] == "{{prompt}}" and task["doc_to_target"] == "{{gold}}"
    assert task["output_type"] == "generate_until"
    assert task["generation_kwargs"]["max_gen_toks"] == 3 and task["generation_kwargs"]["do_sample"] is False
    assert task["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "d.jsonl")


def test_reads_score_and_timings_from_the_plugins_summary() -> None:
    out = """
benchmark    cat    metric       n      score    OoC %    baseline    Δ    verdict
-----------  -----  -----------  -----  -------  -------  ----------  ---  -----------
perf_mc      MC     exact_match  10000  20.43    0.00     -           -    no baseline
pytest-jallm: 10000 prompts, 10000 generated, 0 from the generation cache (model load 6.8 s, generation 25.8 s, data and prompts 0.6 s, scoring 0.0 s)
"""
    assert perf.plugin_score(out) == 20.43
    assert perf.plugin_timings(out) == "model load 6.8 s, generation 25.8 s, data and prompts 0.6 s, scoring 0.0 s"
    assert perf.plugin_score("no table") is None
