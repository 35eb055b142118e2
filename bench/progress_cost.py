"""What a run's live files (engine/runs/live.py: progress.json at most 4 times a second, a line of
epochs.jsonl per epoch) cost an epoch: the default run's epochs with them against the same
run without, alternating, in one process; and one progress.json write on its own.

    python3 bench/progress_cost.py [--repeats 3] [--epochs 3] [--json bench/results/progress-cost.json]

The same seed every run: both sides train the very same batches. Epoch seconds run from one
EpochDone to the next, so they hold the writer's work after every batch.
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

from engine.runs.live import PROGRESS_INTERVAL, LiveFiles  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.events import BatchDone, EpochDone  # noqa: E402
from engine.train.threads import default_threads  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402


def epochs(cfg: Config, live: bool, tmp: Path) -> tuple[list[float], int]:
    """One run; each epoch's wall seconds, and how many progress.json writes it made."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    trainer = Trainer(cfg, folder / "w.pt")
    files = LiveFiles(folder, "bench") if live else None
    writes, last = 0, None
    times, t0 = [], time.perf_counter()
    for ev in trainer.run():
        if isinstance(ev, BatchDone) and files is not None:
            files.batch(ev.epoch, ev.batch, ev.batches, ev.loss)
            writes += files.last_write != last
            last = files.last_write
        elif isinstance(ev, EpochDone):
            if files is not None:
                files.epoch(ev.as_dict())
            times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
    if files is not None:
        files.close()
    return times, writes


def one_write(tmp: Path, n: int = 200) -> float:
    """Seconds of one progress.json write holding 512 losses (a full window)."""
    files = LiveFiles(Path(tempfile.mkdtemp(dir=tmp)), "bench", clock=lambda: 0.0)
    files.recent.extend([0.123456789] * 512)
    t0 = time.perf_counter()
    for _ in range(n):
        files._write_progress(1, 1, 1)
    files.close()
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    cfg = replace(Config(device="cpu"), epochs=args.epochs)
    torch.set_num_threads(default_threads(cfg.hidden_dim))
    runs: dict[bool, list[list[float]]] = {False: [], True: []}
    writes = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for live in (False, True):
                times, w = epochs(cfg, live, Path(tmp))
                runs[live].append(times)
                if live:
                    writes.append(w)
        write_s = one_write(Path(tmp))
    rows = {}
    for k in range(args.epochs):
        off = statistics.median(r[k] for r in runs[False])
        on = statistics.median(r[k] for r in runs[True])
        rows[k + 1] = {"without": round(off, 3), "with": round(on, 3), "cost": round(on / off - 1, 4)}
        print(f"epoch {k + 1}: without {off:.3f}s  with {on:.3f}s  ({100 * (on / off - 1):+.1f}%)")
    total_off = sum(statistics.median(r[k] for r in runs[False]) for k in range(args.epochs))
    total_on = sum(statistics.median(r[k] for r in runs[True]) for k in range(args.epochs))
    share = write_s / PROGRESS_INTERVAL
    print(f"all {args.epochs} epochs: {100 * (total_on / total_off - 1):+.1f}%")
    print(f"progress.json writes per run: {statistics.median(writes)}; one write {1e3 * write_s:.2f} ms")
    print(f"at one write per {PROGRESS_INTERVAL}s: {100 * share:.2f}% of the training thread's time")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "repeats": args.repeats,
                    "epochs": rows,
                    "total_cost": round(total_on / total_off - 1, 4),
                    "writes_per_run": statistics.median(writes),
                    "one_write_seconds": round(write_s, 6),
                    "write_share_at_interval": round(share, 5),
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
