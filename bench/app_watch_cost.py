"""What watching the attention form costs an epoch in the terminal app: the default run
trained by the app (headless, through Textual's test driver, drawing every screen update as
it would on a terminal) with its watch sentence, against the same run with none, alternating (ABBA).

    python3 bench/app_watch_cost.py [--repeats 3] [--epochs 3] [--headless] [--json bench/results/app-watch-cost.json]

An epoch's seconds run from one epoch's row reaching the app to the next (the first: from
the run's start), so they hold everything the app does for it: the batches, the snapshots
decoded in the worker and drawn on the training screen, validation and the table and chart.

On two shared cores that difference is within the machine's noise, so the watching's own work
is also counted, in CPU seconds of the thread that does it: decoding the snapshots (the
worker) and laying out the grid or map (the app's thread). Its share of an epoch without
watching is the cost whatever the noise (painting the cells at the next refresh is not in it);
so is the app thread's whole CPU time over the run, painting included, with against without.

--headless adds a third arm, the same run (watching too) consumed by a plain loop in this
process, as `reverse-tui --no-ui` does: what the app as a whole costs the training thread. Both
arms time each epoch's training loop (Trainer.train_epoch, from its first batch to its last,
the consumer's work between batches included) on the thread that trains, so the app thread's
hold on Python's lock shows there.
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

import torch  # noqa: E402

import engine.job  # noqa: E402
import engine.train.trainer  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.events import EpochDone  # noqa: E402
from engine.train.threads import default_threads  # noqa: E402
from tui.app import ReverseApp  # noqa: E402
from tui.common import RunOptions  # noqa: E402
from tui.widgets.watch_view import WatchView  # noqa: E402

WATCH_SENTENCES = engine.job.watch_sentences
TAKE, SHOW = engine.train.trainer.take_snapshot, WatchView.show
WORK = {"decode": 0.0, "draw": 0.0}  # CPU seconds of the thread doing each
MAIN_CPU: dict[bool, list[float]] = {False: [], True: []}  # the app thread's CPU seconds a run, by watch
APP_LOOPS: dict[bool, list[list[float]]] = {False: [], True: []}  # each run's epochs' training loops, by watch


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

TRAIN_EPOCH = engine.train.trainer.Trainer.train_epoch
LOOPS: list[float] = []  # wall seconds of each epoch's training loop, on the thread that trains


def timed_train_epoch(self, epoch):
    t = time.perf_counter()
    stats = yield from TRAIN_EPOCH(self, epoch)
    LOOPS.append(time.perf_counter() - t)
    return stats


engine.train.trainer.Trainer.train_epoch = timed_train_epoch


def headless_epochs(cfg: Config, tmp: Path) -> tuple[list[float], list[float]]:
    """The same run consumed by a plain loop (the headless face's way), watching as it does:
    (each epoch's wall seconds as its consumer saw them, each epoch's training loop)."""
    engine.job.watch_sentences = WATCH_SENTENCES
    torch.set_num_threads(default_threads(cfg.hidden_dim))  # as the CLI and the app both set it
    folder = Path(tempfile.mkdtemp(dir=tmp))
    LOOPS.clear()
    arrivals = [time.perf_counter()]
    for event in engine.job.run_job(cfg, folder / "best.pt", folder / "out"):
        if isinstance(event, EpochDone):
            arrivals.append(time.perf_counter())
    return [b - a for a, b in zip(arrivals, arrivals[1:])], list(LOOPS)


def epochs(cfg: Config, watch: bool, tmp: Path) -> list[float]:
    """One run in the app; the wall seconds of each epoch as the app saw them."""
    engine.job.watch_sentences = WATCH_SENTENCES if watch else (lambda texts, test: [])
    folder = Path(tempfile.mkdtemp(dir=tmp))
    arrivals: list[float] = []
    cpu: list[float] = []  # the app thread's CPU clock at the same moments

    # set on the app's loop when the last epoch arrives: the bench waits for it without
    # polling, since a pilot's pause every few ms would be app-thread work a user's terminal
    # never does (it waits for every widget to drain its queue), counted against the app
    last_epoch = asyncio.Event()

    # Textual dispatches a message to the handler of every class in the MRO: these only time
    class TimedApp(ReverseApp):
        CSS_PATH = str(ROOT / "tui" / "app.tcss")  # a relative one would be read beside this file

        def on_training_started(self, msg) -> None:
            arrivals.append(time.perf_counter())
            cpu.append(time.thread_time())

        def on_epoch_finished(self, msg) -> None:
            arrivals.append(time.perf_counter())
            cpu.append(time.thread_time())
            if len(arrivals) >= cfg.epochs + 1:
                last_epoch.set()

    app = TimedApp(cfg, RunOptions(checkpoint=folder / "best.pt", out=folder / "out", threads=None))
    LOOPS.clear()

    async def body() -> None:
        async with app.run_test(size=(100, 32)):
            while not last_epoch.is_set():
                assert app._exception is None, app._exception
                try:
                    await asyncio.wait_for(last_epoch.wait(), 1.0)
                except TimeoutError:
                    pass
            app.stop_training()
            # the run's evaluation to its end: left running, it would share the next run's cores
            await app.workers.wait_for_complete()

    asyncio.run(body())
    snapshots = len(app.snapshots)
    assert (snapshots > 0) == watch, f"watch={watch} but {snapshots} snapshots"
    MAIN_CPU[watch].append(cpu[-1] - cpu[0])
    APP_LOOPS[watch].append(list(LOOPS))
    return [b - a for a, b in zip(arrivals, arrivals[1:])]


def app_against_headless(n: int, app_walls: list[list[float]], headless: list[tuple[list[float], list[float]]]) -> dict:
    """Per epoch, the medians of the app's run (watching) against the headless one: the wall
    seconds and the training loop's, and what the app adds to the loop."""
    rows = {}
    for k in range(n):
        app_wall = statistics.median(r[k] for r in app_walls)
        app_loop = statistics.median(r[k] for r in APP_LOOPS[True])
        head_wall = statistics.median(h[0][k] for h in headless)
        head_loop = statistics.median(h[1][k] for h in headless)
        rows[k + 1] = {
            "headless_wall": round(head_wall, 3),
            "app_wall": round(app_wall, 3),
            "headless_loop": round(head_loop, 3),
            "app_loop": round(app_loop, 3),
            "loop_cost": round(app_loop / head_loop - 1, 4),
        }
        print(
            f"epoch {k + 1}: headless {head_wall:.3f}s (loop {head_loop:.3f}s), in the app {app_wall:.3f}s "
            f"(loop {app_loop:.3f}s, {100 * (app_loop / head_loop - 1):+.1f}%)"
        )
    loops_app = sum(r["app_loop"] for r in rows.values())
    loops_head = sum(r["headless_loop"] for r in rows.values())
    print(f"the training loops, all {n} epochs: {100 * (loops_app / loops_head - 1):+.1f}% in the app")
    return {"epochs": rows, "loop_cost": round(loops_app / loops_head - 1, 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--headless", action="store_true", help="also the same run headless: what the app costs")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    cfg = replace(Config(device="cpu"), epochs=args.epochs)
    runs: dict[bool, list[list[float]]] = {False: [], True: []}
    headless: list[tuple[list[float], list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            # ABBA: a run that comes second in a pair (a process grown, a machine warmed) is
            # as often the one with watching as the one without; the headless arm takes
            # each place in turn
            arms: list = [False, True] if r % 2 == 0 else [True, False]
            if args.headless:
                arms.insert(r % 3, "headless")
            for arm in arms:
                if arm == "headless":
                    headless.append(headless_epochs(cfg, Path(tmp)))
                else:
                    runs[arm].append(epochs(cfg, arm, Path(tmp)))
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
    versus = app_against_headless(args.epochs, runs[True], headless) if headless else None
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
                    **({"app_against_headless": versus} if versus else {}),
                },
                indent=1,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
