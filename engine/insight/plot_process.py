"""The run's figures, drawn by a child process that starts while the run is still evaluating.

Why: matplotlib and seaborn (which pulls in scipy.stats and pandas) take ~1.7 s to import,
and drawing both figures ~0.8 s more. In the run's own process that work would wait for the
evaluation, or share the GIL with its threads; a child imports them on a core the
evaluation leaves free (the GIL keeps it to ~1.4 of 2), then draws as soon as the figures'
data arrive. If the child cannot start or fails, `draw` returns None and the caller draws
in its own process, with the same functions (engine/insight/plots.py), so a broken child can cost
time but never a figure. Each figure is drawn by itself: one that raises is reported by
its path (PlotProcess.failed, draw_figures), and the others are still drawn.

    plotter = PlotProcess()            # spawns: python -m engine.insight.plot_process
    ...                                # evaluate
    paths = plotter.draw([heatmap_job(...), loss_curve_job(...)])   # None: draw here instead
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import one_line

ROOT = Path(__file__).resolve().parents[2]  # the folder that holds engine/


def heatmap_job(
    attention: np.ndarray, source_tokens: Sequence[str], output_tokens: Sequence[str], path: str | os.PathLike
) -> dict:
    return {
        "kind": "attention_heatmap",
        "attention": np.asarray(attention, dtype=float).tolist(),
        "source_tokens": list(source_tokens),
        "output_tokens": list(output_tokens),
        "path": str(Path(path).resolve()),
    }


def loss_curve_job(history: Sequence[dict], path: str | os.PathLike, best_epoch: int | None) -> dict:
    return {
        "kind": "loss_curve",
        "history": [dict(h) for h in history],
        "best_epoch": best_epoch,
        "path": str(Path(path).resolve()),
    }


def timeline_job(snapshots: Sequence[dict], path: str | os.PathLike) -> dict:
    return {"kind": "attention_timeline", "snapshots": list(snapshots), "path": str(Path(path).resolve())}


def draw_here(job: dict) -> Path:
    """One figure, in this process."""
    from . import plots

    if job["kind"] == "attention_timeline":
        return plots.attention_timeline_gif(job["snapshots"], job["path"])
    if job["kind"] == "attention_heatmap":
        return plots.attention_heatmap(
            np.array(job["attention"], dtype=float), job["source_tokens"], job["output_tokens"], job["path"]
        )
    return plots.loss_curve(job["history"], job["path"], job["best_epoch"])


class PlotProcess:
    def __init__(self) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
            "OMP_NUM_THREADS": "1",
            "MPLBACKEND": "Agg",
        }
        try:
            self.proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", "engine.insight.plot_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                env=env,
            )
        except OSError:
            self.proc = None
        # a run abandoned mid-way (the app quit during training) drops its PlotProcess: the
        # child goes with it rather than waiting on its stdin until the app exits
        self._stop = weakref.finalize(self, _kill, self.proc)
        self.failed: dict[str, str] = {}  # path -> one line: the figures the child could not draw

    def draw(self, jobs: list[dict], timeout: float = 120.0) -> list[Path] | None:
        """Hand the figures over and wait for them: their paths, or None when the child is
        missing, failed or took longer than timeout (the caller then draws them itself)."""
        return self.collect(timeout) if self.submit(jobs) else None

    def submit(self, jobs: list[dict], more: bool = False) -> bool:
        """Hand the figures over and go on: the child draws them while the caller works.
        more: others follow in a later submit (the child starts on these now); the last
        submit has more=False. False when the child is missing or gone (the caller draws
        them itself)."""
        if self.proc is None or self.proc.stdin is None:  # no child, or figures already handed over
            return False
        try:
            self.proc.stdin.write(json.dumps(jobs) + "\n")  # one line a submit
            if more:
                self.proc.stdin.flush()
            else:
                self.proc.stdin.close()
                self.proc.stdin = None  # handed over: communicate() then only reads
        except OSError:
            self.close()
            return False
        return True

    def collect(self, timeout: float = 120.0) -> list[Path] | None:
        """The paths of the figures submitted, once drawn (those that raised: in self.failed);
        None as for draw."""
        if self.proc is None:
            return None
        try:
            out, _ = self.proc.communicate(timeout=timeout)
            if self.proc.returncode != 0:
                return None
            answer = json.loads(out.strip().splitlines()[-1])
            self.failed = {str(p): str(e) for p, e in answer.get("failed", {}).items()}
            return [Path(p) for p in answer["written"]]
        except (subprocess.TimeoutExpired, OSError, ValueError, IndexError, KeyError, AttributeError):
            self.close()
            return None

    def close(self) -> None:
        """Stop the child if it is still there (a run that ends without figures)."""
        self._stop()


_prestarted: PlotProcess | None = None  # started by prestart, for the run this process makes


def prestart() -> None:
    """Start the figures' process now, before this process imports torch: its own imports
    (matplotlib and seaborn, 1.8 s of a core) then run beside this process's (~1.4 s), on the
    core that waits through them, rather than beside the first epoch. take_prestarted() hands
    it to the run."""
    global _prestarted
    if _prestarted is None:
        _prestarted = PlotProcess()


def take_prestarted() -> PlotProcess | None:
    """The process prestart() started, once (None if it did not)."""
    global _prestarted
    plotter, _prestarted = _prestarted, None
    return plotter


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def draw_all(plotter: PlotProcess | None, jobs: list[dict]) -> list[Path]:
    """The figures' paths: drawn by the child when it can, else here."""
    drawn = plotter.draw(jobs) if plotter is not None else None
    return drawn if drawn is not None else [draw_here(job) for job in jobs]


def draw_figures(plotter: PlotProcess | None, jobs: list[dict], submitted: bool) -> dict[str, str]:
    """Every figure of jobs, each by itself: the child's (when they were submitted to it and
    it answered), the others drawn here. Returns the figures that raised, by kind: one line each."""
    written = plotter.collect() if submitted and plotter is not None else None
    failed = dict(plotter.failed) if written is not None else {}
    done = {str(p) for p in written or []} | set(failed)
    for job in jobs:
        if job["path"] in done:
            continue
        try:
            draw_here(job)
        except Exception as e:  # a figure that fails must not take the others with it
            failed[job["path"]] = one_line(e)
    return {job["kind"]: failed[job["path"]] for job in jobs if job["path"] in failed}


def _serve() -> None:
    """The child: import first (that is the point), then draw what arrives on stdin, each
    figure by itself (one that raises is reported by its path; the others are drawn)."""
    from . import plots

    plots.warm_up()
    written, failed = [], {}
    for line in sys.stdin:  # a submit a line, drawn as it arrives, until the last one closes stdin
        for job in json.loads(line):
            try:
                written.append(str(draw_here(job)))
            except Exception as e:  # reported; the next figure is still drawn
                failed[job["path"]] = one_line(e)
    print(json.dumps({"written": written, "failed": failed}))


if __name__ == "__main__":
    _serve()
