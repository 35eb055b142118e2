"""Exact match by length in the app: the training screen's bars of the newest epoch's
validation counts (tui/widgets/length_chart.py) and the results screen's chart of the length
sweep (tui/screens/results.py), driven with Pilot on fixed data; the bar arithmetic alone."""

from __future__ import annotations

import asyncio

import pytest

from engine.train.config import Config
from tests.test_snapshots import CFG, EPOCHS, epoch, fixed_results
from tui.app import ReverseApp
from tui.common import RunOptions
from tui.messages import EpochFinished
from tui.widgets.length_chart import EIGHTHS, LengthChart, columns, filled_eighths, percent
from tui.widgets.overlay_chart import OverlayChart


def make_app(tmp_path, monkeypatch) -> ReverseApp:
    monkeypatch.chdir(tmp_path)
    args = RunOptions(checkpoint=None, out=None, name="demo", threads=None)
    return ReverseApp(Config(**CFG), args, autostart=False)


def lines(widget) -> list[str]:
    return str(widget.render()).split("\n")


def bar_heights(chart: LengthChart) -> tuple[list[int], int]:
    """(eighths filled in each bar, rows of bars), read back from the drawing: the title,
    the figures row where there is one, and the axis and bracket rows left out."""
    text = lines(chart)
    wide = chart.size.height >= 7  # the figures above and the bracket below
    rows = text[1 + wide : len(text) - 1 - wide]
    bars = chart.bars(chart.size.width)
    slot = max(1, min(4, chart.size.width // len(bars)))
    heights = [sum(EIGHTHS.index(row[k * slot]) for row in rows if row[k * slot] in EIGHTHS) for k in range(len(bars))]
    return heights, len(rows)


@pytest.mark.parametrize("size", [(100, 32), (80, 24)])
def test_the_training_screen_draws_each_new_epoch_by_length(tmp_path, monkeypatch, size):
    app = make_app(tmp_path, monkeypatch)

    async def body():
        async with app.run_test(size=size) as pilot:
            chart = app.screen.query_one(LengthChart)
            assert "after each epoch" in str(chart.render())
            seen = []
            for e in EPOCHS[2:4]:  # 56%, then 94%: longer sentences wrong more often
                ev = epoch(*e)
                app.post_message(EpochFinished(app.run_id, ev))
                await pilot.pause()
                assert chart.epoch is ev, "the chart follows the newest epoch"
                text = lines(chart)
                assert f"ep {ev.epoch}" in text[0] or f"epoch {ev.epoch}" in text[0]
                axis = text[-2] if chart.size.height >= 7 else text[-1]
                assert axis.split() == [str(n) for n in range(3, 11)], "every training length labelled"
                heights, rows = bar_heights(chart)
                shares = [c / t for c, t in ev.val_by_length.values()]
                assert heights == [filled_eighths(s, rows) for s in shares]
                assert heights == sorted(heights, reverse=True)  # as the counts fall with length
                seen.append(heights)
            assert seen[0] != seen[1] and all(a <= b for a, b in zip(*seen))
            if size[0] >= 96:  # wide: each bar's figure above it, the training lengths marked
                assert lines(chart)[1].split() == [percent(c / t) for c, t in ev.val_by_length.values()]
                assert "trained 3-10" in lines(chart)[-1]

    asyncio.run(body())


def test_the_bars_are_drawn_once_an_epoch_and_again_in_a_new_style(tmp_path, monkeypatch):
    """Painting the chart again (another widget's change) reuses its lines; a new epoch, size
    or style draws them anew."""
    app = make_app(tmp_path, monkeypatch)
    app.stylesheet.add_source("LengthChart.-night { background: darkblue; }", read_from=("test", ""))
    draws: list[int] = []
    plain = LengthChart._draw
    monkeypatch.setattr(LengthChart, "_draw", lambda self: draws.append(1) or plain(self))

    async def body():
        async with app.run_test(size=(100, 32)) as pilot:
            chart = app.screen.query_one(LengthChart)
            app.post_message(EpochFinished(app.run_id, epoch(*EPOCHS[2])))
            await pilot.pause()
            drawn = len(draws)
            painted = [chart.render_line(y) for y in range(chart.size.height)]
            assert len(draws) == drawn and drawn >= 1
            assert "by length, epoch 3" in "".join(seg.text for seg in painted[0])
            chart.add_class("-night")
            await pilot.pause()
            assert len(draws) == drawn + 1
            assert {seg.style.bgcolor for seg in chart.render_line(1)} == {chart.rich_style.bgcolor}
            await pilot.resize_terminal(80, 24)
            await pilot.pause()
            assert len(chart.render_line(0).text) == chart.size.width

    asyncio.run(body())


@pytest.mark.parametrize("size", [(100, 32), (80, 24)])
def test_the_results_screen_charts_the_length_sweep(tmp_path, monkeypatch, size):
    app = make_app(tmp_path, monkeypatch)
    res = fixed_results()

    async def body():
        async with app.run_test(size=size) as pilot:
            app.results = res
            app.action_show("results")
            await pilot.pause()
            chart = app.screen.query_one("#sweep-chart", OverlayChart)
            assert chart.display and chart.percent
            assert chart.marks == [res.config.min_len, res.config.max_len]
            known, unknown = chart.series
            # known words: the test set inside the training lengths, the sweep past them
            assert dict(known.points) == {**res.evaluation.per_length, **res.known.per_length}
            assert dict(unknown.points) == res.unknown.per_length
            assert max(x for x, _ in known.points) > res.config.max_len
            assert "known words" in str(chart.border_title) and "trained 3-6" in str(chart.border_title)
            limits = str(app.screen.query_one("#sweep-limits").render())
            assert "Known words: exact match first drops below 99% at 13 words" in limits
            assert "Unknown words: exact match first drops below 99% at 7 words" in limits
            assert app.screen.query_one("#per-length").display  # the test set's table stays

    asyncio.run(body())


def test_results_without_a_sweep_hide_the_chart(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)
    res = fixed_results()
    res.known = res.unknown = None

    async def body():
        async with app.run_test(size=(80, 24)) as pilot:
            app.results = res
            app.action_show("results")
            await pilot.pause()
            assert not app.screen.query_one("#sweep-chart").display
            assert app.screen.query_one("#per-length").display

    asyncio.run(body())


def test_columns_group_lengths_and_keep_every_count():
    counts = {n: [n % 3, 4] for n in range(3, 31)}
    cols = columns(counts, 3, 30, most=10)
    assert len(cols) <= 10 and cols[0].first == 3 and cols[-1].last == 30
    assert sum(c.total for c in cols) == 4 * 28 and sum(c.correct for c in cols) == sum(n % 3 for n in range(3, 31))
    gap = columns({3: [1, 1], 5: [0, 2]}, 3, 6, most=10)
    assert [(c.first, c.share) for c in gap] == [(3, 1.0), (4, None), (5, 0.0), (6, None)]


def test_a_full_bar_is_all_right_and_an_empty_one_none_right():
    assert filled_eighths(1.0, 3) == 24 and filled_eighths(0.999, 3) == 23
    assert filled_eighths(0.0, 3) == 0 and filled_eighths(0.001, 3) == 1
    assert percent(0.999) == "99" and percent(1.0) == "100" and percent(0.0) == "0"
