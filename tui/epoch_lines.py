"""The headless run's epochs as a table of plain lines: a header of two lines, then a line
per epoch, each figure right-aligned under its name. On the CPU it fits 80 columns; on CUDA
it adds the GPU's memory and utilisation, and still fits with narrower gaps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engine.train.events import EpochDone

from . import units

WIDTH = 80
BEST_MARK = "*"


@dataclass(frozen=True)
class Column:
    top: str  # the header's first line
    name: str  # its second, right above the figures
    width: int
    value: Callable[[EpochDone], str]


def _loss(x: float) -> str:
    return f"{x:.4f}" if x < 10 else f"{x:.3f}"


def _seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 1000 else units.clock(s)


def columns(epochs: int, cuda: bool) -> list[Column]:
    cols = [
        Column("", "epoch", max(5, 2 * len(str(epochs)) + 1), lambda e: f"{e.epoch}/{epochs}"),
        Column("train", "loss", 6, lambda e: _loss(e.train_loss)),
        Column("val", "loss", 6, lambda e: _loss(e.val_loss)),
        Column("val", "exact", 6, lambda e: f"{100 * e.val_exact_match:.1f}%"),
        Column("", "s/epoch", 7, lambda e: _seconds(e.seconds)),
        Column("", "tok/s", 5, lambda e: units.rate(e.tokens_per_s)),
        Column("time", "left", 7, lambda e: units.clock(e.seconds_left)),
        Column("", "memory", 6, lambda e: units.mebibytes(e.rss_mib)),
    ]
    if cuda:
        cols += [
            Column("gpu", "peak", 5, lambda e: units.mebibytes(e.gpu_peak_mib)),
            Column("gpu", "util", 4, lambda e: units.percent(e.gpu_util)),
        ]
    cols.append(Column("grad norm", "mean/max", 9, lambda e: f"{e.grad_norm:.2f}/{e.grad_norm_max:.2f}"))
    return cols


class EpochLines:
    """The header and the lines of one run's epochs; prefix: before each (the control run's
    "[no attention] "), the header indented to match."""

    def __init__(self, epochs: int, cuda: bool = False, prefix: str = ""):
        self.cuda = cuda
        self.columns = columns(epochs, cuda)
        self.prefix = prefix
        body = sum(c.width for c in self.columns) + len(BEST_MARK) + 1
        gaps = len(self.columns) - 1
        self.gap = " " * (2 if len(prefix) + body + 2 * gaps <= WIDTH else 1)

    def _row(self, cells: list[str]) -> str:
        last = len(self.columns) - 1  # the grad norms: left-aligned, as long as they are
        return self.gap.join(
            cell.ljust(c.width) if i == last else cell.rjust(c.width)
            for i, (c, cell) in enumerate(zip(self.columns, cells))
        )

    def header(self) -> list[str]:
        indent = " " * len(self.prefix)
        return [
            (indent + self._row([c.top for c in self.columns])).rstrip(),
            (indent + self._row([c.name for c in self.columns])).rstrip(),
        ]

    def line(self, ev: EpochDone) -> str:
        row = self._row([c.value(ev) for c in self.columns])
        return (self.prefix + row + (" " + BEST_MARK if ev.best else "")).rstrip()
