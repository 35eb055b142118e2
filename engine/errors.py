"""Every exception the engine raises for the faces to say in one line, in one module: each
room raises them and the faces recognise them without importing the room that raised them
(the data-parallel layer and the training loop, for one, both raise and catch NonFiniteLoss)."""

from __future__ import annotations


class NonFiniteLoss(RuntimeError):
    def __init__(self, epoch: int, batch: int):
        super().__init__(
            f"the training loss became NaN or infinite at epoch {epoch}, batch {batch}; "
            "stopped (the best checkpoint saved before is unchanged)"
        )
        self.epoch, self.batch = epoch, batch


class PeerLost(RuntimeError):
    """A collective failed: another process of the run died, hung or left (engine/train/distributed.py)."""


class CheckpointError(Exception):
    """A checkpoint that cannot be used; the message is one line for the user."""


class RunError(Exception):
    """A run that cannot start where asked, or a model that cannot be found; one line."""


class RunIndexError(Exception):
    """The runs folder itself cannot be listed; one line."""


class FollowError(Exception):
    """RUN names no run folder; one line."""


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception in one line: its type and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}"[:limit] if lines else type(e).__name__
