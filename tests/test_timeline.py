"""Watching attention learn in the app: the training worker's snapshots reach the training
screen's grid, and the timeline screen (tui/screens/timeline.py, tui/widgets/watch_view.py)
steps through them and plays them, for a run trained here (a canned run, tests/canned.py)
and for one opened from disk.

No sleeps: every wait is a bounded loop of `pilot.pause` polling for the state needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from engine.train.config import Config
from engine.train.events import Snapshot, Watched
from tests.canned import snapshot
from tests.conftest import TINY
from tests.test_app import until
from tui.app import ReverseApp
from tui.common import RunOptions
from tui.screens import timeline
from tui.screens.timeline import TimelineScreen
from tui.screens.train import TrainScreen
from tui.widgets.watch_view import WatchView

SIZE = (100, 32)


def fixed_snapshots(n: int = 5, sentences: int = 2) -> list[Snapshot]:
    """n snapshots of `sentences` watch sentences, each frame's weights its own."""
    words = [["the", "cat", "sat"], ["a", "big", "red", "dog"], ["x", "y"]][:sentences]
    snaps = []
    for k in range(n):
        watched = []
        for src in words:
            out = src[::-1] if k == n - 1 else src[:1] * len(src)
            w = [
                [round((k + 1) / (n + 1) if j == len(src) - 1 - t else 0.01 * (t + 1), 3) for j in range(len(src) + 1)]
                for t in range(len(out) + 1)
            ]
            watched.append(Watched(list(src), list(out), w, k == n - 1))
        snaps.append(Snapshot(1 if k < n - 1 else 2, min(2**k, 10), 10, watched))
    return snaps


