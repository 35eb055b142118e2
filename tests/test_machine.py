"""engine/train/machine.py: the process's memory, the machine's CPU time and whether a process
still runs, through psutil where it is installed and through Linux's /proc where it is not
(None, or the weaker answer, where neither is there). psutil and /proc are stand-ins with
fixed figures (tests/fake_machine.py); the last tests read the real ones."""

from __future__ import annotations

import os
import resource
import sys
import types

import pytest

import engine.train.machine as machine
from engine.train.machine import MIB, cpu_times, peak_rss_mib, pid_exists, process_start, rss_mib
from tests.fake_machine import LinuxTimes, MacTimes, fake_proc, fake_psutil, no_psutil

PAGE = os.sysconf("SC_PAGE_SIZE")
STATM = "90000 2560 300 10 0 500 0\n"  # size resident shared text lib data dt, in pages
STATUS = "Name:\tpython3\nVmPeak:\t 900000 kB\nVmHWM:\t  512000 kB\nVmRSS:\t  256000 kB\n"
# a process named with a space and a parenthesis, as /proc/PID/stat writes it; field 22 is 4321
STAT = "77 (a (b) c) S 1 77 77 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 4321 1000 200\n"


def rusage(monkeypatch, maxrss: int, platform: str) -> None:
    monkeypatch.setattr(resource, "getrusage", lambda who: types.SimpleNamespace(ru_maxrss=maxrss))
    monkeypatch.setattr(sys, "platform", platform)


# -- memory -------------------------------------------------------------------------------


def test_resident_memory_comes_from_psutil_where_it_is_installed(monkeypatch):
    fake_psutil(monkeypatch, rss=300 * MIB)
    fake_proc(monkeypatch, {"/proc/self/statm": STATM})
    assert rss_mib() == 300.0


def test_without_psutil_resident_memory_is_procs_pages(monkeypatch):
    no_psutil(monkeypatch)
    fake_proc(monkeypatch, {"/proc/self/statm": STATM})
    assert rss_mib() == 2560 * PAGE / MIB


def test_psutil_denied_falls_back_to_proc(monkeypatch):
    fake_psutil(monkeypatch, rss=None)
    fake_proc(monkeypatch, {"/proc/self/statm": STATM})
    assert rss_mib() == 2560 * PAGE / MIB


@pytest.mark.parametrize(
    "platform, maxrss",
    [("linux", 200 * 1024), ("darwin", 200 * MIB)],  # getrusage counts KiB on Linux, bytes on macOS
)
def test_with_neither_resident_memory_is_the_peak_getrusage_gives_in_its_units(monkeypatch, platform, maxrss):
    no_psutil(monkeypatch)
    fake_proc(monkeypatch, {})
    rusage(monkeypatch, maxrss, platform)
    assert rss_mib() == 200.0 and peak_rss_mib() == 200.0


def test_peak_memory_is_vmhwm_where_proc_has_it(monkeypatch):
    fake_psutil(monkeypatch, rss=300 * MIB)  # psutil has no peak off Windows
    fake_proc(monkeypatch, {"/proc/self/status": STATUS})
    rusage(monkeypatch, 999 * 1024, "linux")  # getrusage's figure would count a parent's peak
    assert peak_rss_mib() == 500.0


def test_memory_is_unknown_where_nothing_answers(monkeypatch):
    no_psutil(monkeypatch)
    fake_proc(monkeypatch, {})
    monkeypatch.setitem(sys.modules, "resource", None)  # Windows: no getrusage
    assert rss_mib() is None and peak_rss_mib() is None


# -- CPU time -----------------------------------------------------------------------------


def test_cpu_time_from_psutil_counts_a_guests_time_once_and_iowait_as_idle(monkeypatch):
    reading = LinuxTimes(100.0, 10.0, 50.0, 700.0, 40.0, 5.0, 5.0, 0.0, 30.0, 10.0)
    fake_psutil(monkeypatch, cpu=[reading])
    fake_proc(monkeypatch, {"/proc/stat": "cpu  1 1 1 1 1 1 1 1 0 0\n"})
    assert cpu_times() == (910.0, 740.0)  # all but guest and guest_nice; idle + iowait


