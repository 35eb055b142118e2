"""Attention over training: a few watch sentences decoded while the model learns, so that
the alignment can be seen forming (it does, mostly, in the first epoch).

A snapshot is taken after the batches of the first epoch at 1, 2, 4, 8, ... (a log scale:
the weights change fastest at the start) and after every epoch's validation. Each holds,
per watch sentence, the greedy output and the attention weights that produced it. Decoding
a sentence or three costs about a millisecond, against tens per batch; it draws no random
numbers, so a run's losses are the same with and without it (tests/test_watch.py).

The snapshots travel as events (engine/train/trainer.py yields them, the faces draw them), are kept
in the checkpoint (a resumed run goes on with them) and written at the end as
runs/NAME/attention_timeline.json, summarised in report.json, and drawn as
attention_timeline.gif.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path

import torch

from ..train.data import tokenize
from ..train.events import DIGITS, Snapshot, Watched

MAX_WATCH = 3


def first_epoch_batches(n: int) -> set[int]:
    """The batches of the first epoch after which a snapshot is taken: 1, 2, 4, 8, ... below
    n (its last batch is followed by the epoch's own snapshot)."""
    marks, b = set(), 1
    while b < n:
        marks.add(b)
        b *= 2
    return marks


def default_watch(test_sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """A test sentence of typical length: the first one of the median length."""
    if not test_sentences:
        return []
    median = int(statistics.median_low(len(s) for s in test_sentences))
    return [list(next(s for s in test_sentences if len(s) == median))]


def watch_sentences(texts: Sequence[str] | None, test_sentences: Sequence[Sequence[str]]) -> list[list[str]]:
    """--watch's sentences as words (ValueError, one line, for one without words or more
    than MAX_WATCH), else the default."""
    if not texts:
        return default_watch(test_sentences)
    if len(texts) > MAX_WATCH:
        raise ValueError(f"--watch takes at most {MAX_WATCH} sentences, got {len(texts)}")
    words = [tokenize(t) for t in texts]
    for text, w in zip(texts, words):
        if not w:
            raise ValueError(f"--watch {text!r}: no words in it")
    return words


def take(
    model: torch.nn.Module,
    vocab,
    sentences: list[list[str]],
    device: torch.device,
    epoch: int,
    batch: int,
    batches: int,
) -> Snapshot:
    """Decode the watch sentences greedily as the model stands (eval mode, no gradients, no
    random numbers drawn); the caller puts the model back in training mode."""
    from .evaluate import decode

    results = decode(model, vocab, sentences, device)
    return Snapshot(
        epoch,
        batch,
        batches,  # rounded as kept: what is shown is what is saved
        [
            Watched(
                list(r.source),
                list(r.output),
                [[round(float(x), DIGITS) for x in row] for row in r.attention],
                bool(r.match),
                [round(float(p), DIGITS) for p in r.copy] if r.copy is not None else None,
            )
            for r in results
        ],
    )


def write_timeline(snapshots: Sequence[Snapshot], path: Path) -> Path:
    """Every snapshot, weights included, as JSON (written to a temporary file and renamed)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps([s.as_dict() for s in snapshots], separators=(",", ":")))
    tmp.replace(path)
    return path


def summary(snapshots: Sequence[Snapshot]) -> list[dict]:
    """What report.json keeps of each snapshot: when, the outputs and whether they match, and
    how often a step's strongest weight sits on the mirrored word (the reversal's alignment)."""
    rows = []
    for s in snapshots:
        rows.append(
            {
                "epoch": s.epoch,
                "batch": s.batch,
                "batches": s.batches,
                "outputs": [" ".join(w.output) for w in s.sentences],
                "match": [w.match for w in s.sentences],
                "mirror_peak_rate": [mirror_peak_rate(w) for w in s.sentences],
            }
        )
    return rows


def mirror_peak_rate(w: Watched) -> float:
    """Share of the reference's steps whose strongest weight is on the mirrored input word
    (step t of n words on word n-1-t; the EOS step on the EOS token)."""
    n = len(w.source)
    steps = min(len(w.weights), n + 1)
    if steps == 0:
        return 0.0
    hits = 0
    for t in range(steps):
        row = w.weights[t]
        target = n - 1 - t if t < n else n
        hits += max(range(len(row)), key=row.__getitem__) == target
    return hits / (n + 1)
