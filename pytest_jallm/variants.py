"""Prompt-format sensitivity: the same items under semantically equivalent prompt formats.

A :class:`PromptFormat` is a point in a small grammar of formats. Each field is
one *feature*; its default value is "as the spec says", so ``PromptFormat()``
is the canonical llm-jp-eval v1 format and renders byte-identical to
:func:`pytest_jallm.prompt.render_prompt`.

Features (first value = canonical, which is what hypothesis shrinks towards):

* ``separator``      the separator after the field labels of the input block
                     (``質問：`` -> ``質問:`` / ``質問: `` / ``質問 - `` / ``質問`` + newline)
* ``width``          full-width letters and digits in the instruction, the template text and
                     the choice labels, or half-width katakana in the instruction and template
                     text (data is never touched; answers are compared after NFKC)
* ``choice_label``   ``0.`` ``0)`` ``(0)`` ``[0]`` ``（0）`` ``A)`` ``（ア）`` ``①`` …
* ``choice_joiner``  ``,`` newline ``、`` `` / `` …
* ``quoting``        field values in 「」 (English specs: "…")
* ``politeness``     the instruction's endings rewritten from a small table of safe
                     rewrites (してください -> しなさい / せよ, ています -> ている, …)
* ``spacing``        blank lines between input fields, no blank lines between sections,
                     or a space after separators and choice labels
* ``instruction_after``  the instruction section after the item's input instead of before
* ``choice_order``   reversed, rotated or shuffled (per item, seeded by its id) choices

Where the answer *is* a choice label (closed label set equal to the labels'
tokens: JCommonsenseQA's ``0``-``4``, JMMLU's ``A``-``D``) reordering remaps the
gold answer (and the few-shot answers) to the label the gold choice now has,
and label styles keep the token system the instruction asks for (``0.`` may
become ``(0)`` but not ``A)``: an instruction saying "answer with the number"
and letters on the choices would not be an equivalent prompt). Where the
answer is the choice text, any label style and any order are equivalent.
:func:`prompt_formats` is spec-aware: it only draws features that change the
prompt of that benchmark.

The search (``--jallm-variants N``) draws N formats per benchmark with
hypothesis (seeded: ``--hypothesis-seed`` or ``--jallm-seed``), renders a
fixed, seeded sample of items (``--jallm-variant-sample K``) under the
canonical format and every drawn one, and sends the prompts of all formats of
all selected benchmarks to the backend in one call through
:func:`pytest_jallm.cache.cached_generate` (re-runs are free).

Shrinking. A failing ``name[variants]`` check names the worst format and the
smallest change from canonical that still fails. Hypothesis's shrinker is
sequential: every shrink step is one property call, which here would be one
backend call with one format's prompts, and it explores the choice sequence,
not our features. For an LLM that is the wrong trade: a batch of 8 formats
costs about what one does. So we minimise greedily *over the features that
differ*, in the same direction hypothesis would (each feature back to its
first, canonical value), batched: round one evaluates every single-feature
format (canonical plus one feature of the worst) at once; if none fails, each
round reverts one feature at a time for all remaining features in one batch,
until no single revert still fails (a 1-minimal failing format). At most
``len(FEATURES)`` rounds, each one backend call for all failing benchmarks
together, every result cached.
"""

from __future__ import annotations

import json
import math
import random
import re
import statistics
import unicodedata
import zlib
from dataclasses import asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import pytest

from .data import Example
from .items import BenchmarkFailure, _JallmItem, shorten
from .prompt import TEMPLATES
from .spec import BenchmarkSpec

if TYPE_CHECKING:
    from .runner import PreparedBenchmark

# --- the grammar -----------------------------------------------------------------

SEPARATORS = ("：", ":", ": ", " - ", "\n")
JOINERS = (",", "\n", "、", " / ", ", ", "；")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KANA = "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホ"
CIRCLED = "".join(chr(0x2460 + i) for i in range(20))  # ①..⑳
# Label styles by token system; the spec's own style is always the canonical one.
LABEL_STYLES: dict[str, tuple[str, ...]] = {
    "index": ("{index}.", "{index})", "({index})", "[{index}]", "（{index}）"),
    "number": ("{number}.", "{number})", "({number})", "[{number}]", "（{number}）"),
    "letter": ("{letter}.", "{letter})", "({letter})", "[{letter}]", "（{letter}）"),
    "kana": ("（{kana}）", "{kana}."),
    "circled": ("{circled}",),
}
ALL_LABEL_STYLES = tuple(s for styles in LABEL_STYLES.values() for s in styles)
WIDTHS = ("as-is", "full-alnum", "half-kana")
POLITENESS = ("as-is", "nasai", "plain", "kudasai")
SPACINGS = ("as-is", "blank-lines", "compact", "spaced")
ORDERS = ("as-is", "reversed", "rotated", "shuffled")


