"""A canned run for the app's tests: the events engine.job.run_job yields, with fixed values,
from a stand-in for run_job that the app's training worker calls as it calls the real one.
A test of a screen, a key or a message then needs no training, and knows every figure the
app is given.

The model the canned run saves is a real one (conftest's trained_checkpoint, trained once a
session), copied where the run's best model goes at the end of each epoch, so the probe
screen can read it; its results are that model's, evaluated once a session
(conftest's trained_results). A few tests still train in the app for real (tests/test_app.py,
the end-to-end runs); the job itself is tested in tests/test_job.py."""

from __future__ import annotations

import inspect
import shutil
import threading
import time
from pathlib import Path

import torch

import tui.app
from engine.insight.report import EvalPhase, Results
from engine.insight.watch import first_epoch_batches
from engine.job import ControlEpoch, ControlStarted, Evaluating, Finished, Started, TrainingEnded, control_path, run_job
from engine.train.events import BatchDone, EpochDone, Snapshot, Watched
from engine.train.trainer import resumed_config

JOB = inspect.signature(run_job)  # the real job's arguments, which a canned run takes too
BATCHES = 6  # a canned epoch's batches: snapshots after 1, 2 and 4, then the epoch's own
WATCH = ["the", "cat", "sat"]


def batch_loss(epoch: int, batch: int) -> float:
    """A training loss that falls batch by batch, the same every time."""
    return round(3.0 / (epoch + batch / 10), 4)


def epoch_done(epoch: int, batches: int = BATCHES) -> EpochDone:
    """Epoch `epoch` of a canned run: every epoch better than the one before (and so saved)."""
    losses = [batch_loss(epoch, b) for b in range(1, batches + 1)]
    em = min(1.0, 0.3 * epoch)
    return EpochDone(
        epoch,
        sum(losses) / len(losses),
        round(2.0 / (epoch + 1), 4),
        em,
        1.5,
        0.5,
        1.0,
        1000 * batches,
        True,
        losses,
        lr=0.003,
        tokens_per_s=4000.0,
        seconds_left=1.5,
        rss_mib=300.0,
        val_by_length={3: [round(50 * em), 50], 4: [round(50 * em), 50]},
    )


def snapshot(epoch: int, batch: int, batches: int = BATCHES) -> Snapshot:
    """The watch sentence at that moment: the mirror sharpening as the run goes on."""
    sharp = min(0.9, 0.2 + 0.1 * (epoch - 1 + batch / batches) * 3)
    n = len(WATCH)
    weights = [
        [sharp if j == (n - 1 - t if t < n else n) else (1 - sharp) / n for j in range(n + 1)] for t in range(n + 1)
    ]
    right = epoch > 1
    output = WATCH[::-1] if right else [WATCH[-1]] * n
    return Snapshot(
        epoch, batch, batches, [Watched(list(WATCH), output, [[round(w, 3) for w in r] for r in weights], right)]
    )


class CannedRun:
    """Installs itself as the app's run_job. Each call is recorded in `calls` (its
    arguments) and replays a run in the real job's order: Started; for every epoch its
    batches (first-epoch snapshots after batches 1, 2, 4, ...), the epoch (the model copied
    into place first) and its snapshot; the control's epochs when asked for; TrainingEnded,
    two evaluation parts and Finished with `results`. As the real job does, it asks
    should_stop() after every batch and epoch, and a stop ends training and still evaluates.

    hold: (epoch, batch) after which the run waits until should_stop() says stop (bounded
    by a safety net of 30 s): the key under test is then in whatever the machine's speed.
    A resumed run (resume= a payload) goes on from the payload's history."""

    def __init__(self, monkeypatch, checkpoint: Path, results: Results, batches: int = BATCHES) -> None:
        self.source, self.results, self.batches = Path(checkpoint), results, batches
        self.hold: tuple[int, int] | None = None
        self.held = threading.Event()  # the run waits at `hold`
        self.saw_stop = False  # the stop came while it was held
        self.calls: list[dict] = []
        self.trained: list[tuple[int, int]] = []  # (epoch, batch) of every batch replayed
        self.evaluated = False  # the run went on to its evaluation
        monkeypatch.setattr(tui.app, "run_job", self)  # the name the app's training worker calls

    def __call__(self, *args, **kwargs):
        given = JOB.bind(*args, **kwargs).arguments  # a call the real job would refuse fails here too
        self.calls.append(given)
        return self.events(
            given["cfg"],
            Path(given["checkpoint"]),
            given.get("should_stop", lambda: False),
            given.get("resume"),
            given.get("epochs"),
            given.get("compare_no_attention", False),
        )

    def events(self, cfg, checkpoint: Path, should_stop, resume, epochs, compare_no_attention):
        history = [EpochDone.from_dict(h) for h in resume["history"]] if resume is not None else []
        if resume is not None:
            cfg = resumed_config(resume, epochs, cfg.device)
        sizes = (cfg.train_size, cfg.val_size, cfg.test_size)
        yield Started(
            cfg,
            torch.device("cpu"),
            checkpoint,
            sizes,
            38,
            30822,
            1,
            "C kernels: on",
            resumed_after=len(history) if resume is not None else None,
            history=history,
            watch=[list(WATCH)],
        )
        done, reason = list(history), "finished"
        for e in range(len(history) + 1, cfg.epochs + 1):
            marks = first_epoch_batches(self.batches) if e == 1 else set()
            for b in range(1, self.batches + 1):
                self.trained.append((e, b))
                yield BatchDone(e, b, self.batches, torch.tensor(batch_loss(e, b)))
                if (e, b) == self.hold:
                    self.wait_for_stop(should_stop)
                if should_stop():
                    reason = "stopped"
                    break
                if b in marks:
                    yield snapshot(e, b, self.batches)
            if reason == "stopped":
                break
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(self.source, checkpoint)  # the best model so far, as the trainer saves it
            done.append(epoch_done(e, self.batches))
            yield done[-1]
            if should_stop():
                reason = "stopped"
                break
            yield snapshot(e, self.batches, self.batches)
        if reason == "finished" and compare_no_attention:
            yield ControlStarted(control_path(checkpoint), cfg.epochs)
            for e in range(1, cfg.epochs + 1):
                yield ControlEpoch(epoch_done(e, self.batches))
        best = done[-1].epoch if done else None
        test = [list(r.source) for r in self.results.evaluation.results]
        yield TrainingEnded(reason, len(done), best, test, 1.0)
        if best is None:
            return
        self.evaluated = True
        yield Evaluating(EvalPhase(1, 2, "the test set", 0.1))
        yield Evaluating(EvalPhase(2, 2, "figures and files", 0.1))
        yield Finished(self.results)

    def wait_for_stop(self, should_stop) -> None:
        self.held.set()
        deadline = time.monotonic() + 30  # a safety net: the test presses the key at once
        while not should_stop():
            if time.monotonic() > deadline:  # the signal never came: the run goes on
                return
            time.sleep(0.005)
        self.saw_stop = True
