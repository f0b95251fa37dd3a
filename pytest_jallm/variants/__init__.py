"""Prompt-format sensitivity (``--jallm-variants``, docs/variants.md): ``grammar`` (the formats; the
renderer in pytest_jallm.prompt imports it, so this module imports nothing), ``strategies``
(hypothesis), ``search`` (evaluation through ``Evaluation``, spread, shrinking), ``items`` (pytest)."""
