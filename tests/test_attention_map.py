"""The attention map (tui/widgets/attention_map.py) and the view's choice between it and the
numbered grid (tui/widgets/watch_view.py): the largest scale that fits, every weight in its
shade, the rows that cannot fit counted, never drawn past the space it was given."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from engine.config import Config
from engine.watch import Snapshot, Watched
from tests.conftest import TINY
from tui.app import ReverseApp
from tui.common import RunOptions
from tui.widgets.attention_map import LAYOUTS, choose, colour, render_map
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
