"""What the evaluation after training costs: from the end of the last epoch to the last file
written, for a small run and the default run, on a few seeds, each in a fresh process (as
`reverse-tui --no-ui` runs: the plot process starts with training and imports matplotlib and
seaborn meanwhile).

    python3 bench/eval_cost.py                  # small and default, seeds 42 1 2
    python3 bench/eval_cost.py --json bench/results/eval-cost.json

Each line: training seconds, evaluation seconds, and each part's own time (parts run side by
side on two cores, so they add up to more than the evaluation's wall time).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    # the small run: too short to learn anything, so every sweep is lost from its first lengths
    "small": dict(epochs=2, train_size=600, val_size=100, test_size=100),
    "default": {},
}


def child(name: str, seed: int) -> dict:
    sys.path.insert(0, str(ROOT))
    import torch

    from engine.job import Evaluating, Finished, TrainingEnded, run_job
    from engine.train.config import Config
    from engine.train.threads import default_threads

    cfg = replace(Config(**CONFIGS[name]), seed=seed, device="cpu")
    torch.set_num_threads(default_threads(cfg.hidden_dim))
    phases, t_end, trained = [], None, None
    with tempfile.TemporaryDirectory() as tmp:
        for ev in run_job(cfg, Path(tmp) / "ck" / "best.pt", Path(tmp) / "out"):
            if isinstance(ev, TrainingEnded):
                t_end, trained = time.perf_counter(), ev.seconds
            elif isinstance(ev, Evaluating):
                phases.append({"name": ev.phase.name, "seconds": round(ev.phase.seconds, 3), "detail": ev.phase.detail})
            elif isinstance(ev, Finished):
                evaluation = time.perf_counter() - t_end
                return {
                    "config": name,
                    "seed": seed,
                    "train_seconds": round(trained, 2),
                    "evaluation_seconds": round(evaluation, 2),
                    "test_exact_match": ev.results.evaluation.exact_match,
                    "phases": phases,
                }
    raise SystemExit("the run did not finish")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--seeds", nargs="*", type=int, default=[42, 1, 2])
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "SEED"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    rows = []
    for name in args.configs:
        for seed in args.seeds:
            done = subprocess.run(
                [sys.executable, __file__, "--child", name, str(seed)],
                cwd=ROOT,
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(row)
            parts = ", ".join(f"{ph['name']} {ph['seconds']:.2f}" for ph in row["phases"])
            print(
                f"{name:8} seed {seed:3}: train {row['train_seconds']:5.1f}s  evaluation "
                f"{row['evaluation_seconds']:4.2f}s  test EM {100 * row['test_exact_match']:.1f}%  ({parts})",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps({"machine": "see bench/README.md", "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
