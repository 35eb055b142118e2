"""What watching the attention form costs an epoch in the terminal app: the default run
trained by the app (headless, through Textual's test driver, drawing every screen update as
it would on a terminal) with its watch sentence, against the same run with none, alternating (ABBA).

    python3 bench/app_watch_cost.py [--repeats 3] [--epochs 3] [--headless] [--corpus FILE]
                                    [--json bench/results/app-watch-cost.json]
    python3 bench/app_watch_cost.py --to-results [--repeats 2] [--epochs 2] [--corpus FILE]
    python3 bench/app_watch_cost.py --as-user [--repeats 4] [--epochs 9] [--seed S] [--corpus FILE]

An epoch's seconds run from one epoch's row reaching the app to the next (the first: from
the run's start), so they hold everything the app does for it: the batches, the snapshots
decoded in the worker and drawn on the training screen, validation and the table and chart.

On two shared cores that difference is within the machine's noise, so the watching's own work
is also counted, in CPU seconds of the thread that does it: decoding the snapshots (the
worker) and laying out the grid or map (the app's thread). Its share of an epoch without
watching is the cost whatever the noise (painting the cells at the next refresh is not in it);
so is the app thread's whole CPU time over the run, painting included, with against without.

The two arms above train in a thread of the app's process (tui/app.py's TRAIN_IN_PROCESS off),
where this process can count the decoding and turn the watching off. --headless adds two
arms, both watching: the same run as `reverse-tui --no-ui` makes it (a process of its own), and
the run trained by the app in a child process (engine/job_process.py), as a user's app trains
one unless it takes every core (child_pays: a text's run on two cores trains as the thread arm).
Every arm's epochs are timed where they train (EpochDone.seconds: the training loop, the
consumer's work between batches included, and validation), so that the app thread's hold on
Python's lock shows in the thread arm, and its absence in the process arm.

--as-user runs both faces as a user starts them, from the command line, each a process of its
own: `reverse-tui --no-ui` against `reverse-tui` in a terminal of 100x32 (a pseudo-terminal,
read and discarded as fast as the app writes), alternating (ABBA). The app is the user's
whole app: its figures' process started before torch's import, its training placed by
child_pays. Each epoch's seconds come from the run's own metrics.csv (timed where it
trained), the wall from the start to the run's status.json saying it was evaluated.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from terminal import AppInTerminal, rows_written, thread_cpu  # noqa: E402  (bench/terminal.py)

import engine.job  # noqa: E402
import engine.train.trainer  # noqa: E402
import tui.app  # noqa: E402
from engine.train.config import Config  # noqa: E402
from tui.app import ReverseApp  # noqa: E402
from tui.common import RunOptions  # noqa: E402
from tui.widgets.watch_view import WatchView  # noqa: E402

WATCH_SENTENCES = engine.job.watch_sentences
TAKE, SHOW = engine.train.trainer.take_snapshot, WatchView.show
WORK = {"decode": 0.0, "draw": 0.0}  # CPU seconds of the thread doing each
MAIN_CPU: dict[bool, list[float]] = {False: [], True: []}  # the app thread's CPU seconds a run, by watch
# each app run's epochs as timed where they train, by arm: False/True (a thread, watching or not), "process"
APP_EPOCHS: dict = {False: [], True: [], "process": []}


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


def headless_epochs(cfg: Config, tmp: Path) -> list[float]:
    """The same run as a user's `reverse-tui --no-ui` makes it, in a fresh process as the app's
    child is (the first epoch of each pays the same warm-up), watching as it does by default:
    each epoch as timed where it trained (its metrics.csv)."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    subprocess.run(
        [sys.executable, "-m", "tui", "--no-ui", "--device", "cpu", "--epochs", str(cfg.epochs)]
        + ["--seed", str(cfg.seed), "--checkpoint", str(folder / "best.pt"), "--out", str(folder / "out")]
        + (["--corpus", cfg.corpus] if cfg.corpus else []),
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with open(folder / "out" / "metrics.csv", newline="") as f:
        return [float(row["seconds"]) for row in csv.DictReader(f)]


