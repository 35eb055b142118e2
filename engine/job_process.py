"""`run_job` in a process of its own: the same events, for a face whose own thread would slow
the training down.

Why: Python runs one thread at a time. In the app, Textual's thread (messages, styles, layout,
painting) holds that lock whenever it works, and the training thread, which takes it between
torch calls, waits for it: epochs trained in the app's process ran 5-11% slower than headless
(bench/README.md, "The app against a headless run"). A child process trains with an
interpreter of its own, as `reverse-tui --no-ui` does; the face only reads its events.

How: `python -m engine.job_process` is a fresh interpreter (fork would copy the parent's
threads, its CUDA context and the terminal app with them). It imports the engine, then reads
the job's arguments from its stdin and writes the job's events on its stdout, each pickled in
a frame of multiprocessing.connection's; the parent's words go the other way: "stop" (read
after every batch, as the headless run reads its signal flag), and after TrainingEnded "go"
(evaluate) or "close" (end, as a consumer that stops iterating ends run_job). Batches come back
as engine/train/events.py's ProgressBuffer tells them, a few a second, each with the losses of
the batches since the one before: one read from the device a message, as in the app's bridge.
A child that dies (killed, out of memory) ends the run as failed, with its last line of stderr.

    prestart()              # optional: the child imports torch now, while the face starts up
    for ev in run_job_in_process(cfg, checkpoint, out, should_stop=..., watch=[...]):
        ...

Where a child cannot start (no interpreter to run), the job runs in this process instead.

When not: a run that trains on every core of a CPU (child_pays). There the face's thread has
no core of its own, and in a child each burst of its work takes a core from one of the
training's threads while the other waits for it at the op's end: the app's epochs on a text
of its own ran 30.5% slower than headless in a child and 15.1% in a thread of the app (medians
of 12; the thread ahead in two bench runs of three), where the training's thread waits for the
lock with its cores idle and the app's work fits into those waits (bench/README.md, "The app
against a headless run").
"""

from __future__ import annotations

import collections
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from multiprocessing.connection import Connection
from pathlib import Path

import torch

from .train.events import BatchDone, EpochDone, ProgressBuffer
from .train.threads import SMALL_VOCAB, core_left_free, default_threads, load_is_readable, most_threads

ROOT = Path(__file__).resolve().parents[1]  # the folder that holds engine/
CHILD_MODULE = "engine.job_process"  # what the child runs (tests: the same with their stand-ins)
STDERR_LINES = 20  # the child's last lines of stderr, kept for a failure's message

_spare: _Child | None = None  # a child started ahead (prestart), waiting for its job
_spare_lock = threading.Lock()


class ChildGone(Exception):
    """The child's end of the pipe closed before it said it had finished."""


class _Child:
    """One `python -m engine.job_process`, its two frames' pipes and its stderr's last lines."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", CHILD_MODULE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            start_new_session=True,  # a Ctrl+C at the terminal is the face's to handle, not the child's
        )
        # the Connections own duplicates, so that closing Popen's files closes nothing of theirs
        self.to_child = Connection(os.dup(self.proc.stdin.fileno()), readable=False)
        self.from_child = Connection(os.dup(self.proc.stdout.fileno()), writable=False)
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        # drained all the time: a child that writes much would otherwise block on a full pipe
        threading.Thread(target=self._drain, name="job-process-stderr", daemon=True).start()

    def _drain(self) -> None:
        for raw in self.proc.stderr:
            self.stderr.append(raw.decode(errors="replace").rstrip())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message) -> bool:
        """False when the child is gone."""
        try:
            self.to_child.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
            return True
        except OSError:
            return False

    def receive(self, timeout: float):
        """The child's next message; None when none came within timeout; ChildGone at its end."""
        try:
            if not self.from_child.poll(timeout):
                return None
            return pickle.loads(self.from_child.recv_bytes())
        except (EOFError, OSError) as e:
            raise ChildGone() from e

    def why_gone(self) -> str:
        """One line on a child that ended without a word."""
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        last = next((line for line in reversed(self.stderr) if line.strip()), "")
        if code is None:
            how = "no exit"
        elif code < 0:
            how = f"killed by signal {-code}"
        else:
            how = f"exit code {code}"
        return f"the training process ended unexpectedly ({how})" + (f": {last}" if last else "")

    def close(self) -> None:
        """Says "close" (a child still waiting ends as run_job does when left) and lets it go:
        it finishes writing its files by itself, and is never killed mid-write."""
        self.send("close")
        for conn in (self.to_child, self.from_child):
            conn.close()


