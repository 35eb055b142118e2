"""A progress line: a label, a bar and its percentage, drawn by one widget.

Why not Textual's ProgressBar beside a Label: the batch line changes a few times a second
while training, and there each change set four widgets to refresh (the bar, its bar and its
percentage, the label), each through Textual's own path from text to lines. On
a run that trains in the app's process the app's thread holds Python's lock while it does
that, and the training thread waits (bench/README.md, "The app against a headless run").
One widget of a fixed height and width repaints its own line and nothing else.
"""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip
from textual.widget import Widget

BAR = "━"
HALF_RIGHT = "╸"  # the bar's last half cell, lit
HALF_LEFT = "╺"  # the gap after a bar that ends on a whole cell


def bar_text(width: int, fraction: float, lit: Style, unlit: Style) -> Text:
    """A bar `width` cells long, lit from the left for `fraction` of it in whole half cells
    (rounded down, so a bar is never full before its work is): Textual's own bar's glyphs."""
    if width <= 0:
        return Text()
    halves = int(max(0.0, min(1.0, fraction)) * width * 2)
    whole, half = divmod(halves, 2)
    text = Text(end="")
    text.append(BAR * whole, lit)
    if half:
        text.append(HALF_RIGHT, lit)
    elif whole < width and whole:
        text.append(HALF_LEFT, unlit)
    text.append(BAR * (width - len(text)), unlit)
    return text


class ProgressLine(Widget, can_focus=False):
    """`label` at the left (LABEL_WIDTH cells), a bar filling the rest, the percentage at the right."""

    COMPONENT_CLASSES = {"progress-line--bar", "progress-line--complete"}
    DEFAULT_CSS = """
    ProgressLine {
        width: 1fr;
        height: 1;
        padding: 0 1;

        &> .progress-line--bar {
            color: $primary;
            background: $surface;
        }
        &> .progress-line--complete {
            color: $success;
            background: $surface;
        }
    }
    """
    LABEL_WIDTH = 30
    PERCENT_WIDTH = 5  # " 100%"

    def __init__(self, label: str = "", **kwargs) -> None:
        super().__init__(**kwargs)
        self.label = label
        self.progress = 0.0
        self.total = 1.0

    @property
    def fraction(self) -> float:
        return self.progress / self.total if self.total > 0 else 0.0

    def update(self, label: str | None = None, *, progress: float | None = None, total: float | None = None) -> None:
        """New values; the line repaints where they change what it shows (never a new layout:
        its size does not depend on them)."""
        before = (self.label, self.progress, self.total)
        if label is not None:
            self.label = label
        if progress is not None:
            self.progress = progress
        if total is not None:
            self.total = total
        if (self.label, self.progress, self.total) != before:
            self.refresh()

    def render_line(self, y: int) -> Strip:
        # the line's segments on the widget's style, straight: Textual's own path from a Text
        # (its content, then its strips) took most of the ~1 ms a repaint of this line cost
        base = self.rich_style
        if y:
            return Strip.blank(self.size.width, base)
        segments = [
            Segment(seg.text, base + seg.style if seg.style else base) for seg in self.render().render(self.app.console)
        ]
        return Strip(segments).adjust_cell_length(self.size.width, base)

    def render(self) -> Text:
        width = self.size.width  # the content's: padding excluded
        fraction = self.fraction
        style = self.get_component_rich_style("progress-line--complete" if fraction >= 1 else "progress-line--bar")
        lit, unlit = Style.from_color(style.color), Style.from_color(style.bgcolor)
        label = self.label[: self.LABEL_WIDTH].ljust(self.LABEL_WIDTH)
        bar_width = max(0, width - self.LABEL_WIDTH - self.PERCENT_WIDTH)
        line = Text(label, end="")
        line.append_text(bar_text(bar_width, fraction, lit, unlit))
        line.append(f"{round(100 * fraction)}%".rjust(self.PERCENT_WIDTH))
        return line
