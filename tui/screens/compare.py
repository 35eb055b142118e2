"""Compare screen: the runs selected on the runs screen, a colour each: their loss per epoch
and their exact match by sentence length overlaid on shared axes, above them a table of the
runs (the charts' legend) with their figures and the configuration values that differ.
Only these runs' curves are read (engine.runs.index.run_curves)."""

from __future__ import annotations

from rich import box
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.runs.index import RunCurves, RunSummary, differing_keys, run_curves

from ..run_table import COLUMNS, row
from ..widgets.overlay_chart import PALETTE, OverlayChart, Series, rich_colour
from ..widgets.title_bar import TitleBar

LEGEND_COLUMNS = ("name", "val", "test", "limits")  # of tui/run_table.py's


class CompareScreen(Screen):
    BINDINGS = [
        Binding("l", "loss", "Train/val loss", tooltip="compare: the training loss per epoch, or the validation loss"),
        Binding(
            "u", "words", "Known/unknown", tooltip="compare: exact match by length of known words, or of unknown words"
        ),
        Binding("escape", "app.pop_screen", "Back", tooltip="compare: back to the runs"),
    ]

    def __init__(self, runs: list[RunSummary]) -> None:
        super().__init__()
        self.runs = runs
        self.keys = differing_keys(runs)
        self.curves: list[RunCurves] = [run_curves(r) for r in runs]
        self.colours = [PALETTE[k % len(PALETTE)] for k in range(len(runs))]
        self.train_loss = False  # l: the training loss instead of the validation loss
        self.unknown = False  # u: sentences of unknown words instead of known ones

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with VerticalScroll(id="compare-legend"):
            yield Static(self.legend())
        with Horizontal(id="compare-charts"):
            yield OverlayChart("No run compared has finished an epoch.", id="compare-loss")
            yield OverlayChart("No run compared has a report.json with its lengths yet.", id="compare-lengths")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TitleBar).show(f"comparing {len(self.runs)} runs")
        self.draw()
        self.query_one("#compare-legend").focus()  # the arrows scroll it where it is cut

    def legend(self) -> Table:
        """A row a run in its colour: its figures and the configuration values that differ
        (key=value, wrapping in the last column)."""
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False, expand=True)
        columns = [c for c in COLUMNS if c.key in LEGEND_COLUMNS]
        table.add_column("", no_wrap=True)
        for c in columns:
            named = c.key == "name"
            table.add_column(c.header, justify="right" if c.right else "left", no_wrap=not named, overflow="fold")
        table.add_column("configuration that differs" if self.keys else "", ratio=1, overflow="fold")
        picked = [k for k, c in enumerate(COLUMNS) if c.key in LEGEND_COLUMNS]
        for run, colour in zip(self.runs, self.colours):
            cells = row(run, self.keys)
            config = " ".join(f"{k}={c.plain}" for k, c in zip(self.keys, cells[len(COLUMNS) :]))
            table.add_row(Text("━━", style=rich_colour(colour)), *(cells[k] for k in picked), config)
        return table

    def draw(self) -> None:
        which = "training" if self.train_loss else "validation"
        loss = [
            Series(c.name, colour, [(e, train if self.train_loss else val) for e, train, val in c.loss])
            for c, colour in zip(self.curves, self.colours)
        ]
        self.query_one("#compare-loss", OverlayChart).show(f"{which} loss per epoch (log)", loss, log_y=True)
        words = "unknown" if self.unknown else "known"
        lengths = [
            Series(c.name, colour, list((c.unknown if self.unknown else c.known).items()))
            for c, colour in zip(self.curves, self.colours)
        ]
        self.query_one("#compare-lengths", OverlayChart).show(
            f"exact match by length: {words} words", lengths, percent=True
        )

    def action_loss(self) -> None:
        self.train_loss = not self.train_loss
        self.draw()

    def action_words(self) -> None:
        self.unknown = not self.unknown
        self.draw()
