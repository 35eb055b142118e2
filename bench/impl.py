"""The reference model (engine/model/seq2seq.py under autograd) against the fast layer (engine/fast)
on the same data, seed and machine: seconds per training epoch at the default and the
notebook configurations, the epochs' losses side by side, and a greedy decode of the test set.

    python3 bench/impl.py [--epochs 2] [--json bench/results/impl-cpu-2cores.json]

Each configuration trains both implementations in turn, in this process, on the threads a
run would use (engine.train.threads.default_threads); an epoch's time is the median over the epochs.
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

from engine.insight.evaluate import evaluate  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.events import EpochDone  # noqa: E402
from engine.train.threads import default_threads  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

CONFIGS = {
    "default": Config(device="cpu"),
    "notebook": Config.notebook(device="cpu"),
    "copy": Config(device="cpu", copy="on"),  # the default with the copy mechanism (--copy)
}


def measure(cfg: Config, epochs: int, tmp: Path) -> dict:
    trainer = Trainer(replace(cfg, epochs=epochs), tmp / f"{cfg.impl}.pt")
    done = [e for e in trainer.run() if isinstance(e, EpochDone)]
    t0 = time.perf_counter()
    ev = evaluate(trainer.model, trainer.vocab, trainer.splits.test, trainer.device)
    return {
        "impl": cfg.impl,
        "epoch_seconds": [round(e.seconds, 3) for e in done],
        "median_epoch_seconds": round(statistics.median(e.seconds for e in done), 3),
        "train_losses": [e.train_loss for e in done],
        "val_losses": [e.val_loss for e in done],
        "test_decode_seconds": round(time.perf_counter() - t0, 3),
        "test_exact_match": ev.exact_match,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.configs:
            cfg = CONFIGS[name]
            torch.set_num_threads(default_threads(cfg.hidden_dim))
            pair = {impl: measure(replace(cfg, impl=impl), args.epochs, Path(tmp)) for impl in ("fast", "reference")}
            f, r = pair["fast"], pair["reference"]
            ratio = r["median_epoch_seconds"] / f["median_epoch_seconds"]
            print(
                f"{name:9} epoch: reference {r['median_epoch_seconds']:6.2f}s  fast {f['median_epoch_seconds']:6.2f}s  "
                f"({ratio:.2f}x)   test decode: reference {r['test_decode_seconds']:.2f}s  "
                f"fast {f['test_decode_seconds']:.2f}s   "
                f"val loss {r['val_losses'][-1]:.4f} / {f['val_losses'][-1]:.4f}",
                flush=True,
            )
            rows.append(
                {
                    "config": name,
                    "threads": torch.get_num_threads(),
                    "reference": r,
                    "fast": f,
                    "epoch_ratio": round(ratio, 2),
                }
            )
    if args.json:
        args.json.write_text(json.dumps({"epochs": args.epochs, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
