"""From a run's events (engine/job.py's, or engine/runs/follow.py's for a run trained elsewhere) to
the messages the app takes (tui/messages.py), and back on the app's side the one rule for
news that comes late: a message of a run no longer on show is dropped.

The translation is plain code the worker threads call; the throttle on batch progress takes
the time as an argument, so tests give it times instead of reading a clock."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from engine.job import ControlEpoch, ControlStarted, Evaluating, Failed, Finished, Started, TrainingEnded
from engine.runs.follow import Note, Progress, RunEnded, Watching
from engine.train.events import PROGRESS_INTERVAL, BatchDone, EpochDone, ProgressBuffer, Snapshot, progress_due

from .messages import (
    BatchProgress,
    EpochFinished,
    EvaluationProgress,
    FollowEnded,
    FollowStarted,
    ResultsFailed,
    ResultsReady,
    RunMessage,
    SnapshotTaken,
    StatusChanged,
    TrainingStarted,
)

# Seconds between the app's progress messages (tests set it): twice a second, half the
# headless run's rate. Each message makes the app's thread handle it and paint a frame, and a
# run trained in the app's process waits for that thread: at four a second the progress frames
# were a third of the app thread's work while training (bench/README.md, "The app against a
# headless run").
BATCH_INTERVAL = 2 * PROGRESS_INTERVAL


def batch_passes(ev: BatchDone, now: float, last: float) -> bool:
    """Whether a batch's progress is posted (engine/train/events.py's progress_due)."""
    return progress_due(ev, now, last, BATCH_INTERVAL)


def ended_by(ev) -> TrainingEnded | None:
    """How training ended, when ev says it did: TrainingEnded, or Failed before it began."""
    if isinstance(ev, TrainingEnded):
        return ev
    if isinstance(ev, Failed):  # could not start: nothing trained, nothing to evaluate
        return TrainingEnded("failed", 0, None, [], 0.0, ev.error, ev.exception)
    return None


class TrainingNews:
    """One run's events as its messages. Batches are throttled (batch_passes); the losses of
    the batches held back ride on the next one posted, so the live chart misses none."""

    def __init__(self, run_id: int, epochs: int) -> None:
        self.run_id = run_id
        self.epochs = epochs  # the no-attention control's epochs, for its status line
        # a batch's loss (0-d), or from a child process those since its last told (n,)
        self.progress = ProgressBuffer(batch_passes)

    def training(self, ev, now: float) -> RunMessage | None:
        """The message for an event of the training part (None: held back, or no message)."""
        run_id = self.run_id
        if isinstance(ev, BatchDone):
            told = self.progress.batch(ev, now)
            if told is None:
                return None
            return BatchProgress(run_id, told, told.loss.tolist() if told.loss is not None else [])
        if isinstance(ev, EpochDone):
            return EpochFinished(run_id, ev)
        if isinstance(ev, Snapshot):
            return SnapshotTaken(run_id, ev)
        if isinstance(ev, Started):
            return TrainingStarted(run_id, ev)
        if isinstance(ev, ControlStarted):
            return StatusChanged(run_id, f"Training the no-attention control -> {ev.checkpoint}")
        if isinstance(ev, ControlEpoch):
            return StatusChanged(
                run_id,
                f"Training the no-attention control: epoch {ev.event.epoch}/{self.epochs}, "
                f"val exact match {100 * ev.event.val_exact_match:.1f}%",
            )
        return None

    def evaluation(self, ev) -> RunMessage | None:
        """The message for an event of the evaluation after training."""
        if isinstance(ev, Evaluating):
            return EvaluationProgress(self.run_id, ev.phase)
        if isinstance(ev, Finished):
            return ResultsReady(self.run_id, ev.results)
        if isinstance(ev, Failed):
            return ResultsFailed(self.run_id, ev.error)
        return None


def follow_news(ev, run_id: int, folder: Path) -> RunMessage | None:
    """A followed run's event as the message a run trained here posts (its progress comes
    throttled by the files it is read from)."""
    if isinstance(ev, Progress):
        return BatchProgress(run_id, ev.event, ev.losses)
    if isinstance(ev, EpochDone):
        return EpochFinished(run_id, ev)
    if isinstance(ev, Snapshot):
        return SnapshotTaken(run_id, ev)
    if isinstance(ev, Watching):
        return FollowStarted(run_id, ev)
    if isinstance(ev, Note):
        return StatusChanged(run_id, f"Watching {folder.name}: {ev.text}")
    if isinstance(ev, RunEnded):
        return FollowEnded(run_id, ev)
    return None


def of_the_run_on_show(handler: Callable) -> Callable:
    """For the app's handlers of run messages: a message of a run replaced since it was posted
    (a stopped thread's last batch, an evaluation still going), or one that reaches an app
    already closing (its screens gone: a worker's last words after a quit), is dropped.
    Checked when the message is handled, on the app's thread: the run on show can change
    between the post and then."""

    @functools.wraps(handler)
    def handle(app, msg: RunMessage):
        if msg.run_id != app.run_id or not app.screen_stack:
            return None
        return handler(app, msg)

    return handle