@dataclass(frozen=True)
class PromptFormat:
    """One prompt format; every default means "as the spec says" (canonical)."""

    separator: str | None = None
    width: str = "as-is"
    choice_label: str | None = None
    choice_joiner: str | None = None
    quoting: bool = False
    politeness: str = "as-is"
    spacing: str = "as-is"
    instruction_after: bool = False
    choice_order: str = "as-is"

    # -- naming ---------------------------------------------------------------

    def diff_from_canonical(self) -> dict[str, Any]:
        """Features that differ from canonical, in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) != f.default}

    def describe(self) -> str:
        diff = self.diff_from_canonical()
        if not diff:
            return "canonical"
        return "; ".join(f"{k}={_show(v)}" for k, v in diff.items())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "PromptFormat":
        return cls(**{k: v for k, v in data.items() if k in FEATURES})

    def with_features(self, source: "PromptFormat", names: Iterable[str]) -> "PromptFormat":
        return replace(self, **{n: getattr(source, n) for n in names})

    # -- rendering ------------------------------------------------------------

    def render(self, spec: BenchmarkSpec, example: Example, shots: Sequence[Example]) -> tuple[str, str]:
        """``(prompt text, gold answer)`` of ``example`` under this format."""
        t = TEMPLATES[spec.prompt_template]
        preamble, ih, nh, rh = t.preamble, t.instruction_header, t.input_header, t.response_header
        if self.spacing == "compact":
            ih, nh, rh = (h.replace("\n\n", "\n", 1) for h in (ih, nh, rh))
        instruction = self.instruction(spec)
        parts = [preamble]
        if not self.instruction_after:
            parts += [ih, instruction]
        for shot in shots:
            text, gold = self.render_input(spec, shot)
            parts += [nh, text, rh, gold]
        text, gold = self.render_input(spec, example)
        parts += [nh, text]
        if self.instruction_after:
            parts += [ih, instruction]
        parts.append(rh)
        return "".join(parts), gold

    def render_messages(
        self, spec: BenchmarkSpec, example: Example, shots: Sequence[Example]
    ) -> tuple[Mapping[str, str], ...]:
        """Chat form, as :func:`pytest_jallm.prompt.render_messages` for the canonical format."""
        instruction = self.instruction(spec)

        def user(text: str) -> str:
            return f"{text}\n\n{instruction}" if self.instruction_after else f"{instruction}\n\n{text}"

        messages: list[dict[str, str]] = []
        if spec.system_prompt:
            messages.append({"role": "system", "content": spec.system_prompt})
        for shot in shots:
            text, gold = self.render_input(spec, shot)
            messages.append({"role": "user", "content": user(text)})
            messages.append({"role": "assistant", "content": gold})
        text, _ = self.render_input(spec, example)
        messages.append({"role": "user", "content": user(text)})
        return tuple(messages)

    def instruction(self, spec: BenchmarkSpec) -> str:
        text = spec.instruction
        if self.politeness != "as-is":
            text = rewrite_politeness(text, self.politeness)
        if self.width == "full-alnum":
            text = to_fullwidth(text)
        elif self.width == "half-kana":
            text = to_halfwidth_kana(text)
        return text

    def input_template(self, spec: BenchmarkSpec) -> str:
        template = spec.input
        if self.separator is not None:
            template = _LABEL_SEP.sub(lambda m: _new_separator(m, self.separator), template)
        if self.spacing == "spaced":
            template = _LABEL_SEP.sub(lambda m: m.group(0) if m.group(0).endswith((" ", "\n")) else m.group(0) + " ", template)
        elif self.spacing == "blank-lines":
            template = re.sub(r"(?<!\n)\n(?!\n)", "\n\n", template)
        if self.width != "as-is":
            convert = to_fullwidth if self.width == "full-alnum" else to_halfwidth_kana
            template = "".join(p if _PLACEHOLDER.fullmatch(p) else convert(p) for p in _PLACEHOLDER_SPLIT.split(template))
        return template

    def render_input(self, spec: BenchmarkSpec, example: Example) -> tuple[str, str]:
        """The input block and the gold answer (remapped when choices move and the answer is a label)."""
        values: dict[str, str] = dict(example.fields)
        if self.quoting:
            left, right = ("「", "」") if spec.language == "ja" else ('"', '"')
            values = {k: f"{left}{v}{right}" for k, v in values.items()}
        gold = example.gold
        if spec.fields.choices is not None:
            order = self.permutation(spec, example)
            kind = answer_kind(spec)
            label = self.label_template(spec)
            joiner = self.choice_joiner if self.choice_joiner is not None else spec.choice_format.joiner
            if self.spacing == "spaced" and not joiner.endswith((" ", "\n")):
                joiner += " "
            parts = []
            for pos, old in enumerate(order):
                lab = render_label(label, pos)
                if self.width == "full-alnum":
                    lab = to_fullwidth(lab, punctuation=True)
                parts.append(f"{lab}{example.choices[old]}")
            values["choices"] = joiner.join(parts)
            if kind is not None:
                gold = remap_gold(gold, kind, order, token_system(label))
        out = self.input_template(spec)
        # As prompt.render_input: substitute only our names, in the same order.
        for name, value in values.items():
            out = out.replace("{" + name + "}", value)
        return out, gold

    def label_template(self, spec: BenchmarkSpec) -> str:
        own = spec.choice_format.label
        if self.choice_label is None:
            label = own
        else:
            label = self.choice_label + own[len(own.rstrip()):]  # keep the spec's trailing space
        if self.spacing == "spaced" and not label.endswith((" ", "\n")):
            label += " "
        return label

    def permutation(self, spec: BenchmarkSpec, example: Example) -> list[int]:
        """Position -> original choice index."""
        n = len(example.choices)
        order = list(range(n))
        if self.choice_order == "as-is" or n < 2 or not reorderable(spec, example):
            return order
        if self.choice_order == "reversed":
            return order[::-1]
        if self.choice_order == "rotated":
            return order[1:] + order[:1]
        rng = random.Random(f"pytest-jallm/{example.id}")
        while order == list(range(n)):
            rng.shuffle(order)
        return order

    def labels(self, spec: BenchmarkSpec) -> list[str] | None:
        """The closed label set under this format (label tokens follow the label style)."""
        if spec.labels is None:
            return None
        kind = answer_kind(spec)
        if kind is None or self.choice_label is None:
            return list(spec.labels)
        system = token_system(self.choice_label)
        return [token(system, i) for i in range(len(spec.labels))]


FEATURES = tuple(f.name for f in fields(PromptFormat))
CANONICAL = PromptFormat()


def _show(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


# --- pieces of the grammar -------------------------------------------------------

# A field label at the start of a line of the input template, and its separator.
_LABEL_SEP = re.compile(r"(?m)^(?P<label>[^\s{}：:][^\n{}：:]{0,15}?)(?P<sep>：|:)(?P<space>[ \t]?)(?P<nl>\n?)")
_PLACEHOLDER = re.compile(r"\{\w+\}")
_PLACEHOLDER_SPLIT = re.compile(r"(\{\w+\})")


def _new_separator(m: re.Match[str], sep: str) -> str:
    nl = "" if sep.endswith("\n") else m.group("nl")
    return m.group("label") + sep + nl


def spec_separator(spec: BenchmarkSpec) -> str | None:
    m = _LABEL_SEP.search(spec.input)
    return None if m is None else m.group("sep") + m.group("space")


def to_fullwidth(text: str, punctuation: bool = False) -> str:
    """ASCII letters and digits (and with ``punctuation`` also ``.()[]:``) to full width."""
    out = []
    for ch in text:
        if ch.isascii() and (ch.isalnum() or (punctuation and ch in ".()[]:")):
            out.append(chr(ord(ch) + 0xFEE0))
        else:
            out.append(ch)
    return "".join(out)


def _half_kana_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for code in range(0xFF66, 0xFF9E):
        base = chr(code)
        for mark in ("", "\uff9e", "\uff9f"):
            full = unicodedata.normalize("NFKC", base + mark)
            if len(full) == 1 and full not in table:
                table[full] = base + mark
    table["ー"] = "\uff70"
    return table


_HALF_KANA = _half_kana_table()


def to_halfwidth_kana(text: str) -> str:
    """Katakana (and the long vowel mark) to half-width katakana; NFKC undoes it."""
    return "".join(_HALF_KANA.get(ch, ch) for ch in text)


# (polite -ください, -なさい, plain imperative): safe rewrites of common instruction endings.
_ENDINGS: tuple[tuple[str, str, str], ...] = (
    ("含めないでください", "含めないようにしなさい", "含めるな"),
    ("入れないでください", "入れないようにしなさい", "入れるな"),
    ("お答えください", "答えなさい", "答えよ"),
    ("答えてください", "答えなさい", "答えよ"),
    ("書いてください", "書きなさい", "書け"),
    ("選んでください", "選びなさい", "選べ"),
    ("読んでください", "読みなさい", "読め"),
    ("考えてください", "考えなさい", "考えよ"),
    ("含めてください", "含めなさい", "含めよ"),
    ("繋げてください", "繋げなさい", "繋げよ"),
    ("区切ってください", "区切りなさい", "区切れ"),
    ("使ってください", "使いなさい", "使え"),
    ("返してください", "返しなさい", "返せ"),
    ("出してください", "出しなさい", "出せ"),
    ("示してください", "示しなさい", "示せ"),
)
# Plain style also drops です/ます from statements.
_PLAIN_STATEMENTS = (("ています", "ている"), ("あります", "ある"), ("できます", "できる"), ("なります", "なる"),
                     ("します。", "する。"), ("です。", "である。"))
_SURU = re.compile(r"してください")
_SURU_NASAI = re.compile(r"しなさい")


def rewrite_politeness(text: str, style: str) -> str:
    """Rewrite instruction endings to ``nasai`` (しなさい), ``plain`` (せよ, である) or ``kudasai`` (してください)."""
    if style == "kudasai":
        for polite, nasai, _ in _ENDINGS:
            if nasai != "答えなさい" or polite == "答えてください":
                text = text.replace(nasai, polite)
        return _SURU_NASAI.sub("してください", text)
    col = 1 if style == "nasai" else 2
    for row in _ENDINGS:
        text = text.replace(row[0], row[col])
    if style == "nasai":
        return _SURU.sub("しなさい", text)
    # -してください: a suru-verb (出力して, 選択して, …にして) becomes せよ; a godan verb in す
    # written with one kanji (返して, 示して) becomes -せ.
    def plain(m: re.Match[str]) -> str:
        run = 0
        while m.start() - run - 1 >= 0 and _is_kanji(text[m.start() - run - 1]):
            run += 1
        return "せ" if run == 1 else "せよ"

    text = _SURU.sub(plain, text)
    for polite, plain_form in _PLAIN_STATEMENTS:
        text = text.replace(polite, plain_form)
    return text


def _is_kanji(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff" or ch == "々"


def token_system(label: str) -> str:
    found = re.findall(r"{(\w+)}", label)
    return found[0] if found else "index"


def token(system: str, i: int) -> str:
    if system == "index":
        return str(i)
    if system == "number":
        return str(i + 1)
    if system == "letter":
        return LETTERS[i % 26]
    if system == "kana":
        return KANA[i % len(KANA)]
    if system == "circled":
        return CIRCLED[i % len(CIRCLED)]
    raise ValueError(f"unknown label token {system!r}")


def render_label(label: str, i: int) -> str:
    out = label
    for system in ("index", "number", "letter", "kana", "circled"):
        out = out.replace("{" + system + "}", token(system, i))
    return out


def answer_kind(spec: BenchmarkSpec) -> str | None:
    """The token system when the answer is a choice label (labels are the label tokens), else None."""
    if spec.fields.choices is None or not spec.labels:
        return None
    system = token_system(spec.choice_format.label)
    if list(spec.labels) == [token(system, i) for i in range(len(spec.labels))]:
        return system
    return None


def reorderable(spec: BenchmarkSpec, example: Example) -> bool:
    """Choices may move when the answer is a label (remapped) or the text of choices (unchanged)."""
    if answer_kind(spec) is not None:
        return True
    golds = example.gold.split("\n")
    return bool(example.choices) and all(g in example.choices for g in golds)


def remap_gold(gold: str, system: str, order: Sequence[int], new_system: str | None = None) -> str:
    """The label the gold choice has after reordering (``order``: position -> original index),
    in ``new_system``'s tokens (default: the same system)."""
    new_system = new_system or system
    if new_system == system and list(order) == list(range(len(order))):
        return gold
    out = []
    for g in gold.split("\n"):
        old = next((i for i in range(len(order)) if token(system, i) == g.strip()), None)
        out.append(g if old is None else token(new_system, order.index(old)))
    return "\n".join(out)


