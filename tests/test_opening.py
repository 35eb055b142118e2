"""Reading a run's model for the app (tui/opening.py), without Textual: the model and its key,
and a run's latest state (the epochs after its best, its snapshots)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.errors import CheckpointError
from engine.train.checkpoint import save_atomic
from engine.train.config import Config
from engine.train.trainer import Trainer
from tests.conftest import TINY
from tests.test_follow import epoch, snapshot
from tui.opening import checkpoint_key, read_model, read_run


@pytest.fixture(scope="module")
def payload(tmp_path_factory) -> dict:
    """An untrained model of the tiny configuration, as a run saves one."""
    return Trainer(Config(**TINY), tmp_path_factory.mktemp("ckpt") / "best.pt").payload()


def saved(path: Path, payload: dict, epochs: int, best: int, snapshots: int = 0) -> Path:
    history = [epoch(n, best=n <= best).as_dict() for n in range(1, epochs + 1)]
    snaps = [snapshot(1, b).as_dict() for b in range(1, snapshots + 1)]
    return save_atomic({**payload, "history": history, "best_epoch": best, "snapshots": snaps}, path)


def test_the_key_says_when_the_file_changed(tmp_path, payload):
    path = tmp_path / "best.pt"
    assert checkpoint_key(path) is None
    saved(path, payload, epochs=1, best=1)
    key = checkpoint_key(path)
    assert key[0] == str(path) and key == checkpoint_key(path)
    os.utime(path, ns=(0, 0))  # rewritten: another time
    assert checkpoint_key(path) != key


def test_no_file_reads_as_no_model(tmp_path):
    assert read_model(tmp_path / "best.pt", "cpu") is None


def test_a_model_is_read_with_its_key_taken_before(tmp_path, payload):
    path = saved(tmp_path / "best.pt", payload, epochs=2, best=2)
    loaded, key = read_model(path, "cpu")
    assert key == checkpoint_key(path) and loaded.payload["best_epoch"] == 2 and not loaded.model.training


def test_a_run_is_read_with_the_epochs_after_its_best(tmp_path, payload):
    best = saved(tmp_path / "best.pt", payload, epochs=2, best=2, snapshots=3)
    saved(tmp_path / "best.last.pt", payload, epochs=4, best=2, snapshots=5)  # two epochs on
    run = read_run(best, "cpu")
    assert run.checkpoint == best and run.key == checkpoint_key(best)
    assert [e.epoch for e in run.epochs] == [1, 2, 3, 4] and [e.best for e in run.epochs] == [True] * 2 + [False] * 2
    assert len(run.snapshots) == 5 and run.snapshots[-1].batch == 5
    assert run.loaded.payload["best_epoch"] == 2  # the model is the best one
    params = sum(p.numel() for p in run.loaded.model.parameters())
    assert run.facts() == f"vocab {len(run.loaded.vocab)} · {params:,} params"
    assert run.status() == f"Opened {best}: 4 epochs trained, best epoch 2. n starts a new run."


def test_a_latest_state_of_another_run_is_not_taken(tmp_path, payload):
    best = saved(tmp_path / "best.pt", payload, epochs=2, best=2)
    other = {**payload, "history": [epoch(1, best=False).as_dict()]}  # another history from its start
    save_atomic(other, tmp_path / "best.last.pt")
    assert [e.epoch for e in read_run(best, "cpu").epochs] == [1, 2]


def test_a_run_that_cannot_be_read_is_one_line(tmp_path):
    with pytest.raises(CheckpointError, match="best.pt: no such file"):
        read_run(tmp_path / "best.pt", "cpu")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable checkpoint"):
        read_run(junk, "cpu")
