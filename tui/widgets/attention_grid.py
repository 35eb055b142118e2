"""The attention weights of one sentence as a terminal heatmap: a row per decoder step
(labelled with the word it emitted), a column per encoder token (the input words, then
<eos>), each cell shaded by its weight and printed as a number (".73"). A model with the copy
mechanism has one more column, first, "copy": p_copy, the share of each step's word that was
copied from where it looked rather than generated (engine/model/copy.py), shaded the same way.

Built on DataTable so that the header row and the row labels stay put while a long
sentence scrolls in both directions. The shades are xterm-256 palette colours picked to
follow viridis: a 256-colour terminal shows exactly these, not a rounded truecolor, and
the text on each shade is black or white, whichever contrasts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.text import Text
from textual.widgets import DataTable

# (xterm-256 index, text colour) for weights in [0, .1), [.1, .2), ... [.9, 1]
PALETTE: list[tuple[int, str]] = [
    (53, "color(250)"),  # #5f005f; near-zero cells get grey text so the peaks stand out
    (60, "color(231)"),  # #5f5f87
    (24, "color(231)"),  # #005f87
    (30, "color(231)"),  # #008787
    (36, "color(16)"),  # #00af87
    (71, "color(16)"),  # #5faf5f
    (77, "color(16)"),  # #5fd75f
    (113, "color(16)"),  # #87d75f
    (184, "color(16)"),  # #d7d700
    (226, "color(16)"),  # #ffff00
]
COPY = "copy"  # the copy column's header
MIN_CELL = 5  # ".73" plus a space either side
COMPACT_CELL = 4  # ".73" and a space: a grid beside a chart on an 80-column screen


def shade(weight: float) -> str:
    """Rich style for a cell of this weight."""
    bg, fg = PALETTE[min(9, max(0, int(weight * 10)))]
    return f"{fg} on color({bg})"


def weight_text(weight: float) -> str:
    """Three characters: ".73", "1.0" (from .995 up, where ".99"+ would round to 1)."""
    return "1.0" if weight >= 0.995 else f"{weight:.2f}"[1:]


def legend() -> Text:
    """One line: the ten shades with the weights they stand for."""
    t = Text("weight ")
    for k, (bg, fg) in enumerate(PALETTE):
        t.append(f" .{k}" if k < 9 else " .9+", style=f"{fg} on color({bg})")
    return t


class AttentionGrid(DataTable):
    DEFAULT_CSS = """
    AttentionGrid {
        width: auto;
        max-width: 100%;
        height: 1fr;
        scrollbar-size: 1 1;
        background: transparent;  /* no panel below a short grid */
    }
    """

    def __init__(self, compact: bool = False, **kwargs) -> None:
        super().__init__(show_row_labels=True, cursor_type="none", zebra_stripes=False, cell_padding=0, **kwargs)
        self.min_cell, self.max_cell = (COMPACT_CELL, 8) if compact else (MIN_CELL, 12)

    def widths(self, source_tokens: Sequence[str]) -> list[int]:
        """A column's width: its token's, within the cell sizes."""
        pad = self.min_cell - 3  # around the three characters of a weight
        return [max(self.min_cell, min(self.max_cell, len(tok) + pad)) for tok in source_tokens]

    def size_for(
        self, source_tokens: Sequence[str], output_tokens: Sequence[str], copy: bool = False
    ) -> tuple[int, int]:
        """(width, height) the whole grid of this sentence takes: its labels, columns and header
        (copy: and the copy column)."""
        label = max((len(_clip(w, 12)) for w in output_tokens), default=0) + 2
        return label + sum(self.widths([*source_tokens, *([COPY] if copy else [])])), len(output_tokens) + 1

    def show(
        self,
        attention: np.ndarray,
        source_tokens: Sequence[str],
        output_tokens: Sequence[str],
        copy: np.ndarray | Sequence[float] | None = None,
    ) -> None:
        """Replace the grid with a sentence's weights: attention is (steps, n + 1); copy (steps,)
        p_copy per step, shown as a last column, or None (a model without the copy mechanism)."""
        self.clear(columns=True)
        pad = self.min_cell - 3
        widths = self.widths(source_tokens)
        # compact: a space, then the word and its weights left-aligned, so that neighbours
        # never touch; else centred
        place = (lambda t, w: " " + t.ljust(w - 1)) if pad == 1 else (lambda t, w: t.center(w))
        copy_width = self.widths([COPY])[0]
        if copy is not None:  # first, beside the word it is about: a wide grid scrolls, it stays in view
            self.add_column(Text(place(COPY, copy_width), style="bold italic"), width=copy_width)
        for tok, w in zip(source_tokens, widths):
            self.add_column(Text(place(_clip(tok, w - 1), w), style="bold"), width=w)
        for step, (word, row) in enumerate(zip(output_tokens, attention)):
            cells = [Text(place(weight_text(float(x)), w), style=shade(float(x))) for x, w in zip(row, widths)]
            if copy is not None:
                p = float(copy[step]) if step < len(copy) else 0.0
                cells.insert(0, Text(place(weight_text(p), copy_width), style=shade(p)))
            self.add_row(*cells, key=str(step), label=Text(f" {_clip(word, 12)} ", style="bold"))


def _clip(word: str, width: int) -> str:
    return word if len(word) <= width else word[: width - 1] + "…"


def grid_label_width(output_tokens: Sequence[str]) -> int:
    """Characters of the row labels of grid_text: the longest word, at most 10, and a space."""
    return min(10, max((len(w) for w in output_tokens), default=1)) + 1


def grid_text_size(source_tokens: Sequence[str], output_tokens: Sequence[str]) -> tuple[int, int]:
    """(width, height) of grid_text's grid: the labels, a cell per token; the header row."""
    return grid_label_width(output_tokens) + COMPACT_CELL * len(source_tokens), len(output_tokens) + 1


def grid_text(attention: np.ndarray, source_tokens: Sequence[str], output_tokens: Sequence[str]) -> Text:
    """The numbered grid as one Text, for a column too narrow for a table of its own: a
    header of the input tokens (their first three characters; <eos> as EOS), then a row per decoder step,
    its word and a shaded weight per token, COMPACT_CELL characters each."""
    label = grid_label_width(output_tokens)
    out = Text(no_wrap=True, overflow="crop")
    out.append(" " * label)
    for tok in source_tokens:  # EOS in capitals: the text is lower-cased, so no word reads so
        out.append(("EOS" if tok == "<eos>" else _clip(tok, 3)).ljust(COMPACT_CELL), style="bold")
    for word, row in zip(output_tokens, attention):
        out.append("\n")
        out.append(_clip(word, label - 1).ljust(label), style="bold")
        for x in row:
            out.append(weight_text(float(x)), style=shade(float(x)))
            out.append(" ")
    return out
