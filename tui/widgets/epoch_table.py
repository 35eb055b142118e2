"""A row per finished epoch; the epoch whose model is on disk as the best carries a star."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from engine.train import EpochDone

COLUMNS = [("epoch", 5), ("train loss", 10), ("val loss", 8), ("val exact", 9), ("time", 6), ("best", 6)]


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
        self._shown: list[EpochDone] = []

    def on_mount(self) -> None:
        for label, width in COLUMNS:
            self.add_column(Text(label, justify="right"), width=width, key=label)

    def reset(self) -> None:
        self.clear()
        self.best_epoch = None
        self._shown = []

    def show(self, epochs: list[EpochDone]) -> None:
        """Show these epochs: new rows only, when the rows on show are where the list starts."""
        n = len(self._shown)
        if len(epochs) < n or any(a is not b for a, b in zip(self._shown, epochs)):
            self.reset()
            n = 0
        for ev in epochs[n:]:
            self.add_epoch(ev)

    def add_epoch(self, ev: EpochDone) -> None:
        self.add_row(
            Text(str(ev.epoch), justify="right"),
            Text(f"{ev.train_loss:.4f}", justify="right"),
            Text(f"{ev.val_loss:.4f}", justify="right"),
            Text(f"{100 * ev.val_exact_match:.1f}%", justify="right"),
            Text(f"{ev.seconds:.1f}s", justify="right"),
            "",
            key=str(ev.epoch),
        )
        self._shown.append(ev)
        if ev.best:
            # only one model is on disk: move the mark to the epoch that replaced it
            if self.best_epoch is not None and str(self.best_epoch) in self.rows:
                self.update_cell(str(self.best_epoch), "best", "")
            self.update_cell(str(ev.epoch), "best", Text("★ best", style="bold green"))
            self.best_epoch = ev.epoch
        self.move_cursor(row=self.row_count - 1)  # follow the newest epoch
