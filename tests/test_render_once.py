"""No repeated per-item work: what the items of a benchmark share (instruction, few-shots) is
rendered once, scoring reuses the input blocks rendered with the prompts, and a cache key's request
part is written directly, with the same bytes (and so the same keys) as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pytest_jallm.prompt as prompt_module
import pytest_jallm.scoring as scoring
from pytest_jallm.backends.base import BackendIdentity, GenerationRequest, ItemRef, SamplingSettings
from pytest_jallm.cache import GenerationCache, _dumps, _request_dict, _request_json
from pytest_jallm.data import Example
from pytest_jallm.preparation import RunSettings, prepare, render_items
from pytest_jallm.prompt import Template, template_of
from pytest_jallm.prompt_format import CANONICAL
from pytest_jallm.specfile import load_spec
from pytest_jallm.variants.strategies import prompt_formats

ROOT = Path(__file__).resolve().parents[1]
PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SECTION_SPECS = [p for p in sorted((ROOT / "benchmarks").glob("*.yaml")) if isinstance(template_of(load_spec(p)), Template)]
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)


def section_render(t: Template, spec, example, shots, fmt):
    """The section layout written out plainly, one item at a time (the renderer before it shared work)."""
    h = fmt.headers(t)
    instruction = fmt.instruction(spec)
    parts = [h.preamble]
    if not fmt.instruction_after:
        parts += [h.instruction_header, instruction]
    for shot in shots:
        text, gold = fmt.render_input(spec, shot)
        parts += [h.input_header, text, h.response_header, gold]
    text, gold = fmt.render_input(spec, example)
    parts += [h.input_header, text]
    if fmt.instruction_after:
        parts += [h.instruction_header, instruction]
    parts.append(h.response_header)
    messages = [{"role": "system", "content": spec.system_prompt}] if spec.system_prompt else []

    def user(text: str) -> dict[str, str]:
        if not instruction:
            return {"role": "user", "content": text}
        return {"role": "user", "content": f"{text}\n\n{instruction}" if fmt.instruction_after else f"{instruction}\n\n{text}"}

    for shot in shots:
        s_text, s_gold = fmt.render_input(spec, shot)
        messages += [user(s_text), {"role": "assistant", "content": s_gold}]
    messages.append(user(text))
    return "".join(parts), gold, tuple(messages)


@st.composite
def cases(draw):
    spec = load_spec(draw(st.sampled_from(SECTION_SPECS)))
    if draw(st.booleans()):
        spec = spec.model_copy(update={"system_prompt": draw(TEXT) or None})
    labels = spec.labels or []
    n = len(labels) if labels and spec.fields.choices is not None else (len(spec.fields.choices) if isinstance(spec.fields.choices, list) else 4)
    n = n if spec.fields.choices is not None else 0

    def example(i: int) -> Example:
        choices = tuple(f"選{k}{draw(TEXT)}" for k in range(n))
        gold = labels[draw(st.integers(0, len(labels) - 1))] if labels else (choices[0] if choices else draw(TEXT) or "答")
        return Example(id=f"e{i}", fields={v: draw(TEXT) + "{x}" for v in spec.fields.variables()}, choices=choices, gold=gold)

    items = [example(i) for i in range(draw(st.integers(1, 3)))]
    shots = [example(100 + i) for i in range(draw(st.integers(0, 3)))]
    return spec, items, shots, draw(prompt_formats(spec))


@PROPS
@given(cases())
def test_the_shared_renderer_writes_what_rendering_each_item_alone_writes(case) -> None:
    spec, items, shots, fmt = case
    template = template_of(spec)
    render_item = template.item_renderer(spec, shots, fmt, chat=True)
    for ex in items:
        prompt, gold, messages = section_render(template, spec, ex, shots, fmt)
        item = render_item(ex)
        assert (item.prompt, item.gold, item.messages) == (prompt, gold, messages)
        assert item.input == CANONICAL.render_input(spec, ex)[0]
        assert template.render(spec, ex, shots, fmt) == (prompt, gold)
        assert template.render_messages(spec, ex, shots, fmt) == messages


def test_each_request_gets_its_own_message_dicts() -> None:
    spec = load_spec(ROOT / "benchmarks" / "jcommonsenseqa.yaml")
    ex = [Example(id=str(i), fields={"question": f"q{i}"}, choices=("a", "b", "c", "d", "e"), gold="0") for i in range(2)]
    _, requests, _ = render_items(spec, ex, ex, chat=True)
    requests[0].messages[0]["content"] = "changed"  # type: ignore[index]
    assert requests[1].messages[0]["content"] != "changed"  # type: ignore[index]


def test_scoring_reuses_the_inputs_rendered_with_the_prompts(monkeypatch) -> None:
    spec_path = ROOT / "samples" / "sample_mc.yaml"
    settings_ = RunSettings(model="m")
    prep = prepare(load_spec(spec_path), spec_path, settings_)
    expected = [CANONICAL.render_input(prep.spec, ex)[0] for ex in prep.examples]
    assert prep.inputs == expected
    monkeypatch.setattr(scoring, "render_input", lambda *a: pytest.fail("scoring rendered an input again"))
    monkeypatch.setattr(prompt_module.PromptFormat, "render_input", lambda *a: pytest.fail("rendered again"))
    identity = BackendIdentity("b", "1", "m", "r")
    result = scoring.score_benchmark(prep, ["0"] * len(prep.requests), identity, settings_)
    assert [it.input for it in result.items] == expected


def test_inputs_must_match_the_examples() -> None:
    spec_path = ROOT / "samples" / "sample_mc.yaml"
    prep = prepare(load_spec(spec_path), spec_path, RunSettings(model="m"))
    import dataclasses

    with pytest.raises(ValueError, match="must correspond"):
        dataclasses.replace(prep, examples=prep.examples[:2], requests=prep.requests[:2])  # inputs left as they were


# --- cache keys -----------------------------------------------------------------------------------

WEIRD = st.text(max_size=12)  # lone surrogates, controls, quotes, U+2028 included


@st.composite
def requests(draw):
    messages = None
    if draw(st.booleans()):
        messages = tuple(draw(st.dictionaries(WEIRD, WEIRD, max_size=3)) for _ in range(draw(st.integers(0, 3))))
    item = draw(st.none() | st.builds(ItemRef, WEIRD, WEIRD, st.integers(1, 3)))
    return GenerationRequest(
        prompt=draw(WEIRD), max_new_tokens=draw(st.integers(1, 10**6)), stop=tuple(draw(st.lists(WEIRD, max_size=3))),
        messages=messages, guided_choices=draw(st.none() | st.lists(WEIRD, max_size=3).map(tuple)), item=item)


@settings(max_examples=300, deadline=None)
@given(requests(), st.booleans())
def test_the_direct_request_json_is_the_canonical_dump(request: GenerationRequest, per_item: bool) -> None:
    assert _request_json(request, per_item) == _dumps(_request_dict(request, per_item))


def test_odd_value_types_take_the_general_path_and_keep_their_keys() -> None:
    odd = GenerationRequest(prompt="p", max_new_tokens=3, stop=["a"], messages=None,  # type: ignore[arg-type]
                            guided_choices=None)
    assert _request_json(odd) == _dumps(_request_dict(odd)) == '{"guided_choices":null,"max_new_tokens":3,"messages":null,"prompt":"p","stop":["a"]}'
    floaty = GenerationRequest(prompt="p", max_new_tokens=3.0, stop=())  # type: ignore[arg-type]
    assert _request_json(floaty) == _dumps(_request_dict(floaty))


def test_a_known_key_is_unchanged() -> None:
    """Recorded with the general serialisation before the direct one existed: caches keep hitting."""
    identity = BackendIdentity("hf", "4.0", "m", "r", {"dtype": "float32"})
    request = GenerationRequest("質問：\"x\"\n", 3, ("\n\n",), ({"role": "user", "content": "こんにちは"},), ("0", "1"))
    assert GenerationCache.key(identity, SamplingSettings(), request) == KNOWN_KEY


KNOWN_KEY = "5718ac4fc0d3e68b942124edf6ea4dc9b682ec5ac3a2f8dd830ef9187047bdab"  # main at 047d892
