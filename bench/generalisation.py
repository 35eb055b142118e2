"""Which model variants reverse sentences longer than any seen in training?

    python bench/generalisation.py [--epochs 6] [--json bench/generalisation.json]

Trains each variant on the built-in corpus (lengths 3-10, same data and seed), then measures
exact match on the test set (3-10) and on 100 fresh sentences of every length 11-20.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.insight.evaluate import evaluate  # noqa: E402
from engine.train.checkpoint import load_model  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.data import random_sentences  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

VARIANTS = {
    "unidirectional, content-only attention": dict(bidirectional=False, location_kernel=0),
    "bidirectional, content-only attention": dict(bidirectional=True, location_kernel=0),
    "unidirectional + location term (k=5)": dict(bidirectional=False, location_kernel=5),
    "bidirectional + location term (k=5) [default]": dict(bidirectional=True, location_kernel=5),
    "bidirectional + location term (k=3)": dict(bidirectional=True, location_kernel=3),
    "bidirectional + location, hidden 128": dict(bidirectional=True, location_kernel=5, hidden_dim=128, embed_dim=64),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", type=Path)
    p.add_argument("--only", nargs="*", help="variant names (substrings) to run")
    p.add_argument("--seeds", type=int, nargs="*", help="run each variant on these seeds")
    args = p.parse_args()
    rng = random.Random(1234)
    longer = {n: random_sentences(100, n, n, rng) for n in range(11, 21)}
    rows = {}
    runs = [
        (name, kw, seed)
        for name, kw in VARIANTS.items()
        if not args.only or any(o in name for o in args.only)
        for seed in (args.seeds or [args.seed])
    ]
    for name, kw, seed in runs:
        if args.seeds:
            name = f"{name} seed {seed}"
        cfg = replace(Config(epochs=args.epochs, seed=seed, device="cpu"), **kw)
        ck = Path("/tmp") / "generalisation.pt"
        t0 = time.perf_counter()
        trainer = Trainer(cfg, ck)
        for _ in trainer.run():
            pass
        m = load_model(ck)
        test = evaluate(m.model, m.vocab, trainer.splits.test, torch.device("cpu"))
        beyond = {n: evaluate(m.model, m.vocab, s, torch.device("cpu")).exact_match for n, s in longer.items()}
        rows[name] = {
            "config": kw,
            "test_3_10": test.exact_match,
            "mean_11_15": sum(beyond[n] for n in range(11, 16)) / 5,
            "mean_16_20": sum(beyond[n] for n in range(16, 21)) / 5,
            "by_length": beyond,
            "seconds": time.perf_counter() - t0,
        }
        r = rows[name]
        print(
            f"{name:<48} 3-10 {100 * r['test_3_10']:6.1f}%  11-15 {100 * r['mean_11_15']:6.1f}%  "
            f"16-20 {100 * r['mean_16_20']:6.1f}%  ({r['seconds']:.0f}s)",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"epochs": args.epochs, "seed": args.seed, "variants": rows}, indent=1))


if __name__ == "__main__":
    main()
