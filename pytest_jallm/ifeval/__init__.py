"""M-IFEval, Japanese part: instruction-following checks and their strict and loose evaluation.

A reimplementation, written for this project, of the evaluator of lightblue-tech/M-IFEval
(Apache-2.0) at commit 0bc3143a919eef2f9ec64aa26da8a546086653de, for the ``ja:`` instruction ids
of ``data/ja_input_data.jsonl``. Which upstream file each part follows:

====================  ===================================================================
``text``              ``instruction_utils/ja_instructions_util.py`` (sentence count, janome
                      tokens) and the regular expressions of ``instructions/ja_instructions.py``
``instructions``      ``instructions/ja_instructions.py`` (each ``check_following``) and
                      ``instructions_registry.py`` (the ids)
``evaluate``          ``evaluation_main.py`` (strict and loose evaluation, ``print_report``'s
                      four figures, the input and response files)
``benchmark``         not upstream: the ``m-ifeval`` loader and the ``ifeval_*`` metrics that
                      make it a benchmark of this plugin (``benchmarks/m_ifeval_ja.yaml``)
====================  ===================================================================

It gives the reference's verdicts on every recorded response of its 13 evaluated models but one
(``tests/test_ifeval_parity.py``); the deviations and their reasons are in docs/catalog.md.

For a file of responses (the reference's ``ja_input_response_data_<model>.jsonl``) and the input::

    from pytest_jallm.ifeval import reference_figures
    f = reference_figures("responses.jsonl", "ja_input_data.jsonl")
    f.prompt_strict, f.inst_strict, f.prompt_loose, f.inst_loose   # fractions, as the reference prints

``evaluate_responses`` gives the per-prompt verdicts as well (a paired test needs them).
"""

from .evaluate import (
    Evaluation,
    Figures,
    InputError,
    PromptInput,
    PromptResult,
    evaluate,
    evaluate_responses,
    figures,
    loose_variants,
    read_inputs,
    read_responses,
    reference_figures,
)
from .instructions import INSTRUCTIONS, InstructionArgsError

__all__ = [
    "INSTRUCTIONS",
    "Evaluation",
    "Figures",
    "InputError",
    "InstructionArgsError",
    "PromptInput",
    "PromptResult",
    "evaluate",
    "evaluate_responses",
    "figures",
    "loose_variants",
    "read_inputs",
    "read_responses",
    "reference_figures",
]
