"""Every epoch trained reaches report.json, metrics.csv and loss_curve.png, whichever epoch
was best, however the run ended (engine/insight/report.py, through engine/job.py)."""

import csv
import dataclasses
import json

import pytest
import torch

from engine.errors import NonFiniteLoss
from engine.insight import report as report_module
from engine.insight.report import run_history
from engine.job import Finished, TrainingEnded, run_job
from engine.train.checkpoint import load
from engine.train.config import Config
from engine.train.events import EpochDone
from engine.train.trainer import Trainer
from tests.conftest import QUICK


@pytest.fixture
def validation_losses(monkeypatch):
    """Sets the validation loss of each epoch in turn (the real pass still runs and gives the
    exact match), so that the best epoch is chosen by the test, not by the numerics."""
    queue: list = []
    real = Trainer.validation

    def validation(self):
        measured = real(self)
        loss = queue.pop(0)
        if isinstance(loss, Exception):
            raise loss
        return dataclasses.replace(measured, loss=loss)

    monkeypatch.setattr(Trainer, "validation", validation)
    return queue


@pytest.fixture
def drawn(monkeypatch):
    """The loss-curve figure jobs finish_run hands to the plotter."""
    jobs: list = []
    real = report_module.loss_curve_job

    def loss_curve_job(history, path, best_epoch):
        jobs.append(real(history, path, best_epoch))
        return jobs[-1]

    monkeypatch.setattr(report_module, "loss_curve_job", loss_curve_job)
    return jobs


def run(cfg: Config, tmp_path, **kw) -> tuple[TrainingEnded, dict]:
    ended = None
    for ev in run_job(cfg, tmp_path / "ck" / "best.pt", tmp_path / "out", **kw):
        if isinstance(ev, TrainingEnded):
            ended = ev
        assert not isinstance(ev, Finished) or ev.results is not None
    return ended, json.loads((tmp_path / "out" / "report.json").read_text())


def assert_every_epoch(tmp_path, report: dict, drawn: list, epochs: list[int], best: int) -> None:
    assert [e["epoch"] for e in report["epochs"]] == epochs
    assert [e["epoch"] for e in report["epoch_details"]] == epochs
    # every epoch's validation counts by length, as JSON keeps them: they add up to its exact match
    for e in report["epochs"]:
        counts = e["val_by_length"].values()
        assert sum(t for _, t in counts) == QUICK["val_size"]
        assert sum(c for c, _ in counts) / QUICK["val_size"] == pytest.approx(e["val_exact_match"])
    assert report["best_epoch"] == best
    assert [e["best_model"] for e in report["epochs"]] == [n == best for n in epochs]
    rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == epochs
    assert [r["best_model"] for r in rows] == [str(n == best) for n in epochs]
    curve = drawn[-1]  # this run's
    assert [h["epoch"] for h in curve["history"]] == epochs and curve["best_epoch"] == best
    assert (tmp_path / "out" / "loss_curve.png").stat().st_size > 0


def test_the_epochs_after_the_best_are_kept(tmp_path, validation_losses, drawn):
    validation_losses += [1.0, 0.5, 0.9]
    ended, report = run(Config(**{**QUICK, "epochs": 3}), tmp_path)
    assert ended.best_epoch == 2
    assert_every_epoch(tmp_path, report, drawn, [1, 2, 3], best=2)
    # the best checkpoint itself holds its own epochs only; the run's log holds all three
    assert load(tmp_path / "ck" / "best.pt")["epoch"] == 2


def test_after_resume_every_epoch_is_kept(tmp_path, validation_losses, drawn):
    validation_losses += [0.5, 0.9]
    run(Config(**{**QUICK, "epochs": 2}), tmp_path)
    validation_losses += [0.8]
    payload = load(tmp_path / "ck" / "best.last.pt")
    ended, report = run(Config(**QUICK), tmp_path, resume=payload, epochs=3)
    assert ended.best_epoch == 1
    assert_every_epoch(tmp_path, report, drawn, [1, 2, 3], best=1)


def test_a_stopped_run_keeps_the_epochs_it_finished(tmp_path, validation_losses, drawn):
    validation_losses += [0.5, 0.9, 0.3, 0.2]
    seen = []

    def should_stop():
        return len(seen) >= 2

    ended = None
    for ev in run_job(
        Config(**{**QUICK, "epochs": 4}), tmp_path / "ck" / "best.pt", tmp_path / "out", should_stop=should_stop
    ):
        if isinstance(ev, EpochDone):
            seen.append(ev)
            # the log grows epoch by epoch: a run killed here would keep what it finished
            rows = list(csv.DictReader(open(tmp_path / "out" / "metrics.csv")))
            assert [int(r["epoch"]) for r in rows] == [e.epoch for e in seen]
        if isinstance(ev, TrainingEnded):
            ended = ev
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert ended.reason == "stopped" and report["interrupted"] is True
    assert_every_epoch(tmp_path, report, drawn, [1, 2], best=1)


def test_patience_keeps_the_epochs_it_waited(tmp_path, validation_losses, drawn):
    validation_losses += [0.5, 0.9, 0.95]
    ended, report = run(Config(**{**QUICK, "epochs": 6, "patience": 2}), tmp_path)
    assert ended.reason == "finished" and ended.epochs == 3
    assert_every_epoch(tmp_path, report, drawn, [1, 2, 3], best=1)


def test_a_nan_stop_keeps_the_epochs_before_it(tmp_path, validation_losses, drawn):
    validation_losses += [0.5, 0.9, NonFiniteLoss(3, 1)]
    ended, report = run(Config(**{**QUICK, "epochs": 4}), tmp_path)
    assert ended.reason == "failed" and "NaN" in report["failure"]
    assert_every_epoch(tmp_path, report, drawn, [1, 2], best=1)


def test_run_history_reads_the_epochs_after_the_best_from_the_latest_state(tmp_path, validation_losses):
    validation_losses += [0.5, 0.9, 0.95]
    trainer = Trainer(Config(**{**QUICK, "epochs": 3}), tmp_path / "best.pt")
    for _ in trainer.run():
        pass
    best = load(tmp_path / "best.pt")
    assert [h["epoch"] for h in best["history"]] == [1]
    assert [h["epoch"] for h in run_history(tmp_path / "best.pt", best)] == [1, 2, 3]
    # a latest state of another run (its history does not begin with the best's) is not read
    other = load(tmp_path / "best.last.pt")
    other["history"][0] = {**other["history"][0], "val_loss": 123.0}
    torch.save(other, tmp_path / "best.last.pt")
    assert [h["epoch"] for h in run_history(tmp_path / "best.pt", best)] == [1]
    (tmp_path / "best.last.pt").unlink()
    assert [h["epoch"] for h in run_history(tmp_path / "best.pt", best)] == [1]


def test_beyond_training_starts_past_the_longest_sentence_trained_on():
    from engine.insight.report import longest_trained

    text = [["w"] * n for n in (3, 7, 12)]  # a text of 3-12 words
    assert longest_trained(Config(), text) == 30  # the built-in words: every length to --max-len
    assert longest_trained(Config(corpus="t.txt", join=0), text) == 12  # the text's own longest
    assert longest_trained(Config(corpus="t.txt"), text) == 40  # and its joined sentences' length
    assert longest_trained(Config(corpus="t.txt", join_len=8), text) == 12
