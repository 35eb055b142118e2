"""What a run says as it goes: a BatchDone after every batch, an EpochDone after every epoch,
a Snapshot of the watch sentences' attention (engine/insight/watch.py takes them) now and then.
The trainer yields them (engine/train/trainer.py), engine/job.py passes them on to both faces,
and engine/runs/follow.py reads them back from a run's files; they live here, apart from the
trainer, so that what only reads them imports no torch and no training loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# seconds between a face's progress messages: 4 a second move its bars smoothly; each costs the
# face some work (in the app, 20 a second made epochs ~10% slower while it shared their process)
PROGRESS_INTERVAL = 0.25


def progress_due(ev: BatchDone, now: float, last: float, interval: float = PROGRESS_INTERVAL) -> bool:
    """Whether a batch's progress is told: the last batch of an epoch always (a bar ends
    full), any other once `interval` has passed since the last one told, at `last` (-inf
    before the first, which therefore always passes)."""
    return ev.batch == ev.batches or now - last >= interval


class ProgressBuffer:
    """Batches as a face tells them (`due`: progress_due's rule), each carrying the losses of
    every batch since the one told before as (n,), on the CPU: held-back losses ride on the
    next one, so a live chart misses none, and the device is read once a message, not once a
    batch. The time is an argument, so tests need no clock."""

    def __init__(self, due: Callable[[BatchDone, float, float], bool] = progress_due) -> None:
        self.due = due
        self.last = -math.inf  # when the last batch was told
        self.pending: list[torch.Tensor] = []  # the losses since, on the device

    def batch(self, ev: BatchDone, now: float) -> BatchDone | None:
        """ev with the losses since the last one told, or None: held back."""
        import torch  # here: what only reads events imports no torch

        if ev.loss is not None:
            self.pending.append(ev.loss.detach().reshape(-1))
        if not self.due(ev, now, self.last):
            return None
        self.last = now
        losses = torch.cat(self.pending).float().cpu() if self.pending else None
        self.pending = []
        return replace(ev, loss=losses)


DIGITS = 3  # a snapshot's weights are kept to 3 decimals: the grid and the GIF show two


@dataclass
class BatchDone:
    epoch: int
    batch: int  # 1-based
    batches: int
    loss: torch.Tensor | None = None  # this batch's training loss, detached, 0-dim, on the device

    @property
    def x(self) -> float:
        """Where this batch sits on a chart whose x axis is epochs: 1.37 = epoch 2, 37% through."""
        return self.epoch - 1 + self.batch / self.batches


@dataclass
class EpochDone:
    epoch: int
    train_loss: float
    val_loss: float
    val_exact_match: float
    seconds: float
    grad_norm: float  # mean pre-clipping gradient norm over the epoch's batches
    grad_norm_max: float
    tokens: int  # target tokens trained on
    best: bool  # this epoch's model was saved as the best so far
    batch_losses: list[float] = field(default_factory=list)  # the training loss of every batch
    # what the epoch cost the machine (engine/train/resources.py); None: not known (off CUDA, no NVML)
    lr: float = 0.0  # the learning rate of its last batch
    tokens_per_s: float = 0.0  # tokens trained on per second of the epoch (validation included)
    seconds_left: float = 0.0  # the mean epoch so far times the epochs still to train
    rss_mib: float | None = None  # the process's resident memory
    gpu_mib: float | None = None  # CUDA memory held by tensors at the epoch's end
    gpu_peak_mib: float | None = None  # the most CUDA memory held during the epoch
    gpu_util: float | None = None  # GPU utilisation in %, from NVML
    # validation exact match by sentence length: words -> [correct, sentences]
    val_by_length: dict[int, list[int]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, h: dict) -> EpochDone:
        """A history entry (checkpoint, report); the figures an older checkpoint lacks read as
        zero, or as their default where they have one."""
        return cls(
            **{k: h[k] if k in h else _DEFAULTS.get(k, False if k == "best" else 0) for k in EPOCH_FIELDS},
            batch_losses=list(h.get("batch_losses") or []),
            val_by_length=by_length_of(h.get("val_by_length")),
        )


# an epoch's scalar figures: the table, metrics.csv, a checkpoint's history
EPOCH_FIELDS = [f.name for f in fields(EpochDone) if f.name not in ("batch_losses", "val_by_length")]
_DEFAULTS = {f.name: f.default for f in fields(EpochDone) if f.default is not MISSING}


def by_length_of(d) -> dict[int, list[int]]:
    """Counts by length as a checkpoint keeps them (int keys) or JSON does (str keys);
    {} for an older history without them or anything that is not such a mapping."""
    try:
        return {int(n): [int(c), int(t)] for n, (c, t) in sorted(d.items(), key=lambda kv: int(kv[0]))}
    except (AttributeError, TypeError, ValueError):
        return {}


def epochs_from_history(history) -> list[EpochDone]:
    """A checkpoint's history as EpochDone rows; [] when it is not a list of dicts."""
    try:
        return [EpochDone.from_dict(h) for h in history]
    except (AttributeError, TypeError, ValueError):
        return []


@dataclass
class Watched:
    """One watch sentence at one moment of training."""

    source: list[str]
    output: list[str]  # a word per step before EOS, as SentenceResult.output
    weights: list[list[float]]  # (output steps incl. EOS, source tokens incl. EOS)
    match: bool
    copy: list[float] | None = None  # p_copy per output step (a model with the copy mechanism)

    @property
    def labels(self) -> list[str]:
        """A label per row of weights (step_labels)."""
        return step_labels(self.output, len(self.weights))


@dataclass
class Snapshot:
    epoch: int
    batch: int  # batches of this epoch trained so far
    batches: int  # in the epoch
    sentences: list[Watched]

    @property
    def x(self) -> float:
        """Where it sits on an axis of epochs: 0.25 = a quarter through the first epoch."""
        return self.epoch - 1 + self.batch / self.batches

    def as_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "batch": self.batch,
            "batches": self.batches,
            "sentences": [
                {
                    "source": s.source,
                    "output": s.output,
                    "match": s.match,
                    "weights": [[round(w, DIGITS) for w in row] for row in s.weights],
                    **({"copy": [round(p, DIGITS) for p in s.copy]} if s.copy is not None else {}),
                }
                for s in self.sentences
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Snapshot:
        return cls(
            d["epoch"],
            d["batch"],
            d["batches"],
            [
                Watched(
                    list(s["source"]),
                    list(s["output"]),
                    [list(r) for r in s["weights"]],
                    bool(s["match"]),
                    list(s["copy"]) if s.get("copy") is not None else None,
                )
                for s in d["sentences"]
            ],
        )


def step_labels(output: Sequence[str], steps: int) -> list[str]:
    """A label per decoder step, for the rows of its attention: the step's word, <eos> for
    the step that ended the decoding: exactly `steps` labels. The output holds a word per
    step before EOS (engine.insight.exact_match.output_words); an older snapshot's may hold fewer (it
    left out the <pad> and <sos> an untrained model emits): its last rows stay unlabelled."""
    labels = (list(output) + ["<eos>"])[:steps]
    return labels + [""] * (steps - len(labels))
