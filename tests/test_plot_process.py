"""The PNGs are drawn by a child process started early; a child that cannot draw costs time,
never a figure."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from engine.insight import plot_process
from engine.insight.plot_process import PlotProcess, draw_all, heatmap_job, loss_curve_job

# every test starts the plot process; those that draw here when it fails draw for real
pytestmark = [pytest.mark.slow, pytest.mark.figures]

HISTORY = [
    {
        "epoch": e,
        "train_loss": 1.0 / e,
        "val_loss": 1.2 / e,
        "val_exact_match": e / 3,
        "seconds": 1.0,
        "batch_losses": [1.0 / e] * 4,
    }
    for e in (1, 2, 3)
]


def jobs(tmp_path):
    a = np.eye(4)[::-1].copy()
    return [
        heatmap_job(a, ["c", "b", "a", "<eos>"], ["a", "b", "c", "<eos>"], tmp_path / "h.png"),
        loss_curve_job(HISTORY, tmp_path / "l.png", 3),
    ]


def is_png(path):
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_child_draws_both_figures(tmp_path):
    plotter = PlotProcess()
    assert plotter.proc is not None
    paths = plotter.draw(jobs(tmp_path))
    assert paths == [(tmp_path / "h.png").resolve(), (tmp_path / "l.png").resolve()]
    assert all(is_png(p) for p in paths)
    assert plotter.proc.returncode == 0


def test_the_child_draws_the_figures_of_every_submit(tmp_path):
    """The figures that need only the history go first (more=True), the heatmap after the test
    set: the child draws both submits and answers for all of them."""
    plotter = PlotProcess()
    heatmap, curve = jobs(tmp_path)
    assert plotter.submit([curve], more=True)
    assert plotter.submit([heatmap])
    paths = plotter.collect()
    assert paths == [(tmp_path / "l.png").resolve(), (tmp_path / "h.png").resolve()]
    assert all(is_png(p) for p in paths)
    assert not plotter.submit([curve])  # the last submit closed it


def test_a_failing_child_is_replaced_by_drawing_here(tmp_path, monkeypatch):
    real = subprocess.Popen
    # a child that dies at once, as one without matplotlib would
    monkeypatch.setattr(
        plot_process.subprocess, "Popen", lambda cmd, **kw: real([cmd[0], "-c", "raise SystemExit(3)"], **kw)
    )
    plotter = PlotProcess()
    assert plotter.draw(jobs(tmp_path)) is None
    paths = draw_all(PlotProcess(), jobs(tmp_path))
    assert all(is_png(p) for p in paths)


def test_close_stops_a_waiting_child():
    plotter = PlotProcess()
    assert plotter.proc.poll() is None  # waiting for its figures
    plotter.close()
    assert plotter.proc.poll() is not None


def test_figures_submitted_early_still_come_when_the_child_fails(tmp_path, monkeypatch, trained_checkpoint):
    """finish_run hands the figures over as soon as the test set is decoded; a child that died
    meanwhile costs the time to draw them here, never the files."""
    import random

    import torch

    from engine.insight.report import finish_run
    from engine.train.checkpoint import load_model
    from engine.train.data import random_sentences

    loaded = load_model(trained_checkpoint)
    test = random_sentences(20, 3, 6, random.Random(1), loaded.vocab.words())
    real = subprocess.Popen
    monkeypatch.setattr(
        plot_process.subprocess, "Popen", lambda cmd, **kw: real([cmd[0], "-c", "raise SystemExit(3)"], **kw)
    )
    res = finish_run(trained_checkpoint, test, tmp_path, torch.device("cpu"), plotter=PlotProcess())
    assert is_png(res.files["attention_heatmap"]) and is_png(res.files["loss_curve"])


def test_the_child_finds_the_engine_from_any_folder(tmp_path, monkeypatch):
    """The child is told where engine/ lives, so that it starts where the package is not
    installed and the run's folder is elsewhere (a clone on PYTHONPATH, a bench in its own
    process): there it found no module `engine`, and every figure was drawn in the run's own
    process, ~3 s of the evaluation."""
    started = []
    real = subprocess.Popen
    monkeypatch.setattr(plot_process.subprocess, "Popen", lambda cmd, **kw: started.append(kw) or real(cmd, **kw))
    monkeypatch.chdir(tmp_path)
    plotter = PlotProcess()
    first = started[0]["env"]["PYTHONPATH"].split(os.pathsep)[0]
    assert (Path(first) / "engine" / "insight" / "plot_process.py").is_file(), first
    paths = plotter.draw(jobs(tmp_path))
    assert paths is not None and all(is_png(p) for p in paths)
