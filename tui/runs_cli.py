"""`reverse-tui runs [GROUP] [--runs-dir DIR] [--json]`: the runs under runs/ as a table, oldest
first, each seed group one row, with the configuration values that differ between them, then
each group's figures over its runs; GROUP: that group's runs, a row each; --json for scripts."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from engine.errors import RunIndexError
from engine.runs.folders import RUNS
from engine.runs.index import RunSummary, as_json, differing_keys, find_group, grouped, list_runs

from .run_table import COLUMNS, LEGEND, SPREAD_HEADERS, SPREAD_LEGEND, row, spread_cells


def runs_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reverse-tui runs",
        description="List the runs under runs/ (every folder a run wrote): status, epochs, best "
        "validation loss, test exact match, length limits, time, and the configuration values "
        "that differ between them; a seed group (--seeds) is one row, then its figures' mean and "
        "range over its runs. Nothing is loaded but the runs' small files.",
    )
    p.add_argument(
        "group",
        nargs="?",
        default=None,
        metavar="GROUP",
        help="a seed group's name: its runs, a row each, and its figures over them",
    )
    p.add_argument(
        "--runs-dir", type=Path, default=RUNS, metavar="DIR", help="the folder of run folders (default: runs)"
    )
    p.add_argument("--json", action="store_true", help="print the runs and their figures as JSON, for scripts")
    return p


def _table(runs: list[RunSummary], keys: list[str]) -> Table:
    """The figures, then a column for each configuration key in keys. One space between
    columns: the figures alone fit 80 columns."""
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    longest = max(len(r.name) for r in runs)
    for c in COLUMNS:
        named = c.key == "name"  # the one column that folds, when a long name leaves no room
        table.add_column(
            c.header,
            justify="right" if c.right else "left",
            no_wrap=not named,
            overflow="fold",
            min_width=min(longest, 15) if named else None,
        )
    for k in keys:
        table.add_column(k, overflow="fold")
    for run in runs:
        table.add_row(*row(run, keys))
    return table


def _by_run(lines) -> Table:
    """(run name, text) rows; the text wraps in its own column."""
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for name, text in lines:
        table.add_row(f" {name}", Text(text))
    return table


def _differences(runs: list[RunSummary], keys: list[str]) -> Table:
    """Each run's values of the keys that differ (key=value ...), a row each."""
    return _by_run(
        (run.name, " ".join(f"{k}={c.plain}" for k, c in zip(keys, row(run, keys)[len(COLUMNS) :])))
        for run in runs
        if run.config is not None
    )


def spreads_table(groups: list[RunSummary]) -> Table:
    """A row per seed group: each figure's mean over its runs, below it their range."""
    table = Table(box=box.SIMPLE_HEAD, padding=0, pad_edge=False, show_edge=False)
    table.add_column("seed group", overflow="fold", min_width=min(max(len(g.name) for g in groups), 15))
    table.add_column("runs", justify="right", no_wrap=True)
    for header in SPREAD_HEADERS.values():
        table.add_column(header, justify="right", no_wrap=True)
    for g in groups:
        table.add_row(Text(g.name), Text(str(len(g.members))), *spread_cells(g))
    return table


def print_runs(runs: list[RunSummary], console: Console) -> None:
    """One table where it fits the terminal; else the figures, then each run's configuration
    values that differ, a line each. runs: entries, a seed group's among them; each group's
    figures over its runs follow in a table of their own."""
    keys = differing_keys(runs)
    whole = _table(runs, keys)
    unbounded = console.options.update_width(10**6)
    if not keys or Measurement.get(console, unbounded, whole).maximum <= console.width:
        console.print(whole)
    else:
        console.print(_table(runs, []))
        console.print(Text("configuration values that differ:", style="bold"))
        console.print(_differences(runs, keys))
    console.print(Text(LEGEND, style="dim"))
    groups = [r for r in runs if r.is_group]
    if groups:
        console.print()
        console.print(spreads_table(groups))
        console.print(Text(SPREAD_LEGEND, style="dim"))
    problems = [r for r in runs if r.problems]
    if problems:
        console.print(Text("problems:", style="bold"))
        console.print(_by_run((r.name, r.problem) for r in problems))


def run_runs(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    try:
        runs = list_runs(args.runs_dir)
    except RunIndexError as e:
        print(f"reverse-tui: {e}", file=sys.stderr)
        return 2
    entries = grouped(runs)
    if args.group is not None:  # that group's runs, a row each, and the group itself
        group = find_group(runs, args.group)
        if group is None:
            names = ", ".join(g.name for g in entries if g.is_group) or "none yet; --seeds N trains one"
            print(
                f"reverse-tui: {args.group}: no seed group of that name in {args.runs_dir}/ (groups: {names})",
                file=sys.stderr,
            )
            return 2
        runs, entries = group.members, [*group.members, group]
    if args.json:
        print(json.dumps(as_json(runs, args.runs_dir), indent=1))
        return 0
    console = Console(highlight=False)
    if not runs:
        console.print(Text(f"no runs in {args.runs_dir}/ yet; `reverse-tui` or `reverse-tui --no-ui` trains one"))
        return 0
    print_runs(entries, console)
    return 0
