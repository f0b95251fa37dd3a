"""Prompt-format sensitivity (``--jallm-variants``, docs/variants.md), over the formats of the core's
``pytest_jallm.prompt_format``: ``strategies``
(hypothesis), ``search`` (evaluation through ``Evaluation``, spread, shrinking), ``items`` (pytest)."""
