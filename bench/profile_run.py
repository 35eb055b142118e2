"""Where the time of a whole run goes, process start to the last file written.

Runs `reverse-tui --no-ui [flags]` in this process (the CLI's own main), with timers wrapped
around the engine's phases from outside (nothing in engine/ knows it is being timed):

- start-up: interpreter and imports (from the process's start), then the CLI's set-up up to
  the first training batch (data, vocabulary, model, run folders);
- each epoch: the training loop, validation, the watch snapshots, the checkpoint saves, and
  what is left (printing, progress files: the epoch's consumers);
- the evaluation: each part as the run reports it (they run on two threads, so they overlap),
  the wait for the figures' process, and the evaluation's wall time;
- the exit: main's return to the process's end is not counted by anything in-process, so
  `--repeats` children are timed from outside as well (whole process, wall clock).

    python3 bench/profile_run.py --json bench/results/profile-default.json
    python3 bench/profile_run.py --json bench/results/profile-corpus.json -- --corpus bench/corpora/licenses.txt

Flags after `--` go to reverse-tui; `--seed` is added per seed (`--seeds 1 2 3`).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def process_age() -> float:
    """Seconds since this process started (the kernel's start time), imports included."""
    ticks = os.sysconf("SC_CLK_TCK")
    start = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19]) / ticks
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return uptime - start


def profile_in_process(flags: list[str]) -> dict:
    """One run in this process (call once per process: the imports are counted once)."""
    imports_from = process_age()
    t_import = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from engine.insight import plot_process, report
    from engine.train import trainer as trainer_module
    from tui import cli

    imports = imports_from + time.perf_counter() - t_import
    epochs: list[dict] = []
    current: dict[str, float] = {}
    Trainer = trainer_module.Trainer

    def timed(key, fn):
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                current[key] = current.get(key, 0.0) + time.perf_counter() - t

        return wrapper

    def timed_epoch(fn):
        def wrapper(self, epoch):  # a generator: count only the time spent inside it
            gen, sent, inside = fn(self, epoch), None, 0.0
            while True:
                t = time.perf_counter()
                try:
                    item = gen.send(sent)
                except StopIteration as stop:
                    current["train"] = current.get("train", 0.0) + inside + time.perf_counter() - t
                    return stop.value
                inside += time.perf_counter() - t
                sent = yield item

        return wrapper

    marks: dict[str, float] = {}
    original_run = Trainer.run

    def run(self):
        marks["first_epoch"] = time.perf_counter()
        last = marks["first_epoch"]
        for ev in original_run(self):
            yield ev
            if type(ev).__name__ == "EpochDone":
                now = time.perf_counter()
                row = {"epoch": ev.epoch, "wall": now - last, **current}
                row["other"] = row["wall"] - sum(v for k, v in current.items())
                epochs.append(row)
                current.clear()
                last = now
        marks["training_end"] = time.perf_counter()

    Trainer.run = run
    Trainer.train_epoch = timed_epoch(Trainer.train_epoch)
    Trainer.validation = timed("validation", Trainer.validation)
    Trainer.snapshot = timed("snapshots", Trainer.snapshot)
    Trainer.save = timed("saves", Trainer.save)
    waits = defaultdict(float)
    for name in ("collect", "draw"):
        fn = getattr(plot_process.PlotProcess, name)

        def waited(*a, _fn=fn, _name=name, **k):
            t = time.perf_counter()
            try:
                return _fn(*a, **k)
            finally:
                waits[_name] += time.perf_counter() - t

        setattr(plot_process.PlotProcess, name, waited)
    parts: dict[str, float] = {}
    original_finish = report.finish_run

    def finish_run(*args, on_phase=None, **kwargs):
        marks["evaluation_start"] = time.perf_counter()

        def phase(p):
            parts[p.name] = p.seconds
            if on_phase is not None:
                on_phase(p)

        try:
            return original_finish(*args, on_phase=phase, **kwargs)
        finally:
            marks["evaluation_end"] = time.perf_counter()

    report.finish_run = finish_run
    for module in list(sys.modules.values()):  # the names other modules imported
        if getattr(module, "finish_run", None) is original_finish:
            module.finish_run = finish_run
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as here, contextlib.redirect_stdout(io.StringIO()):
        os.chdir(here)  # the run's folders go here
        code = cli.main(["--no-ui", *flags])
    t_end = time.perf_counter()
    totals = {k: sum(e.get(k, 0.0) for e in epochs) for k in ("train", "validation", "snapshots", "saves", "other")}
    return {
        "exit_code": code,
        "imports": imports,
        "setup": marks.get("first_epoch", t0) - t0,
        "epochs": epochs,
        "epoch_totals": totals,
        "training": marks.get("training_end", t0) - marks.get("first_epoch", t0),
        "between": marks.get("evaluation_start", t_end) - marks.get("training_end", t_end),
        "evaluation": marks.get("evaluation_end", t_end) - marks.get("evaluation_start", t_end),
        "evaluation_parts": parts,
        "figure_waits": dict(waits),
        "after_evaluation": t_end - marks.get("evaluation_end", t_end),
        "in_process": imports + t_end - t0,
    }


