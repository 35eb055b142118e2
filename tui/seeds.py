"""`reverse-tui --no-ui --seeds N [flags]`: one configuration trained on N seeds (--seed and
the next N-1), one after another, each a headless run of its own (tui/headless.py) in folders
of its own, runs/GROUP-seedS/, grouped under --name (else the start time): `reverse-tui runs`
lists the group as one row with the mean and range of its figures (engine/runs/groups.py).

A run that fails (a NaN loss) is a figure of the group like any other, and the next seed
trains; one stopped (Ctrl+C, SIGTERM) or refused at its start ends the group there. The
app trains one run at a time: it refuses --seeds in one line (tui/cli.py)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from rich.console import Console
from rich.text import Text

from engine.errors import RunError, RunIndexError
from engine.runs.folders import CHECKPOINTS, RUNS
from engine.runs.groups import free_group
from engine.runs.index import find_group, list_runs
from engine.train.config import Config

from .common import RunOptions


def seeds_problem(args: argparse.Namespace, headless: bool) -> str | None:
    """Why these flags cannot train a seed group, in one line; None when they can."""
    if args.seeds is None:
        return None
    if args.seeds < 1:
        return f"--seeds must be at least 1, got {args.seeds}"
    if args.resume is not None:
        return (
            "--seeds trains new runs and --resume continues one; resume a group's run by its own "
            "name (--resume NAME-seedS)"
        )
    if args.checkpoint is not None or args.out is not None:
        return "--seeds gives each run folders of its own (runs/NAME-seedS/); --checkpoint and --out name one run's"
    if args.overwrite:
        return "--seeds never replaces a run; give the group a new --name"
    if not headless:
        return "--seeds trains its runs one after another, headless: add --no-ui (the app trains one run at a time)"
    return None


def run_seeds(cfg: Config, opts: RunOptions, seeds: int, first_line: str | None = None) -> int:
    """Each seed's run in turn; then the group's figures. The exit status: the first run's
    that was not 0 (a stop or a refusal ends the group there), else 0."""
    from .headless import run_headless

    console = Console(highlight=False, soft_wrap=True, markup=False)
    err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    chosen = [cfg.seed + k for k in range(seeds)]
    try:
        group, names = free_group(opts.name, chosen, CHECKPOINTS, RUNS)
    except RunError as e:
        err.print(f"reverse-tui: {e}")
        return 2
    if first_line:
        console.print(first_line)
    console.print(
        f"seed group {group}: {seeds} run{'s' if seeds != 1 else ''} of one configuration, "
        f"seed{'s' if seeds != 1 else ''} {chosen[0]}" + (f"-{chosen[-1]}" if seeds > 1 else "") + ", one after another"
    )
    status = 0
    for k, (seed, name) in enumerate(zip(chosen, names), 1):
        console.print(f"\n== seed {seed} ({k}/{seeds}): run {name}")
        try:
            code = run_headless(replace(cfg, seed=seed), replace(opts, name=name, group=group))
        except KeyboardInterrupt:  # between two runs, outside a run's own signal handling
            code = 130
        status = status or code
        if code == 2 or code >= 128:
            left = names[k:]
            if left:
                err.print(f"reverse-tui: the seed group stops here; not trained: {', '.join(left)}")
            break
    print_group(group, console)
    return status


def print_group(group: str, console: Console) -> None:
    """The group's figures over the runs it has, as `reverse-tui runs GROUP` ends."""
    from .run_table import SPREAD_LEGEND
    from .runs_cli import spreads_table

    try:
        entry = find_group(list_runs(RUNS, CHECKPOINTS), group)
    except RunIndexError:
        entry = None
    if entry is None:
        return
    console.print(f"\nseed group {group}: {len(entry.members)} runs ({', '.join(m.name for m in entry.members)})")
    console.print(spreads_table([entry]))
    console.print(Text(SPREAD_LEGEND, style="dim"))
    console.print(f"`reverse-tui runs {group}` lists its runs; `reverse-tui runs` the group beside the others")
