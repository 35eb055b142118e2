"""What the training screen's drawing costs the training, epoch against epoch in one run.

    python3 bench/app_drawing_cost.py [--repeats 10] [--epochs 9] [--seed 1] [--corpus FILE]
                                      [--json bench/results/app-drawing-cost.json]
    python3 bench/app_drawing_cost.py --pool bench/results/app-drawing-cost-seed{1,2,3}-a73a678.json

--pool runs nothing: it reads the runs of several such files (seeds, sittings) as one sample,
the median, the mean and its standard error over every run.

Why not the app against a headless run (app_watch_cost.py --as-user): on a shared host two
runs a minute apart differ by more than what is measured (pairs of the same run from -17% to
+52%). Here each run is the user's app, started from the command line in a 100x32
pseudo-terminal, that draws the training screen in every other epoch only: epochs that
alternate a second apart share the host's moment, and the runs alternate which epochs draw.
What a drawing epoch adds to one that does not draw is what the drawing costs the training
(the app's other work, its messages and state, goes on in both).

"Drawing" is what the training screen does with the run's events as it trains
(tui/screens/train.py: the progress lines, the table, the chart, the attention); an epoch
that does not draw leaves the screen as it was, and the next drawing epoch catches up (the
table adds two rows). Epochs are counted from the second (the first starts torch's threads
and the figures' process). The app thread's CPU is read from /proc at each epoch's end.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from terminal import AppInTerminal, provenance, rows_written, thread_cpu  # noqa: E402  (bench/terminal.py)

# what the screen draws from a run's events as it trains (its configuration and status lines,
# drawn once or twice a run, are drawn in every epoch)
DRAWS = ("_draw_epochs", "_draw_chart", "_draw_watch", "_draw_progress", "_epoch_bar")


def child(parity: int, argv: list[str]) -> None:
    """The app, with its training screen drawing only while an epoch of this parity trains."""
    from tui import cli
    from tui.screens.train import TrainScreen

    def only_some_epochs(draw):
        def maybe(self) -> None:
            if (len(self.app.epochs) + 1) % 2 == parity:  # the epoch training now
                draw(self)

        return maybe

    for name in DRAWS:
        setattr(TrainScreen, name, only_some_epochs(getattr(TrainScreen, name)))
    sys.argv = ["reverse-tui", *argv]
    cli.entry()


def one_run(parity: int, args: argparse.Namespace, tmp: Path) -> dict:
    """One app run drawing in the epochs of `parity`: each epoch's seconds (metrics.csv), whether
    it drew, and the app thread's CPU seconds over it."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    argv = ["--epochs", str(args.epochs), "--seed", str(args.seed)]
    argv += ["--checkpoint", str(folder / "best.pt"), "--out", str(folder / "out")]
    argv += ["--corpus", args.corpus] if args.corpus else []
    metrics = folder / "out" / "metrics.csv"
    cpu = [0.0]  # the app thread's CPU at the end of each epoch (index 0: the start)
    with AppInTerminal([sys.executable, str(Path(__file__).resolve()), "--child", str(parity), "--", *argv]) as term:
        while len(cpu) <= args.epochs:
            if rows_written(metrics) >= len(cpu):
                cpu.append(thread_cpu(term.proc.pid))
                continue
            if term.proc.poll() is not None:
                raise SystemExit(f"the app ended before its last epoch: exit {term.proc.returncode}")
            time.sleep(0.01)
    with open(metrics, newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    return {
        "parity": parity,
        "seconds": seconds,
        "drew": [(k + 1) % 2 == parity for k in range(len(seconds))],
        "app_thread_cpu": [round(b - a, 3) for a, b in zip(cpu, cpu[1:])],
    }


def summary(runs: list[dict]) -> dict:
    """Per run, the drawing epochs' mean seconds against the others' (epochs 2 on); over runs,
    the median of that and of the app thread's share of a drawing epoch's seconds."""
    costs, shares, idle_shares = [], [], []
    for run in runs:
        later = list(zip(run["seconds"], run["drew"], run["app_thread_cpu"]))[1:]
        on = [s for s, drew, _ in later if drew]
        off = [s for s, drew, _ in later if not drew]
        costs.append(statistics.mean(on) / statistics.mean(off) - 1)
        shares.append(sum(c for _, drew, c in later if drew) / sum(on))
        idle_shares.append(sum(c for _, drew, c in later if not drew) / sum(off))
    return {
        "cost_per_run": [round(c, 4) for c in costs],
        "cost_median": round(statistics.median(costs), 4),
        "cost_mean": round(statistics.mean(costs), 4),
        "app_thread_share_drawing": round(statistics.median(shares), 4),
        "app_thread_share_not_drawing": round(statistics.median(idle_shares), 4),
    }


def pooled(files: list[Path]) -> str:
    """The runs of several benches' JSON files as one sample, in a line."""
    costs, drawing, other = [], [], []
    for f in files:
        try:
            found = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise SystemExit(f"--pool: {f}: {e}") from None
        costs += found["cost_per_run"]
        drawing.append(found["app_thread_share_drawing"])
        other.append(found["app_thread_share_not_drawing"])
    error = statistics.stdev(costs) / len(costs) ** 0.5 if len(costs) > 1 else math.nan
    return (
        f"{len(costs)} runs from {len(files)} files: a drawing epoch against one that does not draw, median "
        f"{100 * statistics.median(costs):+.1f}%, mean {100 * statistics.mean(costs):+.1f}% "
        f"(standard error {100 * error:.1f} points); the app thread's CPU {100 * min(drawing):.1f}-"
        f"{100 * max(drawing):.1f}% of a drawing epoch's seconds, {100 * min(other):.1f}-{100 * max(other):.1f}% "
        "of the others' (the files' medians)"
    )


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), sys.argv[4:])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=10, help="runs, half drawing in odd epochs, half in even")
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--corpus", default="")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--pool", nargs="+", type=Path, metavar="JSON", help="no runs: these files' runs as one sample")
    args = p.parse_args()
    if args.pool:
        print(pooled(args.pool))
        return
    if args.epochs < 3:
        raise SystemExit("--epochs: at least 3 (epoch 1 is not counted, and both kinds of epoch are needed)")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            run = one_run(r % 2, args, Path(tmp))
            runs.append(run)
            marks = " ".join(f"{s:.2f}{'*' if d else ''}" for s, d in zip(run["seconds"], run["drew"]))
            print(f"run {r + 1} (* drew): {marks}", flush=True)
    found = summary(runs)
    print(
        f"a drawing epoch against one that does not draw (epochs 2-{args.epochs}): median "
        f"{100 * found['cost_median']:+.1f}%, mean {100 * found['cost_mean']:+.1f}% "
        f"(runs: {', '.join(f'{100 * c:+.1f}%' for c in found['cost_per_run'])})"
    )
    print(
        f"the app thread's CPU: {100 * found['app_thread_share_drawing']:.1f}% of a drawing epoch's "
        f"seconds, {100 * found['app_thread_share_not_drawing']:.1f}% of the others'"
    )
    if args.json:
        found = {**provenance("app_drawing_cost.py"), **found, "runs": runs}
        args.json.write_text(json.dumps(found, indent=1) + "\n")


if __name__ == "__main__":
    main()
