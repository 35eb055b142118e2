"""Listing a hundred runs: `engine.runs.index.list_runs` (each run's status.json, config.toml,
metrics.csv and report.json) against opening each run's best model, which is what a listing
that read its figures from the checkpoints would have to do (torch.load, weights_only).

    python3 bench/run_index.py [--runs 100] [--repeats 5] [--json bench/results/run-index.json]

The runs are written by tests.conftest.write_fake_run in the real file formats, 9 epochs of
47 batches each (the default run's report.json size); each gets a copy of one real
checkpoint, trained here for a few seconds at the default model size. Medians of the repeats,
warm file cache.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.runs.index import list_runs  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402
from tests.conftest import write_fake_run  # noqa: E402

VAL_LOSSES = (2.1, 0.9, 0.3, 0.08, 0.02, 0.008, 0.005, 0.004, 0.0039)  # 9 epochs, the default run's


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # one real checkpoint of the default model size (one short epoch is enough to have one)
        model = tmp / "model" / "best.pt"
        for _ in Trainer(replace(Config(device="cpu"), train_size=200, val_size=50, epochs=1), model).run():
            pass
        runs_dir = tmp / "runs"
        for k in range(args.runs):
            write_fake_run(runs_dir, f"run-{k:03d}", started=1_700_000_000.0 + 60 * k, val_losses=VAL_LOSSES)
            shutil.copy(model, tmp / "checkpoints" / f"run-{k:03d}" / "best.pt")
        report_kib = statistics.mean((runs_dir / f"run-{k:03d}" / "report.json").stat().st_size for k in range(3))
        checkpoints = sorted((tmp / "checkpoints").glob("*/best.pt"))
        checkpoint_kib = model.stat().st_size / 1024

        def listing() -> float:
            t0 = time.perf_counter()
            assert len(list_runs(runs_dir)) == args.runs
            return time.perf_counter() - t0

        def loading() -> float:
            t0 = time.perf_counter()
            for c in checkpoints:
                torch.load(c, map_location="cpu", weights_only=True)
            return time.perf_counter() - t0

        listing(), loading()  # warm the file cache and the imports
        times = {"list_runs": [], "torch_load_each": []}
        for _ in range(args.repeats):
            times["list_runs"].append(listing())
            times["torch_load_each"].append(loading())
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "runs": args.runs,
        "report_json_kib": round(report_kib / 1024, 1),
        "checkpoint_kib": round(checkpoint_kib, 1),
        "seconds": {k: round(v, 4) for k, v in med.items()},
        "ms_per_run": {k: round(1000 * v / args.runs, 3) for k, v in med.items()},
        "loading_is_slower_by": round(med["torch_load_each"] / med["list_runs"], 1),
        "repeats": args.repeats,
        "torch": torch.__version__,
        "date": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
