"""engine/job_process.py: run_job in a child process, as the app trains: the same events and
the same training, a stop said across, a child that dies told as a failed run."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from engine import job_process
from engine.job import Failed, Finished, Started, TrainingEnded, run_job
from engine.job_process import run_job_in_process
from engine.runs.status import read_status
from engine.train.config import Config
from engine.train.events import PROGRESS_INTERVAL, BatchDone, EpochDone, ProgressBuffer
from tests.conftest import QUICK


@pytest.fixture(autouse=True)
def children(monkeypatch) -> list:
    """Every child a test starts, with this process's stand-ins in it (tests/lean_job_process.py)."""
    monkeypatch.setattr(job_process, "CHILD_MODULE", "tests.lean_job_process")
    started = []
    take = job_process._take_child

    def taken():
        child = take()
        started.append(child)
        return child

    monkeypatch.setattr(job_process, "_take_child", taken)
    return started


def kinds(events) -> list[str]:
    return [type(e).__name__ for e in events if not isinstance(e, BatchDone)]


def test_a_child_trains_the_run_as_run_job_does_here(tmp_path, children):
    cfg = Config(**QUICK)
    here = list(run_job(cfg, tmp_path / "here.pt", tmp_path / "here"))
    there = list(run_job_in_process(cfg, tmp_path / "there.pt", tmp_path / "there", should_stop=lambda: False))
    assert len(children) == 1 and children[0].proc.wait(timeout=60) == 0
    assert kinds(there) == kinds(here)  # started, epochs and snapshots, ended, each part evaluated, finished
    # the same seed, data and thread count: the same training, epoch by epoch
    mine = [e for e in here if isinstance(e, EpochDone)]
    theirs = [e for e in there if isinstance(e, EpochDone)]
    assert [e.train_loss for e in theirs] == pytest.approx([e.train_loss for e in mine], rel=1e-6)
    assert [e.val_loss for e in theirs] == pytest.approx([e.val_loss for e in mine], rel=1e-6)
    # every batch's loss arrives once, in order, on batches that end each epoch
    batches = [e for e in there if isinstance(e, BatchDone)]
    told = torch.cat([b.loss for b in batches]).tolist()
    assert told == pytest.approx([x for e in theirs for x in e.batch_losses])
    n = -(-QUICK["train_size"] // QUICK["batch_size"])
    assert [(b.epoch, b.batch) for b in batches if b.batch == n] == [(1, n), (2, n)]
    assert [r.output for r in there[-1].results.evaluation.results] == [
        r.output for r in here[-1].results.evaluation.results
    ]
    assert isinstance(there[0], Started) and isinstance(there[-1], Finished)
    status = read_status(tmp_path / "there")
    assert status["state"] == "finished" and status["evaluated"] is True


def test_a_stop_said_to_the_child_ends_its_training_and_closing_ends_it(tmp_path, children):
    stop = {"now": False}
    events = []
    job = run_job_in_process(
        Config(**{**QUICK, "epochs": 50}), tmp_path / "best.pt", tmp_path / "out", should_stop=lambda: stop["now"]
    )
    for ev in job:
        events.append(ev)
        if isinstance(ev, EpochDone):
            stop["now"] = True  # the stop key, after the first epoch
        if isinstance(ev, TrainingEnded):
            break
    job.close()  # what the app does when it quits: no evaluation
    assert children[0].proc.wait(timeout=60) == 0
    ended = events[-1]
    assert ended.reason == "stopped" and 1 <= ended.epochs < 50 and ended.best_epoch is not None
    status = read_status(tmp_path / "out")
    assert status["state"] == "stopped" and status["evaluated"] is False
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_child_that_dies_ends_the_run_as_failed_and_says_how(tmp_path, children):
    events = []
    job = run_job_in_process(
        Config(**{**QUICK, "epochs": 50}), tmp_path / "best.pt", tmp_path / "out", should_stop=lambda: False
    )
    for ev in job:
        events.append(ev)
        if isinstance(ev, EpochDone) and ev.epoch == 1:
            os.kill(children[0].proc.pid, signal.SIGKILL)
    ended = next(e for e in events if isinstance(e, TrainingEnded))
    assert ended.reason == "failed" and ended.best_epoch == 1
    assert "the training process ended unexpectedly (killed by signal 9)" in ended.error
    assert isinstance(events[-1], Failed) and events[-1].stage == "evaluate"
    assert events[-1].error.startswith("not evaluated: the training process ended unexpectedly")
    assert (tmp_path / "best.pt").exists()  # the epoch's model was written before it was told


def batch(epoch: int, n: int, of: int = 5) -> BatchDone:
    return BatchDone(epoch, n, of, torch.tensor(float(10 * epoch + n)))


def test_progress_tells_a_batch_a_while_and_every_loss_once():
    progress = ProgressBuffer()  # the child's, as the app's bridge has one too
    times = [0.0, 0.01, 0.02, PROGRESS_INTERVAL + 0.01, PROGRESS_INTERVAL + 0.02]
    told = [progress.batch(batch(1, n), t) for n, t in zip(range(1, 6), times)]
    # the first batch, the first after the interval, and the epoch's last: the bar ends full
    assert [t.batch if t else None for t in told] == [1, None, None, 4, 5]
    assert [t.loss.tolist() for t in told if t] == [[11.0], [12.0, 13.0, 14.0], [15.0]]


def test_a_child_started_ahead_takes_the_first_run(tmp_path, children):
    job_process.prestart()  # as the app does while it starts up
    spare = job_process._spare
    events = list(
        run_job_in_process(
            Config(**{**QUICK, "epochs": 1}), tmp_path / "best.pt", tmp_path / "out", should_stop=lambda: False
        )
    )
    assert children == [spare] and job_process._spare is None  # no second start
    assert isinstance(events[-1], Finished)


def test_a_child_that_cannot_start_ends_the_run_as_failed_in_one_line(tmp_path, monkeypatch, children):
    monkeypatch.setattr(job_process, "CHILD_MODULE", "engine.no_such_module")
    events = list(
        run_job_in_process(Config(**QUICK), tmp_path / "best.pt", tmp_path / "out", should_stop=lambda: False)
    )
    assert len(events) == 1  # no epoch, so nothing to evaluate either
    ended = events[0]
    assert isinstance(ended, TrainingEnded) and ended.reason == "failed" and ended.best_epoch is None
    assert ended.error.startswith("the training process ended unexpectedly (exit code 1)")
    assert "No module named engine.no_such_module" in ended.error  # its last line of stderr


@pytest.mark.parametrize(
    "cfg, threads, cores, child",
    [
        (Config(device="cpu"), None, 2, True),  # the defaults: one thread, a core left for the face
        (Config(device="cpu", corpus="text.txt"), None, 2, False),  # a text's run takes both cores
        (Config(device="cpu", corpus="text.txt"), 1, 2, True),  # --threads 1 leaves one
        (Config(device="cpu", corpus="text.txt"), None, 16, True),  # 8 of 16: cores left
        (Config.notebook(device="cpu"), None, 2, False),  # hidden 256: every core
        (Config(device="cpu"), 2, 2, False),  # --threads 2 on two cores
        (Config(device="cuda", corpus="text.txt"), None, 2, True),  # a GPU trains it
    ],
)
@pytest.mark.parametrize("by_load", [False, True])
def test_a_run_trains_in_a_child_unless_it_takes_every_core_of_a_cpu(cfg, threads, cores, child, by_load, monkeypatch):
    """In a child the face's thread takes a core from a run on every core (one training thread
    waits for it at each op's end), where in a thread of the face it fits into the training's
    own waits for Python's lock: such a run trains in the face's process."""
    from engine.train import threads as thread_rules

    monkeypatch.setattr(thread_rules, "usable_cores", lambda: cores)
    monkeypatch.setattr(thread_rules, "TORCH_THREADS", 8)  # what torch would take on a 16-core box
    # a run that follows the load (no --threads) is planned for every core it may take: the
    # defaults on two cores then train in the face's thread; on 16, 8 threads leave cores free
    monkeypatch.setattr(thread_rules, "cores_times", lambda cpus: (100.0, 50.0))  # readable
    if by_load and threads is None and cfg.device == "cpu":
        child = cores > 8
    assert job_process.child_pays(cfg, threads, by_load=by_load) is child


def test_where_the_load_cannot_be_read_a_run_is_planned_for_the_fixed_choice(monkeypatch):
    from engine.train import threads as thread_rules

    monkeypatch.setattr(thread_rules, "usable_cores", lambda: 2)
    monkeypatch.setattr(thread_rules, "TORCH_THREADS", 2)
    monkeypatch.setattr(thread_rules, "cores_times", lambda cpus: None)  # no /proc/stat (macOS)
    assert job_process.child_pays(Config(device="cpu"), None, by_load=True)  # one thread: a child
    monkeypatch.setattr(thread_rules, "cores_times", lambda cpus: (100.0, 50.0))
    assert not job_process.child_pays(Config(device="cpu"), None, by_load=True)