def idle_app(tmp_path: Path, monkeypatch) -> ReverseApp:
    monkeypatch.chdir(tmp_path)
    return ReverseApp(
        Config(**TINY), RunOptions(checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out"), autostart=False
    )


def test_snapshots_of_a_run_reach_the_training_grid(tmp_path, canned):
    app = ReverseApp(
        Config(**TINY), RunOptions(checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out"), autostart=False
    )

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            train = app.get_screen("train")
            assert isinstance(train, TrainScreen)
            view = train.query_one(WatchView)
            assert view.snapshot is None  # nothing yet: one line says so
            assert str(view.query_one(".watch-caption").render()) == "Attention: from batch 1 on."
            app.start_training()
            await until(pilot, lambda: not app.training, "training to end")
            await pilot.pause()
            # every snapshot of the run, in its order: the first epoch's after batches 1, 2,
            # 4 (engine/insight/watch.py's marks, tests/test_watch.py), then each epoch's own
            snaps, batches = app.snapshots, canned.batches
            assert [(s.epoch, s.batch) for s in snaps] == [(1, 1), (1, 2), (1, 4), (1, batches), (2, batches)]
            assert snaps == [snapshot(e, b) for e, b in [(1, 1), (1, 2), (1, 4), (1, batches), (2, batches)]]
            # the grid on the training screen shows the newest one, first watch sentence
            assert view.snapshot is snaps[-1] and view.sentence == 0
            w = snaps[-1].sentences[0]
            assert view.grid.display and view.grid.row_count == len(w.weights)
            assert len(view.grid.columns) == len(w.source) + 1
            assert f"epoch 2, batch {batches}/{batches}" in str(view.border_title)
            await until(pilot, lambda: app.results is not None or app.results_error, "the evaluation")

    asyncio.run(body())


def test_timeline_scrubs_and_plays_to_the_end(tmp_path, monkeypatch):
    app = idle_app(tmp_path, monkeypatch)
    snaps = fixed_snapshots(5, 2)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            app.snapshots = snaps
            await pilot.pause()
            await pilot.press("w")
            await until(pilot, lambda: isinstance(app.screen, TimelineScreen), "the timeline")
            screen = app.screen
            view = screen.query_one(WatchView)

            def where() -> str:
                return str(screen.query_one("#timeline-where").render())

            assert screen.index == 4 and view.snapshot is snaps[4]
            assert "epoch 2, batch 10/10 (5 of 5)" in where()
            assert "↑/↓ or tab: sentence" in where()
            for key, index in (
                ("home", 0),
                ("right", 1),
                ("right", 2),
                ("left", 1),
                ("end", 4),
                ("left", 3),
                ("right", 4),
                ("right", 4),
                ("home", 0),
                ("left", 0),
            ):
                await pilot.press(key)
                assert screen.index == index and view.snapshot is snaps[index], key
            assert "epoch 1, batch 1/10 (1 of 5)" in where()
            # the grid is the frame's own weights
            assert view.grid.get_cell_at((0, 2)).plain.strip() == ".17"
            # another watch sentence: down/tab, and back with up
            await pilot.press("down")
            assert screen.sentence == 1 and view.grid.row_count == 5 and "a big red dog" in str(view.border_title)
            await pilot.press("up")
            assert screen.sentence == 0 and view.grid.row_count == 4
            await pilot.press("tab")
            assert screen.sentence == 1
            # space plays from here, a frame at a time, and stops on the last. The frames are
            # stepped by hand under a timer too slow to fire, so no assertion races the clock.
            monkeypatch.setattr(timeline, "FPS", 1 / 3600)
            await pilot.press("space")
            assert screen.playing and screen.index == 0 and "playing" in where()
            for index in (1, 2, 3):
                screen.next_frame()
                assert screen.playing and screen.index == index and view.snapshot is snaps[index]
            screen.next_frame()
            assert not screen.playing and screen.index == 4 and view.snapshot is snaps[4]
            assert "playing" not in where()
            # at the end, space starts again from the first; space again pauses
            await pilot.press("space")
            assert screen.playing and screen.index == 0
            await pilot.press("space")
            assert not screen.playing and screen.index == 0
            # the timer itself plays the film to its end
            monkeypatch.setattr(timeline, "FPS", 100)
            await pilot.press("space")
            await until(pilot, lambda: not screen.playing, "the film to end", timeout=20)
            assert screen.index == 4 and view.snapshot is snaps[4]
            await pilot.press("escape")
            assert isinstance(app.screen, TrainScreen)

    asyncio.run(body())


def test_timeline_without_snapshots_says_so(tmp_path, monkeypatch):
    app = idle_app(tmp_path, monkeypatch)

    async def body():
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("w")
            await until(pilot, lambda: isinstance(app.screen, TimelineScreen), "the timeline")
            view = app.screen.query_one(WatchView)
            text = str(view.query_one(".watch-caption").render())
            assert text == "No attention snapshots in this run: nothing to step through."
            assert not view.grid.display
            for key in ("right", "left", "home", "end", "space", "down"):
                await pilot.press(key)  # nothing to move: no error
            assert not app.screen.playing

    asyncio.run(body())


@pytest.fixture
def watched_run(tmp_path, trained_checkpoint) -> Path:
    """A model saved with snapshots of two watch sentences, as a run with --watch saves it."""
    ckpt = tmp_path / "ck" / "best.pt"
    ckpt.parent.mkdir()
    payload = torch.load(trained_checkpoint, weights_only=True)
    torch.save({**payload, "snapshots": [s.as_dict() for s in fixed_snapshots(5, 2)]}, ckpt)
    return ckpt


def test_opened_run_timeline(watched_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = ReverseApp(Config(**TINY), RunOptions(checkpoint=watched_run, out=tmp_path / "out"))

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            snaps = app.snapshots
            assert [s.as_dict() for s in snaps] == torch.load(watched_run, weights_only=True)["snapshots"]
            assert [len(s.sentences) for s in snaps] == [2] * 5
            await pilot.press("ctrl+t")  # from the probe screen to the training screen
            await until(pilot, lambda: isinstance(app.screen, TrainScreen), "the training screen")
            assert app.screen.query_one(WatchView).snapshot is snaps[-1]
            await pilot.press("w")
            await until(pilot, lambda: isinstance(app.screen, TimelineScreen), "the timeline")
            screen = app.screen
            view = screen.query_one(WatchView)
            assert view.snapshot is snaps[-1]
            await pilot.press("home")
            assert view.snapshot is snaps[0]
            assert f"epoch 1, batch 1/{snaps[0].batches} (1 of {len(snaps)})" in str(
                screen.query_one("#timeline-where").render()
            )
            await pilot.press("down")
            assert "a big red dog" in str(view.border_title)
            assert view.grid.row_count == len(snaps[0].sentences[1].weights)

    asyncio.run(body())
