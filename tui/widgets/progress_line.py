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


def bar_pieces(width: int, fraction: float, lit: Style, unlit: Style) -> list[tuple[str, Style]]:
    """A bar `width` cells long as (text, style) pieces, lit from the left for `fraction` of it
    in whole half cells (rounded down, so a bar is never full before its work is): Textual's
    own bar's glyphs."""
    if width <= 0:
        return []
    halves = int(max(0.0, min(1.0, fraction)) * width * 2)
    whole, half = divmod(halves, 2)
    pieces = [(BAR * whole, lit)] if whole else []
    if half:
        pieces.append((HALF_RIGHT, lit))
    elif whole < width and whole:
        pieces.append((HALF_LEFT, unlit))
    rest = width - sum(len(text) for text, _ in pieces)
    if rest:
        pieces.append((BAR * rest, unlit))
    return pieces


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
        self._looks: dict[str, Style] | None = None

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

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._looks = None  # the CSS or the theme changed: read the styles again at the next paint

    def _styles(self) -> dict[str, Style]:
        """The line's styles, read once until the CSS changes: working them out from the CSS
        (the widget's own through its ancestors', and each component's) took most of a repaint."""
        if self._looks is None:
            looks = {"base": self.rich_style}
            for part in ("bar", "complete"):
                style = self.get_component_rich_style(f"progress-line--{part}")
                looks[f"{part} lit"] = Style.from_color(style.color)
                looks[f"{part} unlit"] = Style.from_color(style.bgcolor)
            self._looks = looks
        return self._looks

    def pieces(self) -> list[tuple[str, Style | None]]:
        """The line as (text, style) pieces: the label, the bar, the percentage."""
        width = self.size.width  # the content's: padding excluded
        fraction = self.fraction
        looks = self._styles()
        part = "complete" if fraction >= 1 else "bar"
        label = self.label[: self.LABEL_WIDTH].ljust(self.LABEL_WIDTH)
        bar_width = max(0, width - self.LABEL_WIDTH - self.PERCENT_WIDTH)
        bar = bar_pieces(bar_width, fraction, looks[f"{part} lit"], looks[f"{part} unlit"])
        return [(label, None), *bar, (f"{round(100 * fraction)}%".rjust(self.PERCENT_WIDTH), None)]

    def render_line(self, y: int) -> Strip:
        # segments straight from the pieces, on the widget's style: Textual's own path from a
        # Text (its content, then its strips) took most of the ~1 ms a repaint of this line cost
        base = self._styles()["base"]
        if y:
            return Strip.blank(self.size.width, base)
        segments = [Segment(text, base + style if style else base) for text, style in self.pieces() if text]
        return Strip(segments).adjust_cell_length(self.size.width, base)

    def render(self) -> Text:
        """The line as a Text (what it says, for tests and screenshots); render_line paints it."""
        return Text.assemble(*self.pieces(), end="")
