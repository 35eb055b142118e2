"""Where the app thread's CPU goes while a run trains: each part of the training screen's work,
timed in the thread's own CPU seconds, as a share of the epochs' seconds.

    python3 bench/app_thread_parts.py [--repeats 3] [--epochs 9] [--seed 1] [--json FILE]

The user's app, started from the command line in a 100x32 pseudo-terminal (bench/terminal.py),
with its thread's work wrapped in timers: the training screen's handlers of the run's events,
each widget's paint (`paint LossChart`), the loss chart's plotext figure, the screen's layouts,
and the rest of each frame. A part's time excludes the parts inside it (a frame's own time
leaves out the widgets it paints). Counted from the end of epoch 2 to the end of the last
epoch: the first starts torch's threads and the figures' process. The timers cost the thread
a little of their own, so the parts' sum is read against the thread's whole CPU, not an epoch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from terminal import AppInTerminal, provenance  # noqa: E402  (bench/terminal.py)

HANDLERS = ("_draw_epochs", "_draw_chart", "_draw_watch", "_draw_progress", "_epoch_bar", "_draw_status")


def child(out: Path, argv: list[str]) -> None:
    """The app with its thread's parts timed; at each epoch's end the totals so far go to `out`."""
    from textual.screen import Screen
    from textual.widget import Widget

    from tui import cli
    from tui.app import ReverseApp
    from tui.screens.train import TrainScreen
    from tui.widgets.loss_chart import LossChart

    main = threading.main_thread()
    seconds: dict[str, float] = {}
    calls: dict[str, int] = {}
    inside: list[float] = []  # per timed call under way, the time of the timed calls within it

    def timed(part, fn):
        def wrapper(*args, **kwargs):
            if threading.current_thread() is not main:
                return fn(*args, **kwargs)
            name = part(*args)
            start = time.thread_time()
            inside.append(0.0)
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.thread_time() - start
                own = took - inside.pop()
                seconds[name] = seconds.get(name, 0.0) + own
                calls[name] = calls.get(name, 0) + 1
                if inside:
                    inside[-1] += took

        return wrapper

    for name in HANDLERS:
        setattr(TrainScreen, name, timed(lambda *a, n=name: f"handler {n}", getattr(TrainScreen, name)))
    Screen._compositor_refresh = timed(lambda *a: "frame (the rest)", Screen._compositor_refresh)
    Screen._refresh_layout = timed(lambda *a: "layout", Screen._refresh_layout)
    Widget.render_lines = timed(lambda self, *a: f"paint {type(self).__name__}", Widget.render_lines)
    LossChart._figure_lines = timed(lambda *a: "the loss chart's plotext figure", LossChart._figure_lines)

    marks: list[dict] = []
    plain = ReverseApp.on_epoch_finished

    def on_epoch_finished(self, msg) -> None:
        plain(self, msg)
        at = {"epoch": msg.event.epoch, "wall": time.monotonic(), "cpu": time.thread_time()}
        marks.append({**at, "seconds": dict(seconds), "calls": dict(calls)})
        part = out.with_suffix(".part")
        part.write_text(json.dumps(marks))
        part.replace(out)  # whole, for the bench that reads it

    ReverseApp.on_epoch_finished = on_epoch_finished
    sys.argv = ["reverse-tui", *argv]
    cli.entry()


def one_run(args: argparse.Namespace, tmp: Path) -> dict:
    """One app run: each part's CPU seconds and calls from the end of epoch 2 to the last."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    marks_file = folder / "marks.json"
    argv = ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    argv += ["--checkpoint", str(folder / "best.pt"), "--out", str(folder / "out")]
    me = str(Path(__file__).resolve())
    with AppInTerminal([sys.executable, me, "--child", str(marks_file), "--", *argv]) as term:
        while True:
            marks = json.loads(marks_file.read_text()) if marks_file.exists() else []
            if len(marks) >= args.epochs:
                break
            if term.proc.poll() is not None:
                raise SystemExit(f"the app ended before its last epoch: exit {term.proc.returncode}")
            time.sleep(0.05)
    first, last = marks[1], marks[-1]
    wall, cpu = last["wall"] - first["wall"], last["cpu"] - first["cpu"]
    parts = {}
    for name, s in last["seconds"].items():
        calls = last["calls"][name] - first["calls"].get(name, 0)
        parts[name] = {"seconds": s - first["seconds"].get(name, 0.0), "calls": calls}
    return {"wall": wall, "thread_cpu": cpu, "parts": {k: v for k, v in parts.items() if v["calls"]}}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(Path(sys.argv[2]), sys.argv[4:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    if args.epochs < 3:
        raise SystemExit("--epochs: at least 3 (counted from the end of epoch 2)")
    with tempfile.TemporaryDirectory() as tmp:
        runs = [one_run(args, Path(tmp)) for _ in range(args.repeats)]
    names = sorted({n for run in runs for n in run["parts"]})

    def share(run: dict, name: str) -> float:
        return run["parts"].get(name, {"seconds": 0.0})["seconds"] / run["wall"]

    rows = sorted(((statistics.median(share(r, n) for r in runs), n) for n in names), reverse=True)
    whole = statistics.median(r["thread_cpu"] / r["wall"] for r in runs)
    print(f"epochs 3-{args.epochs}, medians of {args.repeats} runs: the app thread {100 * whole:.2f}% of their seconds")
    print("| part | share of the epochs' seconds | ms a call | calls a run |")
    print("| --- | ---: | ---: | ---: |")
    for s, name in rows:
        ms = statistics.median(
            1000 * r["parts"][name]["seconds"] / r["parts"][name]["calls"] for r in runs if name in r["parts"]
        )
        n = statistics.median(r["parts"].get(name, {"calls": 0})["calls"] for r in runs)
        print(f"| {name} | {100 * s:.2f}% | {ms:.2f} | {n:g} |")
    if args.json:
        found = {**provenance("app_thread_parts.py"), "runs": runs}
        args.json.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
