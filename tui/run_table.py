"""The runs as a table, cell by cell: what `reverse-tui runs` prints and the app's runs screen
shows, written once for both (rich Text cells, no textual)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text

from engine.runs.index import LengthLimit, RunSummary

STATUS_STYLE = {"running": "cyan", "finished": "green", "stopped": "yellow", "failed": "red", "unknown": "magenta"}
NONE = "–"


def percent(x: float | None) -> str:
    return NONE if x is None else f"{100 * x:.1f}%"


def loss(x: float | None) -> str:
    return NONE if x is None else f"{x:.4f}" if x >= 1e-3 else f"{x:.1e}"


def clock(seconds: float | None) -> str:
    if seconds is None:
        return NONE
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def started(seconds: float | None) -> str:
    return NONE if seconds is None else time.strftime("%m-%d %H:%M", time.localtime(seconds))


def epochs(run: RunSummary) -> str:
    planned = run.planned_epochs
    if not run.epochs and not planned:
        return NONE
    return f"{run.epochs}/{planned}" if planned and run.epochs < planned else str(run.epochs)


def limit(x: LengthLimit | None) -> str:
    """Where exact match first falls below 99%, in words; >N: not up to the N measured."""
    if x is None:
        return NONE
    if x.below_99 is not None:
        return str(x.below_99)
    return NONE if x.longest is None else f">{x.longest}"


def limits(run: RunSummary) -> str:
    if run.known is None and run.unknown is None:
        return NONE
    return f"{limit(run.known)}/{limit(run.unknown)}"


def config_value(value) -> str:
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else NONE


def status(run: RunSummary) -> Text:
    text = Text(run.status, style=STATUS_STYLE.get(run.status, ""))
    if run.problems:
        text.append(" !", style="bold red")
    return text


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    right: bool  # numbers line up on the right
    cell: Callable[[RunSummary], str | Text]


COLUMNS = [
    Column("name", "run", False, lambda r: r.name),
    Column("started", "started", False, lambda r: started(r.started)),
    Column("status", "status", False, status),
    Column("epochs", "ep", True, epochs),
    Column("val", "val loss", True, lambda r: loss(r.best_val_loss)),
    Column("test", "test", True, lambda r: percent(r.test_exact_match)),
    Column("notebook", "notebk", True, lambda r: percent(r.notebook_exact_match)),
    Column("limits", "<99% at", True, limits),
    Column("time", "time", True, lambda r: clock(r.train_seconds)),
]

LEGEND = (
    "ep: epochs trained (of those planned) · val loss: the best model's · test: exact match on its "
    "test set · notebk: on the notebook's test set (3-10 words) · <99% at: the length, in words, "
    "where exact match first falls below 99%, known words/every word unknown (>N: not up to N) · "
    "time: training, the sum of its epochs · then the configuration values that differ"
)


def row(run: RunSummary, keys: list[str]) -> list[Text]:
    """A run's cells: the figures, then its value of each configuration key that differs."""
    cells = [c.cell(run) for c in COLUMNS]
    cells += [config_value((run.config or {}).get(k)) if run.config is not None else NONE for k in keys]
    return [c if isinstance(c, Text) else Text(c) for c in cells]