# --- strategies --------------------------------------------------------------------


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
    template_text = _PLACEHOLDER.sub("", spec.input)
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
    canonical = CANONICAL.render(spec, probe, [probe])[0]
    return {
        name: (values[0],) + tuple(v for v in values[1:]
                                   if PromptFormat(**{name: v}).render(spec, probe, [probe])[0] != canonical)
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


# --- evaluation --------------------------------------------------------------------


@dataclass
class FormatScore:
    format: PromptFormat
    score: float
    ooc_rate: float | None
    n: int

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format.diff_from_canonical(), "describe": self.format.describe(),
                "score": round(self.score, 4), "ooc_rate": None if self.ooc_rate is None else round(self.ooc_rate, 4)}


@dataclass
class VariantResult:
    name: str
    category: str
    metric: str
    seed: int
    item_ids: list[str]
    scores: list[FormatScore]  # canonical first

    @property
    def canonical(self) -> FormatScore:
        return self.scores[0]

    @property
    def values(self) -> list[float]:
        return [s.score for s in self.scores]

    @property
    def min(self) -> float:
        return min(self.values)

    @property
    def max(self) -> float:
        return max(self.values)

    @property
    def spread(self) -> float:
        return self.max - self.min

    @property
    def std(self) -> float:
        return statistics.pstdev(self.values) if len(self.values) > 1 else 0.0

    def worst(self) -> FormatScore:
        return min(self.scores, key=lambda s: (s.score, len(s.format.diff_from_canonical())))

    def best(self) -> FormatScore:
        return max(self.scores, key=lambda s: (s.score, -len(s.format.diff_from_canonical())))


