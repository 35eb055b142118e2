"""The loss as training goes: the training loss of every batch (smoothed), from the first
batches on, and the validation loss of every finished epoch as points on the same axes. x is
in epochs (1.37 = the second epoch, 37% through). Log scale: the loss of this task falls by
orders of magnitude, and on a linear axis every epoch after the second would sit on the floor."""
from __future__ import annotations

import math
from typing import Sequence

from textual.app import RenderResult
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from engine.train import EpochDone

SMOOTHING = 0.9  # EMA weight of the past: about the last ten batches


def batch_points(epochs: Sequence[EpochDone], live: Sequence[tuple[float, float]] = ()) -> list[tuple[float, float]]:
    """(x, training loss) per batch: finished epochs from their own lists, then the epoch in
    progress. An epoch without per-batch losses (an older checkpoint) gives its mean at its end."""
    points: list[tuple[float, float]] = []
    for e in epochs:
        n = len(e.batch_losses)
        if n:
            points += [(e.epoch - 1 + (k + 1) / n, loss) for k, loss in enumerate(e.batch_losses)]
        else:
            points.append((float(e.epoch), e.train_loss))
    return points + list(live)


def smooth(points: Sequence[tuple[float, float]], beta: float = SMOOTHING) -> list[tuple[float, float]]:
    """Exponential moving average in log space (the chart's scale), started at the first
    value so that it is not pulled towards zero; non-positive or non-finite losses skipped."""
    out, avg = [], None
    for x, y in points:
        if not 0 < y < math.inf:
            continue
        v = math.log(y)
        avg = v if avg is None else beta * avg + (1 - beta) * v
        out.append((x, math.exp(avg)))
    return out


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

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.train: list[tuple[float, float]] = []  # smoothed, per batch
        self.val: list[tuple[float, float]] = []    # per epoch
        self.border_title = self.LEGEND

    @property
    def data_points(self) -> int:
        """Epochs on the chart (validation points)."""
        return len(self.val)

    def show(self, epochs: Sequence[EpochDone], live: Sequence[tuple[float, float]] = ()) -> None:
        self.train = smooth(batch_points(epochs, live))
        self.val = [(float(e.epoch), e.val_loss) for e in epochs if 0 < e.val_loss < math.inf]
        self.refresh()

    def render(self) -> RenderResult:
        # A fresh figure for every render: plotext keeps state from one build to the next
        # that makes a rebuild at another size fail (IndexError, math domain error).
        self._plot = Plot()
        self._draw(self._plot, self.train, self.val)
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


def _ticks(last: int) -> list[int]:
    step = max(1, -(-last // 8))
    return list(range(0, last + 1, step))
