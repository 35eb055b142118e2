"""The live loss chart (tui/widgets/loss_chart.py): a long curve reaches plotext thinned to what
its braille can show, averaged on the chart's log scale; a short one as it is."""

from __future__ import annotations

import asyncio
import math

import pytest
from textual.app import App

from engine.train.events import EpochDone
from tui.widgets.loss_chart import BRAILLE_DOTS, LossChart, thinned


def test_a_curve_of_no_more_points_than_asked_passes_as_it_is():
    points = [(0.1 * i, 2.0 / (i + 1)) for i in range(50)]
    assert thinned(points, 50) == points
    assert thinned(points, 80) == points


def test_a_longer_curve_is_averaged_in_runs_on_the_log_scale():
    ((x, y),) = thinned([(0.0, 1.0), (1.0, 100.0)], 1)
    assert x == 0.5 and math.isclose(y, 10.0)  # the geometric mean
    points = falling(1000)
    out = thinned(points, 90)
    assert len(out) == 90
    xs = [x for x, _ in out]
    assert xs == sorted(xs) and points[0][0] <= xs[0] and xs[-1] <= points[-1][0]
    # a falling curve stays falling, within its own range, and every point is used once
    ys = [y for _, y in out]
    assert ys == sorted(ys, reverse=True)
    assert points[-1][1] <= ys[-1] and ys[0] <= points[0][1]
    assert math.isclose(sum(x for x, _ in points), sum(x * len(r) for x, r in zip(xs, _runs(1000, 90))))


