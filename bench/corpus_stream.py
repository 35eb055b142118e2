"""How fast and in how much memory `--corpus` reads a big file.

    python bench/corpus_stream.py                       # 1,000,000 lines, results JSON
    python bench/corpus_stream.py --lines 200000 --json -

Writes a seeded synthetic corpus (English-like: a Zipf-distributed vocabulary of 50,000
made-up words, 1-40 words a line, punctuation, capitals, some accented words, a few empty
lines), then, each in a fresh process so that one's memory is not another's:

  read       engine.train.data.read_corpus: the file to tokenised sentences (every line)
  pipeline   engine.train.data.splits_for + Vocab.build + PairDataset of the training split +
             one epoch of length-grouped, shuffled batches: what a run does before training

and reports lines/s and peak memory (the process's maximum resident set, minus what Python
and torch take before reading: the baseline is measured in the same process).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_corpus(path: Path, lines: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(50_000)]
    vocab[:20] = [
        "the",
        "of",
        "and",
        "to",
        "a",
        "in",
        "is",
        "it",
        "that",
        "was",
        "for",
        "on",
        "are",
        "with",
        "as",
        "café",
        "naïve",
        "don't",
        "rôle",
        "über",
    ]
    weights = [1 / (i + 1) for i in range(len(vocab))]  # Zipf
    cum, total = [], 0.0
    for w in weights:
        total += w
        cum.append(total)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            if i % 200 == 0:
                f.write("\n")
                continue
            n = rng.randint(1, 40)
            words = rng.choices(vocab, cum_weights=cum, k=n)
            if rng.random() < 0.3:
                words[0] = words[0].capitalize()
            text = " ".join(words)
            f.write(text + rng.choice([".", ".", "!", "?", ",", ""]) + "\n")


def worker(stage: str, path: str, min_len: int, max_len: int, train_size: int) -> dict:
    import torch

    from engine.train.config import Config
    from engine.train.data import PairDataset, Vocab, read_corpus, splits_for
    from engine.train.machine import peak_rss_mib, rss_mib

    torch.set_num_threads(1)
    base = rss_mib()
    t0 = time.perf_counter()
    out: dict = {"stage": stage}
    if stage == "read":
        sentences, stats = read_corpus(path, min_len, max_len)
        out.update(lines=stats.lines, kept=stats.kept)
    else:
        cfg = Config(
            corpus=path,
            min_len=min_len,
            max_len=max_len,
            train_size=train_size,
            val_size=1000,
            test_size=1000,
            device="cpu",
        )
        splits, stats = splits_for(cfg)
        t_read = time.perf_counter() - t0
        vocab = Vocab.build(splits.train, 1)
        train = PairDataset(splits.train, vocab)
        t_dataset = time.perf_counter() - t0 - t_read
        t1 = time.perf_counter()
        batches = sum(1 for _ in train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0)))
        out.update(
            lines=stats.lines,
            kept=stats.kept,
            train=len(train),
            vocab=len(vocab),
            read_split_seconds=t_read,
            vocab_and_dataset_seconds=t_dataset,
            epoch_of_batches_seconds=time.perf_counter() - t1,
            batches=batches,
        )
    seconds = time.perf_counter() - t0
    out.update(
        seconds=seconds,
        lines_per_second=out["lines"] / seconds,
        baseline_rss_mib=base,
        peak_rss_mib=peak_rss_mib(),
        peak_above_baseline_mib=peak_rss_mib() - base,
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lines", type=int, default=1_000_000)
    p.add_argument("--min-len", type=int, default=3)
    p.add_argument("--max-len", type=int, default=30)
    p.add_argument("--train-size", type=int, default=1_000_000, help="training split (all of it by default)")
    p.add_argument("--corpus", type=Path, default=None, help="an existing file instead of the synthetic one")
    p.add_argument(
        "--json",
        default=str(ROOT / "bench" / "results" / "corpus-stream-1m.json"),
        help="where the results go (- prints them)",
    )
    p.add_argument("--worker", nargs=2, metavar=("STAGE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        stage, path = args.worker
        print(json.dumps(worker(stage, path, args.min_len, args.max_len, args.train_size)))
        return
    path = args.corpus
    if path is None:
        path = Path("/tmp") / f"reverse-tui-corpus-{args.lines}.txt"
        if not path.exists():
            t0 = time.perf_counter()
            make_corpus(path, args.lines)
            print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s")
    results = {
        "file": str(path),
        "file_mib": path.stat().st_size / 2**20,
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "stages": [],
    }
    for stage in ("read", "pipeline"):
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            stage,
            str(path),
            "--min-len",
            str(args.min_len),
            "--max-len",
            str(args.max_len),
            "--train-size",
            str(args.train_size),
        ]
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        results["stages"].append(r)
        print(
            f"{stage:9s} {r['lines']:,} lines in {r['seconds']:.1f} s = {r['lines_per_second']:,.0f} lines/s; "
            f"peak memory {r['peak_rss_mib']:.0f} MiB ({r['peak_above_baseline_mib']:.0f} above the "
            f"{r['baseline_rss_mib']:.0f} MiB of Python and torch)"
            + (
                f"; read+split {r['read_split_seconds']:.1f} s, vocabulary+tensors of {r['train']:,} "
                f"sentences {r['vocab_and_dataset_seconds']:.1f} s, an epoch of {r['batches']:,} batches "
                f"{r['epoch_of_batches_seconds']:.2f} s"
                if stage == "pipeline"
                else ""
            )
        )
    if args.json == "-":
        print(json.dumps(results, indent=2))
    else:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
