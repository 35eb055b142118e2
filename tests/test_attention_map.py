"""The attention map (tui/widgets/attention_map.py) and the view's choice between it and the
numbered grid (tui/widgets/watch_view.py): the largest scale that fits, every weight in its
shade, the rows that cannot fit counted, never drawn past the space it was given."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from engine.train.config import Config
from engine.train.events import Snapshot, Watched
from tests.conftest import TINY
from tui.app import ReverseApp
from tui.common import RunOptions
from tui.widgets.attention_map import LAYOUTS, AttentionMap, choose, colour, render_map
from tui.widgets.watch_view import WatchView, tokens


def reversal(n: int, steps: int | None = None) -> np.ndarray:
    """(steps, n + 1) weights peaked on the anti-diagonal, each row a different peak."""
    steps = n + 1 if steps is None else steps
    a = np.full((steps, n + 1), 0.01)
    for t in range(steps):
        a[t, (n - 1 - t) % (n + 1)] = 0.55 + 0.4 * t / steps
    return a


def words(n: int) -> list[str]:
    return [f"w{k}" for k in range(n)]


def lines_of(text) -> list:
    return text.split("\n")


@pytest.mark.parametrize("n,width,height", [(4, 40, 20), (16, 40, 20), (16, 40, 9), (16, 20, 9), (30, 20, 5)])
def test_a_map_stays_within_its_space(n, width, height):
    a = reversal(n)
    text = render_map(a, tokens(words(n)), tokens(words(n)[::-1]), width, height)
    rows = lines_of(text)
    assert len(rows) <= height
    assert all(r.cell_len <= width for r in rows)


def test_the_largest_layout_that_fits_is_chosen():
    labelled, half, narrow = LAYOUTS
    assert choose(17, 17, 60, 20) == labelled  # 8 + 34 wide, 18 high
    assert choose(17, 17, 60, 12) == half  # 17 steps in 9 lines
    assert choose(17, 17, 30, 12) == narrow  # 17 columns of one character
    assert choose(40, 17, 30, 12) == narrow  # nothing fits: the smallest, cut


def test_every_cell_is_its_weights_shade():
    n = 5
    a = reversal(n)  # 6 steps
    src, out = tokens(words(n)), tokens(words(n)[::-1])
    labelled = render_map(a, src, out, 40, 10)
    rows = lines_of(labelled)
    assert rows[0].plain.split() == ["w", "w", "w", "w", "w", "$"]  # initials; $ for <eos>
    for t in range(a.shape[0]):
        row = rows[1 + t]
        assert row.plain.startswith(out[t][:7])
        for j in range(n + 1):
            at = 8 + 2 * j
            spans = [s for s in row.spans if s.start <= at < s.end]
            assert spans and str(spans[-1].style) == f"on {colour(a[t, j])}", (t, j)
    # half blocks: the upper half one step, the lower the next
    half = render_map(a, src, out, 40, 4)
    rows = lines_of(half)
    assert len(rows) == 4 and rows[1].plain == "▀" * 12
    for line in range(3):
        for j in range(n + 1):
            spans = [s for s in rows[1 + line].spans if s.start <= 2 * j < s.end]
            assert str(spans[-1].style) == f"{colour(a[2 * line, j])} on {colour(a[2 * line + 1, j])}"


def test_neighbours_of_one_shade_are_one_span():
    """A trained row (one bright cell in a row of one shade) is three spans, not a span a
    cell; a line of half blocks (two steps, two bright cells) five."""
    n = 12
    a = reversal(n)
    src, out = tokens(words(n)), tokens(words(n)[::-1])
    for height, most in ((20, 3), (8, 5)):  # a line per step, then half blocks
        rows = lines_of(render_map(a, src, out, 60, height))
        for row in rows[1:]:
            cells = [s for s in row.spans if str(s.style) != "bold"]  # the row's word aside
            assert len(cells) <= most, (height, row.plain, cells)
            assert all(x.style != y.style for x, y in zip(cells, cells[1:]))  # no two alike side by side
    rows = lines_of(render_map(np.full((n + 1, n + 1), 0.3), src, out, 60, 20))
    assert all(len([s for s in row.spans if str(s.style) != "bold"]) == 1 for row in rows[1:])


def test_the_map_widget_draws_the_map_and_lays_out_only_when_its_size_changes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = ReverseApp(
        Config(**TINY), RunOptions(checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out"), autostart=False
    )

    async def body():
        async with app.run_test(size=(100, 32)) as pilot:
            map_ = app.screen.query_one(WatchView).query_one(AttentionMap)
            layouts: list[bool] = []  # what each show asked of the screen
            refresh = map_.refresh

            def counted(*regions, layout: bool = False, **kwargs):
                layouts.append(layout)
                return refresh(*regions, layout=layout, **kwargs)

            monkeypatch.setattr(map_, "refresh", counted)
            n = 16
            src, out = tokens(words(n)), tokens(words(n)[::-1])
            first = render_map(reversal(n), src, out, 45, 20)
            map_.show(first)
            map_.show(render_map(np.full((n + 1, n + 1), 0.2), src, out, 45, 20))  # same size, new shades
            map_.show(render_map(reversal(n, steps=5), src, out[:5], 45, 20))  # fewer steps: smaller
            assert layouts == [True, False, True]
            map_.show(first)
            map_.display = True
            await pilot.pause()
            assert map_.size == (max(r.cell_len for r in lines_of(first)), len(lines_of(first)))
            for y, row in enumerate(lines_of(first)):
                strip = map_.render_line(y)
                assert strip.text == row.plain  # every character where the map puts it
                assert {seg.style.bgcolor for seg in strip if seg.style and seg.style.bgcolor} == {
                    s.bgcolor for s in (app.console.get_style(str(sp.style)) for sp in row.spans) if s.bgcolor
                }  # and every shade

    asyncio.run(body())


def test_rows_that_cannot_fit_are_counted():
    a = reversal(10, steps=25)  # a model that has not learned to stop yet
    text = render_map(a, tokens(words(10)), [f"o{k}" for k in range(25)], 40, 6)
    rows = lines_of(text)
    assert len(rows) == 6
    # header, 4 lines of two steps each, then what is missing: 25 - 8
    assert rows[-1].plain == "↓ 17 more steps"
    assert colour(0.0) != colour(0.99)
    # a sentence wider than the space: the columns that fit, the rest counted
    text = render_map(reversal(30), tokens(words(30)), tokens(words(30)), 20, 30)
    rows = lines_of(text)
    assert rows[0].cell_len == 20 and rows[-1].plain == "→ 11 more words"


def snapshot_of(n: int) -> Snapshot:
    src = words(n)
    return Snapshot(1, 4, 10, [Watched(src, src[::-1], reversal(n).round(3).tolist(), True)])


@pytest.mark.parametrize("size", [(80, 24), (100, 32)])
def test_training_screen_shows_the_grid_when_it_fits_else_the_map(tmp_path, monkeypatch, size):
    monkeypatch.chdir(tmp_path)
    app = ReverseApp(
        Config(**TINY), RunOptions(checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out"), autostart=False
    )

    async def body():
        async with app.run_test(size=size) as pilot:
            view = app.screen.query_one(WatchView)
            map_ = view.query_one(".watch-map")
            app.snapshots = [snapshot_of(4)]
            await pilot.pause()
            assert view.grid.display and not map_.display  # 5 x 6 cells: the numbers fit
            assert view.grid.row_count == 5
            app.snapshots = [*app.snapshots, snapshot_of(16)]
            await pilot.pause()
            assert map_.display and not view.grid.display
            drawn = map_.text.plain.split("\n")
            width, height = view.room()
            assert len(drawn) <= height and max(len(r) for r in drawn) <= width
            assert drawn[0].replace(" ", "") == "w" * 16 + "$"
            app.snapshots = [*app.snapshots, snapshot_of(3)]
            await pilot.pause()
            assert view.grid.display and not map_.display and view.grid.row_count == 4

    asyncio.run(body())
