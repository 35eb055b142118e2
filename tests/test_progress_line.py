"""The training screen's progress lines (tui/widgets/progress_line.py): a label, a bar in half
cells and the percentage, on one line of the width it is given."""

from __future__ import annotations

import asyncio

import pytest
from rich.console import Console
from rich.style import Style
from textual.app import App

from tui.widgets.progress_line import BAR, HALF_LEFT, HALF_RIGHT, ProgressLine, bar_text

LIT, UNLIT = Style(color="green"), Style(color="grey37")
CONSOLE = Console(width=200)


def lit_halves(width: int, fraction: float) -> float:
    text = bar_text(width, fraction, LIT, UNLIT)
    assert text.cell_len == width
    return sum((0.5 if ch == HALF_RIGHT else 1.0) for ch, style in _cells(text) if style == LIT)


def _cells(text):
    """(character, style) per cell, as the line is drawn."""
    return [(ch, seg.style) for seg in text.render(CONSOLE) for ch in seg.text]


@pytest.mark.parametrize("width", [1, 7, 43])
def test_the_bar_is_lit_to_the_half_cell_below_its_fraction(width):
    for k in range(0, 101):
        fraction = k / 100
        assert lit_halves(width, fraction) == int(fraction * width * 2) / 2
    assert bar_text(width, 1.0, LIT, UNLIT).plain == BAR * width
    assert bar_text(width, 0.999, LIT, UNLIT).plain != BAR * width or width == 1
    assert set(bar_text(width, 0.0, LIT, UNLIT).plain) == {BAR}


def test_a_bar_that_ends_on_a_whole_cell_leaves_a_gap_before_the_rest():
    text = bar_text(10, 0.3, LIT, UNLIT)
    assert text.plain == BAR * 3 + HALF_LEFT + BAR * 6
    assert bar_text(10, 0.35, LIT, UNLIT).plain == BAR * 3 + HALF_RIGHT + BAR * 6
    assert bar_text(0, 0.5, LIT, UNLIT).plain == ""


def test_the_line_shows_its_label_bar_and_percentage_in_its_width():
    class One(App):
        def compose(self):
            yield ProgressLine("epoch", id="line")

    async def body():
        app = One()
        async with app.run_test(size=(60, 5)) as pilot:
            line = app.query_one(ProgressLine)
            line.update("epoch 2 batch 5/40 and a label longer than its room", progress=5, total=40)
            await pilot.pause()
            shown = str(line.render())
            assert len(shown) == line.size.width == 58
            assert shown.startswith("epoch 2 batch 5/40 and a label"[: ProgressLine.LABEL_WIDTH])
            assert shown.endswith(" 12%")  # 12.5% shown as Python rounds it
            line.update(progress=40)
            await pilot.pause()
            assert str(line.render()).endswith("100%") and line.fraction == 1.0
            repaints: list[bool] = []
            plain = line.refresh
            line.refresh = lambda *a, **k: repaints.append(k.get("layout", False)) or plain(*a, **k)
            line.update(progress=40, total=40)  # nothing new: no repaint
            line.update("epoch 3", progress=1)
            assert repaints == [False]

    asyncio.run(body())
