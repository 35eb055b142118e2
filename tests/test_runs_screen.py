"""The runs screen (tui/screens/runs.py, tui/widgets/runs_table.py) and the comparison it
opens (tui/screens/compare.py, tui/widgets/overlay_chart.py): f2 from every screen, space
selects, c overlays the selected runs' curves, enter opens a run on the probe screen; bad
folders are rows with their problem. Snapshots at 80x24 and 100x32 on fixed runs (no model,
no training); regenerate with `--snapshot-update` after looking at the SVGs."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import pytest

from engine.runs.index import list_runs, run_curves
from engine.train.config import Config
from tests.conftest import TINY, sizes, write_fake_run
from tests.test_app import probed, type_text, until
from tui.app import ReverseApp
from tui.common import RunOptions
from tui.screens.compare import CompareScreen
from tui.screens.probe import ProbeScreen
from tui.screens.results import ResultsScreen
from tui.screens.runs import MAX_COMPARED, RunsScreen
from tui.screens.train import TrainScreen
from tui.widgets.overlay_chart import OverlayChart, whole_ticks
from tui.widgets.runs_table import RunsTable

SIZES = [(100, 32), (80, 24)]
T0 = 1_764_748_800.0  # 2025-12-03 08:00 UTC


def fake_runs(runs_dir: Path = Path("runs")) -> None:
    """Five runs that differ in a few values, one stopped, one failed, and a damaged folder."""
    write_fake_run(runs_dir, "20251203-080000", started=T0, config={"hidden_dim": 32})
    write_fake_run(
        runs_dir,
        "20251203-081500",
        started=T0 + 900,
        config={"hidden_dim": 64},
        val_losses=(0.8, 0.2, 0.01, 0.004),
        test_exact_match=1.0,
        known_below=(62, 80),
    )
    write_fake_run(
        runs_dir,
        "wide-lr",
        started=T0 + 1800,
        config={"hidden_dim": 64, "lr": 1e-2},
        val_losses=(1.5, 0.9),
        state="stopped",
        test_exact_match=0.41,
        known_below=(8, 12),
        unknown_below=(5, 9),
    )
    write_fake_run(runs_dir, "nan-run", started=T0 + 2700, config={"lr": 0.5}, val_losses=(2.5,), state="failed")
    (runs_dir / "half").mkdir()
    (runs_dir / "half" / "report.json").write_text('{"test_exact_match": 0.9')
    os.utime(runs_dir / "half", (T0 + 3600, T0 + 3600))  # its start: its folder's time, fixed


def make_app(tmp_path, monkeypatch) -> ReverseApp:
    monkeypatch.chdir(tmp_path)  # the runs folder and the paths on screen are relative
    monkeypatch.setenv("TZ", "UTC")  # the start times on screen, the same on every machine
    time.tzset()
    fake_runs()
    return ReverseApp(Config(**TINY), RunOptions(name="demo"), autostart=False)


async def show_runs(pilot) -> None:
    await pilot.press("f2")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def compare(pilot, *names: str) -> None:
    """Select these runs on the runs screen (in this order) and press c."""
    table = pilot.app.screen.query_one(RunsTable)
    for name in names:
        table.move_cursor(row=[r.name for r in table.runs].index(name))
        await pilot.press("space")
    await pilot.press("c")
    await pilot.pause()


def drive(app: ReverseApp, body, size=(100, 32)) -> None:
    async def main():
        async with app.run_test(size=size) as pilot:
            await body(pilot)

    asyncio.run(main())


@pytest.fixture(autouse=True)
def _restore_tz():
    yield
    time.tzset()


def test_f2_lists_the_runs_oldest_first_from_every_screen(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)

    async def body(pilot):
        for name, screen_type in (("train", TrainScreen), ("results", ResultsScreen), ("probe", ProbeScreen)):
            app.action_show(name)
            await pilot.pause()
            await show_runs(pilot)
            assert isinstance(app.screen, RunsScreen)
            table = app.screen.query_one(RunsTable)
            assert [r.name for r in table.runs] == [r.name for r in list_runs(Path("runs"))]
            assert table.runs[0].name == "20251203-080000" and table.current().name == "half"  # the newest
            await pilot.press("f2")  # again: back where it was opened
            await pilot.pause()
            assert isinstance(app.screen, screen_type)

    drive(app, body)


def test_typed_text_on_the_probe_screen_is_not_taken_for_keys(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)

    async def body(pilot):
        app.action_show("probe")
        await pilot.pause()
        await pilot.press(*"cgr u l", "space")
        assert isinstance(app.screen, ProbeScreen)
        assert app.screen.query_one("#sentence").value == "cgr u l "

    drive(app, body)


def test_a_bad_folder_is_a_row_with_its_problem(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)

    async def body(pilot):
        await show_runs(pilot)
        table = app.screen.query_one(RunsTable)
        half = table.current()
        assert half.name == "half" and half.status == "unknown" and "report.json: not JSON" in half.problem
        assert "report.json: not JSON" in str(app.screen.query_one("#run-detail").render())
        await pilot.press("enter")  # no model: a note, and the runs screen stays
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

    drive(app, body)


def test_no_runs_folder_says_so(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)
    shutil.rmtree("runs")

    async def body(pilot):
        await show_runs(pilot)
        assert "no such folder" in str(app.screen.query_one("#runs-where").render())
        assert app.screen.query_one(RunsTable).runs == []
        fake_runs()
        await pilot.press("g")  # read again
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert len(app.screen.query_one(RunsTable).runs) == 5

    drive(app, body)


def test_space_selects_and_c_overlays_their_curves(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)

    async def body(pilot):
        await show_runs(pilot)
        await pilot.press("c")  # nothing selected: a note
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        await compare(pilot, "wide-lr", "20251203-081500")
        screen = app.screen
        assert isinstance(screen, CompareScreen)
        assert [r.name for r in screen.runs] == ["wide-lr", "20251203-081500"]  # in the order selected
        assert screen.keys == ["epochs", "lr"]  # the values that differ between these two
        curves = [run_curves(r) for r in screen.runs]
        loss = screen.query_one("#compare-loss", OverlayChart)
        assert [s.points for s in loss.series] == [[(e, v) for e, _, v in c.loss] for c in curves]
        assert len({s.colour for s in loss.series}) == 2  # a colour each
        lengths = screen.query_one("#compare-lengths", OverlayChart)
        assert [dict(s.points) for s in lengths.series] == [c.known for c in curves]
        await pilot.press("l", "u")
        assert [s.points for s in loss.series] == [[(e, t) for e, t, _ in c.loss] for c in curves]
        assert [dict(s.points) for s in lengths.series] == [c.unknown for c in curves]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        assert app.screen.query_one(RunsTable).selected == ["wide-lr", "20251203-081500"]  # kept

    drive(app, body)


def test_a_run_without_curves_is_compared_as_empty(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)

    async def body(pilot):
        await show_runs(pilot)
        await compare(pilot, "half", "nan-run")
        lengths = app.screen.query_one("#compare-lengths", OverlayChart)
        assert [s.points for s in lengths.drawn()][0] == []  # half: no report to read
        loss = app.screen.query_one("#compare-loss", OverlayChart)
        assert [len(s.points) for s in loss.drawn()] == [0, 1]

    drive(app, body)


def test_at_most_eight_runs_are_selected(tmp_path, monkeypatch):
    app = make_app(tmp_path, monkeypatch)
    for k in range(MAX_COMPARED + 2):
        write_fake_run(Path("runs"), f"extra-{k}", started=T0 + 10_000 + k)

    async def body(pilot):
        await show_runs(pilot)
        table = app.screen.query_one(RunsTable)
        for k in range(MAX_COMPARED + 2):
            table.move_cursor(row=k)
            await pilot.press("space")
        assert len(table.selected) == MAX_COMPARED
        table.move_cursor(row=0)
        await pilot.press("space")  # unselect one: another can be selected
        assert len(table.selected) == MAX_COMPARED - 1

    drive(app, body)


def test_enter_opens_the_run_on_the_probe_screen(tmp_path, monkeypatch, trained_checkpoint):
    app = make_app(tmp_path, monkeypatch)
    shutil.copy(trained_checkpoint, Path("checkpoints/20251203-081500/best.pt"))

    async def body(pilot):
        app.training = True  # a run in progress: the screens follow it, nothing is opened
        await show_runs(pilot)
        table = app.screen.query_one(RunsTable)
        table.move_cursor(row=1)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen) and app.loaded is None
        app.training = False
        table.move_cursor(row=0)  # a checkpoint file that is not one: a note, nothing changes
        await pilot.press("enter")  # the file is read in a thread
        await until(pilot, lambda: any(n.title == "Cannot open the run" for n in app._notifications), "the note")
        assert isinstance(app.screen, RunsScreen) and app.loaded is None
        table.move_cursor(row=1)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ProbeScreen), "the run on the probe screen")
        assert app.checkpoint == Path("checkpoints/20251203-081500/best.pt")
        assert app.out == Path("runs/20251203-081500")
        assert app.loaded is not None and len(app.epochs) == 3  # the trained checkpoint's epochs
        await type_text(pilot, "the cat sat")
        await probed(pilot, "enter")
        assert app.screen.result is not None and app.screen.result.source == ["the", "cat", "sat"]
        assert "20251203-081500" in str(app.screen.query_one("TitleBar").render())
        assert app.next_run_paths().name != "20251203-081500"  # n: a new run, in folders of its own

    drive(app, body)


def test_whole_ticks():
    assert whole_ticks(1, 8) == [2, 4, 6, 8]
    assert whole_ticks(3, 180) == [50, 100, 150]
    assert whole_ticks(1, 1) == [1]


# -- snapshots --------------------------------------------------------------------------------
@pytest.mark.parametrize("size", sizes(*SIZES))
def test_runs_screen(snap_compare, tmp_path, monkeypatch, size):
    async def run_before(pilot):
        await show_runs(pilot)
        table = pilot.app.screen.query_one(RunsTable)
        for row in (1, 2):
            table.move_cursor(row=row)
            await pilot.press("space")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", sizes(*SIZES))
def test_compare_screen(snap_compare, tmp_path, monkeypatch, size):
    async def run_before(pilot):
        await show_runs(pilot)
        await compare(pilot, "20251203-080000", "20251203-081500", "wide-lr")

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=run_before)
