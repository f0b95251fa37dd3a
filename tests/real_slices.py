"""The real-format slices in tests/fixtures/real-slices/ and how the shipped specs read them.

The slices are the first records of the published files, so they cannot match the sha256 pins
of the whole files: specs read them with their pins dropped (and everything else as shipped).
JMMLU and JSeM are sliced to a few of their files: their url/mirror pairs are cut to the files
that are there. JMMLU's few-shot pool (32 items, half from each half of llm-jp-eval's split) is
shrunk to 4, or the 10 test-half rows of the slice would all go to the pool. A `skip` (JCoLA
out-of-domain's 32-row train head) is dropped: it is longer than the slice.
"""

from __future__ import annotations

import glob
from pathlib import Path

from pytest_jallm.spec import BenchmarkSpec, Source

SLICES = Path(__file__).resolve().parent / "fixtures" / "real-slices"
PARTIAL = {"jmmlu", "jmmlu_medical", "jsem"}


def _on_slices(source: Source, partial: bool) -> Source:
    update: dict = {"sha256": {}, "sha256_file": None}
    if "skip" in source.loader_options:
        update["loader_options"] = {k: v for k, v in source.loader_options.items() if k != "skip"}
    if partial:
        pairs = [(u, m) for u, m in zip(source.locations(), source.mirrors(), strict=True) if glob.glob(str(SLICES / m))]
        update.update(url=[u for u, _ in pairs], mirror=[m for _, m in pairs])
        if source.format == "jmmlu":
            update["loader_options"] = {**source.loader_options, "fewshot_pool": 4}
    return source.model_copy(update=update)


def for_slices(spec: BenchmarkSpec) -> BenchmarkSpec:
    """The spec as shipped, reading the slices: pins dropped, PARTIAL datasets cut to their files."""
    partial = spec.name in PARTIAL
    update: dict = {"source": _on_slices(spec.source, partial)}
    if spec.fewshot.source is not None:
        update["fewshot"] = spec.fewshot.model_copy(update={"source": _on_slices(spec.fewshot.source, partial)})
    if spec.judge is not None:  # an LLM judge's prompt and reference files
        judge = spec.judge
        update["judge"] = judge.model_copy(update={
            "prompts": _on_slices(judge.prompts, partial),
            "reference_answers": _on_slices(judge.reference_answers, partial),
            "multi_turn_prompts": None if judge.multi_turn_prompts is None else _on_slices(judge.multi_turn_prompts, partial),
        })
    return spec.model_copy(update=update)