def epochs(cfg: Config, watch: bool, tmp: Path, in_process: bool = False) -> list[float]:
    """One run in the app, trained in a thread of its process or (in_process, watching) in a
    child; the wall seconds of each epoch as the app saw them."""
    tui.app.TRAIN_IN_PROCESS = in_process
    tui.app.child_pays = lambda cfg, threads=None, by_load=False: True  # the child arm is a child, whatever the run
    engine.job.watch_sentences = WATCH_SENTENCES if watch else (lambda texts, test: [])
    folder = Path(tempfile.mkdtemp(dir=tmp))
    arrivals: list[float] = []
    cpu: list[float] = []  # the app thread's CPU clock at the same moments
    trained: list[float] = []  # each epoch's seconds, timed where it trained

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
            trained.append(msg.event.seconds)
            if len(arrivals) >= cfg.epochs + 1:
                last_epoch.set()

    app = TimedApp(cfg, RunOptions(checkpoint=folder / "best.pt", out=folder / "out", threads=None))

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
    if in_process:
        APP_EPOCHS["process"].append(trained)
        return [b - a for a, b in zip(arrivals, arrivals[1:])]
    MAIN_CPU[watch].append(cpu[-1] - cpu[0])
    APP_EPOCHS[watch].append(trained)
    return [b - a for a, b in zip(arrivals, arrivals[1:])]


def to_results(cfg: Config, in_child: bool, tmp: Path) -> dict[str, float]:
    """--to-results: one run in the app, as a user waits for it, its training in a child or
    in a thread of the app: seconds from the app's start to its last epoch and to its results
    (the evaluation included), read every 50 ms (the same for both arms)."""
    tui.app.TRAIN_IN_PROCESS = True
    tui.app.child_pays = lambda cfg, threads=None, by_load=False: in_child
    engine.job.watch_sentences = WATCH_SENTENCES
    folder = Path(tempfile.mkdtemp(dir=tmp))
    t0 = time.perf_counter()
    app = ReverseApp(cfg, RunOptions(checkpoint=folder / "best.pt", out=folder / "out", threads=None))
    marks: dict[str, float] = {}

    async def body() -> None:
        async with app.run_test(size=(100, 32)):
            while app.results is None and app.results_error is None:
                assert app._exception is None, app._exception
                if len(app.epochs) == cfg.epochs and "trained" not in marks:
                    marks["trained"] = time.perf_counter() - t0
                await asyncio.sleep(0.05)
            marks["results"] = time.perf_counter() - t0
            await app.workers.wait_for_complete()

    asyncio.run(body())
    assert app.results_error is None, app.results_error
    return marks