@dataclass(frozen=True)
class VariantLimits:
    max_spread: float | None = None
    min_variant_score: float | None = None

    @property
    def active(self) -> bool:
        return self.max_spread is not None or self.min_variant_score is not None

    def fails(self, score: float, reference: float) -> bool:
        """Does a format scoring ``score`` break a limit (``reference``: the best score seen)?"""
        if self.min_variant_score is not None and score < self.min_variant_score:
            return True
        return self.max_spread is not None and reference - score > self.max_spread + 1e-9


def check(result: VariantResult, limits: VariantLimits) -> list[str]:
    failures = []
    if limits.max_spread is not None and result.spread > limits.max_spread + 1e-9:
        best, worst = result.best(), result.worst()
        failures.append(
            f"spread {result.spread:.2f} (max {best.score:.2f} under {best.format.describe()}, min {worst.score:.2f} "
            f"under {worst.format.describe()}) exceeds max_spread {limits.max_spread:.2f}"
        )
    if limits.min_variant_score is not None:
        low = [s for s in result.scores if s.score < limits.min_variant_score]
        if low:
            worst = min(low, key=lambda s: s.score)
            failures.append(
                f"{len(low)} of {len(result.scores)} formats score below min_variant_score "
                f"{limits.min_variant_score:.2f} (lowest {worst.score:.2f} under {worst.format.describe()})"
            )
    return failures


