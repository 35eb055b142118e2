"""The default thread count (engine/train/threads.py): one thread for a model too small to gain
from a second, every usable core otherwise; a note only when other work is already busy."""

import io
import json
import os
import subprocess

import pytest

import engine.train.machine as machine
import engine.train.threads as threads
from tests.conftest import LEAN_TUI, QUICK_FLAGS, ROOT
from tests.fake_machine import LinuxTimes, MacTimes, fake_proc, fake_psutil, no_psutil


def test_small_models_take_one_thread_larger_ones_the_usable_cores(monkeypatch):
    assert threads.default_threads(64) == 1 and threads.default_threads(127) == 1
    monkeypatch.setattr(threads, "usable_cores", lambda: 3)
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: 8)
    assert threads.default_threads(256) == 3  # a taskset or cpuset of 3 cores
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: 2)
    assert threads.default_threads(256) == 2


def test_the_busy_note_only_for_several_threads_on_a_busy_machine(monkeypatch):
    monkeypatch.setattr(threads, "busy_cores", lambda window=0.2: 1.6)
    assert threads.busy_note(1) is None  # one thread does not fight
    assert "--threads 1" in threads.busy_note(2)
    monkeypatch.setattr(threads, "busy_cores", lambda window=0.2: 0.1)
    assert threads.busy_note(2) is None
    monkeypatch.setattr(threads, "busy_cores", lambda window=0.2: None)  # no psutil, no /proc/stat
    assert threads.busy_note(2) is None


def fake_proc_stat(monkeypatch, *lines: str) -> None:
    """No psutil, and /proc/stat as busy_cores reads it, one first line per read; no waiting
    between them."""
    no_psutil(monkeypatch)
    reads = iter(lines)
    monkeypatch.setattr(machine, "open", lambda path: io.StringIO(next(reads) + "\nintr 1\n"), raising=False)
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)


def test_busy_cores_is_the_busy_share_of_the_ticks_times_the_cores(monkeypatch):
    # user nice system idle iowait irq softirq steal: 800 ticks pass, 200 of them busy
    fake_proc_stat(monkeypatch, "cpu  100 0 100 700 100 0 0 0 0 0", "cpu  250 0 150 1250 150 0 0 0 0 0")
    assert threads.busy_cores(0.2) == pytest.approx(200 / 800 * 4)


@pytest.mark.parametrize("shape", [LinuxTimes, MacTimes], ids=["linux", "macos"])
def test_busy_cores_from_psutil_is_the_same_share_of_its_seconds(monkeypatch, shape):
    # 8 s of CPU time pass over the 4 cores, 2 s of them busy
    first = {"user": 1.0, "nice": 0.0, "system": 1.0, "idle": 8.0}
    last = {"user": 2.5, "nice": 0.0, "system": 1.5, "idle": 14.0}
    extra = {f: 0.0 for f in shape._fields[4:]}
    fake_psutil(monkeypatch, cpu=[shape(**first, **extra), shape(**last, **extra)])
    fake_proc(monkeypatch, {})  # not read: psutil answers
    monkeypatch.setattr(threads.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(threads.os, "cpu_count", lambda: 4)
    assert threads.busy_cores(0.2) == pytest.approx(2 / 8 * 4)


def test_busy_cores_is_none_without_ticks_or_a_readable_file(monkeypatch):
    fake_proc_stat(monkeypatch, "cpu  1 0 1 7 1 0 0 0", "cpu  1 0 1 7 1 0 0 0")  # no tick passed
    assert threads.busy_cores() is None
    fake_proc_stat(monkeypatch, "cpu  1 0 1", "cpu  1 0 1")  # fewer fields than expected
    assert threads.busy_cores() is None
    fake_proc(monkeypatch, {})  # no /proc/stat, no psutil: neither Linux nor psutil
    assert threads.busy_cores() is None


@pytest.mark.parametrize("with_psutil", [True, False], ids=["psutil", "no-psutil"])
def test_busy_cores_reads_the_real_machine(monkeypatch, with_psutil):
    if with_psutil:
        pytest.importorskip("psutil")
    else:
        no_psutil(monkeypatch)
        if not os.path.exists("/proc/stat"):
            pytest.skip("no /proc/stat to read")
    busy = threads.busy_cores(0.05)
    assert busy is not None and 0.0 <= busy <= os.cpu_count()


def test_busy_cores_stays_in_range_when_float_times_round_past_it(monkeypatch):
    readings = iter([(100.0, 50.0), (110.0, 60.0 + 1e-9), (200.0, 100.0), (210.0, 100.0 - 1e-9)])
    monkeypatch.setattr(threads, "cpu_times", lambda: next(readings))
    monkeypatch.setattr(threads.time, "sleep", lambda s: None)
    assert threads.busy_cores() == 0.0  # idle grew by more than the total: nothing is busy
    assert threads.busy_cores() == float(os.cpu_count() or 1)  # no idle at all: every core


@pytest.mark.slow
def test_headless_runs_pick_the_thread_count(tmp_path):
    # in a process of its own: two threads set in this one cost seconds of spinning cores
    for extra, expected in (([], 1), (["--threads", "2"], 2)):
        out = tmp_path / f"out{expected}"
        p = subprocess.run(
            [
                *LEAN_TUI,
                "--no-ui",
                *QUICK_FLAGS,
                *extra,
                "--epochs",
                "1",
                "--out",
                str(out),
                "--checkpoint",
                str(out / "b.pt"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 0, p.stderr
        assert json.loads((out / "report.json").read_text())["threads"] == expected
        assert f"{expected} thread" in p.stdout.splitlines()[0]