def placements(cfg: Config, repeats: int) -> dict:
    """--to-results: the two placements alternating (ABBA), each run's marks and the medians."""
    runs: dict[str, list[dict[str, float]]] = {"child": [], "thread": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for arm in ("thread", "child") if r % 2 == 0 else ("child", "thread"):
                runs[arm].append(to_results(cfg, arm == "child", Path(tmp)))
                print(f"{arm}: {runs[arm][-1]}", flush=True)
    medians = {arm: {k: round(statistics.median(m[k] for m in ms), 2) for k in ms[0]} for arm, ms in runs.items()}
    for arm, m in medians.items():
        print(f"{arm}: trained {m['trained']:.2f}s, results {m['results']:.2f}s from the app's start (medians)")
    return {"repeats": repeats, "epochs": cfg.epochs, "medians": medians, "runs": runs}


def as_user(cfg: Config, app: bool, tmp: Path) -> dict:
    """--as-user: one run as a user starts it, headless or the app in a 100x32 terminal; its
    epochs' seconds (metrics.csv) and the wall from its start to its status saying evaluated;
    for the app, its own thread's CPU seconds from the first epoch's end to the last's (what
    its drawing took from the cores while epochs 2 to N trained)."""
    folder = Path(tempfile.mkdtemp(dir=tmp))
    argv = [sys.executable, "-m", "tui", *([] if app else ["--no-ui"]), "--epochs", str(cfg.epochs)]
    argv += ["--seed", str(cfg.seed), "--checkpoint", str(folder / "best.pt"), "--out", str(folder / "out")]
    argv += ["--corpus", cfg.corpus] if cfg.corpus else []
    status, metrics = folder / "out" / "status.json", folder / "out" / "metrics.csv"
    app_cpu: dict[int, float] = {}  # the app thread's CPU seconds when epoch 1 and the last were written
    t0 = time.perf_counter()
    if not app:
        subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
    else:
        with AppInTerminal(argv) as term:
            while True:  # the run's own record of its end (the results screen follows it)
                written = rows_written(metrics)
                for mark in (1, cfg.epochs):
                    if written >= mark and mark not in app_cpu:
                        app_cpu[mark] = thread_cpu(term.proc.pid)
                if term.proc.poll() is not None:
                    raise SystemExit(f"the app ended before its run was evaluated: exit {term.proc.returncode}")
                try:
                    done = json.loads(status.read_text()).get("evaluated")
                except (OSError, ValueError):  # not written yet, or being replaced
                    done = False
                if done:
                    break
                time.sleep(0.05)
            wall = time.perf_counter() - t0
    with open(metrics, newline="") as f:
        seconds = [float(row["seconds"]) for row in csv.DictReader(f)]
    found = {"epochs": seconds, "wall": wall}
    if app:
        found["app_thread_cpu_after_epoch_1"] = app_cpu[cfg.epochs] - app_cpu[1]
    return found


def users(cfg: Config, repeats: int) -> dict:
    """--as-user: headless and the app alternating (ABBA); per epoch the medians of each, and
    what the app adds, over every epoch and over the epochs after the first."""
    runs: dict[str, list[dict]] = {"headless": [], "app": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(repeats):
            for arm in ("headless", "app") if r % 2 == 0 else ("app", "headless"):
                runs[arm].append(as_user(cfg, arm == "app", Path(tmp)))
                found = runs[arm][-1]
                print(f"{arm}: wall {found['wall']:.2f}s, epochs {[round(x, 3) for x in found['epochs']]}", flush=True)
    n = min(len(r["epochs"]) for rs in runs.values() for r in rs)
    med = {arm: [statistics.median(r["epochs"][k] for r in rs) for k in range(n)] for arm, rs in runs.items()}
    rows = {}
    for k in range(n):
        cost = med["app"][k] / med["headless"][k] - 1
        rows[k + 1] = {"headless": round(med["headless"][k], 3), "app": round(med["app"][k], 3), "cost": round(cost, 4)}
        print(f"epoch {k + 1}: headless {med['headless'][k]:.3f}s, the app {med['app'][k]:.3f}s ({100 * cost:+.1f}%)")
    cost_all = sum(med["app"]) / sum(med["headless"]) - 1
    cost_later = sum(med["app"][1:]) / sum(med["headless"][1:]) - 1 if n > 1 else None
    walls = {arm: round(statistics.median(r["wall"] for r in rs), 2) for arm, rs in runs.items()}
    later = f", epochs 2-{n}: {100 * cost_later:+.1f}%" if cost_later is not None else ""
    print(f"all {n} epochs: the app {100 * cost_all:+.1f}%{later}")
    drawing = statistics.median(r["app_thread_cpu_after_epoch_1"] for r in runs["app"])
    share = drawing / sum(med["app"][1:]) if n > 1 else None
    if share is not None:
        print(f"the app thread's CPU over epochs 2-{n}: {drawing:.3f}s, {100 * share:.1f}% of their seconds (medians)")
    print(f"start to evaluated (medians): headless {walls['headless']:.2f}s, the app {walls['app']:.2f}s")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return {
        "command": " ".join(sys.argv),
        "commit": commit.stdout.strip()[:7],
        "date": time.strftime("%Y-%m-%d"),
        "cpu_count": os.cpu_count(),
        "repeats": repeats,
        "seed": cfg.seed,
        "epochs": rows,
        "cost_all_epochs": round(cost_all, 4),
        "cost_after_the_first": None if cost_later is None else round(cost_later, 4),
        "wall_medians": walls,
        "app_thread_cpu_share_after_epoch_1": None if share is None else round(share, 4),
        "runs": runs,
    }


def app_against_headless(n: int, headless: list[list[float]]) -> dict:
    """Per epoch, the medians of each arm's epochs as timed where they trained (all watching):
    headless, the app training in a thread of its own process, the app training in a child;
    and what each app arm adds to the headless epoch."""
    arms = {
        "headless": headless,
        "app_thread": APP_EPOCHS[True],
        "app_process": APP_EPOCHS["process"],
    }
    rows = {}
    for k in range(n):
        row = {arm: round(statistics.median(r[k] for r in runs), 3) for arm, runs in arms.items()}
        for arm in ("app_thread", "app_process"):
            row[arm + "_cost"] = round(row[arm] / row["headless"] - 1, 4)
        rows[k + 1] = row
        print(
            f"epoch {k + 1}: headless {row['headless']:.3f}s, the app training in a thread {row['app_thread']:.3f}s "
            f"({100 * row['app_thread_cost']:+.1f}%), in its own process {row['app_process']:.3f}s "
            f"({100 * row['app_process_cost']:+.1f}%)"
        )
    total = {arm: sum(r[arm] for r in rows.values()) for arm in arms}
    cost = {arm: round(total[arm] / total["headless"] - 1, 4) for arm in ("app_thread", "app_process")}
    print(
        f"all {n} epochs: the app training in a thread {100 * cost['app_thread']:+.1f}%, "
        f"in its own process {100 * cost['app_process']:+.1f}%"
    )
    return {
        "epochs": rows,
        "cost": cost,
        "runs": {arm: [[round(x, 3) for x in r] for r in runs] for arm, runs in arms.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--headless",
        action="store_true",
        help="also the same run headless, and as the app trains it in a child process: what the app costs",
    )
    p.add_argument(
        "--corpus", default="", metavar="FILE", help="your own text (its model trains on every core) instead"
    )
    p.add_argument(
        "--to-results",
        action="store_true",
        help="instead: the app's start to its results, training in a child against in a thread of the app",
    )
    p.add_argument(
        "--as-user",
        action="store_true",
        help="instead: `reverse-tui` in a terminal against `reverse-tui --no-ui`, each started as a user does",
    )
    p.add_argument("--seed", type=int, default=42, help="the runs' seed (--as-user)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    corpus = str(Path(args.corpus).resolve()) if args.corpus else ""
    cfg = replace(Config(device="cpu", corpus=corpus, seed=args.seed), epochs=args.epochs)
    if args.as_user:
        found = users(cfg, args.repeats)
        if args.json:
            args.json.write_text(json.dumps(found, indent=1) + "\n")
        return
    if args.to_results:
        found = placements(cfg, args.repeats)
        if args.json:
            args.json.write_text(json.dumps(found, indent=1) + "\n")
        return
    runs: dict[bool, list[list[float]]] = {False: [], True: []}
    headless: list[list[float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            # ABBA: a run that comes second in a pair (a process grown, a machine warmed) is
            # as often the one with watching as the one without; the headless arm takes
            # each place in turn
            arms: list = [False, True] if r % 2 == 0 else [True, False]
            if args.headless:  # each place in turn
                arms.insert(r % 3, "headless")
                arms.insert((r + 1) % 4, "process")
            for arm in arms:
                if arm == "headless":
                    headless.append(headless_epochs(cfg, Path(tmp)))
                elif arm == "process":
                    epochs(cfg, True, Path(tmp), in_process=True)
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
    versus = app_against_headless(args.epochs, headless) if headless else None
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