def sample_examples(examples: Sequence[Example], k: int | None, seed: int, name: str) -> list[Example]:
    """A fixed, seeded sample of ``k`` items in their original order."""
    if not k or len(examples) <= k:
        return list(examples)
    rng = random.Random(f"pytest-jallm/variants/{seed}/{name}")
    return [examples[i] for i in sorted(rng.sample(range(len(examples)), k))]


def benchmark_seed(base: int, name: str) -> int:
    return zlib.crc32(f"{base}:{name}".encode("utf-8"))


@dataclass
class _Bench:
    prep: "PreparedBenchmark"
    sample: list[Example]
    seed: int
    formats: list[PromptFormat]


class VariantSearch:
    """Session-wide: draws formats, generates all of them in one backend call, scores, shrinks."""

    def __init__(self, evaluation: Any, *, n: int, sample: int | None, seed: int, progress: Callable[[int], Any] | None = None):
        self.evaluation = evaluation
        self.n = n
        self.sample = sample
        self.seed = seed
        self.progress = progress
        self.benches: dict[str, _Bench] = {}
        self.results: dict[str, VariantResult] = {}
        self.errors: dict[str, BaseException] = {}
        self.shrunk: dict[str, FormatScore] = {}
        self._scores: dict[tuple[str, PromptFormat], FormatScore] = {}
        self.shrink_rounds = 0

    # -- requests ---------------------------------------------------------------

    def requests_for(self, name: str, fmt: PromptFormat):
        from .backends.base import GenerationRequest

        b = self.benches[name]
        spec, shots = b.prep.spec, b.prep.shots
        labels = fmt.labels(spec)
        chat = self.evaluation.settings.chat
        reqs, golds = [], []
        for ex in b.sample:
            text, gold = fmt.render(spec, ex, shots)
            golds.append(gold)
            reqs.append(GenerationRequest(
                prompt=text,
                max_new_tokens=spec.max_new_tokens,
                stop=tuple(spec.stop),
                messages=fmt.render_messages(spec, ex, shots) if chat else None,
                guided_choices=tuple(labels) if labels else None,
            ))
        return reqs, golds

    def evaluate(self, pairs: Sequence[tuple[str, PromptFormat]]) -> dict[tuple[str, PromptFormat], FormatScore]:
        """Scores of (benchmark, format) pairs; every missing one generated in one backend call."""
        from .cache import cached_generate
        from .runner import PreparedBenchmark, score_benchmark

        todo = [p for p in dict.fromkeys(pairs) if p not in self._scores]
        if todo:
            built = [(p, *self.requests_for(*p)) for p in todo]
            requests = [r for _, reqs, _ in built for r in reqs]
            ev = self.evaluation
            bar = self.progress(len(requests)) if self.progress else None
            try:
                texts, _ = cached_generate(lambda: ev.backend, requests, ev.settings.sampling, ev.cache(),
                                           on_progress=(bar.update if bar is not None else None),
                                           identity=ev.identity() if ev.cache() is not None else None)
            finally:
                if bar is not None:
                    bar.close()
            identity = ev.identity()
            offset = 0
            for (name, fmt), reqs, golds in built:
                outputs = texts[offset: offset + len(reqs)]
                offset += len(reqs)
                b = self.benches[name]
                spec = b.prep.spec
                labels = fmt.labels(spec)
                vspec = spec if labels == spec.labels else spec.model_copy(update={"labels": labels})
                vexamples = [replace(ex, gold=g) for ex, g in zip(b.sample, golds)]
                prep = PreparedBenchmark(spec=vspec, spec_path=b.prep.spec_path, examples=vexamples, shots=b.prep.shots,
                                         requests=reqs, prompt_hash=b.prep.prompt_hash,
                                         data_fingerprint=b.prep.data_fingerprint)
                res = score_benchmark(prep, outputs, identity, ev.settings)
                self._scores[(name, fmt)] = FormatScore(fmt, res.score, res.ooc_rate, res.n)
        return {p: self._scores[p] for p in pairs}

    # -- the search ---------------------------------------------------------------

    def run(self, benchmarks: Sequence[tuple[BenchmarkSpec, Any]]) -> None:
        new: list[str] = []
        for spec, path in benchmarks:
            name = spec.name
            if name in self.results or name in self.errors or name in self.benches:
                continue
            try:
                prep = self.evaluation.prepared(spec, path)
                seed = benchmark_seed(self.seed, name)
                sample = sample_examples(prep.examples, self.sample, self.seed, name)
                self.benches[name] = _Bench(prep, sample, seed, [CANONICAL, *draw_formats(prep.spec, self.n, seed)])
                new.append(name)
            except Exception as e:
                self.errors[name] = e
        if not new:
            return
        pairs = [(name, fmt) for name in new for fmt in self.benches[name].formats]
        try:
            scores = self.evaluate(pairs)
        except BaseException as e:
            for name in new:
                self.errors[name] = e
            if not isinstance(e, Exception):
                raise
            return
        for name in new:
            b = self.benches[name]
            self.results[name] = VariantResult(
                name=name, category=b.prep.spec.category, metric=b.prep.spec.primary_metric, seed=b.seed,
                item_ids=[ex.id for ex in b.sample], scores=[scores[(name, f)] for f in b.formats],
            )

    def shrink(self, limits: Mapping[str, VariantLimits], max_rounds: int | None = None) -> None:
        """Minimise the worst format of every failing benchmark (batched greedy, see the module docstring)."""
        cases: dict[str, tuple[PromptFormat, float, VariantLimits]] = {}
        for name, lim in limits.items():
            res = self.results.get(name)
            if res is None or name in self.shrunk or not check(res, lim):
                continue
            worst = res.worst()
            if worst.format == CANONICAL or not lim.fails(worst.score, res.best().score):
                self.shrunk[name] = worst
                continue
            cases[name] = (worst.format, res.best().score, lim)
        if not cases:
            return
        max_rounds = max_rounds if max_rounds is not None else len(FEATURES)
        current = {name: self.results[name].worst() for name in cases}
        # Round one: canonical plus one feature of the worst format.
        singles = {name: [CANONICAL.with_features(fmt, [f]) for f in fmt.diff_from_canonical()]
                   for name, (fmt, _, _) in cases.items()}
        scores = self.evaluate([(name, c) for name, cands in singles.items() for c in cands])
        self.shrink_rounds = 1
        open_cases = []
        for name, (_, ref, lim) in cases.items():
            failing = [scores[(name, c)] for c in singles[name] if lim.fails(scores[(name, c)].score, ref)]
            if failing:
                current[name] = min(failing, key=lambda s: s.score)
            elif len(singles[name]) > 1:
                open_cases.append(name)
        # Then: revert one feature at a time, all candidates of all benchmarks in one batch per round.
        while open_cases and self.shrink_rounds < max_rounds:
            reverts = {name: [replace(current[name].format, **{f: getattr(CANONICAL, f)})
                              for f in current[name].format.diff_from_canonical()] for name in open_cases}
            scores = self.evaluate([(name, c) for name, cands in reverts.items() for c in cands])
            self.shrink_rounds += 1
            still = []
            for name in open_cases:
                _, ref, lim = cases[name]
                failing = [scores[(name, c)] for c in reverts[name] if lim.fails(scores[(name, c)].score, ref)]
                if failing:
                    current[name] = failing[0]  # the first feature that can go, as hypothesis would
                    if len(current[name].format.diff_from_canonical()) > 1:
                        still.append(name)
            open_cases = still
        self.shrunk.update(current)

    def prompt_of(self, name: str, fmt: PromptFormat, index: int = 0) -> tuple[str, str, str]:
        b = self.benches[name]
        ex = b.sample[index]
        text, gold = fmt.render(b.prep.spec, ex, b.prep.shots)
        return ex.id, text, gold


