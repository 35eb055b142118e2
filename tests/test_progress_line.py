"""The training screen's progress lines (tui/widgets/progress_line.py): a label, a bar in half
cells and the percentage, on one line of the width it is given."""

from __future__ import annotations

import asyncio

import pytest
from rich.style import Style
from rich.text import Text
from textual.app import App

from tui.widgets.progress_line import BAR, HALF_LEFT, HALF_RIGHT, ProgressLine, bar_pieces

LIT, UNLIT = Style(color="green"), Style(color="grey37")


def bar_text(width: int, fraction: float, lit: Style, unlit: Style) -> Text:
    return Text.assemble(*bar_pieces(width, fraction, lit, unlit), end="")


def lit_halves(width: int, fraction: float) -> float:
    cells = [(ch, style) for text, style in bar_pieces(width, fraction, LIT, UNLIT) for ch in text]
    assert len(cells) == width
    return sum((0.5 if ch == HALF_RIGHT else 1.0) for ch, style in cells if style == LIT)


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


class OneLine(App):
    """A progress line alone on a screen."""

    def compose(self):
        yield ProgressLine("epoch", id="line")


def test_the_line_shows_its_label_bar_and_percentage_in_its_width():
    async def body():
        app = OneLine()
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


def _lit_colour(line: ProgressLine):
    """The colour of the bar's first cell, as painted."""
    strip = line.render_line(0)
    at = ProgressLine.LABEL_WIDTH
    for seg in strip:
        if at < len(seg.text):
            assert seg.text[at] == BAR
            return seg.style.color
        at -= len(seg.text)
    raise AssertionError("no bar painted")


def test_the_painted_line_has_the_cells_of_its_text_and_follows_a_new_theme():
    async def body():
        app = OneLine()
        async with app.run_test(size=(60, 5)) as pilot:
            line = app.query_one(ProgressLine)
            line.update("epoch 2 batch 33/40", progress=33, total=40)
            await pilot.pause()
            base = line.rich_style
            # the same cells as Rich's own reading of the line's Text on the widget's style
            expected = [
                (ch, base + seg.style if seg.style else base)
                for seg in line.render().render(app.console)
                for ch in seg.text
            ]
            painted = [(ch, seg.style) for seg in line.render_line(0) for ch in seg.text]
            assert painted == expected
            before = _lit_colour(line)
            app.theme = "textual-light" if app.theme != "textual-light" else "nord"
            await pilot.pause()
            lit = line.get_component_rich_style("progress-line--bar").color
            assert lit != before and _lit_colour(line) == lit  # the styles are read again

    asyncio.run(body())
