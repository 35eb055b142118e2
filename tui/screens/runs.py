"""Runs screen: every run under runs/ as a row (engine/runs/index.py), oldest first, each seed
group one row (its figures its runs' means; e or enter shows its runs below it), with the
configuration values that differ; space selects runs or groups to compare (c: their curves;
a: one sentence's attention in each, side by side), enter opens a run on the probe screen.
The folder is read in a thread: a hundred runs, or a slow disk, never hold up the screen."""

from __future__ import annotations

import time
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from engine.errors import RunIndexError
from engine.runs.folders import RUNS
from engine.runs.groups import FIGURES
from engine.runs.index import RunSummary, differing_keys, grouped, list_runs

from ..run_table import SPREAD_NAMES, config_value, spread_text
from ..widgets.overlay_chart import PALETTE
from ..widgets.runs_table import RunsTable
from ..widgets.title_bar import TitleBar
from .compare import CompareScreen
from .side_by_side import SideBySideScreen

MAX_COMPARED = len(PALETTE)  # a colour each


class RunsScreen(Screen):
    BINDINGS = [
        Binding(
            "c",
            "compare",
            "Compare",
            tooltip="runs: the selected runs' loss and accuracy-by-length curves on shared axes, "
            "with the configuration values that differ",
        ),
        Binding(
            "a",
            "side_by_side",
            "Side by side",
            tooltip="runs: one typed sentence decoded by each selected run (a seed group: its first seed), "
            "their outputs and attention in columns",
        ),
        Binding("e", "expand", "Expand", tooltip="runs: show or hide the runs of the seed group under the cursor"),
        Binding("g", "reload", "Reload", tooltip="runs: read the runs folder again"),
        Binding("escape", "app.pop_screen", "Back", tooltip="runs: back to the screen before"),
    ]

    def __init__(self, runs_dir: Path = RUNS) -> None:
        super().__init__()
        self.runs_dir = Path(runs_dir)
        self.keys: list[str] = []
        self.problem: str | None = None  # the folder itself cannot be listed
        self.all_runs: list[RunSummary] = []  # every run, as read
        self.expanded: set[str] = set()  # the seed groups whose runs are shown below them

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static(id="runs-where")
        yield RunsTable(limit=MAX_COMPARED, id="runs-table")
        yield Static(id="run-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TitleBar).show(f"runs in {self.runs_dir}/")
        self.query_one("#runs-where", Static).update(Text(f"Reading {self.runs_dir}/ ..."))

    def on_screen_resume(self) -> None:  # each time it is shown: the runs as they are now
        self.action_reload()

    def action_reload(self) -> None:
        self.read_runs(self.runs_dir)

    @work(thread=True, exclusive=True, group="runs", exit_on_error=False)
    def read_runs(self, runs_dir: Path) -> None:
        try:
            runs, problem = list_runs(runs_dir), None
        except RunIndexError as e:
            runs, problem = [], str(e)
        self.app.call_from_thread(self.show_runs, runs, problem)

    def show_runs(self, runs: list[RunSummary], problem: str | None = None) -> None:
        try:
            table = self.query_one(RunsTable)
        except NoMatches:  # the screen was closed while the folder was read
            return
        self.all_runs = runs
        self.problem = problem
        self._show_rows(table)
        table.focus()

    def rows(self) -> list[RunSummary]:
        """The rows: the runs, each seed group one row, an expanded group's runs after it."""
        out = []
        for entry in grouped(self.all_runs):
            out.append(entry)
            if entry.is_group and entry.name in self.expanded:
                out.extend(entry.members)
        return out

    def _show_rows(self, table: RunsTable) -> None:
        rows = self.rows()
        self.keys = differing_keys(rows)
        table.show(rows, self.keys)
        self._describe()

    def _describe(self) -> None:
        table = self.query_one(RunsTable)
        where = self.query_one("#runs-where", Static)
        if self.problem:
            where.update(Text(self.problem, style="red"))
        elif not table.runs:
            where.update(Text(f"No runs in {self.runs_dir}/ yet: every run writes its files there."))
        else:
            n, chosen = len(self.all_runs), len(table.selected)
            groups = sum(r.is_group for r in table.runs)
            text = Text(f"{n} run{'s' if n != 1 else ''}")
            text.append(f", {groups} seed group{'s' if groups != 1 else ''}" if groups else "")
            text.append(f", {chosen} selected" if chosen else "")
            text.append(" · space selects, c compares, a side by side, enter probes", style="dim")
            where.update(text)
        self._detail(table.current())

    def _detail(self, run: RunSummary | None) -> None:
        detail = self.query_one("#run-detail", Static)
        if run is None:
            detail.update("")
            return
        if run.is_group:
            self._group_detail(detail, run)
            return
        text = Text(f"{run.folder}", style="bold")
        if run.started is not None:
            text.append(time.strftime(" · started %Y-%m-%d %H:%M", time.localtime(run.started)))
        text.append(f" · model {run.checkpoint}" if run.checkpoint else " · no model")
        if self.keys and run.config is not None:
            text.append("\n" + " ".join(f"{k}={config_value(run.config.get(k))}" for k in self.keys))
        if run.problem:
            text.append(f"\n{run.problem}", style="red")
        detail.update(text)

    def _group_detail(self, detail: Static, group: RunSummary) -> None:
        """Its runs, and each figure's mean and lowest-highest over them."""
        names = ", ".join(m.name for m in group.members)
        text = Text(f"seed group {group.name}: {len(group.members)} runs ({names})", style="bold")
        figures = [(SPREAD_NAMES[k], spread_text(k, (group.spread or {}).get(k))) for k in FIGURES]
        text.append("\nmean (lowest–highest) · " + " · ".join(f"{what} {value}" for what, value in figures))
        if group.problem:
            text.append(f"\n{group.problem}", style="red")
        detail.update(text)

    @on(DataTable.RowHighlighted, "#runs-table")
    def highlighted(self) -> None:
        self._detail(self.query_one(RunsTable).current())

    @on(RunsTable.SelectionChanged)
    def selection_changed(self) -> None:
        self._describe()

    @on(DataTable.RowSelected, "#runs-table")
    def open_run(self) -> None:
        run = self.query_one(RunsTable).current()
        if run is None:
            return
        if run.is_group:  # no one model: its runs, shown or hidden
            self.action_expand()
            return
        if run.status == "running":  # trained by another process now: watched as it goes
            self.app.watch_run(run.folder)
            return
        if run.checkpoint is None:
            self.notify(f"{run.name} has no model to probe ({run.problem or 'no best.pt'}).", severity="warning")
            return
        self.app.open_run(run.checkpoint, run.folder)

    def action_expand(self) -> None:
        """The group under the cursor (or of the run under it): its runs shown, or hidden."""
        table = self.query_one(RunsTable)
        run = table.current()
        if run is None:
            return
        name = run.name if run.is_group else run.group if run.group in self.expanded else None
        if name is None:
            self.notify("e shows the runs of a seed group: put the cursor on one.", severity="warning")
            return
        self.expanded.symmetric_difference_update({name})
        self._show_rows(table)
        table.move_cursor(row=[r.name for r in table.runs].index(name))

    def chosen(self) -> list[RunSummary]:
        table = self.query_one(RunsTable)
        by_name = {r.name: r for r in table.runs}
        return [by_name[n] for n in table.selected if n in by_name]

    def action_compare(self) -> None:
        chosen = self.chosen()
        if len(chosen) < 2:
            self.notify("Select two or more runs with space, then c compares them.", severity="warning")
            return
        self.app.push_screen(CompareScreen(chosen))

    def action_side_by_side(self) -> None:
        chosen = self.chosen()
        if len(chosen) < 2:
            self.notify("Select two or more runs with space, then a decodes a sentence with each.", severity="warning")
            return
        self.app.push_screen(SideBySideScreen(chosen))
