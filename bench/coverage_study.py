"""Does coverage attention (--coverage) pay on the built-in words? The default model against
the same with --coverage, both the reference model (engine/model/seq2seq.py, the only one with coverage,
so that the seconds compare like with like), on three seeds: whole runs as a user starts them,
every figure report.json has, plus sentences of 2-3 repeated words of 6-40 words, where only
the position tells them apart (bench/copy_study.py's).

    python3 bench/coverage_study.py [--json bench/results/coverage-study.json] [--seeds 42 43 44]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from copy_study import figures, load_note, repeated_words, run_cli  # noqa: E402

VARIANTS = {"reference": ["--impl", "reference"], "reference --coverage": ["--impl", "reference", "--coverage"]}


def first_below(curve: dict, goal: float = 0.99) -> str:
    """The first length measured where exact match falls below the goal ('> last' if none)."""
    lengths = sorted(int(n) for n in curve)
    below = [n for n in lengths if curve[str(n)] < goal]
    return str(below[0]) if below else f"> {lengths[-1]}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path)
    p.add_argument("--seeds", type=int, nargs="*", default=[42, 43, 44])
    args = p.parse_args()
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for variant, flags in VARIANTS.items():
                name = f"seed-{seed}-{len(rows)}"
                report, seconds, ck = run_cli(["--seed", str(seed), *flags], Path(tmp), name)
                row = figures(report, seconds)
                row["repeated_words_6_40"] = repeated_words(ck, range(6, 41))
                row["unknown_below_99_at"] = first_below(report["unknown_words_by_length"])
                row["known_below_99_at"] = first_below(report["beyond_training_lengths"])
                rows[f"seed {seed}: {variant}"] = row
                r = row["repeated_words_6_40"]
                print(
                    f"seed {seed} {variant:22} test {row['test_exact_match']:.2%}  train {row['train_seconds']:5.1f} s"
                    f"  whole {seconds:5.1f} s  unknown<99% at {row['unknown_below_99_at']}  known<99% at "
                    f"{row['known_below_99_at']}  repeated 6-20 {r['6-20']:.2%} 21-40 {r['21-40']:.2%}",
                    flush=True,
                )
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, torch {torch.__version__}",
        "runs": rows,
        "timing_note": load_note(),
    }
    if args.json:
        tmp = args.json.with_name(f".{args.json.name}.tmp")
        tmp.write_text(json.dumps(out, indent=1) + "\n")
        tmp.replace(args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
