"""The runs as a table, cell by cell: what `reverse-tui runs` prints and the app's runs screen
shows, written once for both (rich Text cells, no textual)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.text import Text

from engine.runs.groups import FIGURES, Spread
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
    if run.is_group:
        return f"{mean_length(run.spread.get('known_below_99'))}/{mean_length(run.spread.get('unknown_below_99'))}"
    if run.known is None and run.unknown is None:
        return NONE
    return f"{limit(run.known)}/{limit(run.unknown)}"


def name(run: RunSummary) -> str:
    """A seed group's name says how many runs it holds: base ×3."""
    return f"{run.name} ×{len(run.members)}" if run.is_group else run.name


# -- a seed group's figures: mean, and the lowest and highest over its runs --------------------
PERCENT_FIGURES = {"test_exact_match", "repeated_exact_match"}


def figure(key: str, value: float, beyond: bool = False) -> str:
    """One value of a figure: a percentage for exact match (no % sign), else a length or an
    epoch count; >N where it lies past what was measured."""
    if key in PERCENT_FIGURES:
        text = f"{100 * value:.1f}".removesuffix(".0") if value >= 0.9995 else f"{100 * value:.1f}"
    else:
        text = f"{value:.0f}" if value == int(value) else f"{value:.1f}"
    return f">{text}" if beyond else text


def spread_mean(key: str, sp: Spread | None) -> str:
    """The mean; >=N where some runs count with the last length or epoch measured, every
    one of them: >N."""
    if sp is None:
        return NONE
    if sp.beyond == sp.runs and sp.low == sp.high:
        return figure(key, sp.low, True)
    return ("≥" if sp.beyond else "") + figure(key, sp.mean)


def spread_range(key: str, sp: Spread | None) -> str:
    """lowest–highest over the runs ("" for one run, or where they agree)."""
    if sp is None or (sp.low == sp.high and sp.low_beyond == sp.high_beyond):
        return ""
    return f"{figure(key, sp.low, sp.low_beyond)}–{figure(key, sp.high, sp.high_beyond)}"


def spread_text(key: str, sp: Spread | None) -> str:
    """mean (lowest–highest) on one line."""
    lo_hi = spread_range(key, sp)
    return spread_mean(key, sp) + (f" ({lo_hi})" if lo_hi else "")


def mean_length(sp: Spread | None) -> str:
    """A group's mean length limit in whole words, for the runs table's one cell."""
    if sp is None or (sp.beyond == sp.runs and sp.low == sp.high):
        return spread_mean("known_below_99", sp)
    return ("≥" if sp.beyond else "") + f"{sp.mean:.0f}"


SPREAD_NAMES = {  # in a line of text
    "test_exact_match": "test %",
    "known_below_99": "known <99% at",
    "unknown_below_99": "unknown <99% at",
    "repeated_exact_match": "repeated %",
    "epochs_to_99": "epochs to 99%",
}
SPREAD_HEADERS = {
    "test_exact_match": "test\nexact %",
    "known_below_99": "known\n<99% at",
    "unknown_below_99": "unknown\n<99% at",
    "repeated_exact_match": "repeated\nexact %",
    "epochs_to_99": "epochs\nto 99%",
}
SPREAD_LEGEND = (
    "a seed group's figures over its runs: the mean, below it the lowest–highest · test: exact match on "
    "its test set · <99% at: the length, in words, where exact match first falls below 99%, known words "
    "past the training lengths and every word unknown · repeated: sentences of 2-3 distinct words repeated, "
    "21-40 words · epochs to 99%: of validation exact match · >N: not within the N words or epochs "
    "measured; ≥: a mean that counts those as N"
)


def spread_cells(run: RunSummary) -> list[Text]:
    """A group's figures, each its mean above its range (dim)."""
    cells = []
    for key in FIGURES:
        sp = (run.spread or {}).get(key)
        text = Text(spread_mean(key, sp))
        lo_hi = spread_range(key, sp)
        if lo_hi:
            text.append("\n" + lo_hi, style="dim")
        cells.append(text)
    return cells


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
    Column("name", "run", False, name),
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