def whole_process(flags: list[str]) -> float:
    """The run as a user starts it, timed from outside: start to exit."""
    with tempfile.TemporaryDirectory() as here:
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "tui", "--no-ui", *flags],
            cwd=here,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - t


def child_profile(flags: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--", *flags], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out)


def table(rows: list[tuple[str, dict, float]]) -> str:
    """A markdown table: one column per run (its median row), one row per phase."""
    heads = " | ".join(name for name, _, _ in rows)
    lines = [f"| phase | {heads} |", "| --- |" + " ---: |" * len(rows)]

    def line(label, values):
        lines.append(f"| {label} | " + " | ".join(f"{v:.2f} s" if v is not None else "–" for v in values) + " |")

    line("whole process (from outside, median)", [w for _, _, w in rows])
    line("interpreter and imports", [p["imports"] for _, p, _ in rows])
    line("set-up (data, vocabulary, model, folders)", [p["setup"] for _, p, _ in rows])
    line("training, all epochs", [p["training"] for _, p, _ in rows])
    for key, label in (
        ("train", "training loops"),
        ("validation", "validation"),
        ("snapshots", "watch snapshots"),
        ("saves", "checkpoint saves"),
        ("other", "printing, progress files"),
    ):
        line(f"&nbsp;&nbsp;{label}", [p["epoch_totals"][key] for _, p, _ in rows])
    line("evaluation (wall; its parts below overlap, on two threads)", [p["evaluation"] for _, p, _ in rows])
    names = sorted({n for _, p, _ in rows for n in p["evaluation_parts"]})
    for n in names:
        line(f"&nbsp;&nbsp;{n}", [p["evaluation_parts"].get(n) for _, p, _ in rows])
    line("after the evaluation (examples, summary)", [p["after_evaluation"] for _, p, _ in rows])
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("flags", nargs="*", help="reverse-tui flags (after --)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(profile_in_process(args.flags)))
        return
    rows = []
    for seed in args.seeds:
        flags = [*args.flags, "--seed", str(seed)]
        profile = child_profile(flags)
        wall = whole_process(flags)
        rows.append((f"seed {seed}", profile, wall))
        print(f"seed {seed}: whole process {wall:.2f} s, in-process profile {profile['in_process']:.2f} s", flush=True)
    median = statistics.median(w for _, _, w in rows)
    print(f"median whole process: {median:.2f} s\n")
    print(table(rows))
    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        data = {
            "command": " ".join(sys.argv),
            "flags": args.flags,
            "commit": commit.stdout.strip()[:7],
            "date": time.strftime("%Y-%m-%d"),
            "cpu_count": os.cpu_count(),
            "median_whole_process": median,
            "runs": [{"name": n, "whole_process": w, **p} for n, p, w in rows],
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
