"""tui/screens/side_by_side.py: on the runs screen (F2), a seed group is one row that e
expands; a selects runs (a group: its first seed) and opens one typed sentence decoded by
each, a column each: its output, its match and its attention, a numbered grid where it fits
its column, else a map."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from engine.insight.evaluate import probe
from engine.train.checkpoint import load_model
from tests.conftest import sentence_result, write_fake_run
from tests.test_app import type_text, until
from tests.test_runs_screen import T0, drive, make_app, show_runs
from tui.screens.runs import RunsScreen
from tui.screens.side_by_side import SideBySideScreen, attention_text
from tui.widgets.runs_table import RunsTable


def test_a_grid_where_it_fits_else_a_map():
    r = sentence_result(["the", "cat", "sat"], np.eye(4)[[2, 1, 0, 3]])
    grid = attention_text(r, width=40, height=10).plain.splitlines()
    assert grid[0].split() == ["the", "cat", "sat", "EOS"] and grid[1].split() == ["sat", ".00", ".00", "1.0", ".00"]
    narrow = attention_text(r, width=12, height=10).plain.splitlines()  # 4 cells of 4 do not fit: the map
    assert ".00" not in "".join(narrow) and narrow[0].split() == ["t", "c", "s", "$"]


def test_a_shows_one_sentence_in_each_selected_run_and_a_groups_first_seed(tmp_path, monkeypatch, trained_checkpoint):
    app = make_app(tmp_path, monkeypatch)
    for seed in (2, 1):  # a seed group, its runs written out of order
        write_fake_run(Path("runs"), f"grp-seed{seed}", config={"seed": seed}, group="grp", started=T0 + 5000 + seed)
    raw = torch.load(trained_checkpoint, weights_only=True)
    torch.save({**raw, "config": {**raw["config"], "seed": 1}}, "checkpoints/grp-seed1/best.pt")
    shutil.copy(trained_checkpoint, "checkpoints/20251203-081500/best.pt")
    sentence = "the cat sat on the mat"
    expected = probe(*_model(trained_checkpoint), sentence, torch.device("cpu"))

    async def body(pilot):
        await show_runs(pilot)
        table = app.screen.query_one(RunsTable)
        names = [r.name for r in table.runs]
        assert "grp" in names and "grp-seed1" not in names  # the group: one row
        table.move_cursor(row=names.index("grp"))
        await pilot.press("e")  # its runs below it, by seed
        names = [r.name for r in table.runs]
        assert names[names.index("grp") + 1 :][:2] == ["grp-seed1", "grp-seed2"]
        await pilot.press("e")
        assert "grp-seed1" not in [r.name for r in table.runs]
        for name in ("20251203-081500", "grp"):
            table.move_cursor(row=[r.name for r in table.runs].index(name))
            await pilot.press("space")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, SideBySideScreen) and app.screen.ready, "the models read")
        screen = app.screen
        assert screen.names == ["20251203-081500", "grp-seed1"]  # the group's first seed
        await type_text(pilot, sentence)
        await pilot.press("enter")
        await until(pilot, lambda: screen.answered == screen.asked > 0, "the decoded sentence")
        await pilot.pause()
        decoded = screen.decoded
        assert [d.differs for d in decoded] == [{"seed": raw["config"]["seed"]}, {"seed": 1}]
        for k, d in enumerate(decoded):  # the probe's decoding, in the same input order
            assert d.result.output == expected.output and d.result.source_tokens == expected.source_tokens
            head = str(screen.query_one(f"#side-head-{k}").render())
            assert screen.names[k] in head and "seed=" in head and " ".join(expected.output) in head
            assert ("no match" in head) == (not expected.match)
            grid = str(screen.query_one(f"#side-grid-{k}").render()).splitlines()
            assert grid[0].split()[:3] == ["the", "cat", "sat"]  # the numbered grid: it fits its column
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)

    drive(app, body, size=(120, 40))


def _model(path):
    loaded = load_model(path)
    return loaded.model, loaded.vocab
