"""A row per finished epoch; the epoch whose model is on disk as the best carries a star.

Besides the losses and the time, on a screen wide enough for them beside the chart of exact
match by length: the epoch's throughput and the process's memory, and on CUDA the GPU memory at
its peak (a column that appears with the first epoch that has it). Narrower, the title bar
shows the newest epoch's figures instead."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from engine.train.events import EpochDone

from .. import units

COLUMNS = [
    ("epoch", 5),
    ("train loss", 10),
    ("val loss", 8),
    ("val exact", 9),
    ("time", 6),
    ("tok/s", 5),
    ("mem", 4),
    ("best", 6),
]
GPU_COLUMN = ("gpu", 4)  # before "best", on CUDA
MACHINE = ("tok/s", "mem", "gpu")  # the machine's figures
MACHINE_FROM = 120  # screen columns from which they have room in the table


def columns(gpu: bool, machine: bool = True) -> list[tuple[str, int]]:
    cols = [*COLUMNS[:-1], GPU_COLUMN, COLUMNS[-1]] if gpu else list(COLUMNS)
    return cols if machine else [c for c in cols if c[0] not in MACHINE]


def cells(ev: EpochDone, gpu: bool, machine: bool = True) -> list[Text | str]:
    row = [
        Text(str(ev.epoch), justify="right"),
        Text(f"{ev.train_loss:.4f}", justify="right"),
        Text(f"{ev.val_loss:.4f}", justify="right"),
        Text(f"{100 * ev.val_exact_match:.1f}%", justify="right"),
        Text(f"{ev.seconds:.1f}s", justify="right"),
        Text(units.rate(ev.tokens_per_s) if ev.tokens_per_s else units.UNKNOWN, justify="right"),
        Text(units.mebibytes(ev.rss_mib), justify="right"),
    ]
    if gpu:
        row.append(Text(units.mebibytes(ev.gpu_peak_mib), justify="right"))
    return [*(row if machine else row[:5]), ""]


class EpochTable(DataTable):
    DEFAULT_CSS = """
    EpochTable {
        height: 1fr;
        min-height: 4;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.best_epoch: int | None = None
        self.gpu = False  # the GPU column is on show
        self.machine = True  # the machine's columns are on show
        self._shown: list[EpochDone] = []

    def on_mount(self) -> None:
        self._add_columns()

    def _add_columns(self) -> None:
        for label, width in columns(self.gpu, self.machine):
            self.add_column(Text(label, justify="right"), width=width, key=label)

    def reset(self) -> None:
        self.clear()
        self.best_epoch = None
        self._shown = []

    def show(self, epochs: list[EpochDone]) -> None:
        """Show these epochs: new rows only, when the rows on show are where the list starts
        (and the columns stay those that they need)."""
        gpu = any(ev.gpu_peak_mib is not None for ev in epochs)
        machine = self.app.size.width >= MACHINE_FROM
        n = len(self._shown)
        if (gpu, machine) != (self.gpu, self.machine):
            self.clear(columns=True)
            self.gpu, self.machine = gpu, machine
            self._add_columns()
            self.reset()
            n = 0
        if len(epochs) < n or any(a is not b for a, b in zip(self._shown, epochs)):
            self.reset()
            n = 0
        for ev in epochs[n:]:
            self.add_epoch(ev)

    def add_epoch(self, ev: EpochDone) -> None:
        self.add_row(*cells(ev, self.gpu, self.machine), key=str(ev.epoch))
        self._shown.append(ev)
        if ev.best:
            # only one model is on disk: move the mark to the epoch that replaced it
            if self.best_epoch is not None and str(self.best_epoch) in self.rows:
                self.update_cell(str(self.best_epoch), "best", "")
            self.update_cell(str(ev.epoch), "best", Text("★ best", style="bold green"))
            self.best_epoch = ev.epoch
        self.move_cursor(row=self.row_count - 1)  # follow the newest epoch
