"""The loss as training goes: the training loss of every batch (smoothed), from the first
batches on, and the validation loss of every finished epoch as points on the same axes. x is
in epochs (1.37 = the second epoch, 37% through). Log scale: the loss of this task falls by
orders of magnitude, and on a linear axis every epoch after the second would sit on the floor."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from functools import lru_cache

from plotext import colorize
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.content import Content
from textual.strip import Strip
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from engine.insight.plots import batch_points, smooth
from engine.train.events import EpochDone

TRAIN_COLOR, VAL_COLOR = "cyan", "orange"  # plotext's names, for the curves and the legend


def legend(train: str, val: str) -> Content:
    """The chart's legend, its marks in the colours plotext gives the curves: the same escape
    codes, read as the figure's are. Content rather than markup, which the border would parse
    again at every repaint."""
    line = f"{colorize('━', TRAIN_COLOR)} {train}  {colorize('●', VAL_COLOR)} {val}  (log)"
    return Content.from_rich_text(Text.from_ansi(line))


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
    LEGEND = legend("train loss per batch, smoothed", "val loss per epoch")
    SHORT_LEGEND = legend("train loss", "val loss")  # a narrow chart

    # Redraws at most this often (seconds): building and painting a plotext figure holds the
    # GIL that the training thread needs, 10-25 ms a redraw on the app's thread at the
    # defaults on two cores. Default run, 1 training thread, seconds per epoch (--no-ui
    # 1.82-1.86): redrawn at 20 a second 2.5-2.7, twice a second 2.0-2.4, once a second
    # 2.0-2.2, never 1.8-2.0. Every 2 s instead of every second took the app's thread from
    # 6.2% to 5.3% of the seconds of a default run's epochs (bench/README.md). An epoch's end
    # redraws at once (show), unless the last redraw was less than EPOCH_GAP ago: a run of
    # tiny epochs would otherwise redraw the chart many times a second. A redraw for batches
    # alone waits when the epoch should end within SOON at the pace of the one before: its
    # end redraws anyway, so epochs of 2-3 s (the defaults on two cores) redraw once, not twice.
    INTERVAL = 2.0
    EPOCH_GAP = 0.5
    SOON = 1.0

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epochs: Sequence[EpochDone] = []
        self.live: Sequence[tuple[float, float]] = []
        self._last = -math.inf  # monotonic time of the last redraw: the first is at once
        self._pending = None
        self._drawn = 0  # redraws asked for; the lines below are those of redraw `_lines_key[0]`
        self._lines: list[Strip] = []
        self._lines_key: tuple = ()
        self._style_updates = 0  # the CSS or the theme changed this many times: the lines' style
        self.border_title = self.LEGEND

    def on_resize(self) -> None:
        long = self.LEGEND.cell_length + 4 <= self.size.width
        self.border_title = self.LEGEND if long else self.SHORT_LEGEND

    @property
    def data_points(self) -> int:
        """Epochs on the chart (validation points)."""
        return len(self.epochs)

    def show(self, epochs: Sequence[EpochDone], live: Sequence[tuple[float, float]] = ()) -> None:
        """New data; drawn now when INTERVAL has passed since the last redraw and the epoch
        is not about to end, or when it brings a finished epoch (its validation point shows
        with the epoch's row in the table) and EPOCH_GAP has; else later. An epoch shorter than
        INTERVAL + SOON (and longer than EPOCH_GAP) therefore redraws the chart once, at its end."""
        new_epoch = len(epochs) != len(self.epochs)
        self.epochs, self.live = epochs, live
        since = time.monotonic() - self._last
        waits_for_the_end = self.INTERVAL > 0 and self.epoch_ends_soon()  # an INTERVAL of 0 draws every update
        if (new_epoch and since >= self.EPOCH_GAP) or (since >= self.INTERVAL and not waits_for_the_end):
            if self._pending is not None:
                self._pending.stop()
            self._redraw()
        elif self._pending is None:
            wait = self.INTERVAL - since
            self._pending = (
                self.set_timer(wait, self._when_due) if wait > 0 else self.set_timer(self.SOON, self._redraw)
            )

    def epoch_ends_soon(self) -> bool:
        """Whether the epoch training now should end within SOON seconds, at the pace of the
        epoch before it (its seconds, and how far the batches on the chart have gone)."""
        if not (self.epochs and self.live):
            return False
        done = self.live[-1][0] - len(self.epochs)  # of the epoch now training: x is in epochs
        return 0 <= done <= 1 and (1 - done) * self.epochs[-1].seconds <= self.SOON

    def _when_due(self) -> None:
        if self.epoch_ends_soon():
            # its end draws first; should it not come (a run stopped), this does
            self._pending = self.set_timer(self.SOON, self._redraw)
            return
        self._redraw()

    def _redraw(self) -> None:
        self._pending = None
        self._last = time.monotonic()
        self._drawn += 1
        self.refresh()

    def points(self) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        """(smoothed training loss per batch, validation loss per epoch), as drawn."""
        # vars(e): an EpochDone's fields as the history dict the engine's curve reads, no copy
        train = smooth(batch_points([vars(e) for e in self.epochs]) + list(self.live))
        val = [(float(e.epoch), e.val_loss) for e in self.epochs if 0 < e.val_loss < math.inf]
        return train, val

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._style_updates += 1

    def render_line(self, y: int) -> Strip:
        # The figure's lines straight from plotext's text: Rich's reading of its escape codes
        # and Textual's of the Text that makes took as long as plotext's own drawing. Keyed by
        # the style's changes, not the style: working it out took ~0.1 ms a line.
        key = (self._drawn, self.size, self.app.theme, self._style_updates)
        if key != self._lines_key:
            self._lines, self._lines_key = self._figure_lines(), key
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(self.size.width, self.rich_style)

    def _figure_lines(self) -> list[Strip]:
        width, height = self.size
        # A fresh figure for every build: plotext keeps state from one build to the next
        # that makes a rebuild at another size fail (IndexError, math domain error).
        plt = self._plot = Plot()
        train, val = self.points()
        self._draw(plt, thinned(train, BRAILLE_DOTS * max(1, width)), val)
        plt.plotsize(width, height)
        plt._set_size(width, height)  # textual-plotext's own belt and braces for resizing
        plt.theme(self._get_plotext_theme_name(self.app.theme))
        base = self.rich_style
        return [ansi_strip(line, width, base) for line in plt.build().split("\n")[:height]]

    @staticmethod
    def _draw(plt: Plot, train: Sequence[tuple[float, float]], val: Sequence[tuple[float, float]]) -> None:
        # no title or axis label: on an 80x24 terminal every row goes to the curves
        if not (train or val):
            return
        plt.yscale("log")
        if train:
            plt.plot(*zip(*train), marker="braille", color=TRAIN_COLOR)
        if val:
            plt.scatter(*zip(*val), marker="●", color=VAL_COLOR)
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


ESCAPE = re.compile(r"\x1b\[([0-9;]*)m")


@lru_cache(maxsize=64)
def _sgr_style(codes: str) -> Style | None:
    """The style an SGR escape's codes add, as Rich reads them (None: back to plain; a code
    Rich does not read adds nothing)."""
    if codes in ("", "0"):
        return None
    spans = Text.from_ansi(f"\x1b[{codes}mx").spans
    return Style.parse(str(spans[0].style)) if spans else Style()


def ansi_strip(line: str, width: int, base: Style) -> Strip:
    """One line of plotext's text as a strip of `width` cells on the widget's own style:
    the same cells as Rich's reading of the line gives, at a fraction of its cost."""
    segments = []
    style = None
    for k, part in enumerate(ESCAPE.split(line)):
        if k % 2:  # an escape's codes: they add to the style so far, or end it
            new = _sgr_style(part)
            style = None if new is None else style + new if style else new
        elif part:
            segments.append(Segment(part, base + style if style else base))
    return Strip(segments).adjust_cell_length(width, base)


def _ticks(last: int) -> list[int]:
    step = max(1, -(-last // 8))
    return list(range(0, last + 1, step))
