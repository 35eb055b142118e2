"""Does a big vocabulary slow an epoch down? One epoch on a text of 5,000 distinct
words against one of 50,000, the same number of sentences of the same lengths, with the
default vocabulary cap (--max-vocab 10000) and without it (--max-vocab 0).

    python bench/vocab_scaling.py [--sentences 20000] [--json bench/results/vocab-scaling.json]

The texts are made here: words are "w<rank>" drawn from a Zipf-like distribution (p ~ 1/rank,
as in English), so that most of the vocabulary is seen at least twice (--min-freq auto = 2
keeps it) and the tail is as rare as a real text's. One thread, as the default run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.train.config import Config  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402


def make_text(path: Path, vocab_size: int, sentences: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab_size)]
    weights = [1.0 / (i + 1) ** 0.8 for i in range(vocab_size)]  # flatter than 1/rank: a large text's tail
    with open(path, "w") as f:
        for _ in range(sentences):
            f.write(" ".join(rng.choices(words, weights, k=rng.randint(3, 10))) + "\n")


def one_epoch(text: Path, sentences: int, max_vocab: int) -> dict:
    cfg = Config(
        corpus=str(text),
        train_size=sentences,
        val_size=500,
        test_size=500,
        max_len=10,
        epochs=1,
        max_vocab=max_vocab,
        device="cpu",
    )
    t = Trainer(cfg, Path("/tmp/vocab-scaling.pt"))
    t0 = time.perf_counter()
    gen = t.train_epoch(1)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        stats = stop.value
    seconds = time.perf_counter() - t0
    return {
        "vocabulary": len(t.vocab),
        "seconds": round(seconds, 2),
        "train_loss": round(stats.loss, 3),
        "sentences": len(t.splits.train),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sentences", type=int, default=20000)
    p.add_argument(
        "--json", type=Path, default=None, help="write the figures here (the table's: results/vocab-scaling.json)"
    )
    args = p.parse_args()
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    rows = {}
    for words in (5000, 50000):
        text = tmp / f"vocab-{words}.txt"
        make_text(text, words, args.sentences + 1000)
        for cap in (10000, 0):
            rows[f"{words} words, --max-vocab {cap}"] = r = one_epoch(text, args.sentences, cap)
            print(
                f"{words:>6} distinct words, --max-vocab {cap:>5}: vocabulary {r['vocabulary']:>6}, "
                f"epoch {r['seconds']:.2f}s",
                flush=True,
            )
    base = rows["5000 words, --max-vocab 10000"]["seconds"]
    ratios = {k: round(v["seconds"] / base, 2) for k, v in rows.items()}
    print("epoch time against 5,000 words (default cap):", ratios)
    if args.json:
        out = {"about": __doc__.strip().splitlines()[0], "threads": 1, "runs": rows, "ratio_to_5000_words": ratios}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        part = args.json.with_name(f".{args.json.name}.tmp")
        part.write_text(json.dumps(out, indent=1))
        part.replace(args.json)


if __name__ == "__main__":
    main()
