"""Sentences made only of unknown words, at every length: where a model first fails them, and why.

    python3 bench/unknown_runs.py CHECKPOINT [CHECKPOINT ...] [--longest 120] [--at 20,31,32,34,40,60]

Such a sentence of n words reaches the model as n <unk> and EOS, the same input whatever the
words, so one greedy decoding per length measures it. For each checkpoint: the first length of
3..--longest whose sentence is not reversed exactly (stopped early, ran on or a wrong word),
and at each length of --at, where the attention is: the lowest weight it puts on the word to
copy over the n word steps (and the step), and at step n, where the answer should end, the
weight on the source's EOS and p(EOS); or the step it stopped at, when it stopped early.
Reads checkpoints only: a few seconds each on one thread.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engine.errors import CheckpointError  # noqa: E402
from engine.insight.evaluate import decode  # noqa: E402
from engine.insight.lengths import failure_kind, made_up_words  # noqa: E402
from engine.insight.stepper import step_through  # noqa: E402
from engine.train.checkpoint import load_model  # noqa: E402

CPU = torch.device("cpu")


def first_failure(loaded, words: list[str], longest: int) -> str:
    """The first length of 3..longest not reversed exactly, with why; or that none failed."""
    sentences = [words[:n] for n in range(3, longest + 1)]
    for s, r in zip(sentences, decode(loaded.model, loaded.vocab, sentences, CPU)):
        if not r.match:
            return f"{len(s)} ({failure_kind(r).replace('_', ' ')})"
    return f"none to {longest}"


def where_it_looks(loaded, words: list[str], n: int) -> str:
    """At n words: the lowest weight on the word to copy over the word steps, and at step n
    the source EOS's weight and p(EOS), or where the decoding stopped."""
    st = step_through(loaded.model, loaded.vocab, " ".join(words[:n]), CPU)
    rows = st.attention  # (steps, n + 1)
    word_steps = min(n, len(st.steps))
    on_word = [float(rows[t, n - 1 - t]) for t in range(word_steps)]
    low = min(on_word)
    text = f"{n}: copy >= {low:.2f} (step {on_word.index(low)})"
    if len(st.steps) <= n:  # it emitted EOS within the word steps
        stop = next(t for t, s in enumerate(st.steps) if s.chosen == "<eos>")
        return text + f", stopped at step {stop}"
    last = st.steps[n]
    p_eos = dict(last.top).get("<eos>", 0.0)
    return text + f", EOS weight {float(rows[n, n]):.2f}, p(EOS) {p_eos:.2f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", nargs="+", type=Path)
    p.add_argument("--longest", type=int, default=120, help="the longest sentence decoded (default 120)")
    p.add_argument("--at", default="20,31,32,34,40,60", help="lengths whose attention is described")
    args = p.parse_args()
    try:
        at = [int(x) for x in args.at.split(",") if x]
    except ValueError:
        sys.exit(f"--at must be lengths separated by commas, got {args.at!r}")
    if args.longest < 3 or any(n < 3 or n > args.longest for n in at):
        sys.exit(f"--longest must be at least 3 and every --at length within 3..{args.longest}")
    torch.set_num_threads(1)
    for path in args.checkpoints:
        try:
            loaded = load_model(path)
        except CheckpointError as e:
            sys.exit(f"unknown_runs: {e}")
        words = random.Random(0).choices(made_up_words(loaded.vocab, random.Random(0)), k=args.longest)
        print(f"{path}: first failure {first_failure(loaded, words, args.longest)}")
        for n in at:
            print(f"  {where_it_looks(loaded, words, n)}")


if __name__ == "__main__":
    main()
