"""Reading a trained model for the app, plain (no Textual): the checkpoint on disk with the
key that tells whether it changed since, and, for a run opened to look at, its latest state
(every epoch it trained, its attention snapshots). Reading takes a while: the app calls
these from a thread once it runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from engine.errors import CheckpointError
from engine.insight.report import latest_state, snapshots_of
from engine.job import param_count
from engine.train.checkpoint import Loaded, load_model
from engine.train.events import EpochDone, Snapshot, epochs_from_history


def checkpoint_key(path: Path) -> tuple | None:
    """(path, mtime, size): what tells a checkpoint changed on disk; None when there is none."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)


def read_model(path: Path, device: torch.device | str) -> tuple[Loaded, tuple] | None:
    """The model in path and its key, taken before reading (a file replaced meanwhile is read
    again next time). None when there is no file; CheckpointError when it cannot be read."""
    key = checkpoint_key(path)
    if key is None:
        return None
    return load_model(path, device), key


@dataclass
class OpenedRun:
    """A run's best model and what the screens show of it."""

    checkpoint: Path
    loaded: Loaded
    key: tuple  # checkpoint_key() when it was read
    epochs: list[EpochDone]  # every epoch it trained, those after the best too
    snapshots: list[Snapshot]

    def facts(self) -> str:
        """The configuration line's facts."""
        return f"vocab {len(self.loaded.vocab)} · {param_count(self.loaded.model):,} params"

    def status(self) -> str:
        return (
            f"Opened {self.checkpoint}: {len(self.epochs)} epochs trained, best "
            f"epoch {self.loaded.payload.get('best_epoch')}. n starts a new run."
        )


def read_run(checkpoint: Path, device: torch.device | str) -> OpenedRun:
    """The run whose best model is checkpoint, read whole. CheckpointError: one line."""
    read = read_model(checkpoint, device)
    if read is None:
        raise CheckpointError(f"{checkpoint}: no such file")
    loaded, key = read
    state = latest_state(checkpoint, loaded.payload)  # its epochs after the best too
    return OpenedRun(checkpoint, loaded, key, epochs_from_history(state["history"]), snapshots_of(state))