# --- pytest glue ---------------------------------------------------------------------

SEARCH_KEY = pytest.StashKey["VariantSearch"]()
PROPERTY = "jallm_variants"


def requested(config: pytest.Config) -> int:
    return int(config.getoption("jallm_variants", 0) or 0)


def base_seed(config: pytest.Config) -> int:
    hseed = config.getoption("hypothesis_seed", None)
    if hseed not in (None, ""):
        try:
            return int(hseed)
        except ValueError:
            return zlib.crc32(str(hseed).encode("utf-8"))
    return int(config.getoption("jallm_seed", 0) or 0)


def search_for(config: pytest.Config) -> VariantSearch:
    if SEARCH_KEY not in config.stash:
        from .session import SESSION_KEY

        jallm = config.stash[SESSION_KEY]
        config.stash[SEARCH_KEY] = VariantSearch(
            jallm.evaluation, n=requested(config), sample=config.getoption("jallm_variant_sample", 50),
            seed=base_seed(config), progress=getattr(jallm, "_progress", None),
        )
    return config.stash[SEARCH_KEY]


def limits_of(jallm: Any, name: str, spec: BenchmarkSpec) -> VariantLimits:
    from .baseline import limits_for

    lim = limits_for(jallm.threshold_file(), name, spec.thresholds)
    return VariantLimits(getattr(lim, "max_spread", None), getattr(lim, "min_variant_score", None))


