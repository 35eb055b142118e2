"""The default thread count (engine/train/threads.py): one thread for a model too small to gain
from a second, every usable core otherwise; a note only when other work is already busy."""

import io
import json
import os
import subprocess
import threading

import pytest
import torch

import engine.train.machine as machine
import engine.train.threads as threads
from tests.conftest import LEAN_TUI, QUICK_FLAGS, ROOT, write_corpus
from tests.fake_machine import LinuxTimes, MacTimes, fake_proc, fake_psutil, no_psutil


def test_small_models_take_one_thread_larger_ones_the_usable_cores(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 3)
    monkeypatch.setattr(threads, "TORCH_THREADS", 8)
    assert threads.default_threads(64) == 1 and threads.default_threads(127, vocab_size=127) == 1
    assert threads.default_threads(256) == 3  # a taskset or cpuset of 3 cores
    assert threads.default_threads(64, vocab_size=128) == 3  # a large output layer: your own text
    monkeypatch.setattr(threads, "TORCH_THREADS", 2)  # OMP_NUM_THREADS=2
    assert threads.default_threads(256) == 2


def test_a_core_is_free_while_training_takes_fewer_threads_than_there_are_cores(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    cpu = torch.device("cpu")
    assert threads.core_left_free(cpu)  # the tests run on one thread
    assert not threads.core_left_free(cpu, processes=2)  # torchrun: two processes of one thread
    assert threads.core_left_free(torch.device("cuda"), processes=2)  # the GPU trains
    assert not threads.core_left_free(cpu, threads=2)  # a run about to take both cores
    monkeypatch.setattr(threads, "usable_cores", lambda: 1)
    assert not threads.core_left_free(cpu)


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_the_evaluation_runs_its_parts_side_by_side_on_one_thread_each(monkeypatch, cores):
    monkeypatch.setattr(threads, "usable_cores", lambda: cores)
    seen = []  # (worker, its intra-op threads), from inside each part
    jobs = {
        name: (lambda name=name: seen.append((threading.current_thread().name, torch.get_num_threads())) or name)
        for name in "abcd"
    }
    set_to = []
    real_set = torch.set_num_threads
    monkeypatch.setattr(threads.torch, "set_num_threads", lambda n: (set_to.append(n), real_set(n)))
    with threads.evaluation_threads(torch.device("cpu")) as workers:
        assert workers == cores
        assert threads.in_parallel(jobs, workers) == {n: n for n in "abcd"}
    assert {n for _, n in seen} == {1}
    assert set_to == ([1, 1] if cores > 1 else [])  # one thread for the parts, then the run's own (1 here)
    assert len({w for w, _ in seen}) <= cores
    with threads.evaluation_threads(torch.device("cuda")) as workers:
        assert workers == 1  # a GPU runs them one after another anyway


def test_the_evaluation_gives_the_run_its_threads_back(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    calls = []
    monkeypatch.setattr(threads.torch, "get_num_threads", lambda: 2)  # training used two
    monkeypatch.setattr(threads.torch, "set_num_threads", calls.append)
    with pytest.raises(RuntimeError):
        with threads.evaluation_threads(torch.device("cpu")):
            raise RuntimeError("a part failed")
    assert calls == [1, 2]


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
    corpus = write_corpus(tmp_path / "text.txt", 300, vocab_size=300)  # ~300 words seen twice or more
    every_core = threads.default_threads(threads.SMALL_HIDDEN)
    # with no --threads a run follows the load, up to every core (report.json's threads: the
    # most); machine's own reading, which the run's process reads unpatched
    by_load = every_core > 1 and machine.cores_times(machine.usable_cpus()) is not None
    for name, extra, expected in (
        ("built-in", [], every_core if by_load else 1),
        ("asked", ["--threads", "2"], 2),
        ("own text", ["--corpus", str(corpus)], every_core),  # its output layer is large
        ("own text, asked", ["--corpus", str(corpus), "--threads", "1"], 1),
    ):
        out = tmp_path / name
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
        report = json.loads((out / "report.json").read_text())
        assert report["threads"] == expected
        header = next(line for line in p.stdout.splitlines() if line.startswith("reverse-tui:"))
        governed = by_load and "--threads" not in extra
        assert (
            f"1-{expected} threads as other work leaves the cores free" in header
            if governed
            else (f"{expected} thread" in header)
        )
        assert (report["threads_by_load"] is not None) == governed


class Cores:
    """Readings of a machine of n cores on which this run uses `ours` of them and other work
    `others`; each look at it is `window` seconds after the last."""

    def __init__(self, n, others=0.0, window=0.3):
        self.n, self.others, self.window = n, others, window
        self.total = self.idle = self.own = 0.0
        self.governor = None

    def read(self, cpus):
        assert len(cpus) == self.n
        ours = self.governor.threads if self.governor else 1
        demand = ours + self.others
        busy = min(self.n, demand)  # more demand than cores: each gets its share of them
        self.total += self.n * self.window
        self.idle += (self.n - busy) * self.window
        self.own += ours * busy / demand * self.window
        return self.total, self.idle

    def governed(self, most):
        applied = []
        self.governor = threads.ThreadsByLoad(
            most, frozenset(range(self.n)), read=self.read, own=lambda: self.own, apply=applied.append
        )
        return self.governor, applied


def batches(governor, n):
    for _ in range(n):
        governor.after_batch()


def test_threads_by_load_take_the_cores_other_work_leaves_free():
    cores = Cores(2)
    g, applied = cores.governed(most=2)
    assert g.threads == 1 and applied == [1]  # it starts on one thread
    batches(g, g.CHECK_EVERY - 1)
    assert g.threads == 1  # no look before CHECK_EVERY batches
    batches(g, 1)
    assert g.threads == 2 and applied == [1, 2] and g.changes == [(g.CHECK_EVERY, 2)]  # an idle machine
    cores.others = 1.0  # another run takes a core: back to one thread at the next look
    batches(g, g.CHECK_EVERY)
    assert g.threads == 1 and g.changes[-1] == (2 * g.CHECK_EVERY, 1)
    batches(g, 3 * g.CHECK_EVERY)
    assert g.threads == 1  # while it stays, so does the run
    cores.others = 0.3  # more than a quarter of a core: still shared
    batches(g, g.CHECK_EVERY)
    assert g.threads == 1
    cores.others = 0.2  # a terminal's worth: the core counts as free
    batches(g, g.CHECK_EVERY)
    assert g.threads == 2


def test_threads_by_load_on_more_cores_keep_to_the_free_ones_and_to_the_most():
    cores = Cores(4, others=1.5)
    g, _ = cores.governed(most=4)
    batches(g, g.CHECK_EVERY)
    assert g.threads == 2  # 2.5 cores free
    cores.others = 0.0
    batches(g, g.CHECK_EVERY)
    assert g.threads == 4
    g, _ = Cores(4).governed(most=3)  # OMP_NUM_THREADS=3
    batches(g, g.CHECK_EVERY)
    assert g.threads == 3


def test_threads_by_load_wait_for_a_window_long_enough_to_read():
    cores = Cores(2, window=0.12)  # looks closer than WINDOW seconds a core
    g, _ = cores.governed(most=2)
    batches(g, g.CHECK_EVERY)
    assert g.threads == 1  # 0.12 s: too few ticks to tell
    batches(g, g.CHECK_EVERY)
    assert g.threads == 2  # 0.24 s since the last decision


def test_threads_by_load_stay_on_one_where_the_cores_cannot_be_read():
    applied = []
    g = threads.ThreadsByLoad(2, frozenset({0, 1}), read=lambda cpus: None, own=lambda: 0.0, apply=applied.append)
    batches(g, 10 * g.CHECK_EVERY)
    assert g.mark is None and g.threads == 1 and applied == [1]


def test_the_cores_times_are_this_runs_cores_from_proc_stat(monkeypatch):
    stat = "cpu  300 0 100 500 20 0 0 0 0 0\ncpu0 100 0 50 200 10 0 0 0 0 0\ncpu1 200 0 50 300 10 0 0 0 0 0\nintr 1\n"
    fake_proc(monkeypatch, {"/proc/stat": stat})
    hz = os.sysconf("SC_CLK_TCK")
    assert machine.cores_times(frozenset({1})) == (560 / hz, 310 / hz)
    assert machine.cores_times(frozenset({0, 1})) == (920 / hz, 520 / hz)
    assert machine.cores_times(frozenset({2})) is None  # a core it cannot see
    fake_proc(monkeypatch, {})
    assert machine.cores_times(frozenset({0})) is None


def test_the_thread_count_changes_none_of_a_runs_numbers():
    """Why ThreadsByLoad may change the count mid-run: the same seed gives the same losses and
    weights on one thread, or on two from the third batch on (at the default's sizes, where
    the C kernels and the matrix products split their work over the threads)."""
    from engine.train.config import Config
    from engine.train.trainer import Trainer

    cfg = Config(train_size=320, val_size=10, test_size=10, max_len=12, epochs=1, device="cpu")
    results = []
    for switch in (False, True):
        torch.set_num_threads(1)
        trainer = Trainer(cfg, "/nonexistent/unused.pt")
        losses = []
        for i, done in enumerate(trainer.train_epoch(1)):
            losses.append(float(done.loss))
            if switch and i == 1:
                torch.set_num_threads(2)
        results.append((losses, {k: v.clone() for k, v in trainer.model.state_dict().items()}))
    torch.set_num_threads(1)
    (one, w_one), (two, w_two) = results
    assert len(one) > 2 and one == two
    assert all(torch.equal(w_one[k], w_two[k]) for k in w_one)


def test_a_headless_run_follows_the_load_with_its_figures_process_prestarted(tmp_path, monkeypatch):
    """run_job(threads_by_load=True) on a machine otherwise idle: one thread, then both cores
    at the first look; the figures' process prestarted by the command line is the one it uses."""

    from engine import job
    from engine.insight import plot_process
    from engine.train.config import Config
    from tests.conftest import QUICK, NoPlotProcess

    clock = {"total": 0.0}

    def idle(cpus):  # each look 0.3 s later, the cores idle: no other work on them
        clock["total"] += len(cpus) * 0.3
        return clock["total"], clock["total"]

    monkeypatch.setattr(threads, "cores_times", idle)
    monkeypatch.setattr(threads, "usable_cpus", lambda: frozenset({0, 1}))
    monkeypatch.setattr(threads, "TORCH_THREADS", 2)
    made = []
    monkeypatch.setattr(job, "PlotProcess", lambda: made.append(1) or NoPlotProcess())
    monkeypatch.setattr(plot_process, "_prestarted", NoPlotProcess())
    out = tmp_path / "out"
    try:
        events = list(
            job.run_job(
                Config(**{**QUICK, "epochs": 4}), tmp_path / "b.pt", out, choose_threads=True, threads_by_load=True
            )
        )
    finally:
        torch.set_num_threads(1)
    started = next(e for e in events if isinstance(e, job.Started))
    assert started.threads == 1 and started.most_threads == 2
    assert "1-2 threads as other work leaves the cores free" in started.line() and "cpu x1-2" in started.brief()
    report = json.loads((out / "report.json").read_text())
    assert report["threads"] == 2 and report["threads_by_load"] == [[threads.ThreadsByLoad.CHECK_EVERY, 2]]
    assert made == [] and plot_process._prestarted is None  # the prestarted process, taken once


@pytest.mark.parametrize(
    "flags, env, cores, prestarts",
    [
        (["--no-ui"], {}, 2, True),
        ([], {}, 2, True),  # the app's run
        (["--no-ui", "--threads", "2"], {}, 2, False),  # a fixed count: as before
        (["--no-ui"], {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, 2, False),  # torchrun
        (["--no-ui"], {}, 1, False),  # one core: no idle one to import on
    ],
)
def test_the_command_line_prestarts_the_figures_of_a_run_that_follows_the_load(
    monkeypatch, flags, env, cores, prestarts
):
    from engine.insight import plot_process
    from tui import cli

    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)), raising=False)
    monkeypatch.setattr(os.path, "exists", lambda path: path == "/proc/stat")  # a Linux box
    called = []
    monkeypatch.setattr(plot_process, "prestart", lambda: called.append(1))
    cli.prestart_figures(cli.main_parser().parse_args(flags))
    assert called == ([1] if prestarts else [])