def test_cpu_time_on_macos_has_no_iowait(monkeypatch):
    fake_psutil(monkeypatch, cpu=[MacTimes(100.0, 0.0, 50.0, 850.0)])
    fake_proc(monkeypatch, {})
    assert cpu_times() == (1000.0, 850.0)


def test_without_psutil_cpu_time_is_proc_stats_first_eight_fields(monkeypatch):
    no_psutil(monkeypatch)
    # user nice system idle iowait irq softirq steal guest guest_nice
    fake_proc(monkeypatch, {"/proc/stat": "cpu  100 10 50 700 40 5 5 0 30 10\nintr 1\n"})
    assert cpu_times() == (910.0, 740.0)  # the same figures as psutil's above


@pytest.mark.parametrize("text", ["cpu  1 0 1\n", "cpu  a b c d e f g h\n"])
def test_cpu_time_is_unknown_from_a_short_or_garbled_proc_stat(monkeypatch, text):
    no_psutil(monkeypatch)
    fake_proc(monkeypatch, {"/proc/stat": text})
    assert cpu_times() is None
    fake_proc(monkeypatch, {})
    assert cpu_times() is None


# -- processes ----------------------------------------------------------------------------


def test_a_process_start_is_procs_ticks_with_or_without_psutil(monkeypatch):
    """The run writes it and a watcher checks it, perhaps one with psutil and one without:
    on Linux both read the same ticks."""
    fake_proc(monkeypatch, {"/proc/77/stat": STAT})
    no_psutil(monkeypatch)
    without = process_start(77)
    fake_psutil(monkeypatch, started={77: 1_700_000_000.25})
    assert without == process_start(77) == 4321


def test_without_proc_a_process_start_is_psutils_create_time(monkeypatch):
    fake_proc(monkeypatch, {})
    fake_psutil(monkeypatch, started={77: 1_700_000_000.25})
    assert process_start(77) == 1_700_000_000.25
    assert process_start(78) is None  # no such process
    no_psutil(monkeypatch)
    assert process_start(77) is None


def test_psutil_says_whether_a_process_exists(monkeypatch):
    fake_psutil(monkeypatch, started={4242: 1.0})
    assert pid_exists(4242) and not pid_exists(os.getpid())
    assert not pid_exists(0) and not pid_exists(-1)


def test_without_psutil_a_signal_0_says_whether_a_process_exists(monkeypatch):
    no_psutil(monkeypatch)
    assert pid_exists(os.getpid()) and not pid_exists(0)
    signals = []

    def kill(pid, signal):
        signals.append((pid, signal))
        raise {4242: ProcessLookupError, 4343: PermissionError}[pid]()

    monkeypatch.setattr(machine.os, "kill", kill)
    assert not pid_exists(4242)
    assert pid_exists(4343)  # another user's process
    assert signals == [(4242, 0), (4343, 0)]


# -- the real machine ---------------------------------------------------------------------


@pytest.mark.parametrize("with_psutil", [True, False], ids=["psutil", "no-psutil"])
def test_resident_memory_grows_with_what_the_process_holds(monkeypatch, with_psutil):
    if with_psutil:
        pytest.importorskip("psutil")
    else:
        no_psutil(monkeypatch)
    before = rss_mib()
    block = bytearray(64 * MIB)  # zero-filled: every page is touched
    after = rss_mib()
    assert before is not None and before > 0
    if with_psutil or os.path.exists("/proc/self/statm"):  # not the peak, which may not move
        assert after - before >= 48  # MiB; allowing the allocator its own book-keeping
    assert peak_rss_mib() >= after * 0.99  # the peak is at least now (pages are counted coarsely)
    del block


def test_real_psutil_reads_this_process():
    pytest.importorskip("psutil")
    assert pid_exists(os.getpid())
    assert process_start(os.getpid()) is not None
    assert cpu_times() is not None
