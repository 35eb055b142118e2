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


def row_text(table: EpochTable, epoch: str) -> list[str]:
    return table.row_text(int(epoch) - 1)


def test_cpu_epochs_show_throughput_and_memory_without_a_gpu_column():
    asyncio.run(_test_cpu_epochs_show_throughput_and_memory_without_a_gpu_column())


async def _test_cpu_epochs_show_throughput_and_memory_without_a_gpu_column():
    app = TableApp()
    async with app.run_test(size=(120, 30)):
        table = app.query_one(EpochTable)
        table.show([epoch(1), epoch(2, best=False)])
        assert table.labels() == [
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
        assert table.table_width() <= 80 - 2


def test_gpu_epochs_add_a_peak_memory_column_and_keep_every_row():
    asyncio.run(_test_gpu_epochs_add_a_peak_memory_column_and_keep_every_row())


async def _test_gpu_epochs_add_a_peak_memory_column_and_keep_every_row():
    app = TableApp()
    async with app.run_test(size=(120, 30)):
        table = app.query_one(EpochTable)
        first = [epoch(1, gpu=True)]
        table.show(first)
        table.show([*first, epoch(2, gpu=True, best=False)])
        labels = table.labels()
        assert labels[-2:] == ["gpu", "best"] and table.row_count == 2
        assert row_text(table, "1")[-2:] == ["1.4G", "★ best"]
        assert table.table_width() <= 80 - 2


def test_an_older_history_without_the_figures_shows_dashes():
    asyncio.run(_test_an_older_history_without_the_figures_shows_dashes())


async def _test_an_older_history_without_the_figures_shows_dashes():
    app = TableApp()
    async with app.run_test(size=(120, 30)):
        table = app.query_one(EpochTable)
        old = EpochDone.from_dict({"epoch": 1, "train_loss": 2.0, "val_loss": 1.5, "seconds": 3.0, "best": True})
        table.show([old])
        assert row_text(table, "1")[5:7] == ["-", "-"]
        assert "gpu" not in table.labels()


def test_a_narrower_screen_leaves_the_machine_figures_to_the_title_bar():
    asyncio.run(_test_a_narrower_screen_leaves_the_machine_figures_to_the_title_bar())


async def _test_a_narrower_screen_leaves_the_machine_figures_to_the_title_bar():
    app = TableApp()
    async with app.run_test(size=(100, 32)):
        table = app.query_one(EpochTable)
        table.show([epoch(1, gpu=True), epoch(2, gpu=True, best=False)])
        labels = table.labels()
        assert labels == ["epoch", "train loss", "val loss", "val exact", "time", "best"]
        assert row_text(table, "1") == ["1", "2.2041", "1.4200", "3.5%", "1.4s", "★ best"]
        assert table.row_count == 2


def painted(table: EpochTable) -> list[str]:
    """The table's lines as it paints them."""
    return [table.render_line(y).text for y in range(table.size.height)]


def test_the_table_draws_a_header_and_a_row_an_epoch_with_the_star_on_the_best():
    asyncio.run(_test_the_table_draws_a_header_and_a_row_an_epoch_with_the_star_on_the_best())


async def _test_the_table_draws_a_header_and_a_row_an_epoch_with_the_star_on_the_best():
    app = TableApp()
    async with app.run_test(size=(100, 12)) as pilot:
        table = app.query_one(EpochTable)
        table.show([epoch(1), epoch(2), epoch(3, best=False)])
        await pilot.pause()
        lines = painted(table)
        assert lines[0].split() == ["epoch", "train", "loss", "val", "loss", "val", "exact", "time", "best"]
        assert [line.split()[0] for line in lines[1:4]] == ["1", "2", "3"]
        assert ["★" in line for line in lines[1:4]] == [False, True, False]  # moved from epoch 1 to 2
        assert lines[2].split()[:5] == ["2", "2.2041", "1.4200", "3.5%", "1.4s"]
        assert all(not line.strip() for line in lines[4:])
        assert all(len(line) == table.size.width for line in lines)
        # the newest epoch stands out from the rows above it
        styles = [list(table.render_line(y))[0].style.bgcolor for y in (1, 2, 3)]
        assert styles[2] not in styles[:2]


def test_a_long_run_keeps_its_newest_epoch_in_view_under_the_header():
    asyncio.run(_test_a_long_run_keeps_its_newest_epoch_in_view_under_the_header())


async def _test_a_long_run_keeps_its_newest_epoch_in_view_under_the_header():
    app = TableApp()
    async with app.run_test(size=(100, 8)) as pilot:
        table = app.query_one(EpochTable)
        epochs = [epoch(n, best=n == 1) for n in range(1, 21)]
        for n in range(1, 21):
            table.show(epochs[:n])
            await pilot.pause()
        lines = painted(table)
        assert lines[0].split()[0] == "epoch"
        assert [line.split()[0] for line in lines[1:]] == [str(n) for n in range(22 - table.size.height, 21)]


def test_a_new_epoch_draws_its_own_row_and_restyles_the_one_before_it(monkeypatch):
    asyncio.run(_test_a_new_epoch_draws_its_own_row_and_restyles_the_one_before_it(monkeypatch))


async def _test_a_new_epoch_draws_its_own_row_and_restyles_the_one_before_it(monkeypatch):
    drawn: list[list[str]] = []
    plain = EpochTable._line

    def counted(self, row, *args):
        drawn.append([str(getattr(cell, "plain", cell)) for cell in row])
        return plain(self, row, *args)

    monkeypatch.setattr(EpochTable, "_line", counted)
    app = TableApp()
    async with app.run_test(size=(100, 20)) as pilot:
        table = app.query_one(EpochTable)
        epochs = [epoch(n) for n in range(1, 7)]
        table.show(epochs[:5])
        await pilot.pause()
        drawn.clear()
        table.show(epochs)  # epoch 6 takes the star and the highlight from epoch 5
        await pilot.pause()
        assert sorted(row[0] for row in drawn) == ["5", "6"]


def test_the_rows_are_drawn_again_in_a_new_theme():
    asyncio.run(_test_the_rows_are_drawn_again_in_a_new_theme())


async def _test_the_rows_are_drawn_again_in_a_new_theme():
    app = TableApp()
    async with app.run_test(size=(100, 12)) as pilot:
        table = app.query_one(EpochTable)
        table.show([epoch(1), epoch(2)])
        await pilot.pause()
        before = list(table.render_line(1))[0].style.bgcolor  # epoch 1's row
        app.theme = "textual-light" if app.theme != "textual-light" else "nord"
        await pilot.pause()
        after = list(table.render_line(1))[0].style.bgcolor
        expected = (table.rich_style + table.get_component_styles("epoch-table--even-row").rich_style).bgcolor
        assert after != before and after == expected
