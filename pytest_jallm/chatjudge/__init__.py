"""LLM-judged multi-turn chat benchmarks (Japanese MT-Bench): a benchmark whose spec has a `judge`
section is answered in one conversation, turn by turn, then scored by a judge model.

* `fastchat` -- FastChat's single-answer grading as facts: which judge prompt each turn and
  category uses, how a prompt is rendered, how the rating is read from a judgment, how
  show_result averages. No other module of this package is imported by it.
* `loaders` -- the `fastchat-questions` and `fastchat-answers` file formats.
* `judge` -- the judge's command-line options (`--jallm-judge-*`, derived from the backends'
  own declared options) and its settings.
* `flow` -- the stages: turn 1 of every question in one batched backend call, turn 2 in a
  second, then every judge prompt in one judge call, all through the generation cache.

This package module imports nothing, so that `data.py` can register the loaders without
pulling in the flow (which builds on the evaluation engine).
"""


def item_id(question_id: str, turn: int) -> str:
    """A judged benchmark's scored unit is one turn of one question: ``81-turn2``."""
    return f"{question_id}-turn{turn}"
