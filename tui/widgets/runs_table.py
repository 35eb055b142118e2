"""The runs, a row each (tui/run_table.py's cells), with a mark for each run selected to compare;
a seed group is a row of its own, and its runs, when it is expanded, rows indented below it."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from engine.runs.index import RunSummary

from ..run_table import COLUMNS, row

MARK = "✓"


class RunsTable(DataTable):
    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
    }
    """
    BINDINGS = [
        Binding("space", "toggle", "Select", tooltip="runs: select the run to compare (again: unselect)"),
        Binding(
            "enter",
            "select_cursor",
            "Probe",
            tooltip="runs: open the run's best model on the probe screen; on a seed group, show or hide its runs",
        ),
    ]

    def __init__(self, limit: int, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.limit = limit  # the most runs selected at once
        self.runs: list[RunSummary] = []
        self.selected: list[str] = []  # names, in the order selected: the comparison's colours

    def show(self, runs: list[RunSummary], keys: list[str]) -> None:
        """These runs, and a column for each configuration key in keys; a selected run that
        is still listed stays selected, and the cursor stays on its run."""
        at = self.current()
        self.runs = runs
        names = {r.name for r in runs}
        self.selected = [n for n in self.selected if n in names]
        self.clear(columns=True)
        self.add_column(" ", key="mark")
        for c in COLUMNS:
            self.add_column(Text(c.header, justify="right" if c.right else "left"), key=c.key)
        for k in keys:
            self.add_column(k, key=f"config:{k}")
        groups = {r.name for r in runs if r.is_group}
        for run in runs:
            cells = row(run, keys)
            for c, cell in zip(COLUMNS, cells):
                cell.justify = "right" if c.right else "left"
            if run.group in groups:  # a run of the expanded group above it
                cells[0] = Text("  ") + cells[0]
            self.add_row(self._mark(run.name), *cells, key=run.name)
        if runs:  # the cursor where it was, else on the newest run
            names = [r.name for r in runs]
            self.move_cursor(row=names.index(at.name) if at is not None and at.name in names else len(runs) - 1)

    def current(self) -> RunSummary | None:
        """The run under the cursor."""
        if not self.runs or not 0 <= self.cursor_row < len(self.runs):
            return None
        return self.runs[self.cursor_row]

    def _mark(self, name: str) -> Text:
        return Text(MARK, style="bold green") if name in self.selected else Text(" ")

    def action_toggle(self) -> None:
        run = self.current()
        if run is None:
            return
        if run.name in self.selected:
            self.selected.remove(run.name)
        elif len(self.selected) >= self.limit:
            self.notify(f"Up to {self.limit} runs compare at once.", severity="warning")
            return
        else:
            self.selected.append(run.name)
        self.update_cell(run.name, "mark", self._mark(run.name))
        self.post_message(self.SelectionChanged())

    class SelectionChanged(Message):
        """A run was selected or unselected (space)."""
