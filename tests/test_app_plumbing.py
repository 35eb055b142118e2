"""The app's own plumbing, checked without running it: it keeps to Textual's public API, and
the first run's files go to the run the app opened for, and to no other."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import tui
from engine.runs.folders import CHECKPOINTS, RUNS
from engine.train.config import Config
from engine.train.trainer import Trainer
from tests.conftest import TINY
from tests.test_follow import start_run
from tui.app import ReverseApp
from tui.common import RunOptions


def tui_classes():
    for info in pkgutil.walk_packages(tui.__path__, "tui."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__:
                yield cls


def test_no_private_method_of_textual_is_overridden():
    """A private method is Textual's to change between versions: the app uses hooks, events
    and messages instead (the run messages' late-news rule is a decorator, tui/bridge.py)."""
    overrides = []
    for cls in tui_classes():
        textual_bases = [b for b in cls.__mro__[1:] if b.__module__.split(".")[0] == "textual"]
        for name, value in vars(cls).items():
            private = name.startswith("_") and not name.endswith("__")
            if private and (callable(value) or isinstance(value, classmethod)):
                overrides += [f"{cls.__name__}.{name} ({b.__name__})" for b in textual_bases if name in vars(b)]
    assert overrides == []


@pytest.fixture
def here(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # runs go under checkpoints/ and runs/ here
    return tmp_path


def test_n_after_watching_a_run_trains_a_new_run_of_its_own(here):
    folder, _ = start_run(here)
    app = ReverseApp(Config(**TINY), RunOptions(), autostart=False, follow=folder)
    paths = app.next_run_paths()
    assert paths.name not in (None, "sim") and paths.checkpoint == CHECKPOINTS / paths.name / "best.pt"


def test_the_command_line_files_go_to_the_run_the_app_opened_for(here):
    opts = RunOptions(checkpoint=here / "ck" / "best.pt", out=here / "out")
    app = ReverseApp(Config(**TINY), opts, autostart=False)
    assert (app.next_run_paths().checkpoint, app.next_run_paths().out) == (opts.checkpoint, opts.out)
    app.reset_run(Path("checkpoints/other/best.pt"), Path("runs/other"))  # another run put on show
    paths = app.next_run_paths()
    assert paths.name is not None and paths.out == RUNS / paths.name


def test_another_run_on_show_before_a_resumed_one_starts_leaves_the_resumed_run_alone(here):
    best = CHECKPOINTS / "old" / "best.pt"
    Trainer(Config(**TINY), best).save(best)
    app = ReverseApp(Config(**TINY), RunOptions(resume="old"), autostart=False)
    assert app.next_run_paths().checkpoint == best  # the first run goes on with it
    app.reset_run(Path("checkpoints/other/best.pt"), Path("runs/other"))  # e.g. a run followed first
    paths = app.next_run_paths()
    assert paths.checkpoint != best and paths.name not in ("old", "other")  # never a fresh run in its files
