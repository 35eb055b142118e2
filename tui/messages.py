"""Messages the worker threads post to the app or a screen. Workers never touch widgets: they
post one of these and the app updates its state on its own thread; the screens watch that state.

Every run message carries the id of the run it belongs to, so that news from a run the
user has already replaced (a stopped thread finishing its last batch, an evaluation still
going) is recognised and dropped, by one rule: tui/bridge.py's of_the_run_on_show."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from textual.message import Message

from engine.insight.evaluate import SentenceResult
from engine.insight.report import EvalPhase, Results
from engine.insight.stepper import Stepping
from engine.job import Started, TrainingEnded
from engine.runs.follow import RunEnded, Watching
from engine.train.checkpoint import Loaded
from engine.train.events import BatchDone, EpochDone, Snapshot

from .opening import OpenedRun


@dataclass
class RunMessage(Message):
    run_id: int


@dataclass
class TrainingStarted(RunMessage):
    """The trainer is built (data, vocabulary, model) and the first batch is next."""

    started: Started


@dataclass
class BatchProgress(RunMessage):
    """Throttled (tui/bridge.py): at most one per BATCH_INTERVAL, plus the first batch of the
    run and the last of every epoch. losses: the training loss of every batch since the
    previous one."""

    event: BatchDone
    losses: list[float] = field(default_factory=list)


@dataclass
class EpochFinished(RunMessage):
    event: EpochDone


@dataclass
class SnapshotTaken(RunMessage):
    """The watch sentences decoded as the model stood after a batch of the first epoch
    (1, 2, 4, 8, ...) or after an epoch: the attention as it forms (engine/insight/watch.py)."""

    snapshot: Snapshot


@dataclass
class StatusChanged(RunMessage):
    """A line for the status bar from the worker (the no-attention control's progress)."""

    text: str


@dataclass
class TrainingDone(RunMessage):
    ended: TrainingEnded


@dataclass
class EvaluationProgress(RunMessage):
    """A part of the evaluation after training has ended."""

    phase: EvalPhase


@dataclass
class ResultsReady(RunMessage):
    results: Results


@dataclass
class ResultsFailed(RunMessage):
    error: str


@dataclass
class FollowStarted(RunMessage):
    """reverse-tui watch: the followed run's configuration is on disk (engine/runs/follow.py)."""

    watching: Watching


@dataclass
class FollowEnded(RunMessage):
    """The followed run ended, or its process is gone."""

    ended: RunEnded


@dataclass
class HeatmapSaved(Message):
    path: Path | None
    error: str | None = None


# The probe screen's answers. Each carries the number of the request it answers: a newer
# request supersedes it, and an answer that arrives after a newer one was asked for is dropped.
@dataclass
class ModelRead(Message):
    """The checkpoint to probe, read in a thread. loaded None: there is none yet; error: it
    cannot be read."""

    seq: int
    loaded: Loaded | None
    error: str | None = None


@dataclass
class Probed(Message):
    """A typed sentence decoded in a thread: its result and notes, or a line for the user.
    loaded: the model that decoded it (None when there is none, or it cannot be read)."""

    seq: int
    loaded: Loaded | None
    result: SentenceResult | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    unreadable: bool = False  # the error is the checkpoint's: the title bar says so


@dataclass
class Stepped(Message):
    """The decoding of the sentence on screen, step by step, made in a thread."""

    seq: int
    stepping: Stepping | None
    title: str = ""
    error: str | None = None


@dataclass
class Exported(Message):
    """The probe's attention matrix written (ctrl+o), or why not."""

    path: Path | None
    error: str | None = None


@dataclass
class RunOpened(Message):
    """A run picked on the runs screen, its checkpoint read in a thread: the run read, or why
    it cannot be opened."""

    seq: int
    checkpoint: Path
    out: Path
    opened: OpenedRun | None = None
    error: str | None = None
