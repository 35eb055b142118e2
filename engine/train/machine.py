"""The process's and the machine's figures, read the same way on Linux and macOS.

psutil reads them on every system; the engine needs only torch, though, so where psutil is
not installed (a bare GPU box) the figures come from Linux's /proc, and are None where
neither answers. Nothing here imports torch: the runs' bookkeeping checks process ids
through it without loading a model.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType

MIB = 1024 * 1024


def psutil_or_none() -> ModuleType | None:
    """psutil, imported when first asked for; None where it is not installed."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil


def rss_mib() -> float | None:
    """Resident memory of this process now; where it cannot be read, the most it has held
    (peak_rss_mib), the nearest figure; None where neither can be."""
    psutil = psutil_or_none()
    if psutil is not None:
        try:
            return psutil.Process().memory_info().rss / MIB
        except psutil.Error:
            pass
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError):
        return peak_rss_mib()


def peak_rss_mib() -> float | None:
    """The most resident memory this process has held. psutil has no such figure on Linux or
    macOS, so: Linux's VmHWM first (getrusage's figure survives exec, so a child started by a
    big parent would report the parent's peak), then getrusage, which counts bytes on macOS
    and KiB on Linux; None where neither can be read."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # KiB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource  # POSIX only

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError, ValueError):
        return None
    return peak / MIB if sys.platform == "darwin" else peak / 1024


def cpu_times() -> tuple[float, float] | None:
    """The CPU time the machine's cores have spent so far, in all and idle (waiting for
    input or output counts as idle), summed over the cores: psutil's seconds or /proc/stat's
    ticks, so only the differences of two readings, divided, mean anything. None where
    neither can be read."""
    psutil = psutil_or_none()
    if psutil is not None:
        try:
            t = psutil.cpu_times()
        except (psutil.Error, OSError):
            return None
        # Linux counts a guest's time in user and nice as well: counted once, as /proc/stat's
        # first eight fields count it
        total = sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
        return total, t.idle + getattr(t, "iowait", 0.0)
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        if len(ticks) < 5:
            return None
        return float(sum(ticks)), float(ticks[3] + ticks[4])  # user nice system idle iowait ...
    except (OSError, ValueError):
        return None


def launched() -> bool:
    """Started by torchrun (or any launcher that sets the env:// variables). Here, without
    torch, so that the command line can ask before it imports it (engine/train/distributed.py
    answers with this)."""
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def usable_cpus() -> frozenset[int]:
    """The cores this process may run on (a taskset or a container's cpuset counts)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity to read (macOS): every core
        return frozenset(range(os.cpu_count() or 1))


def cores_times(cpus: frozenset[int]) -> tuple[float, float] | None:
    """The seconds the given cores have spent so far, in all and idle (waiting for input or
    output counts as idle), summed over them, from /proc/stat's line for each core (Linux);
    None where it cannot be read. Only this run's cores: other work on other cores of a
    shared box (a container's cpuset, a taskset) leaves them free."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and line[3:4].isdigit()]
        total = idle = 0.0
        seen = 0
        for fields in lines:
            if int(fields[0][3:]) in cpus:
                ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
                total += sum(ticks)
                idle += ticks[3] + ticks[4]
                seen += 1
        if seen != len(cpus):
            return None
        hz = os.sysconf("SC_CLK_TCK")
        return total / hz, idle / hz
    except (OSError, ValueError, IndexError):
        return None


def process_start(pid: int) -> float | None:
    """When a process started, so that a process id the system has since given to another
    process is not taken for the first one's; only ever compared with this same figure read
    on the same host. On Linux the clock ticks since boot from /proc/PID/stat, whether psutil
    is installed or not (the process that writes it and the one that checks it may differ in
    that), and a figure the wall clock being set never moves, where psutil's create_time
    there adds a boot time that does; elsewhere psutil's create_time, seconds since the
    epoch; None where neither can be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        return int(stat.rsplit(")", 1)[1].split()[19])  # field 22, after the name in parentheses
    except (OSError, ValueError, IndexError):
        pass
    psutil = psutil_or_none()
    if psutil is None:
        return None
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def pid_exists(pid: int) -> bool:
    """Whether a process of this id exists here (another user's counts)."""
    if pid <= 0:
        return False
    psutil = psutil_or_none()
    if psutil is not None:
        return psutil.pid_exists(pid)
    if os.name == "nt":  # os.kill would end the process there; without psutil it cannot tell
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process of that id: it exists
        return True
    return True
