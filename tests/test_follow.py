"""engine/runs/live.py (what a run writes as it trains) and engine/runs/follow.py (another process
reading it): a writer simulated by writing the files in the test, each poll called directly
(no waiting), then a real `--no-ui` run followed to its end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch

from engine.errors import FollowError
from engine.runs.follow import Follower, Note, Progress, RunEnded, Watching, is_running, resolve_run
from engine.runs.live import EPOCHS, PROGRESS, PROGRESS_INTERVAL, SNAPSHOTS, LiveFiles
from engine.runs.status import write_status
from engine.train.config import Config
from engine.train.events import EpochDone, Snapshot, Watched
from engine.train.machine import process_start
from tests.conftest import LEAN_TUI, QUICK_FLAGS, ROOT, TINY
from tests.fake_machine import MACHINES, as_machine


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def epoch(n: int, best: bool = True) -> EpochDone:
    return EpochDone(n, 1.0 / n, 1.5 / n, 0.1 * n, 2.0, 0.5, 0.9, 1000, best, [1.0 / n, 0.9 / n])


def snapshot(e: int, b: int) -> Snapshot:
    return Snapshot(e, b, 4, [Watched(["a", "b"], ["b", "a"], [[0.1, 0.9, 0.0], [0.9, 0.1, 0.0]], True)])


def running(folder: Path, pid: int | None = None, started: int | None = None, **extra) -> dict:
    pid = os.getpid() if pid is None else pid
    status = {
        "name": folder.name,
        "checkpoint": str(folder / "best.pt"),
        "state": "running",
        "phase": "training",
        "started": 1.0,
        "pid": pid,
        "host": socket.gethostname(),
        "process_start": process_start(pid) if started is None else started,
        "training": None,
        "epochs": None,
        "evaluated": None,
        "error": None,
        **extra,
    }
    write_status(folder, status)
    return status


def start_run(tmp_path: Path, clock: Clock | None = None) -> tuple[Path, LiveFiles]:
    """A run folder as engine/job.py leaves it once training has started."""
    folder = tmp_path / "runs" / "sim"
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(Config(**TINY).to_toml())
    live = LiveFiles(folder, "vocab 38 · 30,822 params · cpu x1", clock=clock or Clock())
    running(folder)
    return folder, live


def of(events, kind):
    return [e for e in events if isinstance(e, kind)]


# -- the writer --------------------------------------------------------------------------------
def test_progress_is_written_at_most_once_an_interval_and_at_the_epochs_end(tmp_path):
    clock = Clock()
    folder, live = start_run(tmp_path, clock)
    writes = []
    for b in range(1, 11):
        clock.now = b * PROGRESS_INTERVAL / 3  # three batches an interval
        before = (folder / PROGRESS).stat().st_mtime_ns, (folder / PROGRESS).read_text()
        live.batch(1, b, 10, torch.tensor(float(b)))
        if (folder / PROGRESS).read_text() != before[1]:
            writes.append(b)
    assert writes == [3, 6, 9, 10]  # every third batch, and the last
    p = json.loads((folder / PROGRESS).read_text())
    assert (p["epoch"], p["batch"], p["batches"]) == (1, 10, 10)
    assert p["losses"] == [float(b) for b in range(1, 11)]  # the epoch's losses so far
    clock.now += 1
    live.batch(2, 1, 10, torch.tensor(7.0))
    assert json.loads((folder / PROGRESS).read_text())["losses"] == [7.0]  # a new epoch: its own
    assert not list(folder.glob(".*tmp"))  # renamed into place, nothing left behind


def test_epochs_and_snapshots_are_appended_and_a_resumed_run_writes_them_afresh(tmp_path):
    folder, live = start_run(tmp_path)
    live.epoch(epoch(1).as_dict())
    live.snapshot(snapshot(1, 4).as_dict())
    # read while the writer still has the files open: every line flushed as it was written
    assert [EpochDone.from_dict(json.loads(x)) for x in (folder / EPOCHS).read_text().splitlines()] == [epoch(1)]
    assert Snapshot.from_dict(json.loads((folder / SNAPSHOTS).read_text())) == snapshot(1, 4)
    live.close()
    history = [epoch(1).as_dict(), epoch(2).as_dict()]
    LiveFiles(folder, "", history, [snapshot(1, 4).as_dict()]).close()
    assert [json.loads(x)["epoch"] for x in (folder / EPOCHS).read_text().splitlines()] == [1, 2]


# -- the reader --------------------------------------------------------------------------------
def test_a_half_written_line_waits_for_its_end(tmp_path):
    folder, live = start_run(tmp_path)
    follower = Follower(folder)
    first = follower.poll()
    assert isinstance(first[0], Watching) and first[0].cfg == Config(**TINY) and first[0].pid == os.getpid()
    assert first[0].facts.startswith("vocab 38")
    line = json.dumps(epoch(1).as_dict()) + "\n" + json.dumps(epoch(2).as_dict()) + "\n"
    cut = len(json.dumps(epoch(1).as_dict())) + 1 + 20
    with open(folder / EPOCHS, "a") as f:
        f.write(line[:cut])
    assert of(follower.poll(), EpochDone) == [epoch(1)]
    assert of(follower.poll(), EpochDone) == []  # still half a line
    with open(folder / EPOCHS, "a") as f:
        f.write(line[cut:])
    assert of(follower.poll(), EpochDone) == [epoch(2)]
    assert follower.poll() == []  # nothing new


def test_progress_gives_each_loss_once_even_across_missed_writes(tmp_path):
    clock = Clock()
    folder, live = start_run(tmp_path, clock)
    follower = Follower(folder)
    follower.poll()
    for b in range(1, 4):
        clock.now += PROGRESS_INTERVAL
        live.batch(1, b, 8, torch.tensor(float(b)))
    (p,) = of(follower.poll(), Progress)
    assert (p.event.epoch, p.event.batch, p.event.batches, p.losses) == (1, 3, 8, [1.0, 2.0, 3.0])
    for b in range(4, 8):  # four writes while the follower did not look
        clock.now += PROGRESS_INTERVAL
        live.batch(1, b, 8, torch.tensor(float(b)))
    (p,) = of(follower.poll(), Progress)
    assert (p.event.batch, p.losses) == (7, [4.0, 5.0, 6.0, 7.0])
    assert of(follower.poll(), Progress) == []  # the same file: nothing
    live.batch(1, 8, 8, torch.tensor(8.0))
    live.epoch(epoch(1).as_dict())
    events = follower.poll()
    assert of(events, EpochDone) == [epoch(1)]
    (p,) = of(events, Progress)  # the bar reaches the end; the epoch's own losses take over
    assert (p.event.batch, p.losses) == (8, [])


def test_snapshots_come_in_order_once(tmp_path):
    folder, live = start_run(tmp_path)
    follower = Follower(folder)
    follower.poll()
    live.snapshot(snapshot(1, 1).as_dict())
    live.snapshot(snapshot(1, 2).as_dict())
    assert of(follower.poll(), Snapshot) == [snapshot(1, 1), snapshot(1, 2)]
    live.close()
    # resumed: the files written afresh with what the run had, then the next snapshot
    live = LiveFiles(folder, "", [epoch(1).as_dict()], [snapshot(1, 1).as_dict(), snapshot(1, 2).as_dict()])
    live.snapshot(snapshot(2, 4).as_dict())
    live.epoch(epoch(2).as_dict())
    events = follower.poll()
    assert of(events, Snapshot) == [snapshot(2, 4)]
    assert [e.epoch for e in of(events, EpochDone)] == [1, 2]


def test_nothing_until_the_configuration_is_written(tmp_path):
    folder = tmp_path / "runs" / "early"
    folder.mkdir(parents=True)
    follower = Follower(folder)
    assert follower.poll() == []
    (folder / "config.toml").write_text(Config(**TINY).to_toml()[:40])  # half of it
    assert follower.poll() == []
    (folder / "config.toml").write_text(Config(**TINY).to_toml())
    assert isinstance(follower.poll()[0], Watching)


def test_the_end_comes_after_every_line_written_before_it(tmp_path):
    folder, live = start_run(tmp_path)
    follower = Follower(folder)
    follower.poll()
    live.epoch(epoch(1).as_dict())
    live.epoch(epoch(2).as_dict())
    status = running(folder, phase="evaluating", training="finished", epochs=2)
    events = follower.poll()
    assert [e.epoch for e in of(events, EpochDone)] == [1, 2]
    assert of(events, Note)[0].text == "training finished after 2 epochs; evaluating the best model"
    assert follower.ended is None
    write_status(folder, {**status, "state": "finished", "phase": "ended", "evaluated": True})
    (end,) = follower.poll()
    assert isinstance(end, RunEnded) and end.state == "finished" and end.evaluated
    assert end.line == "run finished after 2 epochs; its best model was evaluated"
    assert end.checkpoint == folder / "best.pt"
    assert follower.poll() == []  # ended: nothing more


def test_a_failed_run_says_why(tmp_path):
    folder, live = start_run(tmp_path)
    follower = Follower(folder)
    follower.poll()
    write_status(folder, {**running(folder), "state": "failed", "phase": "ended", "epochs": 0, "error": "disk full"})
    (end,) = of(follower.poll(), RunEnded)
    assert end.state == "failed" and end.line == "run failed after 0 epochs: disk full"


@pytest.mark.parametrize("kind", MACHINES)
def test_a_dead_process_is_gone(tmp_path, monkeypatch, kind):
    as_machine(monkeypatch, kind)
    folder, live = start_run(tmp_path)
    follower = Follower(folder)
    follower.poll()
    assert is_running(folder)
    # the same process id, another start time: the system gave the id to another process
    running(folder, started=(process_start(os.getpid()) or 0) + 1)
    assert not is_running(folder)
    (end,) = of(follower.poll(), RunEnded)
    assert end.state == "gone"
    assert f"the run's process (pid {os.getpid()} on {socket.gethostname()}) is gone" in end.line


def test_following_writes_nothing_into_the_run(tmp_path):
    folder, live = start_run(tmp_path)
    live.epoch(epoch(1).as_dict())
    live.snapshot(snapshot(1, 1).as_dict())
    with open(folder / EPOCHS, "a") as f:
        f.write('{"epoch": 2, "train')  # a line being written
    live.close()

    def state():
        return {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in sorted(folder.iterdir())}

    before = state()
    follower = Follower(folder)
    for _ in range(3):
        follower.poll()
    assert state() == before


def test_resolve_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, _ = start_run(tmp_path)
    assert resolve_run("sim") == Path("runs/sim")
    assert resolve_run(folder) == folder
    (tmp_path / "checkpoints" / "sim").mkdir(parents=True)
    assert resolve_run("checkpoints/sim") == Path("runs/sim")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FollowError, match="not a run folder"):
        resolve_run("empty")
    with pytest.raises(FollowError, match="no such run"):
        resolve_run("nope")
    with pytest.raises(FollowError, match="no newest run"):
        resolve_run("latest")


# -- a real run, followed from another process --------------------------------------------------
@pytest.mark.slow
def test_a_real_no_ui_run_followed_to_its_end(tmp_path):
    out = tmp_path / "runs" / "real"
    flags = [*QUICK_FLAGS, "--epochs", "3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [*LEAN_TUI, "--no-ui", *flags, "--out", str(out), "--checkpoint", str(tmp_path / "ck" / "best.pt")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    follower, events, polls_after_exit = Follower(out), [], 0
    try:
        # waiting on another process: each poll looks once, the loop ends with that process
        while follower.ended is None and polls_after_exit < 2:
            if proc.poll() is not None:
                polls_after_exit += 1
            events += follower.poll()
            time.sleep(0.1)
    finally:
        proc.wait(timeout=300)
    assert proc.returncode == 0, proc.stderr.read()
    assert follower.ended is not None and follower.ended.state == "finished"
    report = json.loads((out / "report.json").read_text())
    followed = [e.as_dict() for e in of(events, EpochDone)]
    assert [e["epoch"] for e in followed] == [1, 2, 3]
    for mine, theirs in zip(followed, report["epochs"]):
        theirs = theirs | {"val_by_length": EpochDone.from_dict(theirs).val_by_length}  # JSON's keys are str
        assert {k: mine[k] for k in theirs if k in mine} == {k: theirs[k] for k in theirs if k in mine}
    assert isinstance(events[0], Watching) and events[-1] is follower.ended
    assert of(events, Snapshot), "the snapshots as they were taken"
