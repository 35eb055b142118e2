"""Stand-ins for psutil and for Linux's /proc with fixed figures, so that both of
engine/train/machine.py's ways of reading the machine are tested on any machine (monkeypatch
undoes them after each test)."""

from __future__ import annotations

import io
import os
import sys
import types
from collections import namedtuple

import pytest

import engine.train.machine as machine

# psutil.cpu_times() as Linux and macOS give it: Linux counts a guest's time in user and nice too
LinuxTimes = namedtuple("scputimes", "user nice system idle iowait irq softirq steal guest guest_nice")
MacTimes = namedtuple("scputimes", "user nice system idle")


def no_psutil(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # not installed: the import fails


def fake_psutil(monkeypatch, *, rss: int | None = None, started: dict | None = None, cpu=()) -> types.ModuleType:
    """A stand-in psutil: this process's resident memory `rss` in bytes (None: access
    denied), the processes that exist by id with their create_time (`started`; this process
    is one unless left out), and the cpu_times() readings, one a call."""
    started = {os.getpid(): 1_700_000_000.25} if started is None else started
    psutil = types.ModuleType("psutil")

    class Error(Exception):
        pass

    class NoSuchProcess(Error):
        pass

    class AccessDenied(Error):
        pass

    class Process:
        def __init__(self, pid: int | None = None):
            self.pid = os.getpid() if pid is None else pid
            if self.pid not in started:
                raise NoSuchProcess(self.pid)

        def memory_info(self):
            if rss is None:
                raise AccessDenied(self.pid)
            return types.SimpleNamespace(rss=rss, vms=4 * rss)

        def create_time(self) -> float:
            return started[self.pid]

    readings = iter(cpu)
    psutil.Error, psutil.NoSuchProcess, psutil.AccessDenied = Error, NoSuchProcess, AccessDenied
    psutil.Process = Process
    psutil.pid_exists = lambda pid: pid in started
    psutil.cpu_times = lambda: next(readings)
    monkeypatch.setitem(sys.modules, "psutil", psutil)
    return psutil


def fake_proc(monkeypatch, files: dict[str, str]) -> None:
    """/proc as engine/train/machine.py reads it: these files with this text, no other (an empty
    dict: a system without /proc)."""

    def fake_open(path, *args, **kwargs):
        if str(path) in files:
            return io.StringIO(files[str(path)])
        raise FileNotFoundError(path)

    monkeypatch.setattr(machine, "open", fake_open, raising=False)


# the kinds of machine as_machine makes of this one
MACHINES = ["linux", "linux+psutil", "macos+psutil"]


def as_machine(monkeypatch, kind: str) -> None:
    """This process as engine/train/machine.py sees it on one kind of machine: "linux" reads the
    real /proc (skipped where there is none); "macos" has no /proc; "+psutil" adds a
    stand-in psutil that knows this process alone, started at a fixed time."""
    if kind.startswith("linux") and not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc on this machine")
    if kind.endswith("+psutil"):
        fake_psutil(monkeypatch)
    else:
        no_psutil(monkeypatch)
    if kind.startswith("macos"):
        fake_proc(monkeypatch, {})
