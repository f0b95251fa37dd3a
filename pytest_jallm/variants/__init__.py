"""Prompt-format sensitivity (``--jallm-variants``): the same items under semantically equivalent
prompt formats. See docs/variants.md.

- :mod:`.grammar`: the formats (``PromptFormat``; ``CANONICAL`` is a normal run's) and the Japanese rewriting
- :mod:`.strategies`: hypothesis strategies over the grammar, spec-aware
- :mod:`.search`: formats evaluated through ``Evaluation``, their spread, shrinking a failing one
- :mod:`.items`: the ``name[variants]`` pytest item and the reporter's table

Imports point one way: grammar <- pytest_jallm.prompt <- strategies <- search <- items; this
package module imports none of them, so the renderer can import the grammar.
"""
