"""From a run's events to the app's messages (tui/bridge.py), without a training run and
without a clock: the throttle is given the times, the events are made by hand."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from engine.insight.report import EvalPhase
from engine.job import ControlEpoch, ControlStarted, Evaluating, Failed, Finished, Started, TrainingEnded
from engine.runs.follow import Note, Progress, RunEnded, Watching
from engine.train.config import Config
from engine.train.events import BatchDone
from tests.test_follow import epoch, snapshot
from tui import bridge
from tui.bridge import BATCH_INTERVAL, TrainingNews, batch_passes, ended_by, follow_news, of_the_run_on_show
from tui.messages import (
    BatchProgress,
    EpochFinished,
    EvaluationProgress,
    FollowEnded,
    FollowStarted,
    ResultsFailed,
    ResultsReady,
    SnapshotTaken,
    StatusChanged,
    TrainingStarted,
)


def batch(b: int, batches: int = 10, epoch_: int = 1, loss: float | None = None) -> BatchDone:
    return BatchDone(epoch_, b, batches, None if loss is None else torch.tensor(loss))


# -- the throttle ------------------------------------------------------------------------------
def test_the_first_batch_passes():
    assert batch_passes(batch(1), now=0.0, last=-math.inf)
    assert batch_passes(batch(1), now=1e9, last=-math.inf)


def test_a_batch_passes_once_the_interval_has_gone_by():
    assert not batch_passes(batch(2), now=BATCH_INTERVAL / 2, last=0.0)
    assert not batch_passes(batch(2), now=5.0 + BATCH_INTERVAL * 0.99, last=5.0)
    assert batch_passes(batch(2), now=5.0 + BATCH_INTERVAL, last=5.0)
    assert batch_passes(batch(2), now=60.0, last=5.0)


def test_the_last_batch_of_an_epoch_always_passes():
    assert batch_passes(batch(10, batches=10), now=0.0, last=0.0)
    assert not batch_passes(batch(9, batches=10), now=0.0, last=0.0)


def test_the_interval_is_read_when_asked(monkeypatch):
    monkeypatch.setattr(bridge, "BATCH_INTERVAL", 1000.0)  # what a test of the app sets
    assert not batch_passes(batch(2), now=999.0, last=0.0)
    assert batch_passes(batch(2), now=1000.0, last=0.0)


def test_held_back_losses_ride_on_the_next_batch_posted():
    news = TrainingNews(run_id=7, epochs=3)
    step = BATCH_INTERVAL / 2  # two batches an interval
    posted = []
    for b in range(1, 7):
        msg = news.training(batch(b, batches=6, loss=float(b)), now=b * step)
        if msg is not None:
            posted.append(msg)
    assert all(isinstance(m, BatchProgress) and m.run_id == 7 for m in posted)
    # batch 1 (the first), 3 and 5 (an interval after the last posted), 6 (the epoch's last)
    assert [m.event.batch for m in posted] == [1, 3, 5, 6]
    assert [m.losses for m in posted] == [[1.0], [2.0, 3.0], [4.0, 5.0], [6.0]]  # none lost, none twice


def test_the_next_epoch_goes_on_from_the_last_batch_posted():
    news = TrainingNews(1, 2)
    assert news.training(batch(2, batches=2, loss=1.0), now=10.0) is not None  # epoch 1's last
    assert news.training(batch(1, batches=2, epoch_=2, loss=2.0), now=10.0 + BATCH_INTERVAL / 2) is None
    last = news.training(batch(2, batches=2, epoch_=2, loss=3.0), now=10.0 + BATCH_INTERVAL / 2)
    assert (last.event.epoch, last.event.batch, last.losses) == (2, 2, [2.0, 3.0])


def test_batches_without_a_loss_post_none():
    msg = TrainingNews(1, 2).training(batch(1), now=0.0)
    assert isinstance(msg, BatchProgress) and msg.losses == []


# -- every event of a run ------------------------------------------------------------------------
def started() -> Started:
    return Started(Config(), torch.device("cpu"), Path("ck/best.pt"), (10, 2, 2), 30, 1000, 1, "C kernels: off")


@pytest.mark.parametrize(
    "event, kind, field",
    [
        (epoch(1), EpochFinished, "event"),
        (snapshot(1, 2), SnapshotTaken, "snapshot"),
        (started(), TrainingStarted, "started"),
    ],
)
def test_the_training_events_become_their_messages(event, kind, field):
    msg = TrainingNews(4, 3).training(event, now=0.0)
    assert isinstance(msg, kind) and msg.run_id == 4 and getattr(msg, field) is event


def test_the_control_run_is_told_on_the_status_line():
    news = TrainingNews(4, epochs=3)
    msg = news.training(ControlStarted(Path("ck/best.control.pt"), 3), now=0.0)
    assert isinstance(msg, StatusChanged) and msg.text == "Training the no-attention control -> ck/best.control.pt"
    msg = news.training(ControlEpoch(epoch(2)), now=0.0)  # val exact match 0.2
    assert msg.text == "Training the no-attention control: epoch 2/3, val exact match 20.0%"


def test_the_end_of_training_is_no_message_but_ends_the_training_part():
    ended = TrainingEnded("stopped", 1, 1, [["a", "b"]], 3.0)
    assert TrainingNews(1, 2).training(ended, now=0.0) is None
    assert ended_by(ended) is ended
    error = RuntimeError("boom")
    assert ended_by(Failed("start", "bad corpus", error)) == TrainingEnded(
        "failed", 0, None, [], 0.0, "bad corpus", error
    )
    assert ended_by(epoch(1)) is None and ended_by(batch(1)) is None


def test_the_evaluation_events_become_their_messages():
    news = TrainingNews(9, 2)
    phase = EvalPhase(1, 3, "test set", 0.5)
    msg = news.evaluation(Evaluating(phase))
    assert isinstance(msg, EvaluationProgress) and (msg.run_id, msg.phase) == (9, phase)
    results = object()  # passed on as it is
    msg = news.evaluation(Finished(results))
    assert isinstance(msg, ResultsReady) and (msg.run_id, msg.results) == (9, results)
    msg = news.evaluation(Failed("evaluate", "cannot load"))
    assert isinstance(msg, ResultsFailed) and (msg.run_id, msg.error) == (9, "cannot load")
    assert news.evaluation(epoch(1)) is None


def test_a_followed_runs_events_become_the_same_messages():
    folder = Path("runs/sim")
    progress = Progress(batch(3), [0.5, 0.4])
    msg = follow_news(progress, 5, folder)
    assert isinstance(msg, BatchProgress) and (msg.run_id, msg.event, msg.losses) == (5, progress.event, [0.5, 0.4])
    e, s = epoch(1), snapshot(1, 2)
    assert isinstance(follow_news(e, 5, folder), EpochFinished) and follow_news(e, 5, folder).event is e
    assert isinstance(follow_news(s, 5, folder), SnapshotTaken) and follow_news(s, 5, folder).snapshot is s
    watching = Watching(folder, Config(), "sim")
    msg = follow_news(watching, 5, folder)
    assert isinstance(msg, FollowStarted) and msg.watching is watching
    msg = follow_news(Note("training ended; evaluating"), 5, folder)
    assert isinstance(msg, StatusChanged) and msg.text == "Watching sim: training ended; evaluating"
    ended = RunEnded("finished", "run finished after 2 epochs", None)
    msg = follow_news(ended, 5, folder)
    assert isinstance(msg, FollowEnded) and (msg.run_id, msg.ended) == (5, ended)


# -- late news ---------------------------------------------------------------------------------
class Handlers:
    """Stands in for the app: the run on show and whether any screen is left."""

    def __init__(self, run_id: int, screens: int = 1) -> None:
        self.run_id, self.screen_stack, self.seen = run_id, [object()] * screens, []

    @of_the_run_on_show
    def on_news(self, msg):
        self.seen.append(msg.run_id)
        return "handled"


def test_news_of_the_run_on_show_is_handled():
    app = Handlers(run_id=3)
    assert app.on_news(SimpleNamespace(run_id=3)) == "handled" and app.seen == [3]


def test_news_of_a_run_replaced_since_is_dropped():
    app = Handlers(run_id=3)
    app.on_news(SimpleNamespace(run_id=2))
    app.run_id = 4  # a new run put on show while a message of run 3 waited
    app.on_news(SimpleNamespace(run_id=3))
    assert app.seen == []


def test_news_reaching_an_app_without_screens_is_dropped():
    app = Handlers(run_id=3, screens=0)  # closing: its screens gone
    app.on_news(SimpleNamespace(run_id=3))
    assert app.seen == []


def test_the_handler_keeps_its_name_and_its_arguments_for_textual():
    import inspect

    assert Handlers.on_news.__name__ == "on_news"
    assert list(inspect.signature(Handlers.on_news).parameters) == ["self", "msg"]
