"""Trained on 5-10 words, how far does each attention reverse? The setup of Ray Chowdhury &
Caragea (ICML 2023): train on sentences of 5-10 words, test at 15 to 100.

    OMP_NUM_THREADS=1 python bench/length_generalization.py [--variants NAME ...] [--seeds 42 1 2]
        [--per-length 100] [--json bench/results/length-generalization.json]

For each variant and seed: train on the built-in corpus at 5-10 words (everything else
reverse-tui's defaults: the same data, epochs and learning rate for every variant), load the
best checkpoint (picked by validation loss at 5-10 words: nothing is tuned on the test
lengths), then greedy-decode, at each of LENGTHS, sentences of known words (drawn uniformly
from the vocabulary) and of made-up words (every one <unk>, copied back by the attention's
peak), as the report's length sweep does (engine/insight/lengths.py); each wrong answer is
classed by failure_kind (stopped_early, ran_on, wrong_word). Also the seed's own 5-10 test
set. The sentences are drawn from a generator seeded apart from the variant, so every
variant decodes the same ones. Results are merged into the JSON after every run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.insight.evaluate import evaluate  # noqa: E402
from engine.insight.lengths import length_curve, made_up_words  # noqa: E402
from engine.train.checkpoint import load_model  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.events import EpochDone  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

LENGTHS = (15, 20, 25, 30, 50, 100)
PAPER = dict(min_len=5, max_len=10)  # the paper's training lengths
# name -> Config overrides on top of PAPER
VARIANTS: dict[str, dict] = {
    "additive": dict(location_kernel=0),  # content alone
    "additive+location": dict(),  # reverse-tui's default: the location term of Chorowski et al.
    "shift": dict(score="shift"),  # Config.long(): the last step's weights moved by a soft offset
}
CPU = torch.device("cpu")


def sentences(vocab, per_length: int) -> dict[str, dict[int, list[list[str]]]]:
    """kind -> length -> sentences, from one seeded generator (the same for every variant)."""
    rng = random.Random(1234)
    known, unknown = vocab.words(), made_up_words(vocab, rng)
    return {
        kind: {n: [rng.choices(pool, k=n) for _ in range(per_length)] for n in LENGTHS}
        for kind, pool in (("known", known), ("unknown", unknown))
    }


def run(name: str, seed: int, per_length: int, work: Path) -> dict:
    cfg = Config(**{**PAPER, **VARIANTS[name], "seed": seed})
    torch.manual_seed(seed)
    path = work / f"{name}-{seed}.pt"
    trainer = Trainer(cfg, path)
    t0 = time.perf_counter()
    epochs = [e for e in trainer.run() if isinstance(e, EpochDone)]
    seconds = time.perf_counter() - t0
    loaded = load_model(path)
    model, vocab = loaded.model, loaded.vocab
    test = evaluate(model, vocab, trainer.splits.test, CPU)
    row = {
        "variant": name,
        "seed": seed,
        "overrides": VARIANTS[name],
        "impl": model.impl,
        "train_seconds": round(seconds, 1),
        "best_epoch": loaded.payload.get("best_epoch"),
        "val_exact_match": epochs[-1].val_exact_match,
        "test_exact_match": test.exact_match,
    }
    for kind, by_length in sentences(vocab, per_length).items():
        curve = length_curve(model, vocab, by_length, CPU, stop_when_lost=False)
        row[kind] = {
            str(n): {"exact_match": curve.per_length[n], "failures": curve.failures[n]} for n in curve.per_length
        }
    return row


def commit() -> str:
    out = subprocess.run(["git", "log", "-1", "--format=%h"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[42, 1, 2])
    p.add_argument("--per-length", type=int, default=100)
    p.add_argument("--json", type=Path, default=Path("bench/results/length-generalization.json"))
    args = p.parse_args(argv)
    data = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    data.update(
        {
            "setup": "train 5-10 words (Config defaults otherwise), greedy, one thread on a CPU",
            "lengths": list(LENGTHS),
            "per_length": args.per_length,
            "commit": commit(),
            "date": time.strftime("%Y-%m-%d"),
        }
    )
    with tempfile.TemporaryDirectory() as work:
        for name in args.variants:
            for seed in args.seeds:
                row = run(name, seed, args.per_length, Path(work))
                data["runs"] = [r for r in data["runs"] if (r["variant"], r["seed"]) != (name, seed)] + [row]
                args.json.parent.mkdir(parents=True, exist_ok=True)
                tmp = args.json.with_suffix(".tmp")
                tmp.write_text(json.dumps(data, indent=1) + "\n")
                tmp.replace(args.json)
                cells = " ".join(
                    f"{n}:{row['known'][str(n)]['exact_match']:.2f}/{row['unknown'][str(n)]['exact_match']:.2f}"
                    for n in LENGTHS
                )
                print(
                    f"{name} seed {seed} ({row['impl']}, {row['train_seconds']}s): test "
                    f"{row['test_exact_match']:.3f}  known/unknown {cells}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