def _runs(n: int, most: int) -> list[range]:
    return [range(k * n // most, (k + 1) * n // most) for k in range(most)]


class OneChart(App):
    """A loss chart alone on a screen."""

    CSS = "LossChart.-night { background: darkblue; }"

    def compose(self):
        yield LossChart()


def falling(n: int) -> list[tuple[float, float]]:
    """n batches' losses of a falling curve, x in epochs of 47 batches."""
    return [(i / 47, 3.0 * math.exp(-i / 60)) for i in range(n)]


def test_the_chart_hands_plotext_at_most_two_points_a_column(monkeypatch):
    drawn: list[int] = []
    plain = LossChart._draw

    def counted(plt, train, val):
        drawn.append(len(train))
        plain(plt, train, val)

    monkeypatch.setattr(LossChart, "_draw", staticmethod(counted))
    monkeypatch.setattr(LossChart, "INTERVAL", 0.0)

    async def body():
        app = OneChart()
        async with app.run_test(size=(60, 20)) as pilot:
            chart = app.query_one(LossChart)
            chart.show([], falling(1000))
            for _ in range(50):  # until the screen has drawn the curve (an empty chart draws none)
                await pilot.pause()
                if any(drawn):
                    break
            curves = [n for n in drawn if n]
            assert curves and max(curves) <= BRAILLE_DOTS * chart.size.width < 1000
            assert "train loss" in str(chart.border_title)

    asyncio.run(body())


def _cells(segments) -> list[tuple[str, object]]:
    """(character, style) per cell."""
    return [(ch, seg.style) for seg in segments for ch in seg.text]


def test_a_figures_lines_read_as_rich_reads_them():
    """The chart turns plotext's text into lines itself: every cell must carry the character
    and the style that Rich's own reading of the escapes gives it, on the widget's style."""
    from rich.console import Console
    from rich.style import Style
    from rich.text import Text
    from textual_plotext.plot import Plot

    from tui.widgets.loss_chart import ansi_strip

    plt = Plot()
    LossChart._draw(plt, thinned(falling(200), 80), [(1.0, 2.0), (2.0, 0.9), (3.0, 0.3)])
    plt.plotsize(40, 12)
    plt.theme("pro")
    figure = plt.build()
    assert "\x1b[" in figure  # coloured: the escapes are read, not just passed over
    base = Style(color="white", bgcolor="black")
    console = Console(width=200)
    for line in figure.split("\n"):
        ours = ansi_strip(line, 40, base)
        theirs = Text.from_ansi(line)
        theirs.pad_right(40 - theirs.cell_len)
        expected = [(ch, base + style) for ch, style in _cells(theirs.render(console))]
        assert _cells(ours) == expected
    with_bold = ansi_strip("a\x1b[1mb\x1b[38;5;6mc\x1b[0md", 4, base)
    assert [style.bold for _, style in _cells(with_bold)] == [None, True, True, None]
    assert _cells(with_bold)[2][1].color.number == 6
    unknown = ansi_strip("\x1b[38;5;6ma\x1b[999mb", 2, base)  # a code Rich does not read: kept as is
    assert _cells(unknown)[1][1] == _cells(unknown)[0][1]


def test_the_figure_is_built_once_a_redraw(monkeypatch):
    """Painting the chart again (another widget's change, a screen's return) reuses its lines;
    a redraw builds them anew, with the new data."""
    monkeypatch.setattr(LossChart, "INTERVAL", 0.0)
    builds: list[int] = []
    plain = LossChart._figure_lines

    def counted(self):
        builds.append(len(self.live))
        return plain(self)

    monkeypatch.setattr(LossChart, "_figure_lines", counted)

    async def body():
        app = OneChart()
        async with app.run_test(size=(60, 20)) as pilot:
            chart = app.query_one(LossChart)
            chart.show([], falling(10))
            await pilot.pause()
            first = len(builds)
            assert builds and builds[-1] == 10
            for y in range(chart.size.height):
                chart.render_line(y)
            assert len(builds) == first
            chart.show([], falling(20))
            await pilot.pause()
            assert builds[-1] == 20 and len(builds) == first + 1
            assert any("⠀" < ch <= "⣿" for y in range(chart.size.height) for ch in chart.render_line(y).text)
            # a new style (here the widget's background) is the base of the lines' cells: built anew
            chart.add_class("-night")
            await pilot.pause()
            assert len(builds) == first + 2

    asyncio.run(body())


@pytest.mark.parametrize("gap", [0.0, 1000.0])
def test_a_finished_epoch_is_drawn_at_once_and_batches_wait_their_turn(monkeypatch, gap):
    """Between redraws (INTERVAL) new batches wait; an epoch's end draws at once, its
    validation point beside the table's new row, and takes the place of the waiting redraw;
    but not within EPOCH_GAP of the last redraw (a run of tiny epochs), where it waits too."""
    monkeypatch.setattr(LossChart, "INTERVAL", 1000.0)  # no redraw falls due by the clock here
    monkeypatch.setattr(LossChart, "EPOCH_GAP", gap)

    async def body():
        app = OneChart()
        async with app.run_test(size=(60, 20)) as pilot:
            chart = app.query_one(LossChart)
            chart.show([], falling(5))
            drawn = chart._drawn
            assert drawn >= 1 and chart._pending is None  # the first is at once
            chart.show([], falling(10))
            assert chart._drawn == drawn and chart._pending is not None  # waits
            await pilot.pause()
            losses = [loss for _, loss in falling(47)]
            epoch = EpochDone(1, 1.0, 0.9, 0.0, 1.0, 1.0, 1.0, 100, True, batch_losses=losses)
            chart.show([epoch], [])
            if gap:
                assert chart._drawn == drawn and chart._pending is not None
                return
            assert chart._drawn == drawn + 1 and chart._pending is None
            await pilot.pause()
            chart.show([epoch], falling(3))  # the next epoch's first batches wait again
            assert chart._drawn == drawn + 1 and chart._pending is not None

    asyncio.run(body())


def test_the_legend_shows_each_mark_in_its_curves_colour(monkeypatch):
    """The legend in the top border: the train loss's line and the val loss's dot in the
    colours the chart draws them in, as the screen paints them."""
    from textual.geometry import Region

    from tests.canned import epoch_done

    monkeypatch.setattr(LossChart, "INTERVAL", 0.0)

    async def body():
        app = OneChart()
        async with app.run_test(size=(100, 20)) as pilot:
            chart = app.query_one(LossChart)
            chart.show([epoch_done(1), epoch_done(2)], falling(94))
            await pilot.pause()
            rows = [_cells(line) for line in chart.render_lines(Region(0, 0, *chart.outer_size))]
            legend, figure = rows[0], [cell for row in rows[1:] for cell in row]

            def colours(cells, drawn) -> set:
                return {style.color for ch, style in cells if drawn(ch)}

            dot = colours(legend, lambda ch: ch == "●")
            assert len(dot) == 1 and dot == colours(figure, lambda ch: ch == "●")
            line = colours(legend, lambda ch: ch == "━")
            assert len(line) == 1 and line == colours(figure, lambda ch: "⠀" < ch <= "⣿")
            assert line != dot

    asyncio.run(body())


@pytest.mark.parametrize("last_epoch_seconds", [2.0, 10.0])
def test_batches_leave_the_redraw_to_an_epoch_about_to_end(monkeypatch, last_epoch_seconds):
    """A redraw that batches bring due by the clock waits when, at the pace of the epoch
    before, the epoch should end within SOON: its end redraws the chart anyway. Further from
    the end, or at a slower pace, the batches redraw it."""
    monkeypatch.setattr(LossChart, "INTERVAL", 1000.0)  # due by the clock only where a test says so

    async def body():
        app = OneChart()
        async with app.run_test(size=(60, 20)):
            chart = app.query_one(LossChart)
            first = EpochDone(1, 1.0, 0.9, 0.0, last_epoch_seconds, 1.0, 1.0, 100, True, batch_losses=[1.0, 0.8])
            second = EpochDone(2, 0.7, 0.6, 0.0, last_epoch_seconds, 1.0, 1.0, 100, True, batch_losses=[0.7, 0.6])

            def due_by_the_clock(epochs, into_the_second_epoch: float) -> int:
                chart._last = -math.inf
                chart.show(epochs, [(1 + into_the_second_epoch, 0.5)])
                return chart._drawn

            drawn = due_by_the_clock([first], 0.2)  # 80% of the epoch to go
            assert chart._pending is None
            near_the_end = due_by_the_clock([first], 0.7)  # 30% to go: 0.6 s at 2 s an epoch
            if last_epoch_seconds * 0.3 <= LossChart.SOON:
                assert near_the_end == drawn and chart._pending is not None  # waits (a fallback timer)
                chart._last = -math.inf
                chart.show([first, second], [])  # the epoch's end
                assert chart._drawn == drawn + 1 and chart._pending is None
            else:
                assert near_the_end == drawn + 1 and chart._pending is None

    asyncio.run(body())
