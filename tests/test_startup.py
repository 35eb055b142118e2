"""Which screen the app opens on (tui/startup.py), for every way of starting, without Textual:
the decision is read from the command line and the files on disk, and nothing is shown."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.runs.folders import CHECKPOINTS, RUNS
from engine.train.config import Config
from engine.train.machine import process_start
from engine.train.trainer import Trainer
from tests.conftest import TINY
from tests.test_follow import running, start_run
from tui.common import RunOptions
from tui.startup import CannotStart, FollowRun, NewRun, OpenModel, ResumeRun, decide_start

CFG = Config(**TINY)


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    """Runs go under the current folder's checkpoints/ and runs/: a fresh one per test."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def saved_payload(tmp_path_factory) -> bytes:
    """An untrained model of the tiny configuration as a run saves it (read, never trained)."""
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    Trainer(CFG, path).save(path)
    return path.read_bytes()


def model_in(folder: Path, payload: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "best.pt").write_bytes(payload)
    return folder / "best.pt"


def test_watch_follows_the_run_whatever_else_is_given(here):
    folder = here / "runs" / "other"
    opts = RunOptions(checkpoint=here / "ck" / "best.pt", resume="nope")
    assert decide_start(CFG, opts, follow=folder) == FollowRun(folder)


def test_a_checkpoint_of_a_run_going_on_is_followed(here):
    folder, _ = start_run(here)  # runs/sim, its status running in this very process
    assert decide_start(CFG, RunOptions(checkpoint=Path("sim"))) == FollowRun(Path("runs/sim"))
    assert decide_start(CFG, RunOptions(checkpoint=folder)) == FollowRun(folder)


def test_a_checkpoint_of_a_run_whose_process_is_gone_opens_its_model(here, saved_payload):
    folder, _ = start_run(here)
    running(folder, started=(process_start(os.getpid()) or 0) + 1)  # another process had this pid
    best = model_in(folder, saved_payload)
    assert decide_start(CFG, RunOptions(checkpoint=folder)) == OpenModel(best, None)


def test_a_model_that_exists_opens_on_the_probe_screen(here, saved_payload):
    best = model_in(CHECKPOINTS / "done", saved_payload)
    assert decide_start(CFG, RunOptions(checkpoint=Path("done"))) == OpenModel(best, None)
    assert decide_start(CFG, RunOptions(checkpoint=best, out="elsewhere")) == OpenModel(best, Path("elsewhere"))
    assert not (RUNS / "done").exists()  # nothing made for it: reading it is the app's


def test_any_file_opens_and_the_app_says_when_it_is_no_model(here):
    junk = here / "junk.pt"
    junk.write_text("not a checkpoint")  # not read here: the app reads it and shows why it cannot
    assert decide_start(CFG, RunOptions(checkpoint=junk)) == OpenModel(junk, None)


def test_resume_goes_on_with_the_run_even_while_it_runs(here, saved_payload):
    folder, _ = start_run(here)  # runs/sim says it is running
    best = model_in(CHECKPOINTS / "sim", saved_payload)
    assert decide_start(CFG, RunOptions(checkpoint=best)) == FollowRun(Path("runs/sim"))  # without --resume
    start = decide_start(CFG, RunOptions(resume="sim", epochs=5, checkpoint=best), autostart=False)
    assert isinstance(start, ResumeRun)
    assert (start.paths.name, start.paths.checkpoint, start.paths.out) == ("sim", best, folder.relative_to(here))
    assert start.payload["config"] == CFG.to_dict()  # the checkpoint resumed from
    assert start.cfg.epochs == 5 and start.cfg.hidden_dim == CFG.hidden_dim  # its configuration, to 5 epochs
    assert start.autostart is False


def test_resume_of_nothing_cannot_start(here):
    with pytest.raises(CannotStart, match="nope: no such checkpoint"):
        decide_start(CFG, RunOptions(resume="nope"))


def test_a_checkpoint_path_with_nothing_there_is_where_a_new_run_trains(here):
    opts = RunOptions(checkpoint=here / "ck" / "best.pt", out=here / "out")
    start = decide_start(CFG, opts)
    assert start == NewRun(start.paths, True)
    assert (start.paths.checkpoint, start.paths.out) == (here / "ck" / "best.pt", here / "out")
    assert not start.paths.checkpoint.exists()


def test_no_options_is_a_new_run_in_folders_of_its_own_taken_when_it_starts(here):
    start = decide_start(CFG, RunOptions(), autostart=False)
    assert isinstance(start, NewRun) and start.autostart is False
    name = start.paths.name
    assert start.paths.checkpoint == CHECKPOINTS / name / "best.pt" and start.paths.out == RUNS / name
    assert not (CHECKPOINTS / name).exists() and not (RUNS / name).exists()  # nothing taken yet
    assert decide_start(CFG, RunOptions(name="mine")).paths.out == RUNS / "mine"


def test_a_bad_name_cannot_start(here):
    with pytest.raises(CannotStart, match="--name 'latest'"):
        decide_start(CFG, RunOptions(name="latest"))


def test_an_unwritable_folder_cannot_start(here):
    blocker = here / "file"
    blocker.write_text("x")  # a file where the run's folder would go: nothing can be made in it
    with pytest.raises(CannotStart, match="cannot write"):
        decide_start(CFG, RunOptions(checkpoint=blocker / "best.pt"))
