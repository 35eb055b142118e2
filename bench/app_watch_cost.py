"""What watching the attention form costs an epoch in the terminal app: the default run
trained by the app (headless, through Textual's test driver, drawing every screen update as
it would on a terminal) with its watch sentence, against the same run with none, alternating (ABBA).

    python3 bench/app_watch_cost.py [--repeats 3] [--epochs 3] [--json bench/results/app-watch-cost.json]

An epoch's seconds run from one epoch's row reaching the app to the next (the first: from
the run's start), so they hold everything the app does for it: the batches, the snapshots
decoded in the worker and drawn on the training screen, validation and the table and chart.

On two shared cores that difference is within the machine's noise, so the watching's own work
is also counted, in CPU seconds of the thread that does it: decoding the snapshots (the
worker) and laying out the grid or map (the app's thread). Its share of an epoch without
watching is the cost whatever the noise (painting the cells at the next refresh is not in it);
so is the app thread's whole CPU time over the run, painting included, with against without.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine.job  # noqa: E402
import engine.train.trainer  # noqa: E402
from engine.train.config import Config  # noqa: E402
from tui.app import ReverseApp  # noqa: E402
from tui.common import RunOptions  # noqa: E402
from tui.widgets.watch_view import WatchView  # noqa: E402

WATCH_SENTENCES = engine.job.watch_sentences
TAKE, SHOW = engine.train.trainer.take_snapshot, WatchView.show
WORK = {"decode": 0.0, "draw": 0.0}  # CPU seconds of the thread doing each
MAIN_CPU: dict[bool, list[float]] = {False: [], True: []}  # the app thread's CPU seconds a run, by watch


def counted(kind: str, f):
    def timed(*args, **kwargs):
        t = time.thread_time()
        try:
            return f(*args, **kwargs)
        finally:
            WORK[kind] += time.thread_time() - t

    return timed


engine.train.trainer.take_snapshot = counted("decode", TAKE)
WatchView.show = counted("draw", SHOW)


def epochs(cfg: Config, watch: bool, tmp: Path) -> list[float]:
    """One run in the app; the wall seconds of each epoch as the app saw them."""
    engine.job.watch_sentences = WATCH_SENTENCES if watch else (lambda texts, test: [])
    folder = Path(tempfile.mkdtemp(dir=tmp))
    arrivals: list[float] = []
    cpu: list[float] = []  # the app thread's CPU clock at the same moments

    # Textual dispatches a message to the handler of every class in the MRO: these only time
    class TimedApp(ReverseApp):
        CSS_PATH = str(ROOT / "tui" / "app.tcss")  # a relative one would be read beside this file

        def on_training_started(self, msg) -> None:
            arrivals.append(time.perf_counter())
            cpu.append(time.thread_time())

        def on_epoch_finished(self, msg) -> None:
            arrivals.append(time.perf_counter())
            cpu.append(time.thread_time())

    app = TimedApp(cfg, RunOptions(checkpoint=folder / "best.pt", out=folder / "out", threads=None))

    async def body() -> None:
        async with app.run_test(size=(100, 32)) as pilot:
            while len(arrivals) < cfg.epochs + 1:
                assert app._exception is None, app._exception
                await pilot.pause(0.05)
            app.stop_training()
            # the run's evaluation to its end: left running, it would share the next run's cores
            await app.workers.wait_for_complete()

    asyncio.run(body())
    snapshots = len(app.snapshots)
    assert (snapshots > 0) == watch, f"watch={watch} but {snapshots} snapshots"
    MAIN_CPU[watch].append(cpu[-1] - cpu[0])
    return [b - a for a, b in zip(arrivals, arrivals[1:])]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    cfg = replace(Config(device="cpu"), epochs=args.epochs)
    runs: dict[bool, list[list[float]]] = {False: [], True: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            # ABBA: a run that comes second in a pair (a process grown, a machine warmed) is
            # as often the one with watching as the one without
            for watch in (False, True) if r % 2 == 0 else (True, False):
                runs[watch].append(epochs(cfg, watch, Path(tmp)))
    work = {k: v / args.repeats for k, v in WORK.items()}  # per run of args.epochs epochs
    rows = {}
    for k in range(args.epochs):
        off = statistics.median(r[k] for r in runs[False])
        on = statistics.median(r[k] for r in runs[True])
        rows[k + 1] = {"without": round(off, 3), "with": round(on, 3), "cost": round(on / off - 1, 4)}
        print(f"epoch {k + 1}: without {off:.3f}s  with {on:.3f}s  ({100 * (on / off - 1):+.1f}%)")
    total_off = sum(statistics.median(r[k] for r in runs[False]) for k in range(args.epochs))
    total_on = sum(statistics.median(r[k] for r in runs[True]) for k in range(args.epochs))
    print(f"all {args.epochs} epochs: {100 * (total_on / total_off - 1):+.1f}%")
    share = sum(work.values()) / total_off
    main_extra = statistics.median(MAIN_CPU[True]) - statistics.median(MAIN_CPU[False])
    print(
        f"the app thread's CPU a run: {statistics.median(MAIN_CPU[False]):.3f}s without, "
        f"{statistics.median(MAIN_CPU[True]):.3f}s with: +{main_extra:.3f}s"
        f" (+ decoding {work['decode']:.3f}s = {100 * (main_extra + work['decode']) / total_off:.2f}% of the run)"
    )
    print(
        f"watching's own work: decoding {work['decode']:.3f}s, drawing {work['draw']:.3f}s CPU per run"
        f" = {100 * share:.2f}% of its {total_off:.2f}s without"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "repeats": args.repeats,
                    "epochs": rows,
                    "total_cost": round(total_on / total_off - 1, 4),
                    "work_cpu_s": {k: round(v, 4) for k, v in work.items()},
                    "work_share": round(share, 4),
                    "app_thread_cpu_s": {
                        "without": round(statistics.median(MAIN_CPU[False]), 4),
                        "with": round(statistics.median(MAIN_CPU[True]), 4),
                    },
                    "app_thread_and_decode_share": round((main_extra + work["decode"]) / total_off, 4),
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