def child_pays(cfg, threads: int | None = None, by_load: bool = False) -> bool:
    """Whether a face should train this run in a child process (else in a thread of its own
    process): yes, unless it trains on a CPU with a thread on every usable core, which the
    face's thread would then take from it (see above). threads: the face's --threads, or None
    for the run's default, told before the data is read: a text of one's own is taken to have
    the large vocabulary that gives it every core (every text measured had over 1,000 words).
    by_load: with no --threads, the run follows the load (engine/train/threads.py's
    ThreadsByLoad) where the cores' load can be read, so it is planned for the most it may
    take, every usable core; elsewhere for the fixed choice."""
    on_cpu = cfg.device == "cpu" or (cfg.device == "auto" and not torch.cuda.is_available())
    device = torch.device("cpu" if on_cpu else "cuda")
    if threads:
        expected = threads
    elif by_load and load_is_readable():
        expected = most_threads()
    else:
        expected = default_threads(cfg.hidden_dim, SMALL_VOCAB if cfg.corpus else 0)
    return core_left_free(device, threads=expected)


def prestart() -> None:
    """Starts a child ahead, so that its imports overlap the caller's own start-up."""
    global _spare
    with _spare_lock:
        if _spare is None or not _spare.alive():
            try:
                _spare = _Child()
            except OSError:
                _spare = None


def _take_child() -> _Child:
    global _spare
    with _spare_lock:
        child, _spare = _spare, None
    if child is not None and child.alive():
        return child
    return _Child()


def run_job_in_process(
    cfg, checkpoint: str | Path, out: str | Path, *, should_stop: Callable[[], bool], **kwargs
) -> Iterator:
    """run_job's events (engine/job.py), trained by a child process with this process's torch
    thread count. should_stop() is asked here between the child's messages (about ten times a
    second while none comes) and said to the child, which stops after its batch."""
    from .job import Failed, TrainingEnded, run_job

    try:
        child = _take_child()
    except OSError:  # no child to be had: the same run, here
        yield from run_job(cfg, checkpoint, out, should_stop=should_stop, **kwargs)
        return
    t0 = time.perf_counter()
    args = {"cfg": cfg, "checkpoint": checkpoint, "out": out, "threads": torch.get_num_threads(), "kwargs": kwargs}
    epochs: list[EpochDone] = []
    ended = False
    asked_to_stop = False
    try:
        if not child.send(args):
            raise ChildGone()
        while True:
            ev = child.receive(0.1)
            if not asked_to_stop and should_stop():
                child.send("stop")
                asked_to_stop = True
            if ev is None:
                continue
            if isinstance(ev, str) and ev == "end":
                return
            if isinstance(ev, EpochDone):
                epochs.append(ev)
            yield ev
            if isinstance(ev, TrainingEnded):
                ended = True
                child.send("go")  # the consumer asked for what comes next: the evaluation
    except ChildGone:
        error = child.why_gone()
        if not ended:
            best = max((e.epoch for e in epochs if e.best), default=None)
            yield TrainingEnded("failed", len(epochs), best, [], time.perf_counter() - t0, error)
            if best is None:
                return  # nothing saved, nothing to evaluate
        # a best model is on disk (its checkpoint is written before its epoch is told), but the
        # child that held its test set is gone: not evaluated, and said so
        yield Failed("evaluate", f"not evaluated: {error}")
    finally:
        child.close()


# -- the child --------------------------------------------------------------------------------
def serve() -> None:
    """The child's side: the job's arguments in, its events out, until it ends or is closed."""
    # the protocol's pipes are duplicates; stdout becomes stderr, so that a stray print cannot
    # break a frame, and stdin /dev/null
    inbox = Connection(os.dup(0), writable=False)
    outbox = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the face says stop; it takes the Ctrl+C

    from .job import TrainingEnded, run_job  # the imports: ahead of the job, waiting for it

    state = {"stop": False, "parent_gone": False}

    def read():
        try:
            return pickle.loads(inbox.recv_bytes())
        except (EOFError, OSError):
            state["parent_gone"] = state["stop"] = True
            return "close"

    def send(message) -> None:
        if state["parent_gone"]:
            return
        try:
            data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # an exception object that does not pickle: its line is enough
            data = pickle.dumps(replace(message, exception=None), protocol=pickle.HIGHEST_PROTOCOL)
        try:
            outbox.send_bytes(data)
        except OSError:  # the face is gone: stop after this batch, keep what was trained
            state["parent_gone"] = state["stop"] = True

    def should_stop() -> bool:
        while not state["stop"] and inbox.poll():
            read()  # "stop", or the pipe's end
            state["stop"] = True
        return state["stop"]

    args = read()
    if args == "close":
        return
    torch.set_num_threads(args["threads"])
    job = run_job(args["cfg"], args["checkpoint"], args["out"], should_stop=should_stop, **args["kwargs"])
    progress = ProgressBuffer()
    try:
        for ev in job:
            if isinstance(ev, BatchDone):
                ev = progress.batch(ev, time.monotonic())
                if ev is None:
                    continue
            send(ev)
            if isinstance(ev, TrainingEnded) and not _go_on(read, state):
                return  # job.close() below: as run_job's consumer leaving
        send("end")
    finally:
        job.close()


def _go_on(read, state) -> bool:
    """After TrainingEnded: wait for the face's "go" (evaluate) or "close"; a late "stop" is
    for the training that has just ended."""
    while not state["parent_gone"]:
        word = read()
        if word in ("go", "close"):
            return word == "go"
    return False


if __name__ == "__main__":
    serve()
