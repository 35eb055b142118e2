"""runs/NAME/status.json: whether a run is still going and, once it has ended, how.

The job (engine/job.py) writes it, rank 0 alone, at three moments, each time to a temporary
file renamed over the last, so a reader never sees half of one:

- training has started: state "running", phase "training", with the process's id, its
  host and its start time (so that a later reader can tell whether that process still runs),
  and the seed group the run is one of (engine/runs/groups.py), if any;
- training has ended: phase "evaluating" (state still "running") with how training ended,
  or, when there is no model to evaluate, the end itself;
- the run has ended: state "finished", "stopped" or "failed", phase "ended", whether the
  best model was evaluated, and the error in one line where there was one; `failed_parts`
  lists the parts of an evaluation that raised while the rest was written (each
  {"part", "error"}, as report.json's).

A run killed outright (kill -9, a closed terminal, a crash) never writes its end; its file
still says "running", and `observed` works out from the process id that it is not: the run
stopped or failed, and its best checkpoint is kept for --resume. A resumed run writes the
same file again, keeping the time the run first started.
"""

from __future__ import annotations

import json
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..train.machine import pid_exists, process_start

STATUS = "status.json"
FORMAT = "reverse-tui run status v1"
STATES = ("running", "finished", "stopped", "failed")


def process_alive(pid: int, started: float | None) -> bool:
    """Whether the process pid, started at `started` (process_start), still runs here."""
    if not pid_exists(pid):
        return False
    now = process_start(pid)
    return started is None or now is None or now == started


def write_status(folder: Path, status: dict) -> None:
    """status.json in folder, written to a temporary file and renamed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{STATUS}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump({"format": FORMAT, **status}, f, indent=1)
        os.replace(tmp, folder / STATUS)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_status(folder: Path) -> dict | None:
    """The status.json of a run folder; None when there is none; ValueError (one line) when
    it is not one of this format."""
    path = folder / STATUS
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ValueError(f"{STATUS}: cannot read it ({e.strerror or e})") from None
    try:
        status = json.loads(text)
    except ValueError:
        raise ValueError(f"{STATUS}: not JSON (half-written or damaged)") from None
    if not isinstance(status, dict) or status.get("format") != FORMAT or status.get("state") not in STATES:
        raise ValueError(f"{STATUS}: not a reverse-tui run status")
    return status


@dataclass
class Observed:
    """What a status.json says, checked against the processes running now."""

    state: str  # running, finished, stopped, failed
    problem: str | None = None  # one line, where the file and the facts disagree
    started: float | None = None  # seconds since the epoch: when the run first started


def observed(status: dict) -> Observed:
    started = status.get("started") if isinstance(status.get("started"), (int, float)) else None
    state = status["state"]
    if state != "running":
        problem = status.get("error") if state == "failed" else None
        if state != "failed" and status.get("evaluated") is False and status.get("epochs"):
            problem = "its best model was not evaluated (no report.json)"
        lost = failed_parts_line(status.get("failed_parts"))
        if lost:
            problem = f"{problem}; {lost}" if problem else lost
        return Observed(state, problem, started)
    pid, host = status.get("pid"), status.get("host")
    if host != socket.gethostname():
        return Observed("running", f"says it runs on {host}, which cannot be checked from here", started)
    if isinstance(pid, int) and process_alive(pid, status.get("process_start")):
        return Observed("running", None, started)
    # the process is gone without writing its end
    training = status.get("training")  # how training ended, if it did before the process went
    if training in ("finished", "stopped", "failed"):
        return Observed(training, f"its process ({pid}) ended during the evaluation; no report.json", started)
    return Observed(
        "failed",
        f"its process ({pid}) is gone and never wrote how it ended (killed, or a crash); --resume continues it",
        started,
    )


def failed_parts_line(parts) -> str | None:
    """One line naming the parts of an evaluation that failed (status.json's or report.json's
    `failed_parts`), with the first one's error; None when none did."""
    if not isinstance(parts, list):
        return None
    parts = [p for p in parts if isinstance(p, dict) and isinstance(p.get("part"), str)]
    if not parts:
        return None
    names = ", ".join(p["part"] for p in parts)
    return f"part of its evaluation failed ({names}): {parts[0].get('error')}"


class StatusFile:
    """The job's side: status.json of one run, written as it goes (see the module's doc)."""

    def __init__(self, folder: Path, name: str | None, checkpoint: Path, group: str | None = None):
        """group: the seed group the run is one of (engine/runs/groups.py), None for most."""
        self.folder = Path(folder)
        try:  # a resumed run: the time it first started
            before = read_status(self.folder)
        except ValueError:
            before = None
        now = time.time()
        self.status = {
            "name": name,
            "group": group,
            "checkpoint": str(checkpoint),
            "state": "running",
            "phase": "training",
            "started": (before or {}).get("started", now),
            "resumed": now if before else None,
            "ended": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "process_start": process_start(os.getpid()),
            "training": None,
            "epochs": None,
            "evaluated": None,
            "error": None,
            "failed_parts": [],
        }
        self._write()

    def training_ended(self, reason: str, epochs: int, evaluating: bool, error: str | None) -> None:
        self.status.update(training=reason, epochs=epochs, error=error)
        if evaluating:
            self.status["phase"] = "evaluating"
            self._write()
        else:
            self.end(reason, evaluated=False)

    def end(self, state: str, evaluated: bool, error: str | None = None, failed_parts: list[dict] = ()) -> None:
        """failed_parts: the parts of the evaluation that raised, each {"part", "error"}."""
        if self.status["phase"] == "ended":
            return
        self.status.update(state=state, phase="ended", ended=time.time(), evaluated=evaluated)
        self.status["failed_parts"] = [dict(p) for p in failed_parts]
        if error:
            self.status["error"] = error
        self._write()

    def _write(self) -> None:
        try:
            write_status(self.folder, self.status)
        except OSError:  # a full disk must not end the run; the listing then says "no status"
            pass
