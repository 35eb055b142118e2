"""Following a run from its files, in another process: what `reverse-tui watch RUN` shows.

A run keeps config.toml, status.json (engine/runs/status.py), epochs.jsonl, snapshots.jsonl
and progress.json (engine/runs/live.py) up to date as it trains. `Follower.poll()` reads what is
new in them and returns events like the trainer's own: `Watching` once the run's
configuration is there, `EpochDone` per epoch line, `Snapshot` per snapshot line, `Progress`
(a BatchDone and the batch losses since the last one seen), `Note` when the run changes phase,
and `RunEnded` last: status.json says the run finished, stopped or failed, or it still says
running but its process is gone.

It only reads: files are opened for reading, nothing is created, renamed or touched, so a
run followed is byte for byte the run unfollowed. The appended files are read from where the
last poll stopped, and only up to their last complete line (the writer may be half-way
through one). A file replaced (a resumed run writes its .jsonl files afresh) is read again
from its start; the epochs and snapshots already given are not given twice.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import FollowError
from ..train.config import Config
from ..train.events import BatchDone, EpochDone, Snapshot
from .folders import ARTEFACTS, BEST, CHECKPOINTS, LATEST, NAME_PATTERN, RUNS, read_pointer
from .live import EPOCHS, PROGRESS, PROGRESS_FORMAT, SNAPSHOTS
from .status import STATUS, observed, read_status

POLL_INTERVAL = 0.25  # seconds between polls: as often as the run writes its progress


@dataclass
class Watching:
    """The run's configuration is on disk: what the screen's header shows."""

    folder: Path
    cfg: Config
    name: str
    facts: str = ""  # what the trainer built (vocabulary, parameters, device), when known
    pid: int | None = None  # the run's process, from status.json when it is there
    host: str | None = None
    checkpoint: Path | None = None  # its best model, from status.json when it is there


@dataclass
class Progress:
    """Where the epoch stands. losses: those of batches event.batch-len(losses)+1 .. event.batch
    not given before (a poll that missed writes still gets the losses they held)."""

    event: BatchDone
    losses: list[float] = field(default_factory=list)
    facts: str = ""  # what the trainer built: vocabulary, parameters, device


@dataclass
class Note:
    """A change of phase for the status line (training ended, the evaluation runs)."""

    text: str


@dataclass
class RunEnded:
    """state: finished, stopped, failed, or gone (its process ended without saying how)."""

    state: str
    line: str
    checkpoint: Path | None  # the run's best model, from status.json
    evaluated: bool = False


FollowEvent = Watching | Progress | EpochDone | Snapshot | Note | RunEnded


def resolve_run(spec: str | Path, runs: Path = RUNS, checkpoints: Path = CHECKPOINTS) -> Path:
    """The run folder RUN means: a path to a run folder, a run's name (or `latest`) under
    runs/, its checkpoints/NAME folder or a best.pt in it. FollowError: one line."""
    path = Path(spec)
    if str(spec) == LATEST or path.name == LATEST:
        pointed = read_pointer(runs / LATEST if str(spec) == LATEST else path)
        if pointed is None:
            raise FollowError(f"{spec}: no newest run to watch (no {runs / LATEST})")
        path = pointed
    candidates = [path]
    if len(path.parts) == 1 and NAME_PATTERN.fullmatch(str(spec)):
        candidates.insert(0, runs / path)
    if path.is_file() and path.name == BEST:
        candidates.append(runs / path.parent.name)  # checkpoints/NAME/best.pt
    if path.is_dir() and path.parent == checkpoints:
        candidates.append(runs / path.name)  # checkpoints/NAME
    for c in candidates:
        if c.is_dir() and any((c / f).exists() for f in ARTEFACTS):
            return c
    for c in candidates:
        if c.is_dir():
            raise FollowError(f"{c}: not a run folder (no {STATUS}, config.toml or {EPOCHS} in it)")
    raise FollowError(f"{spec}: no such run (give a run's name under {runs}/ or the path to its folder)")


class _Lines:
    """The complete lines appended to a file since the last read, as JSON objects."""

    def __init__(self, path: Path):
        self.path, self.offset, self.identity = path, 0, None

    def read(self) -> list[dict]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        identity = (st.st_dev, st.st_ino)
        if identity != self.identity or st.st_size < self.offset:  # a new file: from its start
            self.identity, self.offset = identity, 0
        if st.st_size == self.offset:
            return []
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(st.st_size - self.offset)
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:  # half a line so far
            return []
        self.offset += end + 1
        rows = []
        for line in data[: end + 1].splitlines():
            try:
                row = json.loads(line)
            except ValueError:  # a damaged line: the others still count
                continue
            if isinstance(row, dict):
                rows.append(row)
        return rows


def describe_end(status: dict, state: str) -> str:
    """The status line's words for a run's end."""
    epochs = status.get("epochs")
    trained = f" after {epochs} epoch{'s' if epochs != 1 else ''}" if isinstance(epochs, int) else ""
    if state == "gone":
        return (
            f"the run's process (pid {status.get('pid')} on {status.get('host')}) is gone; "
            "it never wrote how it ended (killed, or a crash); --resume continues it"
        )
    if state == "failed":
        return f"run failed{trained}: {status.get('error') or 'no reason given'}"
    evaluated = "; its best model was evaluated" if status.get("evaluated") else ""
    return f"run {state}{trained}{evaluated}"


class Follower:
    """One run folder, followed: call poll() as often as wanted (see the module's doc)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.epochs = _Lines(self.folder / EPOCHS)
        self.snapshots = _Lines(self.folder / SNAPSHOTS)
        self.started = False
        self.ended: RunEnded | None = None
        self.last_epoch = 0  # the newest epoch given
        self.last_snapshot: tuple[int, int] = (0, 0)  # (epoch, batch) of the newest snapshot given
        self.last_batch: tuple[int, int] = (0, 0)  # (epoch, batch) of the newest progress given
        self.progress_key: tuple | None = None
        self.phase: str | None = None
        self.remote_noted = False

    def poll(self) -> list[FollowEvent]:
        if self.ended is not None:
            return []
        events: list[FollowEvent] = []
        # the status first, the files after: every line written before the status said the
        # run ended is read in this same poll, before the end is given
        try:
            status = read_status(self.folder)
        except ValueError:
            status = None  # being replaced, or damaged: the next poll reads it again
        if not self.started:
            cfg = self._config()
            if cfg is None:
                return events
            self.started = True
            facts = self._facts()
            pid, host, best = ((status or {}).get(k) for k in ("pid", "host", "checkpoint"))
            best = Path(best) if isinstance(best, str) else None
            events.append(Watching(self.folder, cfg, self.folder.name, facts, pid, host, best))
        for row in self.epochs.read():
            try:
                ev = EpochDone.from_dict(row)
            except (TypeError, ValueError):
                continue
            if ev.epoch > self.last_epoch:
                self.last_epoch = ev.epoch
                events.append(ev)
        for row in self.snapshots.read():
            try:
                snap = Snapshot.from_dict(row)
            except (KeyError, TypeError, ValueError):
                continue
            if (snap.epoch, snap.batch) > self.last_snapshot:
                self.last_snapshot = (snap.epoch, snap.batch)
                events.append(snap)
        progress = self._progress()
        if progress is not None:
            events.append(progress)
        if status is not None:
            events.extend(self._state(status))
        return events

    def _config(self) -> Config | None:
        try:
            values = Config.read_toml(self.folder / "config.toml")
            # the run writes every field: one without them is not this run's yet
            return Config.from_dict(values) if "epochs" in values else None
        except (OSError, ValueError, TypeError):
            return None  # not written yet (the run is building its data)

    def _facts(self) -> str:
        try:
            return str(json.loads((self.folder / PROGRESS).read_text()).get("facts") or "")
        except (OSError, ValueError, AttributeError):
            return ""

    def _progress(self) -> Progress | None:
        path = self.folder / PROGRESS
        try:
            st = os.stat(path)
            key = (st.st_ino, st.st_mtime_ns, st.st_size)
            if key == self.progress_key:
                return None
            p = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        self.progress_key = key
        try:
            if p.get("format") != PROGRESS_FORMAT:
                return None
            epoch, batch, batches = int(p["epoch"]), int(p["batch"]), int(p["batches"])
            losses = [float(x) for x in p.get("losses") or []]
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if batches <= 0 or (epoch, batch) <= self.last_batch:
            return None
        seen = self.last_batch[1] if self.last_batch[0] == epoch else 0
        first = batch - len(losses)  # losses[k] is batch first+k+1's
        # an epoch already given: its own line holds its losses; the bars still move
        fresh = losses[max(0, seen - first) :] if epoch > self.last_epoch else []
        self.last_batch = (epoch, batch)
        return Progress(BatchDone(epoch, batch, batches), fresh, str(p.get("facts") or ""))

    def _state(self, status: dict) -> list[FollowEvent]:
        state = status["state"]
        checkpoint = Path(status["checkpoint"]) if isinstance(status.get("checkpoint"), str) else None
        if state != "running":
            self.ended = RunEnded(state, describe_end(status, state), checkpoint, bool(status.get("evaluated")))
            return [self.ended]
        seen = observed(status)
        if seen.state != "running":  # the file says running, its process is gone
            self.ended = RunEnded("gone", describe_end(status, "gone"), checkpoint)
            return [self.ended]
        events: list[FollowEvent] = []
        if seen.problem and not self.remote_noted:  # on another host: its end shows when the file says so
            self.remote_noted = True
            events.append(Note(f"the run {seen.problem}; its end shows when its status.json says so"))
        phase = status.get("phase")
        if phase != self.phase:
            self.phase = phase
            if phase == "evaluating":
                trained = f"training {status.get('training')} after {status.get('epochs')} epochs"
                events.append(Note(f"{trained}; evaluating the best model"))
        return events


def is_running(folder: Path) -> bool:
    """Whether the run in folder is going on now, by its status.json and its process."""
    try:
        status = read_status(Path(folder))
    except ValueError:
        return False
    return status is not None and observed(status).state == "running"


def follow(
    folder: Path,
    should_stop: Callable[[], bool] = lambda: False,
    interval: float = POLL_INTERVAL,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[FollowEvent]:
    """The run's events as they come, until it ends (RunEnded is the last) or should_stop()."""
    follower = Follower(folder)
    while not should_stop():
        yield from follower.poll()
        if follower.ended is not None:
            return
        sleep(interval)
