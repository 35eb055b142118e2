"""The files a run keeps up to date while it trains, so that another process can follow it
(`reverse-tui watch`, engine/runs/follow.py) without touching the run:

- runs/NAME/epochs.jsonl: one JSON object a line per finished epoch (EpochDone.as_dict, the
  batch losses included), appended and flushed as each epoch ends;
- runs/NAME/snapshots.jsonl: one line per attention snapshot (Snapshot.as_dict), as taken;
- runs/NAME/progress.json: where the epoch stands (epoch, batch, batches, the latest batch
  losses, the time), written to a temporary file and renamed at most once per
  PROGRESS_INTERVAL, so a reader never sees half of it.

A run starting (or resuming) writes both .jsonl files afresh, holding what it already has (a
resumed run's earlier epochs and snapshots), by a temporary file renamed over the old one; a
follower sees a new file and reads it from the start. engine/job.py writes these, rank 0
alone, for every face (the app, --no-ui, torchrun). Nothing here imports torch: the batch
losses come as the run's device tensors, and the run says how to read them back (read_losses).
"""

from __future__ import annotations

import json
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

EPOCHS = "epochs.jsonl"
SNAPSHOTS = "snapshots.jsonl"
PROGRESS = "progress.json"
PROGRESS_INTERVAL = 0.25  # seconds between progress.json writes: a follower polls about as often
RECENT_LOSSES = 512  # batch losses kept in progress.json: a follower that misses writes loses none
PROGRESS_FORMAT = "reverse-tui progress v1"


def _replace_lines(path: Path, rows: Iterable[dict]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


class LiveFiles:
    """The run's side: epochs.jsonl, snapshots.jsonl and progress.json in `out` (see the
    module's doc). A failure to write (a full disk) is never the run's end: the files then
    stop growing, and the run goes on."""

    def __init__(
        self,
        out: Path,
        facts: str,
        epochs: Iterable[dict] = (),
        snapshots: Iterable[dict] = (),
        clock: Callable[[], float] = time.monotonic,
        read_losses: Callable[[Sequence], list[float]] = lambda losses: [float(x) for x in losses],
    ):
        """read_losses: the batch losses given to batch() (0-dim tensors, on the run's device)
        as floats; the run passes one read for all of them (torch.stack(...).tolist())."""
        self.out, self.facts, self.clock, self.read_losses = Path(out), facts, clock, read_losses
        self.last_write = -float("inf")
        self.pending: list = []  # losses since the last write, on the device
        self.recent: deque[float] = deque(maxlen=RECENT_LOSSES)  # this epoch's latest losses
        self.broken = False
        self._guard(lambda: _replace_lines(self.out / EPOCHS, epochs))
        self._guard(lambda: _replace_lines(self.out / SNAPSHOTS, snapshots))
        self._epochs = self._snapshots = None
        self._guard(self._open)
        self._write_progress(0, 0, 0)

    def _open(self) -> None:
        self._epochs = open(self.out / EPOCHS, "a")
        self._snapshots = open(self.out / SNAPSHOTS, "a")

    def _guard(self, write: Callable[[], None]) -> None:
        if self.broken:
            return
        try:
            write()
        except OSError:
            self.broken = True

    def batch(self, epoch: int, batch: int, batches: int, loss=None) -> None:
        """After every batch (loss: its 0-dim loss on the run's device, or None); writes
        progress.json when PROGRESS_INTERVAL has passed since the last write, and at the
        epoch's last batch."""
        if loss is not None:
            self.pending.append(loss)
        now = self.clock()
        if batch != batches and now - self.last_write < PROGRESS_INTERVAL:
            return
        if batch - len(self.pending) <= 0:  # a new epoch: its own losses only
            self.recent.clear()
        if self.pending:  # the only read of these losses here: a few times a second
            self.recent.extend(self.read_losses(self.pending))
            self.pending = []
        self._write_progress(epoch, batch, batches)

    def _write_progress(self, epoch: int, batch: int, batches: int) -> None:
        self.last_write = self.clock()
        progress = {
            "format": PROGRESS_FORMAT,
            "epoch": epoch,
            "batch": batch,
            "batches": batches,
            "losses": list(self.recent),  # of batches batch-len+1 .. batch of this epoch
            "time": time.time(),
            "facts": self.facts,
        }

        def write() -> None:
            tmp = self.out / f".{PROGRESS}.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(progress, separators=(",", ":")))
            os.replace(tmp, self.out / PROGRESS)

        self._guard(write)

    def epoch(self, row: dict) -> None:
        self._append(self._epochs, row)

    def snapshot(self, row: dict) -> None:
        self._append(self._snapshots, row)

    def _append(self, f, row: dict) -> None:
        if f is None:
            return

        def write() -> None:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")
            f.flush()

        self._guard(write)

    def close(self) -> None:
        for f in (self._epochs, self._snapshots):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        self._epochs = self._snapshots = None
