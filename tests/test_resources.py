"""engine/train/resources.py and the figures it gives each epoch: memory, throughput, time left.

There is no GPU here: the CUDA branch is tested with torch.cuda's counters and NVML replaced
by stand-ins that return known numbers (monkeypatch), so what is checked is the arithmetic
and the fallbacks, not a real device. The process's memory, with psutil and without, is
tests/test_machine.py's."""

from __future__ import annotations

import csv
import sys
import types

import pytest
import torch

from engine.insight.report import write_metrics_csv
from engine.train.checkpoint import load
from engine.train.config import Config
from engine.train.events import EPOCH_FIELDS, EpochDone, epochs_from_history
from engine.train.machine import MIB
from engine.train.resources import UsageMeter, seconds_left, tokens_per_second
from engine.train.trainer import Trainer
from tests.conftest import QUICK

NEW_FIELDS = ["lr", "tokens_per_s", "seconds_left", "rss_mib", "gpu_mib", "gpu_peak_mib", "gpu_util"]


def test_time_left_is_the_mean_epoch_times_the_epochs_to_go():
    assert seconds_left([2.0, 4.0], 5) == pytest.approx(15.0)
    assert seconds_left([2.0, 4.0], 0) == 0.0
    assert seconds_left([], 3) == 0.0


def test_tokens_per_second():
    assert tokens_per_second(3000, 1.5) == pytest.approx(2000.0)
    assert tokens_per_second(3000, 0.0) == 0.0


def test_off_cuda_the_gpu_figures_are_unknown():
    usage = UsageMeter(torch.device("cpu")).read()
    assert usage.rss_mib > 0
    assert usage.gpu_mib is usage.gpu_peak_mib is usage.gpu_util is None


class FakeCuda:
    """torch.cuda's allocator counters, with known numbers and a record of the resets."""

    def __init__(self, monkeypatch, allocated=300 * MIB, peak=1200 * MIB, uuid="abc-123"):
        self.resets = []
        monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: allocated)
        monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: peak)
        monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: self.resets.append(device))
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: types.SimpleNamespace(uuid=uuid))


def fake_nvml(monkeypatch, util=87, init_fails=False, known_uuids=("GPU-abc-123",)):
    """A stand-in pynvml: utilisation `util` for the devices it knows by UUID or index 0."""
    nvml = types.ModuleType("pynvml")

    class NVMLError(Exception):
        pass

    def init():
        if init_fails:
            raise NVMLError("driver not loaded")

    def by_uuid(uuid):
        if uuid not in known_uuids:
            raise NVMLError("not found")
        return ("uuid", uuid)

    def by_index(index):
        if index != 0:
            raise NVMLError("not found")
        return ("index", index)

    nvml.NVMLError = NVMLError
    nvml.nvmlInit = init
    nvml.nvmlDeviceGetHandleByUUID = by_uuid
    nvml.nvmlDeviceGetHandleByIndex = by_index
    nvml.lookups = []

    def rates(handle):
        nvml.lookups.append(handle)
        return types.SimpleNamespace(gpu=util, memory=10)

    nvml.nvmlDeviceGetUtilizationRates = rates
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    return nvml


def test_on_cuda_memory_comes_from_torch_cuda_and_utilisation_from_nvml(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    nvml = fake_nvml(monkeypatch, util=87)
    meter = UsageMeter(torch.device("cuda"))
    meter.start_epoch()
    usage = meter.read()
    assert cuda.resets == [torch.device("cuda")]  # each epoch's peak is its own
    assert (usage.gpu_mib, usage.gpu_peak_mib, usage.gpu_util) == (300.0, 1200.0, 87.0)
    assert usage.rss_mib > 0
    assert nvml.lookups == [("uuid", "GPU-abc-123")]  # the device torch uses, by its UUID


def test_nvml_falls_back_to_the_index_when_the_uuid_is_unknown(monkeypatch):
    FakeCuda(monkeypatch, uuid="other")
    nvml = fake_nvml(monkeypatch, util=40)
    assert UsageMeter(torch.device("cuda")).read().gpu_util == 40.0
    assert nvml.lookups == [("index", 0)]


def test_without_nvml_or_its_driver_utilisation_is_unknown_and_memory_still_known(monkeypatch):
    FakeCuda(monkeypatch)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: import fails
    usage = UsageMeter(torch.device("cuda")).read()
    assert usage.gpu_util is None and usage.gpu_peak_mib == 1200.0
    fake_nvml(monkeypatch, init_fails=True)
    assert UsageMeter(torch.device("cuda")).read().gpu_util is None


def test_nvml_is_looked_up_once_per_meter(monkeypatch):
    FakeCuda(monkeypatch)
    nvml = fake_nvml(monkeypatch)
    calls = []
    init = nvml.nvmlInit
    nvml.nvmlInit = lambda: (calls.append(1), init())
    meter = UsageMeter(torch.device("cuda"))
    for _ in range(3):
        meter.read()
    assert calls == [1] and len(nvml.lookups) == 3


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("res") / "best.pt"
    trainer = Trainer(Config(**{**QUICK, "epochs": 3}), path)
    epochs = [ev for ev in trainer.run() if isinstance(ev, EpochDone)]
    return trainer, epochs, path


def test_every_epoch_carries_its_learning_rate_throughput_time_left_and_memory(trained):
    trainer, epochs, _ = trained
    for ev in epochs:
        assert ev.tokens_per_s == pytest.approx(ev.tokens / ev.seconds)
        done = [e.seconds for e in epochs[: ev.epoch]]
        assert ev.seconds_left == pytest.approx(sum(done) / len(done) * (3 - ev.epoch))
        assert ev.rss_mib > 0
        assert ev.gpu_mib is ev.gpu_peak_mib is ev.gpu_util is None  # a CPU run
        assert 0 < ev.lr <= trainer.cfg.lr
    assert epochs[-1].seconds_left == 0.0
    assert epochs[-1].lr == pytest.approx(trainer.optimizer.lr)


def test_the_figures_travel_in_the_checkpoint_history_and_metrics_csv(trained, tmp_path):
    _, epochs, path = trained
    history = load(path.with_name("best.last.pt"))["history"]  # loaded with weights_only=True
    assert [h["tokens_per_s"] for h in history] == [e.tokens_per_s for e in epochs]
    assert all(type(h[k]) in (float, type(None)) for h in history for k in NEW_FIELDS)
    assert epochs_from_history(history) == epochs
    write_metrics_csv(history, tmp_path / "metrics.csv")
    rows = list(csv.DictReader(open(tmp_path / "metrics.csv")))
    assert set(NEW_FIELDS) <= set(rows[0]) and set(NEW_FIELDS) <= set(EPOCH_FIELDS)
    assert float(rows[0]["rss_mib"]) == pytest.approx(epochs[0].rss_mib)
    assert rows[0]["gpu_peak_mib"] == ""  # unknown, not zero


def test_an_older_history_without_the_figures_still_reads():
    old = {
        "epoch": 1,
        "train_loss": 2.0,
        "val_loss": 1.5,
        "val_exact_match": 0.1,
        "seconds": 3.0,
        "grad_norm": 0.5,
        "grad_norm_max": 1.0,
        "tokens": 900,
        "best": True,
    }
    ev = EpochDone.from_dict(old)
    assert (ev.lr, ev.tokens_per_s, ev.seconds_left) == (0.0, 0.0, 0.0)
    assert ev.rss_mib is ev.gpu_mib is ev.gpu_peak_mib is ev.gpu_util is None
    assert ev.train_loss == 2.0 and ev.best is True
