"""tui/widgets/epoch_table.py: the throughput and memory columns, and the GPU column that
joins them on CUDA, within 80 columns, on a screen wide enough to give them room beside the
chart of exact match by length (narrower, the title bar shows them)."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult

from engine.train.events import EpochDone
from tui.widgets.epoch_table import EpochTable


def epoch(n: int, gpu: bool = False, best: bool = True) -> EpochDone:
    figures = dict(tokens_per_s=14300.0, seconds_left=3.0, rss_mib=304.0)
    if gpu:
        figures.update(gpu_mib=200.0, gpu_peak_mib=1433.6, gpu_util=90.0)
    return EpochDone(n, 2.2041, 1.42, 0.035, 1.4, 0.5, 1.0, 20000, best, [], **figures)


class TableApp(App):
    def compose(self) -> ComposeResult:
        yield EpochTable()


def row_text(table: EpochTable, key: str) -> list[str]:
    return [str(getattr(c, "plain", c)) for c in table.get_row(key)]


def test_cpu_epochs_show_throughput_and_memory_without_a_gpu_column():
    asyncio.run(_test_cpu_epochs_show_throughput_and_memory_without_a_gpu_column())


async def _test_cpu_epochs_show_throughput_and_memory_without_a_gpu_column():
    app = TableApp()
    async with app.run_test(size=(120, 30)):
        table = app.query_one(EpochTable)
        table.show([epoch(1), epoch(2, best=False)])
        assert [str(c.label) for c in table.columns.values()] == [
            "epoch",
            "train loss",
            "val loss",
            "val exact",
            "time",
            "tok/s",
            "mem",
            "best",
        ]
        assert row_text(table, "1") == ["1", "2.2041", "1.4200", "3.5%", "1.4s", "14.3k", "304M", "★ best"]
        assert row_text(table, "2")[-1] == ""
        # the table's columns with their padding fit inside 80 columns, its margins included
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80 - 2


def test_gpu_epochs_add_a_peak_memory_column_and_keep_every_row():
    asyncio.run(_test_gpu_epochs_add_a_peak_memory_column_and_keep_every_row())


async def _test_gpu_epochs_add_a_peak_memory_column_and_keep_every_row():
    app = TableApp()
    async with app.run_test(size=(120, 30)):
        table = app.query_one(EpochTable)
        first = [epoch(1, gpu=True)]
        table.show(first)
        table.show([*first, epoch(2, gpu=True, best=False)])
        labels = [str(c.label) for c in table.columns.values()]
        assert labels[-2:] == ["gpu", "best"] and table.row_count == 2
        assert row_text(table, "1")[-2:] == ["1.4G", "★ best"]
        assert sum(c.get_render_width(table) for c in table.columns.values()) <= 80 - 2


def test_an_older_history_without_the_figures_shows_dashes():
    asyncio.run(_test_an_older_history_without_the_figures_shows_dashes())


async def _test_an_older_history_without_the_figures_shows_dashes():
    app = TableApp()
    async with app.run_test(size=(120, 30)):
        table = app.query_one(EpochTable)
        old = EpochDone.from_dict({"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "seconds": 3.0, "best": True})
        table.show([old])
        assert row_text(table, "1")[5:7] == ["-", "-"]
        assert "gpu" not in [str(c.label) for c in table.columns.values()]


def test_a_narrower_screen_leaves_the_machine_figures_to_the_title_bar():
    asyncio.run(_test_a_narrower_screen_leaves_the_machine_figures_to_the_title_bar())


async def _test_a_narrower_screen_leaves_the_machine_figures_to_the_title_bar():
    app = TableApp()
    async with app.run_test(size=(100, 32)):
        table = app.query_one(EpochTable)
        table.show([epoch(1, gpu=True), epoch(2, gpu=True, best=False)])
        labels = [str(c.label) for c in table.columns.values()]
        assert labels == ["epoch", "train loss", "val loss", "val exact", "time", "best"]
        assert row_text(table, "1") == ["1", "2.2041", "1.4200", "3.5%", "1.4s", "★ best"]
        assert table.row_count == 2
