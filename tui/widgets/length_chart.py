"""Validation exact match by sentence length after the newest epoch: a bar per length (or per
group of lengths, when there are more than the width holds), 0% at the floor and 100% a full
bar, the training lengths on the axis below. Block characters, not plotext: at a few rows
tall a bar of eighth blocks reads better than a braille line, and it needs no redraw timer
(it changes once an epoch).

A full bar means every sentence of that length was right: a bar is never drawn full for less
than 100%, nor empty for more than 0%. Where no figures fit above the bars, a red 0 marks a
length none of whose sentences was right, and a dim dot one without validation sentences."""

from __future__ import annotations

from dataclasses import dataclass

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

from engine.train.events import EpochDone

EIGHTHS = " ▁▂▃▄▅▆▇█"


@dataclass
class Column:
    """One bar: the lengths it adds up (one, or a group) and their counts."""

    first: int
    last: int
    correct: int
    total: int

    @property
    def share(self) -> float | None:
        return self.correct / self.total if self.total else None

    @property
    def label(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"


def columns(by_length: dict[int, list[int]], lo: int, hi: int, most: int) -> list[Column]:
    """The bars for lengths lo..hi (and any measured length outside them), grouped into at
    most `most` columns of consecutive lengths."""
    first, last = min([lo, *by_length]), max([hi, *by_length])
    lengths = list(range(first, last + 1))
    per = -(-len(lengths) // max(1, most))  # lengths per column
    out = []
    for k in range(0, len(lengths), per):
        group = lengths[k : k + per]
        counts = [by_length.get(n, [0, 0]) for n in group]
        out.append(Column(group[0], group[-1], sum(c for c, _ in counts), sum(t for _, t in counts)))
    return out


def filled_eighths(share: float, rows: int) -> int:
    """Eighths of a bar `rows` tall: at least one above 0%, one short of full below 100%."""
    levels = rows * 8
    n = round(share * levels)
    if share > 0:
        n = max(1, n)
    if share < 1:
        n = min(levels - 1, n)
    return n


def colour(share: float) -> str:
    return "green" if share >= 0.995 else "yellow" if share >= 0.5 else "red"


def percent(share: float) -> str:
    """Whole percent, rounded down: 99 means not all right; only all right reads 100."""
    return "100" if share >= 1 else str(int(100 * share))


class LengthChart(Widget):
    DEFAULT_CSS = """
    LengthChart {
        height: 5;
        min-width: 12;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.epoch: EpochDone | None = None
        self.trained = (1, 1)  # the training lengths, min and max
        self._lines: list[Strip] = []  # the chart drawn, for _lines_key
        self._lines_key: tuple | None = None

    def show(self, epoch: EpochDone | None, trained: tuple[int, int]) -> None:
        self.epoch, self.trained = epoch, trained
        self._lines_key = None
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._lines_key = None  # the CSS or the theme changed: draw again at the next paint

    def render_line(self, y: int) -> Strip:
        # Drawn once per epoch and size, as strips straight from render()'s Text: Textual's own
        # path from a Text to lines took about half of the ~5 ms a paint cost on the app's thread
        if self._lines_key != self.size:
            self._lines, self._lines_key = self._draw(), self.size
        if y < len(self._lines):
            return self._lines[y]
        return Strip.blank(self.size.width, self.rich_style)

    def _draw(self) -> list[Strip]:
        """render()'s Text as Textual draws it: wrapped to the width (the messages; the
        chart's own lines are cropped), on the widget's style, padded with its background."""
        width, base, console = self.size.width, self.rich_style, self.app.console
        pad = Style(bgcolor=base.bgcolor)
        strips, text = [], self.render()
        for line in text.wrap(console, width)[: self.size.height]:
            if not text.no_wrap:
                line.rstrip()  # as Textual wraps: no space left at the end of a wrapped line
            style = base + console.get_style(line.style) if line.style else base
            strips.append(Strip(Segment.apply_style(line.render(console), style)).crop_extend(0, width, pad))
        return strips

    def bars(self, width: int) -> list[Column]:
        """A bar a length, with its figure above (3 columns each) where they fit, else
        without (2 each); when even that does not fit, groups of lengths with figures:
        a figure reads better than one more bar."""
        by_length = self.epoch.val_by_length if self.epoch else {}
        lo, hi = self.trained
        lengths = max([hi, *by_length]) - min([lo, *by_length]) + 1
        most = width // 2 if 3 * lengths > width >= 2 * lengths else width // 3
        return columns(by_length, lo, hi, most=max(1, most))

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        lo, hi = self.trained
        e = self.epoch
        if e is None:
            return Text(f"Validation exact match by length ({lo}-{hi} words): after each epoch.", style="dim")
        if not e.val_by_length:  # an epoch from a checkpoint older than the counts
            return Text(f"Epoch {e.epoch} has no validation counts by length.", style="dim")
        cols = self.bars(width)
        slot = max(1, min(4, width // len(cols)))
        bar = slot - 1 if slot >= 2 else 1  # a gap between bars
        values = slot >= 3  # each bar's figure above it
        bracket = height >= 7  # a row under the axis marks the training lengths
        rows = max(1, height - 2 - values - bracket)
        t = Text(no_wrap=True, overflow="crop")
        t.append(self._title(width, e), style="bold")
        if values:
            t.append("\n")
            for c in cols:
                s = c.share
                t.append(
                    ("" if s is None else percent(s)).rjust(bar).ljust(slot), style=colour(s) if s is not None else ""
                )
        for r in range(rows, 0, -1):  # top row first
            t.append("\n")
            for c in cols:
                s = c.share
                if s is None:
                    cell = "·" if r == 1 else " "
                    t.append(cell.rjust(bar).ljust(slot), style="dim")
                    continue
                if s == 0 and r == 1 and not values:  # no figure above: say 0, not nothing
                    t.append("0".rjust(bar).ljust(slot), style="red")
                    continue
                part = filled_eighths(s, rows) - 8 * (r - 1)
                t.append((EIGHTHS[max(0, min(8, part))] * bar).ljust(slot), style=colour(s))
        t.append("\n")
        t.append(self._axis(cols, slot, bar))
        if bracket:
            t.append("\n")
            t.append(self._bracket(cols, slot, bar), style="dim")
        return t

    def _bracket(self, cols: list[Column], slot: int, bar: int) -> str:
        """└─ trained 3-10 ─┘ under the bars of the training lengths."""
        lo, hi = self.trained
        inside = [k for k, c in enumerate(cols) if c.last >= lo and c.first <= hi]
        if not inside:
            return ""
        start, end = inside[0] * slot, inside[-1] * slot + bar  # end: the column after
        span = end - start
        if span < 2:
            return " " * start + "^"
        label = f" trained {lo}-{hi} "
        if len(label) > span - 2:
            label = f" {lo}-{hi} " if len(f" {lo}-{hi} ") <= span - 2 else ""
        left = (span - 2 - len(label)) // 2
        return " " * start + "└" + "─" * left + label + "─" * (span - 2 - len(label) - left) + "┘"

    def _title(self, width: int, e: EpochDone) -> str:
        lo, hi = self.trained
        for title in (
            f"val exact match by length, epoch {e.epoch} (trained {lo}-{hi})",
            f"val exact by length, epoch {e.epoch}",
            f"exact by length, ep {e.epoch}",
            "exact by length",
            "by length",
        ):
            if len(title) <= width:
                return title
        return ""

    def _axis(self, cols: list[Column], slot: int, bar: int) -> Text:
        """Each bar's length under it where it fits beside the one before; a length outside
        the training range dim."""
        lo, hi = self.trained
        placed = [(k * slot + max(0, bar - len(str(c.first))), str(c.first), c) for k, c in enumerate(cols)]
        last_at, last_label, last = placed[-1]
        if last.last != last.first:  # the last group says where the axis ends
            last_label = str(last.last)
            last_at = (len(cols) - 1) * slot + max(0, bar - len(last_label))
        axis = Text()
        end = -1  # the column after the label written last
        for at, label, c in [*placed[:-1], (last_at, last_label, last)]:
            if at <= end or (c is not last and at + len(label) >= last_at):
                continue  # no room beside the one before, or the last one's
            axis.append(" " * (at - len(axis)))
            axis.append(label, style="" if lo <= c.first and c.last <= hi else "dim")
            end = at + len(label)
        return axis
