"""engine/job.py, the one run both faces consume: its events, stopping, resuming, failing."""

from __future__ import annotations

import json

import pytest
import torch

from engine.job import Evaluating, Failed, Finished, Started, TrainingEnded, control_path, describe, run_job
from engine.runs.status import read_status
from engine.train.config import Config
from engine.train.events import BatchDone, EpochDone
from tests.conftest import QUICK


def test_a_run_is_started_batches_epochs_ended_finished(tmp_path):
    cfg = Config(**QUICK)
    events = list(run_job(cfg, tmp_path / "best.pt", tmp_path / "out"))
    started = events[0]
    assert isinstance(started, Started)
    assert started.sizes == (128, 40, 40) and started.device.type == "cpu"
    assert started.params > 0 and started.native.startswith("C kernels: ")
    assert "parameters, device cpu" in started.line() and "params" in started.brief()
    assert started.joined == 0 and "joined" not in started.line() + started.brief()
    joined = Started(cfg, started.device, started.checkpoint, (400, 50, 50), 30, 100, 1, "C kernels: on", joined=100)
    assert "400 train (+100 joined) / 50 val" in joined.line() and "+100 joined" in joined.brief()
    both = Started(
        cfg, started.device, started.checkpoint, (400, 50, 50), 30, 100, 1, "C kernels: on", joined=100, rewritten=42
    )
    assert "400 train (+100 joined, 42 rewritten as repeated words) / 50 val" in both.line()
    batches = [e for e in events if isinstance(e, BatchDone)]
    epochs = [e for e in events if isinstance(e, EpochDone)]
    n = -(-QUICK["train_size"] // QUICK["batch_size"])
    assert len(batches) == 2 * n and len(epochs) == 2
    # the loss of a batch travels as a 0-dim tensor, read by whoever wants it
    assert all(isinstance(b.loss, torch.Tensor) and b.loss.dim() == 0 and not b.loss.requires_grad for b in batches)
    for e in epochs:  # the epoch's own list of batch losses, read once at its end
        mine = [float(b.loss) for b in batches if b.epoch == e.epoch]
        assert e.batch_losses == pytest.approx(mine)
        assert sum(e.batch_losses) / len(e.batch_losses) == pytest.approx(e.train_loss, rel=1e-5)
    k = next(i for i, e in enumerate(events) if isinstance(e, TrainingEnded))
    ended, phases, finished = events[k], events[k + 1 : -1], events[-1]
    assert isinstance(ended, TrainingEnded) and ended.reason == "finished" and ended.epochs == 2
    # the evaluation's parts, each as it ends, counted to the last: the files
    assert all(isinstance(e, Evaluating) for e in phases) and phases
    assert [e.phase.done for e in phases] == list(range(1, len(phases) + 1))
    assert {e.phase.total for e in phases} == {len(phases)}
    assert phases[-1].phase.name == "figures and files"
    assert {"the test set", "known words past the training lengths", "every word unknown, by length"} <= {
        e.phase.name for e in phases
    }
    assert isinstance(finished, Finished)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["interrupted"] is False and report["native_kernels"] == started.native
    assert len(report["epoch_details"][0]["batch_losses"]) == n


def test_should_stop_ends_training_and_still_evaluates(tmp_path):
    seen = []

    def stop() -> bool:
        return len(seen) >= 1 and isinstance(seen[-1], EpochDone)

    for ev in run_job(Config(**{**QUICK, "epochs": 5}), tmp_path / "best.pt", tmp_path / "out", should_stop=stop):
        seen.append(ev)
    ended = next(e for e in seen if isinstance(e, TrainingEnded))
    assert ended.reason == "stopped" and ended.epochs == 1 and ended.best_epoch == 1
    assert isinstance(seen[-1], Finished) and seen[-1].results.report["interrupted"] is True


def test_a_bad_resume_fails_at_the_start(tmp_path):
    events = list(run_job(Config(**QUICK), tmp_path / "best.pt", tmp_path / "out", resume=tmp_path / "missing.pt"))
    assert len(events) == 1 and isinstance(events[0], Failed)
    assert events[0].stage == "start" and events[0].error.startswith("cannot resume: ")


def test_control_checkpoint_name_and_describe():
    assert control_path("ck/best.pt").as_posix() == "ck/best.no-attention.pt"
    assert "could not write ck/best.pt" in describe(OSError(28, "No space left on device"), "ck/best.pt")


# -- status.json: running, then how the run ended (engine/runs/status.py) -----------------------
def test_a_run_records_that_it_runs_and_how_it_ended(tmp_path):
    out = tmp_path / "out"
    seen = {}
    for ev in run_job(Config(**{**QUICK, "epochs": 1}), tmp_path / "best.pt", out, run={"name": "demo"}):
        if isinstance(ev, (Started, TrainingEnded)):  # the consumer sees each after it is on disk
            seen[type(ev).__name__] = read_status(out)
    assert seen["Started"]["state"] == "running" and seen["Started"]["phase"] == "training"
    assert seen["Started"]["name"] == "demo" and seen["Started"]["checkpoint"] == str(tmp_path / "best.pt")
    assert seen["TrainingEnded"]["phase"] == "evaluating" and seen["TrainingEnded"]["training"] == "finished"
    end = read_status(out)
    assert (end["state"], end["evaluated"], end["epochs"], end["error"]) == ("finished", True, 1, None)


def test_a_run_stopped_before_its_first_epoch_is_stopped(tmp_path):
    list(run_job(Config(**QUICK), tmp_path / "best.pt", tmp_path / "out", should_stop=lambda: True))
    end = read_status(tmp_path / "out")
    assert (end["state"], end["epochs"], end["evaluated"]) == ("stopped", 0, False)


def test_a_consumer_that_stops_listening_leaves_a_stopped_run(tmp_path):
    job = run_job(Config(**QUICK), tmp_path / "best.pt", tmp_path / "out")
    for ev in job:
        if isinstance(ev, BatchDone):
            break
    assert read_status(tmp_path / "out")["state"] == "running"
    job.close()  # the app quitting mid-epoch
    assert read_status(tmp_path / "out")["state"] == "stopped"


def test_a_failed_training_records_its_error(tmp_path, monkeypatch):
    def broken(self):
        raise RuntimeError("the GPU fell off")
        yield  # a generator, as Trainer.run is

    monkeypatch.setattr("engine.job.Trainer.run", broken)
    events = list(run_job(Config(**QUICK), tmp_path / "best.pt", tmp_path / "out"))
    assert isinstance(events[-1], TrainingEnded) and events[-1].reason == "failed"
    end = read_status(tmp_path / "out")
    assert end["state"] == "failed" and "the GPU fell off" in end["error"]


def test_a_run_that_cannot_start_writes_no_status(tmp_path):
    list(run_job(Config(**QUICK), tmp_path / "best.pt", tmp_path / "out", resume=tmp_path / "missing.pt"))
    assert not (tmp_path / "out").exists()  # the folder stays empty, so its name is free again
