"""`reverse-tui watch RUN`: a bad RUN, the headless lines, and the app's training screen fed
from a simulated run's files (tests/test_follow.py writes them as a run does)."""

from __future__ import annotations

import asyncio
import os
import socket

from engine.runs.status import write_status
from engine.train.config import Config
from engine.train.machine import process_start
from tests.conftest import TINY
from tests.test_app import SIZE, until
from tests.test_follow import epoch, running, snapshot, start_run
from tui.app import ReverseApp
from tui.cli import main
from tui.common import RunOptions
from tui.epoch_lines import BEST_MARK, EpochLines
from tui.screens.probe import ProbeScreen
from tui.screens.runs import RunsScreen
from tui.screens.train import TrainScreen
from tui.widgets.epoch_table import EpochTable


def test_a_bad_run_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["watch", str(tmp_path / "nope")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"reverse-tui watch: {tmp_path / 'nope'}: no such run (give a run's name under runs/ or the path to its folder)"
    ]


def test_headless_prints_the_epochs_and_the_end(tmp_path, capsys):
    folder, live = start_run(tmp_path)
    live.epoch(epoch(1).as_dict())
    live.epoch(epoch(2, best=False).as_dict())
    write_status(folder, {**running(folder), "state": "finished", "phase": "ended", "epochs": 2, "evaluated": True})
    assert main(["watch", str(folder), "--no-ui"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"watching run sim (pid {os.getpid()} on {socket.gethostname()}): {folder}/"
    assert lines[1].startswith("vocab 38")
    table = EpochLines(2)  # the lines as --no-ui prints them, under its header
    assert lines[2:4] == table.header()
    assert lines[4] == table.line(epoch(1)) and lines[4].endswith(BEST_MARK)
    assert lines[5] == table.line(epoch(2, best=False)) and BEST_MARK not in lines[5]
    assert lines[6] == "run finished after 2 epochs; its best model was evaluated"


def test_headless_exits_1_when_the_process_is_gone(tmp_path, capsys):
    folder, live = start_run(tmp_path)
    running(folder, started=(process_start(os.getpid()) or 0) + 1)
    assert main(["watch", str(folder), "--no-ui"]) == 1
    assert "is gone" in capsys.readouterr().out.splitlines()[-1]


def test_the_training_screen_follows_the_run_to_its_end(tmp_path):
    folder, live = start_run(tmp_path)
    live.epoch(epoch(1).as_dict())
    live.snapshot(snapshot(1, 4).as_dict())
    app = ReverseApp(Config(**TINY), RunOptions(), autostart=False, follow=folder)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, TrainScreen)
            table = app.screen.query_one(EpochTable)
            await until(pilot, lambda: table.row_count == 1, "the first epoch")
            assert app.following and len(app.snapshots) == 1
            assert "Watching run sim" in app.status[0]
            live.epoch(epoch(2).as_dict())
            await until(pilot, lambda: table.row_count == 2, "the second epoch")
            write_status(folder, {**running(folder), "state": "finished", "phase": "ended", "epochs": 2})
            await until(pilot, lambda: not app.following, "the end")
            assert app.status[0].startswith("Run finished after 2 epochs")
            assert "Run finished after 2 epochs" in str(app.screen.query_one("#run-status").render())

    asyncio.run(body())


def test_opening_a_running_run_follows_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder, live = start_run(tmp_path)
    app = ReverseApp(Config(**TINY), RunOptions(checkpoint=folder.relative_to(tmp_path)))
    assert app.follow_folder is not None and not app.autostart

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.run_facts.startswith("vocab 38"), "the run's facts")
            assert isinstance(app.screen, TrainScreen) and app.following

    asyncio.run(body())


def test_a_running_run_picked_on_the_runs_screen_is_followed(tmp_path):
    folder, live = start_run(tmp_path)
    opts = RunOptions(checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out")
    app = ReverseApp(Config(**TINY), opts, autostart=False)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            assert not app.following
            assert app.open_run(folder / "best.pt", folder)  # what the runs screen's enter calls
            await until(pilot, lambda: "Watching run sim" in app.status[0], "the run followed")
            assert isinstance(app.screen, TrainScreen)

    asyncio.run(body())


def test_enter_on_a_running_run_in_the_runs_screen_watches_it(tmp_path, monkeypatch, trained_checkpoint):
    trained = tmp_path / "other" / "best.pt"
    trained.parent.mkdir()
    trained.write_bytes(trained_checkpoint.read_bytes())
    monkeypatch.chdir(tmp_path)
    start_run(tmp_path)  # in its first epoch: no model yet
    app = ReverseApp(Config(**TINY), RunOptions(name="demo"), autostart=False)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("f2")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.query("RunsTable"), "runs")
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("enter")
            await until(pilot, lambda: "Watching run sim" in app.status[0], "the run followed")
            assert isinstance(app.screen, TrainScreen) and app.following
            # another run opened: the one watched is left to itself
            assert app.open_run(trained, trained.parent)
            await until(pilot, lambda: isinstance(app.screen, ProbeScreen), "the probe screen")
            await pilot.pause()
            assert not app.following and not [w for w in app.workers if w.group == "follow" and w.is_running]

    asyncio.run(body())
