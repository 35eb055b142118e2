"""One watch sentence at one snapshot of training (engine/insight/watch.py): when it was taken, what
the model said and whether that is the reversal, and the attention grid that produced it.
The training screen shows the newest snapshot live; the timeline screen steps through them.

The numbered grid when it fits whole in the view's space, else the map (attention_map.py),
which shows the whole alignment without the numbers: a corner of a grid hides the shape a
learner looks for."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from engine.train.data import EOS, SPECIALS
from engine.train.events import Snapshot

from .attention_grid import AttentionGrid
from .attention_map import AttentionMap, render_map


def when(snap: Snapshot) -> str:
    """ "epoch 1, batch 4/19": the batches of that epoch trained when it was taken."""
    return f"epoch {snap.epoch}, batch {snap.batch}/{snap.batches}"


class WatchView(Vertical):
    DEFAULT_CSS = """
    WatchView {
        width: auto;
        height: 1fr;
        border-top: solid $foreground 20%;
        border-title-align: left;
    }
    WatchView > .watch-caption {
        width: auto;
        height: auto;
        max-width: 60;
    }
    WatchView.-one-line > .watch-caption {
        width: 1fr;  /* one line of fixed size: a new output repaints it, with no layout */
        height: 1;
        text-wrap: nowrap;  /* beside the chart: a long output costs one line, not the grid's rows */
        text-overflow: ellipsis;
    }
    WatchView > AttentionGrid {
        height: auto;
        max-height: 1fr;
    }
    """

    def __init__(self, empty: str = "No attention snapshot yet.", compact: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.empty, self.compact = empty, compact
        self.snapshot: Snapshot | None = None
        self.sentence = 0
        self.where: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(self.empty, classes="watch-caption")
        yield AttentionGrid(compact=self.compact)
        yield AttentionMap(classes="watch-map")

    def on_mount(self) -> None:
        self.query_one(AttentionGrid).display = False
        self.query_one(".watch-map").display = False

    def show(self, snap: Snapshot | None, sentence: int = 0, where: str | None = None) -> None:
        """Sentence `sentence` of this snapshot; where: the title in the top border (default:
        when it was taken); None shows the empty line."""
        self.snapshot, self.sentence, self.where = snap, sentence, where
        caption = self.query_one(".watch-caption", Static)
        grid, map_ = self.query_one(AttentionGrid), self.query_one(AttentionMap)
        if snap is None or not snap.sentences:
            self.border_title = None
            caption.update(Text(self.empty))
            grid.display = map_.display = False
            return
        w = snap.sentences[min(sentence, len(snap.sentences) - 1)]
        self.border_title = Text(where if where is not None else f"attention, {when(snap)}", style="bold")
        # the verdict first: a long output is cut at the end of the line, never the verdict
        text = Text("match" if w.match else "no match", style="bold green" if w.match else "bold red")
        text.append(": " + (" ".join(w.output) or "(nothing)"))
        caption.update(text, layout=not self.has_class("-one-line"))
        weights = np.asarray(w.weights, dtype=float)  # (steps, n + 1)
        source, output = tokens(w.source), w.labels  # a label per row of weights
        width, height = self.room()
        if width <= 0 or height <= 0:  # not laid out yet: on_resize draws it
            return
        grid_width, grid_height = grid.size_for(source, output, copy=w.copy is not None)
        if grid_width <= width and grid_height <= height:
            grid.show(weights, source, output, w.copy)
            grid.display, map_.display = True, False
        else:
            map_.show(render_map(weights, source, output, width, height))
            grid.display, map_.display = False, True

    def room(self) -> tuple[int, int]:
        """Cells the grid or map may take: the view's height under the caption; its width,
        or beside a chart (compact) half of the row it shares (its CSS max-width)."""
        width = self.parent.content_size.width // 2 - 1 if self.compact else self.content_size.width
        return width, self.content_size.height - 1

    def redraw(self) -> None:
        if self.snapshot is not None:
            self.show(self.snapshot, self.sentence, self.where)

    def on_resize(self) -> None:
        self.redraw()

    @property
    def grid(self) -> AttentionGrid:
        return self.query_one(AttentionGrid)


def tokens(words: Sequence[str]) -> list[str]:
    """The words and the end token: the grid's columns (source) or rows (output)."""
    return [*words, SPECIALS[EOS]]
