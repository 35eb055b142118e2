"""The live loss chart (tui/widgets/loss_chart.py): a long curve reaches plotext thinned to what
its braille can show, averaged on the chart's log scale; a short one as it is."""

from __future__ import annotations

import asyncio
import math

from textual.app import App

from tui.widgets.loss_chart import BRAILLE_DOTS, LossChart, thinned


def test_a_curve_of_no_more_points_than_asked_passes_as_it_is():
    points = [(0.1 * i, 2.0 / (i + 1)) for i in range(50)]
    assert thinned(points, 50) == points
    assert thinned(points, 80) == points


def test_a_longer_curve_is_averaged_in_runs_on_the_log_scale():
    ((x, y),) = thinned([(0.0, 1.0), (1.0, 100.0)], 1)
    assert x == 0.5 and math.isclose(y, 10.0)  # the geometric mean
    points = [(i / 47, 3.0 * math.exp(-i / 60)) for i in range(1000)]
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


def test_the_chart_hands_plotext_at_most_two_points_a_column(monkeypatch):
    drawn: list[int] = []
    plain = LossChart._draw

    def counted(plt, train, val):
        drawn.append(len(train))
        plain(plt, train, val)

    monkeypatch.setattr(LossChart, "_draw", staticmethod(counted))
    monkeypatch.setattr(LossChart, "INTERVAL", 0.0)

    class One(App):
        def compose(self):
            yield LossChart()

    async def body():
        app = One()
        async with app.run_test(size=(60, 20)) as pilot:
            chart = app.query_one(LossChart)
            chart.show([], [(i / 47, 3.0 * math.exp(-i / 60)) for i in range(1000)])
            for _ in range(50):  # until the screen has drawn the curve (an empty chart draws none)
                await pilot.pause()
                if any(drawn):
                    break
            curves = [n for n in drawn if n]
            assert curves and max(curves) <= BRAILLE_DOTS * chart.size.width < 1000
            assert "train loss" in str(chart.border_title)

    asyncio.run(body())
