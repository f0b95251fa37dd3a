"""The markers a benchmark test gets: its category and what its dataset's licence implies.

pytest registers them at every start-up (`--strict-markers`, `pytest --markers`), so they are kept
apart from the spec schema (spec.py, pydantic), which only a run that collects a benchmark imports.
"""

from __future__ import annotations

import re

# llm-jp-eval's categories plus medical QA; the marker is the lower-case name.
CATEGORIES: dict[str, str] = {
    "NLI": "natural language inference",
    "QA": "question answering",
    "RC": "reading comprehension",
    "MC": "multiple-choice commonsense",
    "EL": "entity linking",
    "FA": "fundamental analysis",
    "MR": "mathematical reasoning",
    "MT": "machine translation",
    "STS": "semantic textual similarity",
    "HE": "human examination",
    "SUM": "summarization",
    "CG": "code generation",
    "MED": "medical question answering",
    "IF": "instruction following (M-IFEval)",
    "CHAT": "multi-turn chat quality judged by an LLM (Japanese MT-Bench)",
    "SYN": "syntactic analysis: grammatical acceptability (JCoLA; Nejumi's GLP syntactic analysis)",
}
# The leaderboard reports STS but keeps it out of AVG; medical QA, instruction following and
# judged chat and syntactic analysis are not llm-jp-eval categories, so they are reported beside AVG
# rather than moving it.
CATEGORIES_OUT_OF_AVERAGE = frozenset({"STS", "MED", "IF", "CHAT", "SYN"})

# Markers derived from a spec's `license` field (`-m "not noncommercial"`).
LICENSE_MARKERS: dict[str, str] = {
    "noncommercial": "the dataset's licence forbids commercial use (CC BY-NC…)",
    "sharealike": "the dataset's licence is share-alike (CC BY-SA…): derived data keeps the licence",
    "license_unknown": "the spec's license field names no licence this plugin recognises: check the homepage",
}
_OPEN_LICENSES = re.compile(r"\b(?:CC0|CC[- ]BY|CREATIVE COMMONS|MIT|APACHE|BSD|ODC|PDDL|UNLICENSE)\b")


def license_markers(license: str) -> list[str]:
    """The LICENSE_MARKERS that apply to a licence as a spec writes it ("CC BY-NC-SA 4.0")."""
    text = license.upper()
    tokens = set(re.split(r"[^A-Z0-9]+", text))
    marks = []
    if "NC" in tokens or re.search(r"NON-?COMMERCIAL", text):
        marks.append("noncommercial")
    if "SA" in tokens or re.search(r"SHARE-?ALIKE", text):
        marks.append("sharealike")
    if not marks and not _OPEN_LICENSES.search(text):
        marks.append("license_unknown")
    return marks
