"""tui/epoch_lines.py: the headless run's epoch table, its figures under their names, in 80
columns; and tui/units.py, which formats them for both faces."""

from __future__ import annotations

import pytest

from engine.train.events import EpochDone
from tui import units
from tui.epoch_lines import WIDTH, EpochLines
from tui.headless import CONTROL_PREFIX


def epoch(n=3, best=True, gpu=False, **kw) -> EpochDone:
    figures = dict(lr=1e-3, tokens_per_s=12345.0, seconds_left=3725.0, rss_mib=312.4)
    if gpu:
        figures.update(gpu_mib=1000.0, gpu_peak_mib=3400.0, gpu_util=87.0)
    return EpochDone(n, 2.3456, 2.1, 0.123, 5.12, 0.41, 0.64, 3000, best, [], **{**figures, **kw})


def right_edges(line: str) -> list[int]:
    """Where each whitespace-separated field ends."""
    edges, inside = [], False
    for i, ch in enumerate(line + " "):
        if ch != " " and not inside:
            inside = True
        elif ch == " " and inside:
            inside = False
            edges.append(i)
    return edges


@pytest.mark.parametrize("cuda", [False, True])
@pytest.mark.parametrize("epochs", [10, 100])
def test_each_figure_sits_right_under_its_name_within_80_columns(cuda, epochs):
    table = EpochLines(epochs, cuda=cuda)
    _, names = table.header()
    line = table.line(epoch(gpu=cuda, best=False))
    # every column but the last (grad norm mean/max, left-aligned) ends where its name ends
    assert right_edges(line)[:-1] == right_edges(names)[:-1]
    assert line.index("0.41/0.64") == names.index("mean/max")
    assert max(len(s) for s in [*table.header(), table.line(epoch(gpu=cuda))]) <= WIDTH


def test_the_line_shows_every_figure_formatted():
    line = EpochLines(10).line(epoch())
    assert line.split() == ["3/10", "2.3456", "2.1000", "12.3%", "5.1s", "12.3k", "1:02:05", "312M", "0.41/0.64", "*"]
    header = " ".join(EpochLines(10).header())
    for name in ("train", "val", "exact", "s/epoch", "tok/s", "left", "memory", "grad norm"):
        assert name in header


def test_on_cuda_the_gpu_peak_and_utilisation_join_in():
    table = EpochLines(10, cuda=True)
    assert "peak" in table.header()[1] and "util" in table.header()[1]
    assert table.line(epoch(gpu=True)).split()[8:10] == ["3.3G", "87%"]
    # NVML absent: utilisation unknown, memory still shown
    assert table.line(epoch(gpu=True, gpu_util=None)).split()[8:10] == ["3.3G", "-"]


def test_the_control_runs_lines_keep_their_prefix_and_their_alignment():
    table = EpochLines(10, prefix=CONTROL_PREFIX)
    _, names = table.header()
    line = table.line(epoch(best=False))
    assert line.startswith(CONTROL_PREFIX)
    n = len(CONTROL_PREFIX)
    assert names[:n].strip() == "" and right_edges(line[n:])[:-1] == right_edges(names[n:])[:-1]
    assert len(line) <= WIDTH


@pytest.mark.parametrize(
    "value, text", [(12, "12"), (950, "950"), (12345, "12.3k"), (99_960, "100k"), (123_456, "123k"), (1.2e6, "1.2M")]
)
def test_rate(value, text):
    assert units.rate(value) == text


@pytest.mark.parametrize(
    "value, text", [(7, "0:07"), (754, "12:34"), (3723, "1:02:03"), (2 * 86400 + 3 * 3600, "2d03h")]
)
def test_clock(value, text):
    assert units.clock(value) == text


@pytest.mark.parametrize("value, text", [(312.4, "312M"), (999.7, "1.0G"), (1228.8, "1.2G"), (12 * 1024, "12G")])
def test_mebibytes(value, text):
    assert units.mebibytes(value) == text


def test_unknown_figures_are_a_dash():
    assert units.rate(None) == units.clock(None) == units.mebibytes(None) == units.percent(None) == "-"
