"""`reverse-tui watch RUN [--no-ui]`: follow a run that another process trains (a `--no-ui`
or torchrun job, here or over SSH) from its files (engine/runs/follow.py): the app's training
screen, live, or without a terminal (or with --no-ui) the epoch lines as they come. It never
writes into the run; it ends when the run does, or when the run's process is gone."""

from __future__ import annotations

import argparse
import sys

from engine.runs.folders import RUNS


def watch_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reverse-tui watch",
        description="Follow a run in progress from its files (epochs, progress, attention "
        "snapshots, status), as the training screen draws a run of its own; nothing is "
        "written into the run. Ends when the run ends or its process is gone.",
    )
    p.add_argument("run", metavar="RUN", help=f"a run's name under {RUNS}/, latest, or the path to a run folder")
    p.add_argument(
        "--no-ui",
        action="store_true",
        help="print the run's epoch lines as they come and exit when it ends "
        "(0: finished or stopped, 1: failed or its process is gone); also without a terminal",
    )
    return p


def run_watch(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    from engine.errors import FollowError
    from engine.runs.follow import resolve_run

    try:
        folder = resolve_run(args.run)
    except FollowError as e:
        print(f"reverse-tui watch: {e}", file=sys.stderr)
        return 2
    from .common import isatty

    if args.no_ui or not (isatty(sys.stdin) and isatty(sys.stdout)):
        return watch_headless(folder)
    try:
        from engine.train.config import Config

        from .app import ReverseApp
        from .common import RunOptions
    except ImportError as e:
        print(f"reverse-tui watch: the terminal app needs textual ({e}); use --no-ui", file=sys.stderr)
        return 2
    return ReverseApp(Config(device="cpu"), RunOptions(), autostart=False, follow=folder).run() or 0


def watch_headless(folder) -> int:
    """The run's epoch lines (as `--no-ui` prints them) and its end, as they come."""
    from engine.runs.follow import Note, RunEnded, Watching, follow
    from engine.train.events import EpochDone

    from .epoch_lines import EpochLines

    epochs, code, table = 0, 1, None
    try:
        for ev in follow(folder):
            if isinstance(ev, Watching):
                epochs = ev.cfg.epochs
                where = f" (pid {ev.pid} on {ev.host})" if ev.pid else ""
                print(f"watching run {ev.name}{where}: {folder}/", flush=True)
                if ev.facts:
                    print(ev.facts, flush=True)
            elif isinstance(ev, EpochDone):
                if table is None:  # the first epoch says whether the run has GPU figures
                    table = EpochLines(epochs, cuda=ev.gpu_peak_mib is not None)
                    print("\n".join(table.header()), flush=True)
                print(table.line(ev), flush=True)
            elif isinstance(ev, Note):
                print(ev.text, flush=True)
            elif isinstance(ev, RunEnded):
                print(ev.line, flush=True)
                code = 0 if ev.state in ("finished", "stopped") else 1
    except KeyboardInterrupt:  # the watcher stops; the run goes on
        return 130
    return code
