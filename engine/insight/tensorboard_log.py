"""--tensorboard: every epoch's figures as TensorBoard scalars, and the first watch
sentence's attention as an image, in OUT/tensorboard/ (`tensorboard --logdir runs/`).

The tensorboard package is an optional extra (`pip install 'reverse-tui[tensorboard]'`):
`missing()` says in one line when it is absent, so that the command line refuses the flag
before anything is trained. The values logged are those report.json keeps per epoch.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..train.events import EpochDone, Snapshot

FOLDER = "tensorboard"  # in the run's folder
CONTROL_FOLDER = "no-attention"  # in FOLDER: the control run, a run of its own to TensorBoard
CELL = 16  # pixels per attention weight: a map of a few words is still a visible image

# tag -> the EpochDone field it plots; the memory figures only where they are known
SCALARS = {
    "loss/train": "train_loss",
    "loss/val": "val_loss",
    "exact_match/val": "val_exact_match",
    "learning_rate": "lr",
    "grad_norm/mean": "grad_norm",
    "grad_norm/max": "grad_norm_max",
    "throughput/tokens_per_s": "tokens_per_s",
    "time/seconds_per_epoch": "seconds",
    "memory/rss_mib": "rss_mib",
    "memory/gpu_mib": "gpu_mib",
    "memory/gpu_peak_mib": "gpu_peak_mib",
    "gpu/utilisation_percent": "gpu_util",
}
INSTALL = "--tensorboard needs the tensorboard package: pip install 'reverse-tui[tensorboard]'"


def missing() -> str | None:
    """None when torch.utils.tensorboard can be imported, else the line that says what to install."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return INSTALL
    return None


def attention_image(weights: list[list[float]]) -> torch.Tensor:
    """The weights (output steps, source tokens) as a grey uint8 image, CELL pixels a
    weight: white is all of a step's attention on one token."""
    w = torch.tensor(weights, dtype=torch.float32).clamp(0, 1)  # (T, S)
    img = (w * 255).round().to(torch.uint8)
    return img.repeat_interleave(CELL, 0).repeat_interleave(CELL, 1)  # (T*CELL, S*CELL)


class TensorBoardLog:
    """One run's event file; add_epoch after every epoch, add_snapshot for the epoch's
    snapshot of the watch sentences."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(folder)
        self.writer = SummaryWriter(log_dir=str(self.folder))

    def add_epoch(self, ev: EpochDone) -> None:
        for tag, name in SCALARS.items():
            value = getattr(ev, name)
            if value is not None:
                self.writer.add_scalar(tag, float(value), ev.epoch)
        self.writer.flush()  # a run followed live, or killed, shows every epoch it finished

    def add_snapshot(self, snap: Snapshot) -> None:
        """The epoch's own snapshot (taken after its last batch) of the first sentence."""
        if snap.batch != snap.batches or not snap.sentences or not snap.sentences[0].weights:
            return
        self.writer.add_image(
            "attention/watch", attention_image(snap.sentences[0].weights), snap.epoch, dataformats="HW"
        )
        self.writer.add_text("attention/watch_output", " ".join(snap.sentences[0].output) or "(nothing)", snap.epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
