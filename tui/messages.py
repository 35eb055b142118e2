"""Messages the worker threads post to the app. Workers never touch widgets: they post one
of these and the app updates its screens on its own thread.

Every message carries the run id it belongs to, so that news from a run the user has
already replaced (a stopped thread finishing its last batch, an evaluation still going)
is recognised and dropped."""
from __future__ import annotations

from pathlib import Path

from textual.message import Message

from engine.report import Results
from engine.train import BatchDone, EpochDone


class TrainingStarted(Message):
    """The trainer is built (data, vocabulary, model) and the first batch is next."""

    def __init__(self, run_id: int, facts: str) -> None:
        super().__init__()
        self.run_id, self.facts = run_id, facts  # vocabulary, parameters, device


class BatchProgress(Message):
    """Throttled: at most one per BATCH_INTERVAL, plus the last batch of every epoch."""

    def __init__(self, run_id: int, event: BatchDone) -> None:
        super().__init__()
        self.run_id, self.event = run_id, event


class EpochFinished(Message):
    def __init__(self, run_id: int, event: EpochDone) -> None:
        super().__init__()
        self.run_id, self.event = run_id, event


class TrainingEnded(Message):
    """reason: "finished" (all epochs, or early stopping), "stopped" (the user), "failed"."""

    def __init__(self, run_id: int, reason: str, best_epoch: int | None,
                 test_sentences: list[list[str]] | None, error: str | None = None,
                 extra: dict | None = None) -> None:
        super().__init__()
        self.run_id, self.reason, self.best_epoch = run_id, reason, best_epoch
        self.test_sentences, self.error, self.extra = test_sentences, error, extra or {}


class ResultsReady(Message):
    def __init__(self, run_id: int, results: Results) -> None:
        super().__init__()
        self.run_id, self.results = run_id, results


class ResultsFailed(Message):
    def __init__(self, run_id: int, error: str) -> None:
        super().__init__()
        self.run_id, self.error = run_id, error


class HeatmapSaved(Message):
    def __init__(self, path: Path | None, error: str | None = None) -> None:
        super().__init__()
        self.path, self.error = path, error
