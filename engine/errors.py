"""Errors the engine raises for the faces to say in one line; in a module of their own so
that the training loop and the data-parallel layer (engine/distributed.py) both raise and
recognise them without importing each other."""

from __future__ import annotations


class NonFiniteLoss(RuntimeError):
    def __init__(self, epoch: int, batch: int):
        super().__init__(
            f"the training loss became NaN or infinite at epoch {epoch}, batch {batch}; "
            "stopped (the best checkpoint saved before is unchanged)"
        )
        self.epoch, self.batch = epoch, batch


def one_line(e: BaseException, limit: int = 300) -> str:
    """An exception in one line: its type and the first line of its message."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}"[:limit] if lines else type(e).__name__
