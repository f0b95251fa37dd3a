"""Cut the small recorded-outputs test fixtures in tests/fixtures/recorded/ from ../shared/data.

    python scripts/make_recorded_slices.py [--shared ../shared/data] [--out tests/fixtures/recorded]

Real models' recorded outputs in the formats the replay backend reads (M-IFEval response files,
FastChat model_answer files), the first lines of each file byte for byte, at the same relative
paths as in ../shared/data, with the upstream licence and an attribution README per folder, so a
plain clone tests every format. At most 12 lines per file. Re-running reproduces them exactly.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINES = 12

# folder -> (upstream repository and where, licence, licence file, files to slice)
UPSTREAM = {
    "m-ifeval": ("lightblue-tech/M-IFEval", "Apache-2.0", "LICENSE.txt", [
        "data/ja_input_data.jsonl",
        "data/ja_input_response_data_gpt-4o-2024-08-06.jsonl",
    ]),
    "japanese-mt-bench": ("Stability-AI/FastChat (branch jp-stable, fastchat/llm_judge/data/)", "Apache-2.0", "LICENSE", [
        "japanese_mt_bench/model_answer/gpt-4o.jsonl",
        "japanese_mt_bench/model_answer/japanese-stablelm-instruct-alpha-7b.jsonl",
    ]),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--out", default=str(ROOT / "tests" / "fixtures" / "recorded"))
    args = parser.parse_args(argv)
    shared, out = Path(args.shared), Path(args.out)
    for folder, (repo, licence, licence_file, files) in UPSTREAM.items():
        for rel in files:
            lines = (shared / folder / rel).read_text(encoding="utf-8").split("\n")
            target = out / folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("".join(line + "\n" for line in lines[:LINES]), encoding="utf-8", newline="")
        shutil.copyfile(shared / folder / licence_file, out / folder / licence_file)
        commit = (shared / folder / "UPSTREAM_COMMIT").read_text(encoding="utf-8").split()[0]
        listing = "\n".join(f"- `{f}`" for f in files)
        (out / folder / "README.md").write_text(
            f"# {folder}: recorded outputs for tests\n\n"
            f"From https://github.com/{repo.split(' ')[0]} {repo.partition(' ')[2]} at commit `{commit}`, licence "
            f"{licence} (the upstream licence file is beside this README: `{licence_file}`).\n\n"
            f"The first {LINES} lines of each file, unmodified, at the same paths as upstream: real models' "
            "recorded outputs (and, for M-IFEval, the prompts they answer) in the formats "
            "`--jallm-backend replay` reads. Made by `scripts/make_recorded_slices.py`; not for evaluation.\n\n"
            f"{listing}\n",
            encoding="utf-8",
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
