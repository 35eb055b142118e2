"""Several runs' curves on shared axes, one colour a run: the comparison's loss per epoch and
exact match by length. The legend is the comparison's table of runs, drawn in the same colours
(plotext's own legend would cover the first points)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

# 256-colour codes, told apart on a dark background and by most colour-blind eyes: plotext
# draws with the code, rich writes the legend with the same colour(N)
PALETTE = [45, 208, 76, 170, 220, 203, 69, 250]
MARK_COLOUR = 240  # a dim grey: the marks stay behind the curves


def rich_colour(code: int) -> str:
    return f"color({code})"


@dataclass
class Series:
    label: str
    colour: int
    points: list[tuple[float, float]]


class OverlayChart(PlotextPlot):
    DEFAULT_CSS = """
    OverlayChart {
        height: 1fr;
        min-height: 6;
        border-top: solid $foreground 20%;
        border-title-align: left;
    }
    """

    def __init__(self, empty: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.empty = empty  # what to say when no run has points to draw
        self.series: list[Series] = []
        self.log_y = False
        self.percent = False  # y is a share, drawn 0-100%
        self.marks: list[float] = []  # x values marked by a vertical line (the training lengths' ends)

    def show(
        self,
        title: str,
        series: Sequence[Series],
        log_y: bool = False,
        percent: bool = False,
        marks: Sequence[float] = (),
    ) -> None:
        self.border_title = title
        self.series, self.log_y, self.percent, self.marks = list(series), log_y, percent, list(marks)
        self.refresh()

    def drawn(self) -> list[Series]:
        """The series as drawn: a log axis leaves out what is not above zero."""
        keep = (lambda y: y > 0 and math.isfinite(y)) if self.log_y else math.isfinite
        return [Series(s.label, s.colour, [(x, y) for x, y in s.points if keep(y)]) for s in self.series]

    def render(self) -> RenderResult:
        series = [s for s in self.drawn() if s.points]
        if not series:
            return Text(self.empty, style="dim")
        # a fresh figure each render, as LossChart: plotext keeps state between builds
        self._plot = plt = Plot()
        if self.log_y:
            plt.yscale("log")
        for x in self.marks:  # first, so that the curves draw over them
            plt.vline(x, MARK_COLOUR)
        for s in series:
            xs, ys = zip(*s.points)
            ys = [100 * y for y in ys] if self.percent else list(ys)
            plt.plot(xs, ys, marker="braille", color=s.colour)
        if self.percent:
            plt.ylim(0, 100)
            plt.yticks([0, 50, 99], ["0%", "50%", "99%"])
        xs = [x for s in series for x, _ in s.points] + self.marks
        plt.xticks(ticks_with_marks(min(xs), max(xs), self.marks))  # epochs and lengths are whole numbers
        return super().render()


def ticks_with_marks(lo: float, hi: float, marks: Sequence[float]) -> list[float]:
    """Round ticks, and the marked values (the training lengths' ends) labelled too: a round
    tick too close to a mark for both labels to read gives way to it."""
    near = (hi - lo) / 12
    ticks = [t for t in whole_ticks(lo, hi) if all(abs(t - m) > near for m in marks)]
    return sorted({*ticks, *marks})


def whole_ticks(lo: float, hi: float, most: int = 6) -> list[int]:
    """Whole numbers between lo and hi at a round step (1, 2, 5, 10, 20, 50, ...), at most
    `most` of them."""
    lo, hi = math.floor(lo), math.ceil(hi)
    step = 1
    while (hi - lo) / step > most - 1:
        step = _next_round(step)
    first = -(-lo // step) * step
    return list(range(first, hi + 1, step)) or [lo]


def _next_round(step: int) -> int:
    """1 -> 2 -> 5 -> 10 -> 20 -> 50 -> ..."""
    digits = str(step)
    return step * 5 // 2 if digits[0] == "2" else step * 2