class VariantsItem(_JallmItem):
    """``name[variants]``: the benchmark's scores under drawn prompt formats, gated by max_spread/min_variant_score."""

    def runtest(self) -> None:
        jallm = self.jallm
        search = search_for(self.config)
        name = self.spec.name
        if name not in search.results and name not in search.errors:
            if jallm.is_worker:
                batch = [(self.spec, self.path)]
            else:
                batch = [(it.spec, it.path) for it in self.session.items if isinstance(it, VariantsItem)]
            search.run(batch)
        if name in search.errors:
            raise search.errors[name]
        result = search.results[name]
        limits = limits_of(jallm, name, self.spec)
        failures = check(result, limits)
        if failures:
            pending = {name: limits}
            for it in self.session.items:  # shrink every failing benchmark in the same batches
                if isinstance(it, VariantsItem) and it.spec.name in search.results and it.spec.name not in search.shrunk:
                    pending.setdefault(it.spec.name, limits_of(jallm, it.spec.name, it.spec))
            search.shrink(pending)
        row = summary_row(result, limits, failures, search.shrunk.get(name) if failures else None)
        self.user_properties.append((PROPERTY, json.dumps(row, ensure_ascii=False)))
        if failures:
            raise BenchmarkFailure(failure_message(search, result, failures))

    def reportinfo(self):
        return self.path, 0, f"{self.spec.category} prompt-format variants {self.name}"


def collect_item(parent: pytest.Collector, spec: BenchmarkSpec, marks: Sequence[Any]) -> VariantsItem | None:
    if not requested(parent.config):
        return None
    from .medharness import is_harness_template

    if is_harness_template(spec.prompt_template):
        return None  # a harness template is one fixed text: there are no format features to vary
    name = f"{spec.name}[variants]"  # the id given whole, as for per-item tests (--lf under pytest >= 9)
    item = VariantsItem.from_parent(parent, name=name, nodeid=f"{parent.nodeid}::{name}", spec=spec)
    for m in (*marks, pytest.mark.jallm_variants):
        item.add_marker(m)
    return item


