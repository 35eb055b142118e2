"""An attention grid too big for its space, drawn as a map: every weight a coloured block,
with no number, so that the whole alignment (for reversal, the anti-diagonal) is seen at
once where the numbered grid (attention_grid.py) would show a corner of it.

Two scales, the larger that fits: a line per decoder step, labelled with the word it
emitted, and a column of two characters per input token with the token's initial above it;
or, when the steps do not fit, two steps per line with half blocks (the upper half one
step, the lower the next) and no row labels. Same shades as the numbered grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from rich.text import Text
from textual.geometry import Size
from textual.strip import Strip
from textual.widget import Widget

from .attention_grid import PALETTE

LABEL = 8  # characters for a row's word, a space included


def colour(weight: float) -> str:
    """The palette colour of a weight, as Rich names it."""
    return f"color({PALETTE[min(9, max(0, int(weight * 10)))][0]})"


@dataclass(frozen=True)
class Layout:
    cell: int  # characters per input token
    steps_per_line: int  # 1: a line per decoder step, with its word; 2: half blocks
    label: int  # characters of row labels (0 with half blocks)

    def size(self, steps: int, tokens: int) -> tuple[int, int]:
        """(width, height) of the map of `steps` rows and `tokens` columns, header included."""
        return self.label + self.cell * tokens, 1 + -(-steps // self.steps_per_line)


LAYOUTS = (Layout(2, 1, LABEL), Layout(2, 2, 0), Layout(1, 2, 0))


def choose(steps: int, tokens: int, width: int, height: int) -> Layout:
    """The largest layout that fits; the smallest when none does (its rows are then cut)."""
    for layout in LAYOUTS:
        w, h = layout.size(steps, tokens)
        if w <= width and h <= height:
            return layout
    return LAYOUTS[-1]


def append_merged(out: Text, runs: Sequence[tuple[str, str]]) -> None:
    """Append the runs, neighbours of one style as one span: a trained alignment is a row of
    one shade with a bright cell, and every span costs the terminal app when it paints."""
    text, style = "", None
    for chars, s in runs:
        if s != style and text:
            out.append(text, style=style)
            text = ""
        text, style = text + chars, s
    if text:
        out.append(text, style=style)


def render_map(
    attention: np.ndarray, source_tokens: Sequence[str], output_tokens: Sequence[str], width: int, height: int
) -> Text:
    """attention (steps, n + 1) as a map within width x height cells (rows or columns that
    cannot fit are cut, and the last line says how many)."""
    steps, tokens = attention.shape
    layout = choose(steps, tokens, width, height)
    cell = layout.cell
    columns = max(1, min(tokens, (width - layout.label) // cell))
    out = Text(no_wrap=True, overflow="crop")
    out.append(" " * layout.label)
    for tok in source_tokens[:columns]:
        out.append((tok[:1] if tok != "<eos>" else "$").ljust(cell), style="bold")
    lines = -(-steps // layout.steps_per_line)
    room = max(1, height - 1)
    cut = lines > room or columns < tokens
    shown = min(lines, room - 1) if cut else lines  # the last line, when cut, says what is missing
    for line in range(shown):
        out.append("\n")
        runs: list[tuple[str, str]] = []  # (characters, style) of the line's cells
        if layout.steps_per_line == 1:
            t = line
            word = output_tokens[t] if t < len(output_tokens) else ""
            out.append(f"{word[: layout.label - 1]:<{layout.label}}", style="bold")
            runs = [(" " * cell, f"on {colour(float(w))}") for w in attention[t, :columns]]
        else:
            upper, lower = 2 * line, 2 * line + 1
            for j in range(columns):
                top = colour(float(attention[upper, j]))
                style = f"{top} on {colour(float(attention[lower, j]))}" if lower < steps else top
                runs.append(("▀" * cell, style))
        append_merged(out, runs)
    if cut:
        hidden = max(0, steps - shown * layout.steps_per_line)
        missing = [f"↓ {hidden} more steps"] if hidden else []
        missing += [f"→ {tokens - columns} more words"] if columns < tokens else []
        out.append("\n" + ", ".join(missing)[:width], style="dim")
    return out


class AttentionMap(Widget):
    """A map (render_map) drawn as prepared lines: a live view redraws it at every snapshot,
    and lines made once cost a fraction of what a Static spends turning the map's many
    coloured spans into its own content each time."""

    DEFAULT_CSS = """
    AttentionMap {
        width: auto;
        height: auto;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = Text()
        self.strips: list[Strip] = []

    def show(self, text: Text) -> None:
        """Draw this map; a layout only when its size changes (a layout reflows and paints
        the whole screen, and a run's maps keep one size once its output's length settles)."""
        lines = text.split("\n", allow_blank=True)
        strips = [Strip(line.render(self.app.console), line.cell_len) for line in lines]
        resized = [s.cell_length for s in strips] != [s.cell_length for s in self.strips]
        self.text, self.strips = text, strips
        self.refresh(layout=resized)

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return max((s.cell_length for s in self.strips), default=0)

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.strips)

    def render_line(self, y: int) -> Strip:
        return self.strips[y] if y < len(self.strips) else Strip.blank(self.size.width)
