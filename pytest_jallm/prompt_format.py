"""The format grammar: prompt formats that mean the same thing, and the Japanese rewriting.

A :class:`PromptFormat` is a point in a small grammar of formats. Each field is
one *feature*; its default value is "as the spec says", so ``PromptFormat()``
(``CANONICAL``) is the canonical format: :mod:`pytest_jallm.prompt` renders every
prompt, a benchmark test's and a variant's alike, from a spec, an example and a
format, and a normal run is the canonical point.

The features and their values (canonical first, which is what hypothesis shrinks
towards) are the constants below; docs/variants.md tables them.

Where the answer *is* a choice label (closed label set equal to the labels'
tokens: JCommonsenseQA's ``0``-``4``, JMMLU's ``A``-``D``) reordering remaps the
gold answer (and the few-shot answers) to the label the gold choice now has,
and label styles keep the token system the instruction asks for (``0.`` may
become ``(0)`` but not ``A)``: an instruction saying "answer with the number"
and letters on the choices would not be an equivalent prompt). Where the
answer is the choice text, any label style and any order are equivalent.

This module imports nothing else of the package at run time, so the renderer can use it.
"""

from __future__ import annotations

import random
import re
import unicodedata
from dataclasses import asdict, dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    from .data import Example
    from .spec import BenchmarkSpec

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

    # -- the pieces pytest_jallm.prompt renders a prompt from ------------------------

    def headers(self, template: Any) -> Any:
        """The prompt template's section headers (a :class:`pytest_jallm.prompt.Template`) under this format."""
        if self.spacing != "compact":
            return template
        return replace(template, **{h: getattr(template, h).replace("\n\n", "\n", 1)
                                    for h in ("instruction_header", "input_header", "response_header")})

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
        separator = self.separator
        if separator is not None:
            template = _LABEL_SEP.sub(lambda m: _new_separator(m, separator), template)
        if self.spacing == "spaced":
            template = _LABEL_SEP.sub(lambda m: m.group(0) if m.group(0).endswith((" ", "\n")) else m.group(0) + " ", template)
        elif self.spacing == "blank-lines":
            template = re.sub(r"(?<!\n)\n(?!\n)", "\n\n", template)
        if self.width != "as-is":
            convert = to_fullwidth if self.width == "full-alnum" else to_halfwidth_kana
            template = "".join(p if PLACEHOLDER.fullmatch(p) else convert(p) for p in _PLACEHOLDER_SPLIT.split(template))
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
        # One pass over the template, our names only: str.format_map would interpret braces inside the
        # data, and replacing name after name would substitute a value that itself holds "{choices}".
        out = _PLACEHOLDER_NAME.sub(lambda m: values.get(m.group(1), m.group(0)), self.input_template(spec))
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
PLACEHOLDER = re.compile(r"\{\w+\}")
_PLACEHOLDER_NAME = re.compile(r"\{(\w+)\}")
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
