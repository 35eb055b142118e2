"""What watching the attention form costs an epoch: the default run's epochs with one watch
sentence (a snapshot after batches 1, 2, 4, 8, 16, 32 of the first epoch and after every
epoch) against the same run without, alternating, in one process.

    python3 bench/watch_cost.py [--repeats 3] [--epochs 3] [--json bench/results/watch-cost.json]

Epoch seconds here include the epoch's own snapshots (the one after validation too).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.insight.watch import default_watch  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.events import EpochDone, Snapshot  # noqa: E402
from engine.train.threads import default_threads  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402


def epochs(cfg: Config, watch: bool, tmp: Path) -> list[float]:
    trainer = Trainer(cfg, tmp / "w.pt")
    trainer.watch = default_watch(trainer.splits.test) if watch else []
    times, t0 = [], time.perf_counter()
    for ev in trainer.run():
        if isinstance(ev, EpochDone) and not watch:
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
        elif isinstance(ev, Snapshot) and watch and ev.batch == ev.batches:  # the epoch's last event
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    cfg = replace(Config(device="cpu"), epochs=args.epochs)
    torch.set_num_threads(default_threads(cfg.hidden_dim))
    runs = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for watch in (False, True):
                runs[watch].append(epochs(cfg, watch, Path(tmp)))
    rows = {}
    for k in range(args.epochs):
        off = statistics.median(r[k] for r in runs[False])
        on = statistics.median(r[k] for r in runs[True])
        rows[k + 1] = {"without": round(off, 3), "with": round(on, 3), "cost": round(on / off - 1, 4)}
        print(f"epoch {k + 1}: without {off:.3f}s  with {on:.3f}s  ({100 * (on / off - 1):+.1f}%)")
    total_off = sum(statistics.median(r[k] for r in runs[False]) for k in range(args.epochs))
    total_on = sum(statistics.median(r[k] for r in runs[True]) for k in range(args.epochs))
    print(f"all {args.epochs} epochs: {100 * (total_on / total_off - 1):+.1f}%")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"repeats": args.repeats, "epochs": rows, "total_cost": round(total_on / total_off - 1, 4)}, indent=1
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
