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
        if layout.steps_per_line == 1:
            t = line
            word = output_tokens[t] if t < len(output_tokens) else ""
            out.append(f"{word[: layout.label - 1]:<{layout.label}}", style="bold")
            for w in attention[t, :columns]:
                out.append(" " * cell, style=f"on {colour(float(w))}")
        else:
            upper, lower = 2 * line, 2 * line + 1
            for j in range(columns):
                top = colour(float(attention[upper, j]))
                if lower < steps:
                    out.append("▀" * cell, style=f"{top} on {colour(float(attention[lower, j]))}")
                else:
                    out.append("▀" * cell, style=top)
    if cut:
        hidden = max(0, steps - shown * layout.steps_per_line)
        missing = [f"↓ {hidden} more steps"] if hidden else []
        missing += [f"→ {tokens - columns} more words"] if columns < tokens else []
        out.append("\n" + ", ".join(missing)[:width], style="dim")
    return out