def summary_row(result: VariantResult, limits: VariantLimits, failures: list[str], shrunk: FormatScore | None) -> dict[str, Any]:
    worst = result.worst()
    return {
        "name": result.name, "category": result.category, "metric": result.metric, "seed": result.seed,
        "n": len(result.item_ids), "formats": [s.to_dict() for s in result.scores],
        "canonical": round(result.canonical.score, 4), "min": round(result.min, 4), "max": round(result.max, 4),
        "spread": round(result.spread, 4), "std": round(result.std, 4),
        "max_spread": limits.max_spread, "min_variant_score": limits.min_variant_score,
        "verdict": "FAIL" if failures else ("pass" if limits.active else "report"),
        "worst": worst.to_dict(), "shrunk": None if shrunk is None else shrunk.to_dict(),
        "failures": failures,
    }


def failure_message(search: VariantSearch, result: VariantResult, failures: list[str]) -> str:
    worst = result.worst()
    lines = [f"{result.name}[variants] ({result.category}, {result.metric}): {len(result.scores)} prompt formats on "
             f"{len(result.item_ids)} items (seed {result.seed}), canonical {result.canonical.score:.2f}:"]
    lines += [f"  - {f}" for f in failures]
    ooc = "" if worst.ooc_rate is None else f", OoC {worst.ooc_rate:.2f}%"
    lines.append(f"worst format (score {worst.score:.2f}{ooc}): {worst.format.describe()}")
    shrunk = search.shrunk.get(result.name)
    if shrunk is not None:
        if shrunk.format == CANONICAL:
            best = result.best()
            lines.append(f"the canonical format is the lowest-scoring one; the model does better under {best.format.describe()} "
                         f"({best.score:.2f})")
        else:
            lines.append(f"shrunk to the smallest change from canonical that still fails: {shrunk.format.describe()} "
                         f"(score {shrunk.score:.2f})")
    ex_id, text, gold = search.prompt_of(result.name, worst.format)
    lines += [f"--- worst format's prompt (item {ex_id}, expected {gold!r}) ---", shorten(text)]
    if shrunk is not None and shrunk.format not in (CANONICAL, worst.format):
        ex_id, text, gold = search.prompt_of(result.name, shrunk.format)
        lines += [f"--- shrunk format's prompt (item {ex_id}, expected {gold!r}) ---", shorten(text)]
    return "\n".join(lines)


class Reporter:
    """Gathers `name[variants]` rows from reports (also xdist workers') and prints the table."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.rows: list[dict[str, Any]] = []
        config.addinivalue_line("markers", "jallm_variants: a pytest-jallm prompt-format sensitivity check")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "call":
            return
        for key, value in report.user_properties:
            if key == PROPERTY:
                self.rows.append(json.loads(value))

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        terminalreporter.write_sep("=", "pytest-jallm: prompt-format variants")
        terminalreporter.write_line(render_table(self.rows, details=self.config.getoption("verbose") >= 0))
        path = self.config.getoption("jallm_variants_json", None)
        if path:
            from pathlib import Path

            Path(path).write_text(json.dumps({"variants": self.rows}, ensure_ascii=False, indent=2), encoding="utf-8")


def _fmt(x: float | None) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def render_table(rows: Sequence[Mapping[str, Any]], tablefmt: str = "simple", details: bool = True) -> str:
    from tabulate import tabulate

    head = ["benchmark", "n", "formats", "canonical", "min", "max", "spread", "std", "OoC% max", "verdict",
            "shrunk / worst format"]
    body = []
    for r in sorted(rows, key=lambda r: r["name"]):
        oocs = [f["ooc_rate"] for f in r["formats"] if f["ooc_rate"] is not None]
        body.append([r["name"], r["n"], len(r["formats"]), _fmt(r["canonical"]), _fmt(r["min"]), _fmt(r["max"]),
                     _fmt(r["spread"]), _fmt(r["std"]), _fmt(max(oocs)) if oocs else "-", r["verdict"],
                     _clip((r.get("shrunk") or r["worst"])["describe"], 60)])
    out = [tabulate(body, headers=head, tablefmt=tablefmt, disable_numparse=True)]
    if details:
        for r in sorted(rows, key=lambda r: r["name"]):
            table = [[i, _fmt(f["score"]), _fmt(f["ooc_rate"]), f["describe"]] for i, f in enumerate(r["formats"])]
            out.append(f"\n{r['name']} (seed {r['seed']}, {r['n']} items)"
                       + (f" — shrunk: {r['shrunk']['describe']}" if r.get("shrunk") else ""))
            out.append(tabulate(table, headers=["#", "score", "OoC %", "format"], tablefmt=tablefmt, disable_numparse=True))
    return "\n".join(out)
