"""How many CPU threads a run uses when --threads is not given, and why.

PyTorch's OpenMP runtime (libgomp, which the C kernels share) splits each op over all
threads and makes every thread wait for the others at the end of it, spinning first. A
training batch is ~1,000 such parallel regions, each a few microseconds of work. Alone on
the machine that is fine; when another job shares the cores, a region cannot finish until
the operating system has scheduled all of its threads, and each one waits for a time slice.
Measured with bench/threads.py on 2 cores (one epoch, two identical runs at once):

  default model (hidden 64):    2 threads 1.59 s alone, 11.96 s shared (7.5x);
                                1 thread  1.66 s alone,  1.70 s shared
  notebook model (hidden 256):  2 threads 1.61 s alone,  5.47 s shared (3.4x);
                                1 thread  2.55 s alone,  2.53 s shared

A bounded spin (GOMP_SPINCOUNT=10000) did not help (6.8x), and a passive wait policy
halves the speed of a run alone, so the waiting policy stays libgomp's. What helps is fewer
threads: a model whose matrices are all too small to gain much from a second thread (hidden
< 128 and an output layer over fewer than 128 words: the built-in sentences' 38) runs on one;
a larger one takes every usable core, and its run says so when the machine is already busy.
On your own text (a copy model over 150-1,529 words, hidden 64) a second thread made an
epoch 1.4-1.5x faster (licenses.txt, 1,529 words: 5.4 s -> 3.65 s).

The evaluation after training runs its parts side by side, one thread each, whatever
training used: on licenses.txt's model that took 3.2-3.75 s against 4.2-4.6 s for the parts
one after another on two threads each.

A run given no --threads does better than either fixed choice: ThreadsByLoad watches
what other work takes of this run's cores as it trains and uses every core while they are
otherwise idle, one thread while they are shared. With the C kernels' attention split over
rows, two threads alone made the default model's epoch 1.2-1.3x faster (1.2-1.3 s against
1.5-1.7 s), and the count changes none of a run's figures (tests/test_threads.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

from .machine import cores_times, cpu_times, usable_cpus

T = TypeVar("T")

SMALL_HIDDEN = 128  # below this (and SMALL_VOCAB), a second thread gains little (see above)
SMALL_VOCAB = 128
# the threads torch would use if told nothing (OMP_NUM_THREADS, else the cores), read before
# a face sets its own
TORCH_THREADS = torch.get_num_threads()


def usable_cores() -> int:
    """Cores this process may run on (a taskset or a container's cpuset counts)."""
    return len(usable_cpus())


def most_threads() -> int:
    """Every usable core, up to what torch would take unasked (OMP_NUM_THREADS): the most a
    run on every core, or one that follows the load (ThreadsByLoad), trains on."""
    return max(1, min(usable_cores(), TORCH_THREADS))


def default_threads(hidden_dim: int, vocab_size: int = 0) -> int:
    """The threads a run trains on: one for a small model, else every usable core. The
    vocabulary is known only once the data is read (run_job asks again then; 0: not yet)."""
    if hidden_dim < SMALL_HIDDEN and vocab_size < SMALL_VOCAB:
        return 1
    return most_threads()


class ThreadsByLoad:
    """Training's thread count, kept to the cores that nothing else is using. Every
    CHECK_EVERY batches it looks at this run's cores: their busy time less this process's own
    CPU time, over the window since its last decision, is what other work takes of them (in
    cores). It starts on one thread, so that a run started beside another never begins by
    fighting it, and then uses as many threads as there are cores the other work leaves free
    (a quarter of a core or less counts as free), up to `most`. A window shorter than WINDOW
    seconds a core is too coarse for /proc/stat's ticks: it goes on until it is long enough.

    read: the cores' (all, idle) seconds, or None where they cannot be read (then the run
    stays on one thread); own: this process's CPU seconds; apply: sets the count (torch's,
    which the C kernels read per batch). Injected, so that the rule is tested on readings."""

    CHECK_EVERY = 8  # batches: ~0.25 s at the defaults, long enough to read, short enough to react
    WINDOW = 0.2  # seconds of each core's time: 20 ticks of /proc/stat a core
    FREE = 0.25  # of a core: other work this small (a terminal, a follower) leaves the core free

    def __init__(
        self,
        most: int,
        cpus: frozenset[int] | None = None,
        read: Callable[[frozenset[int]], tuple[float, float] | None] | None = None,
        own: Callable[[], float] = time.process_time,
        apply: Callable[[int], None] = torch.set_num_threads,
    ):
        self.most = most
        self.cpus = cpus if cpus is not None else usable_cpus()
        self.read, self.own, self.apply = read or cores_times, own, apply
        self.threads = 1
        apply(1)
        self.batches = 0
        self.mark = self._sample()
        self.changes: list[tuple[int, int]] = []  # (batches trained, threads from then on)

    def _sample(self) -> tuple[float, float, float] | None:
        cores = self.read(self.cpus)
        return None if cores is None else (*cores, self.own())

    def after_batch(self) -> int | None:
        """Called after each batch: the new thread count when this look changed it, else None."""
        self.batches += 1
        if self.mark is None or self.batches % self.CHECK_EVERY:
            return None
        now = self._sample()
        if now is None:
            return None
        total, idle, own = (b - a for a, b in zip(self.mark, now))
        n = len(self.cpus)
        if total / n < self.WINDOW:
            return None
        self.mark = now
        others = max(0.0, total - idle - own) / (total / n)  # cores' worth, over the window
        want = max(1, min(self.most, int(n - others + self.FREE)))
        if want == self.threads:
            return None
        self.threads = want
        self.apply(want)
        self.changes.append((self.batches, want))
        return want


def load_is_readable() -> bool:
    """Whether ThreadsByLoad can follow the load here: more than one core to take, and their
    times readable (Linux's /proc/stat). Elsewhere a run keeps the fixed choice (default_threads)."""
    return most_threads() > 1 and cores_times(usable_cpus()) is not None


def busy_cores(window: float = 0.2) -> float | None:
    """How many cores other work keeps busy right now: the machine's busy time over a short
    window, while this process waits (engine/train/machine.py's cpu_times; None where it cannot be
    read). Not the load average, which still counts this very run's own last minute."""
    first = cpu_times()
    if first is None:
        return None
    time.sleep(window)
    last = cpu_times()
    if last is None:
        return None
    total, idle = last[0] - first[0], last[1] - first[1]
    if total <= 0:
        return None
    cores = os.cpu_count() or 1
    # psutil's times are floats: on an idle machine the idle delta can pass the total by rounding
    return min(max((total - idle) / total * cores, 0.0), float(cores))


def busy_note(threads: int) -> str | None:
    """A line for the run's header when other work already keeps cores busy and this run
    uses more than one thread (advice only: it changes nothing)."""
    if threads < 2:
        return None
    busy = busy_cores()
    if busy is None or busy < 0.75:
        return None
    return (
        f"note: other work keeps {busy:.1f} of {os.cpu_count()} cores busy; {threads} threads that "
        "share cores with another job wait on each other (measured 3-7x slower): "
        "--threads 1 keeps this run at full speed"
    )


def core_left_free(device: torch.device, processes: int = 1, threads: int | None = None) -> bool:
    """Whether training (`processes` of this run on this box, each on `threads`, by default
    this process's thread count) leaves a core free for other work."""
    threads = torch.get_num_threads() if threads is None else threads
    return device.type != "cpu" or threads * processes < usable_cores()


@contextmanager
def evaluation_threads(device: torch.device) -> Iterator[int]:
    """How many evaluations may run at once after training (the value given): on a CPU one
    per usable core, each on one intra-op thread (decoding releases the GIL in its kernels,
    so two Python threads use two cores; threads that each fan out over every core would
    wait on each other, see above), the run's own thread count given back afterwards; else
    one, as a GPU runs them one after another anyway."""
    if device.type != "cpu" or usable_cores() < 2:
        yield 1
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers, threads started below, take it up
    try:
        yield usable_cores()
    finally:
        torch.set_num_threads(before)


def in_parallel(jobs: dict[str, Callable[[], T]], workers: int) -> dict[str, T]:
    """Run independent jobs (no shared random state, read-only model) on up to `workers`
    threads; their results by name, whatever order they finish in. The first exception is
    raised here, after every job has stopped."""
    if workers <= 1 or len(jobs) <= 1:
        return {name: job() for name, job in jobs.items()}
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(workers, len(jobs)), thread_name_prefix="evaluate") as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: f.result() for name, f in futures.items()}
