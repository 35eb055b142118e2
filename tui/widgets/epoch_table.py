"""A row per finished epoch; the epoch whose model is on disk as the best carries a star.

Besides the losses and the time, on a screen wide enough for them beside the chart of exact
match by length: the epoch's throughput and the process's memory, and on CUDA the GPU memory at
its peak (a column that appears with the first epoch that has it). Narrower, the title bar
shows the newest epoch's figures instead.

Not a DataTable: any change to one (a new row, the star moving) renders every visible cell of
it again, ~11 ms on the app's thread at each epoch's end, which the training thread waits for
in the app's process. Here each row becomes a strip once, and a new epoch renders one row."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

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


class EpochTable(ScrollView, can_focus=True):
    """The epochs as rows under a header that stays put, the newest highlighted and kept in
    view, every other row striped."""

    COMPONENT_CLASSES = {"epoch-table--header", "epoch-table--even-row", "epoch-table--newest"}
    DEFAULT_CSS = """
    EpochTable {
        height: 1fr;
        min-height: 4;
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .epoch-table--header {
                background-tint: $foreground 5%;
            }
            & > .epoch-table--newest {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
        }
        & > .epoch-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .epoch-table--even-row {
            background: $surface-lighten-1 50%;
        }
        &:dark > .epoch-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .epoch-table--newest {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.best_epoch: int | None = None
        self.gpu = False  # the GPU column is on show
        self.machine = True  # the machine's columns are on show
        self._shown: list[EpochDone] = []
        self._rows: list[list[Text | str]] = []  # the cells of each epoch on show
        self._strips: dict[tuple, Strip] = {}  # (row, width, its look) -> the row drawn; row -1: the header
        self._base: Style | None = None  # the widget's own style, read once per change of the CSS

    @property
    def row_count(self) -> int:
        return len(self._rows)

    def labels(self) -> list[str]:
        return [label for label, _ in columns(self.gpu, self.machine)]

    def row_text(self, index: int) -> list[str]:
        """The cells of row `index` as plain text."""
        return [str(getattr(cell, "plain", cell)) for cell in self._rows[index]]

    def table_width(self) -> int:
        """Cells wide, each column with a space either side."""
        return sum(width + 2 for _, width in columns(self.gpu, self.machine))

    def reset(self) -> None:
        self.best_epoch = None
        self._shown, self._rows = [], []
        self._strips.clear()
        self._resized()

    def show(self, epochs: list[EpochDone]) -> None:
        """Show these epochs: new rows only, when the rows on show are where the list starts
        (and the columns stay those that they need)."""
        gpu = any(ev.gpu_peak_mib is not None for ev in epochs)
        machine = self.app.size.width >= MACHINE_FROM
        n = len(self._shown)
        if (gpu, machine) != (self.gpu, self.machine):
            self.gpu, self.machine = gpu, machine
            self.reset()
            n = 0
        if len(epochs) < n or any(a is not b for a, b in zip(self._shown, epochs)):
            self.reset()
            n = 0
        for ev in epochs[n:]:
            self.add_epoch(ev)

    def add_epoch(self, ev: EpochDone) -> None:
        self._rows.append(cells(ev, self.gpu, self.machine))
        self._shown.append(ev)
        if ev.best:
            # only one model is on disk: move the mark to the epoch that replaced it
            if self.best_epoch is not None:
                self._set_best(self.best_epoch, "")
            self._set_best(ev.epoch, Text("★ best", style="bold green"))
            self.best_epoch = ev.epoch
        self._resized()
        self.call_after_refresh(self.follow_newest)  # once the new size is laid out

    def follow_newest(self) -> None:
        self.scroll_to(y=self.max_scroll_y, animate=False)

    def on_resize(self) -> None:
        self._strips.clear()  # rows drawn at the old width are not drawn again
        self.follow_newest()

    def _set_best(self, epoch: int, mark: Text | str) -> None:
        for index, shown in enumerate(self._shown):
            if shown.epoch == epoch:
                self._rows[index][-1] = mark
                self._strips = {key: strip for key, strip in self._strips.items() if key[0] != index}

    def _resized(self) -> None:
        self.virtual_size = Size(self.table_width(), len(self._rows) + 1)
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._base = None  # the CSS, the theme or the focus changed: rows are drawn again
        self._strips.clear()

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        if self._base is None:
            self._base = self.rich_style  # worked out through the ancestors: ~0.1 ms, not once a line
        base = self._base
        index = -1 if y == 0 else y - 1 + round(self.scroll_offset.y)
        if index >= len(self._rows):
            return Strip.blank(width, base)
        look = (
            "epoch-table--header"
            if index < 0
            else "epoch-table--newest"
            if index == len(self._rows) - 1
            else "epoch-table--even-row"
            if index % 2 == 0
            else None
        )
        key = (index, width, look, self.has_focus)
        if key not in self._strips:
            style = base + self.get_component_styles(look).rich_style if look else base
            # the highlight's colours win over a cell's own (the star's green), as a cursor's do
            over = style if look == "epoch-table--newest" else None
            row = [Text(label) for label in self.labels()] if index < 0 else self._rows[index]
            self._strips[key] = self._line(row, style, over, width, base)
        return self._strips[key]

    def _line(self, row: list[Text | str], style: Style, over: Style | None, width: int, base: Style) -> Strip:
        """A row's cells right-aligned in their columns, a space either side, on `style` (and
        under `over`); past the table's last column the widget's own style."""
        line = Text(end="", no_wrap=True)
        for cell, (_, cell_width) in zip(row, columns(self.gpu, self.machine)):
            text = cell.copy() if isinstance(cell, Text) else Text(cell)
            text.truncate(cell_width, overflow="ellipsis")
            line.append(" " * (cell_width - text.cell_len + 1))
            line.append_text(text)
            line.append(" ")
        segments = Segment.apply_style(line.render(self.app.console), style, over)
        return Strip(segments).adjust_cell_length(width, base)
