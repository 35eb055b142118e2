"""Help: every key of every screen, read from the bindings themselves so it cannot drift."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from ..widgets.runs_table import RunsTable
from .compare import CompareScreen
from .probe import ProbeScreen, SentenceInput
from .results import ResultsScreen
from .runs import RunsScreen
from .side_by_side import SideBySideScreen
from .step import StepScreen
from .timeline import TimelineScreen
from .train import TrainScreen

ABOUT = (
    "A GRU encoder-decoder with Bahdanau attention learns to reverse the word order of "
    "a sentence. Train it, read its test results, then probe it with your own sentences "
    "and see which input word each output step looks at."
)

MORE = [
    ("tab", "next field: the attention grid, the history list"),
    ("shift+tab", "previous field"),
    ("arrows", "scroll the tables, the results and the attention grid"),
    ("pgup pgdn", "scroll a page"),
    ("enter", "in the history: bring a sentence back"),
]


def _keys(app, bindings) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding) and b.description:
            key = b.key_display or app.get_key_display(Binding(b.key.split(",")[0], ""))
            rows.append((key, b.tooltip or b.description))
    return rows


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "app.pop_screen", "Close")]

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        sections = [
            ("Everywhere", type(self.app).BINDINGS),
            ("Training", TrainScreen.BINDINGS),
            ("Timeline (w)", TimelineScreen.BINDINGS),
            ("Results", ResultsScreen.BINDINGS),
            ("Probe", SentenceInput.BINDINGS + ProbeScreen.BINDINGS),
            ("Step through (f3)", StepScreen.BINDINGS),
            ("Runs (f2)", RunsTable.BINDINGS + RunsScreen.BINDINGS),
            ("Compare (c)", CompareScreen.BINDINGS),
            ("Side by side (a)", SideBySideScreen.BINDINGS),
        ]
        for title, bindings in sections:
            table.add_row(Text(title, style="bold underline"), "")
            for key, what in _keys(self.app, bindings):
                table.add_row(key, what)
            table.add_row("", "")
        table.add_row(Text("Also", style="bold underline"), "")
        for key, what in MORE:
            table.add_row(key, what)
        with VerticalScroll(id="help-box"):
            yield Static(ABOUT, id="help-about")
            yield Static(table, id="help-keys")
        yield Footer()
