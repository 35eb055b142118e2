"""The loss as training goes: the training loss of every batch (smoothed), from the first
batches on, and the validation loss of every finished epoch as points on the same axes. x is
in epochs (1.37 = the second epoch, 37% through). Log scale: the loss of this task falls by
orders of magnitude, and on a linear axis every epoch after the second would sit on the floor."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from engine.insight.plots import batch_points, smooth
from engine.train.events import EpochDone


class LossChart(PlotextPlot):
    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 6;
        border-top: solid $foreground 20%;
        border-title-align: left;
    }
    """
    # the legend sits in the top border: plotext's own would cover the first points
    LEGEND = "[cyan]━[/] train loss per batch, smoothed  [orange1]●[/] val loss per epoch  (log)"
    SHORT_LEGEND = "[cyan]━[/] train loss  [orange1]●[/] val loss  (log)"  # a narrow chart

    # Redraws at most this often (seconds): building and painting a plotext figure holds the
    # GIL that the training thread needs. Default run, 1 training thread, seconds per epoch
    # (--no-ui 1.82-1.86): redrawn at 20 a second 2.5-2.7, twice a second 2.0-2.4, once a
    # second 2.0-2.2, never 1.8-2.0.
    INTERVAL = 1.0

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epochs: Sequence[EpochDone] = []
        self.live: Sequence[tuple[float, float]] = []
        self._last = -math.inf  # monotonic time of the last redraw: the first is at once
        self._pending = None
        self.border_title = self.LEGEND

    def on_resize(self) -> None:
        long = len(Text.from_markup(self.LEGEND)) + 4 <= self.size.width
        self.border_title = self.LEGEND if long else self.SHORT_LEGEND

    @property
    def data_points(self) -> int:
        """Epochs on the chart (validation points)."""
        return len(self.epochs)

    def show(self, epochs: Sequence[EpochDone], live: Sequence[tuple[float, float]] = ()) -> None:
        """New data; drawn now, or when INTERVAL has passed since the last redraw."""
        self.epochs, self.live = epochs, live
        wait = self._last + self.INTERVAL - time.monotonic()
        if wait <= 0:
            self._redraw()
        elif self._pending is None:
            self._pending = self.set_timer(wait, self._redraw)

    def _redraw(self) -> None:
        self._pending = None
        self._last = time.monotonic()
        self.refresh()

    def points(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """(smoothed training loss per batch, validation loss per epoch), as drawn."""
        # vars(e): an EpochDone's fields as the history dict the engine's curve reads, no copy
        train = smooth(batch_points([vars(e) for e in self.epochs]) + list(self.live))
        val = [(float(e.epoch), e.val_loss) for e in self.epochs if 0 < e.val_loss < math.inf]
        return train, val

    def render(self) -> RenderResult:
        # A fresh figure for every render: plotext keeps state from one build to the next
        # that makes a rebuild at another size fail (IndexError, math domain error).
        self._plot = Plot()
        train, val = self.points()
        self._draw(self._plot, thinned(train, BRAILLE_DOTS * max(1, self.size.width)), val)
        return super().render()

    @staticmethod
    def _draw(plt: Plot, train: Sequence[tuple[float, float]], val: Sequence[tuple[float, float]]) -> None:
        # no title or axis label: on an 80x24 terminal every row goes to the curves
        if not (train or val):
            return
        plt.yscale("log")
        if train:
            plt.plot(*zip(*train), marker="braille", color="cyan")
        if val:
            plt.scatter(*zip(*val), marker="●", color="orange")
        last = max(1, math.ceil(max(x for x, _ in [*train, *val]) - 1e-9))
        plt.xlim(0, last + 0.05)
        plt.xticks(_ticks(last))


# Braille draws two dots a column, so a curve of more points than that shows nothing more,
# while plotext's figure takes time in proportion to its points: 6.6 ms for 423 (the
# defaults' nine epochs), 13.8 ms for 1,000, 3.9 ms for 100, on a 45-column chart, on the
# app's thread, which a run trained in its process waits for.
BRAILLE_DOTS = 2


def thinned(points: Sequence[tuple[float, float]], most: int) -> list[tuple[float, float]]:
    """At most `most` points: runs of consecutive points averaged into one (x, and y in log
    space, the chart's scale), the runs as even as the count allows; fewer points pass as
    they are. Positive y (the smoothed losses are)."""
    n = len(points)
    if n <= most:
        return list(points)
    out = []
    for k in range(most):
        run = points[k * n // most : (k + 1) * n // most]
        x = sum(p[0] for p in run) / len(run)
        y = math.exp(sum(math.log(p[1]) for p in run) / len(run))
        out.append((x, y))
    return out


def _ticks(last: int) -> list[int]:
    step = max(1, -(-last // 8))
    return list(range(0, last + 1, step))
