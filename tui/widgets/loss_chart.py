"""Train and validation loss per epoch, redrawn after every epoch. Log scale: the loss of
this task falls by orders of magnitude, and on a linear axis every epoch after the second
would sit on the floor."""
from __future__ import annotations

from typing import Sequence

from textual.app import RenderResult
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot


class LossChart(PlotextPlot):
    DEFAULT_CSS = """
    LossChart {
        height: 1fr;
        min-height: 6;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.history: list[dict] = []

    @property
    def data_points(self) -> int:
        """Epochs on the chart."""
        return len(self.history)

    def set_history(self, history: Sequence[dict]) -> None:
        """history: dicts with epoch, train_loss, val_loss (EpochDone.as_dict())."""
        self.history = list(history)
        self.refresh()

    def render(self) -> RenderResult:
        # A fresh figure for every render: plotext keeps state from one build to the next
        # that makes a rebuild at another size fail (IndexError, math domain error).
        self._plot = Plot()
        self._draw(self._plot, self.history)
        return super().render()

    @staticmethod
    def _draw(plt: Plot, history: Sequence[dict]) -> None:
        # no title or axis label: on an 80x24 terminal every row goes to the curves
        epochs = [h["epoch"] for h in history]
        # the log of a loss that is not positive (or not finite) is undefined: leave it out
        train = [(h["epoch"], h["train_loss"]) for h in history if 0 < h["train_loss"] < float("inf")]
        val = [(h["epoch"], h["val_loss"]) for h in history if 0 < h["val_loss"] < float("inf")]
        if train or val:
            plt.yscale("log")
        if train:
            plt.plot(*zip(*train), label="train loss", marker="braille", color="cyan")
        if val:
            plt.plot(*zip(*val), label="val loss (log scale)", marker="braille", color="orange")
        if epochs:
            plt.xlim(0.8, max(epochs) + 0.2)
            plt.xticks(_ticks(max(epochs)))


def _ticks(last: int) -> list[int]:
    step = max(1, -(-last // 8))
    return list(range(1, last + 1, step))
