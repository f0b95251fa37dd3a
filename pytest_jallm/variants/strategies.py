"""Hypothesis strategies over the format grammar: spec-aware, shrinking towards the canonical format."""

from __future__ import annotations

import re
from typing import Any

from ..data import Example
from ..prompt import render_prompt
from ..prompt_format import (
    ALL_LABEL_STYLES,
    CANONICAL,
    JOINERS,
    LABEL_STYLES,
    ORDERS,
    PLACEHOLDER,
    POLITENESS,
    SEPARATORS,
    SPACINGS,
    WIDTHS,
    PromptFormat,
    answer_kind,
    rewrite_politeness,
    spec_separator,
    to_halfwidth_kana,
    token,
)
from ..spec import BenchmarkSpec


def feature_options(spec: BenchmarkSpec | None = None) -> dict[str, tuple[Any, ...]]:
    """Per feature, the values worth drawing for ``spec`` (canonical first); all values without a spec."""
    opts: dict[str, tuple[Any, ...]] = {
        "separator": (None, *SEPARATORS),
        "width": WIDTHS,
        "choice_label": (None, *ALL_LABEL_STYLES),
        "choice_joiner": (None, *JOINERS),
        "quoting": (False, True),
        "politeness": POLITENESS,
        "spacing": SPACINGS,
        "instruction_after": (False, True),
        "choice_order": ORDERS,
    }
    if spec is None:
        return opts
    ja = spec.language == "ja"
    own_sep = spec_separator(spec)
    opts["separator"] = (None,) + (tuple(s for s in SEPARATORS if s != own_sep) if own_sep else ())
    has_choices = spec.fields.choices is not None and "{choices}" in spec.input
    kind = answer_kind(spec)
    own_label = spec.choice_format.label.rstrip()
    styles = LABEL_STYLES[kind] if kind is not None else ALL_LABEL_STYLES
    opts["choice_label"] = (None,) + (tuple(s for s in styles if s != own_label) if has_choices else ())
    opts["choice_joiner"] = (None,) + (tuple(j for j in JOINERS if j != spec.choice_format.joiner) if has_choices else ())
    opts["choice_order"] = ORDERS if has_choices else ("as-is",)
    template_text = PLACEHOLDER.sub("", spec.input)
    text = spec.instruction + template_text
    widths = ["as-is"]
    if ja and (re.search(r"[A-Za-z0-9]", text) or has_choices):
        widths.append("full-alnum")
    if to_halfwidth_kana(text) != text:
        widths.append("half-kana")
    opts["width"] = tuple(widths)
    opts["quoting"] = (False, True) if spec.fields.variables() else (False,)
    opts["politeness"] = ("as-is",) + tuple(
        p for p in POLITENESS[1:] if ja and rewrite_politeness(spec.instruction, p) != spec.instruction
    )
    spacing = ["as-is"]
    if "\n" in spec.input:
        spacing.append("blank-lines")
    spacing.append("compact")
    if own_sep is not None or has_choices:
        spacing.append("spaced")
    opts["spacing"] = tuple(spacing)
    # Keep only values that change this spec's prompt (checked on a probe item).
    probe = _probe_example(spec)
    canonical = render_prompt(spec, probe, [probe])
    return {
        name: (values[0],) + tuple(v for v in values[1:]
                                   if render_prompt(spec, probe, [probe], PromptFormat(**{name: v})) != canonical)
        for name, values in opts.items()
    }


def _probe_example(spec: BenchmarkSpec) -> Example:
    kind = answer_kind(spec)
    if spec.fields.choices is None:
        n = 0
    elif kind is not None:
        n = len(spec.labels or ())
    else:
        n = len(spec.fields.choices) if isinstance(spec.fields.choices, list) else 4
    choices = tuple(f"選択{i}" for i in range(n))
    gold = token(kind, 0) if kind is not None else (choices[0] if choices else "答え")
    return Example(id="probe", fields={k: f"値{k}" for k in spec.fields.variables()}, choices=choices, gold=gold)


def prompt_formats(spec: BenchmarkSpec | None = None):
    """A hypothesis strategy of formats for ``spec``; it shrinks towards ``PromptFormat()``."""
    from hypothesis import strategies as st

    opts = feature_options(spec)
    return st.builds(
        PromptFormat, **{name: (st.sampled_from(values) if len(values) > 1 else st.just(values[0])) for name, values in opts.items()}
    )


def draw_formats(spec: BenchmarkSpec, n: int, seed: int) -> list[PromptFormat]:
    """``n`` distinct non-canonical formats, the same ones for the same seed (fewer if the grammar has fewer)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hseed

    drawn: list[PromptFormat] = []
    if n <= 0:
        return drawn

    @settings(max_examples=max(100, 20 * n), phases=[Phase.generate], database=None, deadline=None,
              derandomize=False, suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
    @hseed(seed)
    @given(prompt_formats(spec))
    def collect(fmt: PromptFormat) -> None:
        if len(drawn) < n and fmt != CANONICAL and fmt not in drawn:
            drawn.append(fmt)

    collect()
    return drawn
