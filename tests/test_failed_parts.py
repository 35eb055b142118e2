"""A part of the evaluation or a figure that fails never takes the others with it: it is named
in report.json, status.json and one console line, and everything else is still written
(engine/insight/report.py, engine/insight/plot_process.py, engine/job.py, tui/headless.py)."""

import json
import random

import pytest
import torch

from engine import job as job_module
from engine.insight import plots
from engine.insight import report as report_module
from engine.insight.plot_process import PlotProcess
from engine.insight.report import finish_run
from engine.job import Finished, run_job
from engine.runs.index import list_runs
from engine.train.checkpoint import load_model
from engine.train.config import Config
from engine.train.data import random_sentences
from engine.train.events import Snapshot, Watched
from tests.conftest import QUICK, QUICK_FLAGS
from tui.cli import main

CPU = torch.device("cpu")


def snapshots() -> list[Snapshot]:
    w = Watched(["the", "cat", "sat"], ["sat", "cat", "the"], [[0.0, 0.0, 1.0, 0.0]] * 4, True)
    return [Snapshot(1, 1, 10, [w]), Snapshot(1, 10, 10, [w])]


def sentences_for(checkpoint) -> list[list[str]]:
    return random_sentences(20, 3, 6, random.Random(1), load_model(checkpoint).vocab.words())


def boom(*args, **kwargs):
    raise RuntimeError("boom\nsecond line")


def read(out) -> dict:
    return json.loads((out / "report.json").read_text())


def is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_figure_that_raises_is_named_and_the_rest_is_written(trained_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(plots, "attention_timeline_gif", boom)
    phases = []
    res = finish_run(
        trained_checkpoint,
        sentences_for(trained_checkpoint),
        tmp_path,
        CPU,
        snapshots=snapshots(),
        on_phase=phases.append,
    )
    assert [(f.part, f.error) for f in res.failed_parts] == [("attention_timeline", "RuntimeError: boom")]
    report = read(tmp_path)
    assert report["failed_parts"] == [{"part": "attention_timeline", "error": "RuntimeError: boom"}]
    assert report["test_exact_match"] == res.evaluation.exact_match
    assert is_png(tmp_path / "attention_heatmap.png") and is_png(tmp_path / "loss_curve.png")
    assert (tmp_path / "analysis.md").read_text().startswith("# Attention analysis")
    assert json.loads((tmp_path / "attention_timeline.json").read_text())  # its data still written
    assert not (tmp_path / "attention_timeline.gif").exists() and "attention_timeline" not in res.files
    assert set(res.files) == {
        "attention_heatmap",
        "loss_curve",
        "metrics",
        "analysis",
        "attention_timeline_data",
        "report",
    }
    assert phases[-1].done == phases[-1].total  # every part still told


@pytest.mark.slow  # starts the plot process
@pytest.mark.figures
def test_a_figure_the_plot_process_cannot_draw_is_named_and_the_others_drawn(trained_checkpoint, tmp_path):
    """In the child: a timeline without a sentence to draw raises there, the PNGs are drawn."""
    empty = [Snapshot(1, 1, 10, [])]
    res = finish_run(
        trained_checkpoint, sentences_for(trained_checkpoint), tmp_path, CPU, plotter=PlotProcess(), snapshots=empty
    )
    assert [(f.part, f.error) for f in res.failed_parts] == [("attention_timeline", "ValueError: no snapshot to draw")]
    assert is_png(tmp_path / "attention_heatmap.png") and is_png(tmp_path / "loss_curve.png")
    assert read(tmp_path)["failed_parts"][0]["part"] == "attention_timeline"


def test_an_evaluation_that_raises_is_named_and_the_rest_is_measured(trained_checkpoint, tmp_path, monkeypatch):
    real = report_module.evaluate

    def evaluate(*args, attend=None, **kwargs):
        if attend is False:  # the uniform-attention ablation
            raise RuntimeError("boom")
        return real(*args, attend=attend, **kwargs)

    monkeypatch.setattr(report_module, "evaluate", evaluate)
    phases = []
    res = finish_run(trained_checkpoint, sentences_for(trained_checkpoint), tmp_path, CPU, on_phase=phases.append)
    assert [(f.part, f.error) for f in res.failed_parts] == [("uniform", "RuntimeError: boom")]
    failed = [p for p in phases if p.error is not None]
    assert len(failed) == 1 and "the uniform-attention ablation failed" in failed[0].line()
    report = read(tmp_path)
    assert report["uniform_attention_exact_match"] is None and res.uniform_exact_match is None
    assert report["test_exact_match"] is not None and report["length_limits"]["known_words"] is not None
    assert "Replacing the learned weights" not in (tmp_path / "analysis.md").read_text()  # not made up
    assert all(is_png(tmp_path / f) for f in ("attention_heatmap.png", "loss_curve.png"))


def test_when_the_test_set_fails_the_sweeps_and_the_loss_curve_are_still_written(
    trained_checkpoint, tmp_path, monkeypatch
):
    sentences = sentences_for(trained_checkpoint)
    real = report_module.evaluate

    def evaluate(model, vocab, batch, *args, **kwargs):
        if batch is sentences and not kwargs:  # the test set itself, greedy with attention
            raise RuntimeError("boom")
        return real(model, vocab, batch, *args, **kwargs)

    monkeypatch.setattr(report_module, "evaluate", evaluate)
    res = finish_run(trained_checkpoint, sentences, tmp_path, CPU)
    parts = [f.part for f in res.failed_parts]
    assert parts[0] == "test" and set(parts) == {"test", "attention_heatmap", "analysis"}
    report = read(tmp_path)
    assert report["test_exact_match"] is None and report["uniform_attention_exact_match"] is not None
    assert report["unknown_words_by_length"] and is_png(tmp_path / "loss_curve.png")
    assert not (tmp_path / "attention_heatmap.png").exists() and not (tmp_path / "analysis.md").exists()
    assert res.examples() == []


def test_the_run_status_and_the_runs_table_name_the_part(tmp_path, monkeypatch):
    monkeypatch.setattr(job_module, "PlotProcess", lambda: None)  # drawn in this process, where boom is
    monkeypatch.setattr(plots, "attention_timeline_gif", boom)
    out = tmp_path / "runs" / "one"
    events = list(run_job(Config(**QUICK), tmp_path / "ck" / "best.pt", out, watch=["the cat sat"]))
    assert isinstance(events[-1], Finished)
    status = json.loads((out / "status.json").read_text())
    assert (status["state"], status["evaluated"]) == ("finished", True)
    assert status["failed_parts"] == [{"part": "attention_timeline", "error": "RuntimeError: boom"}]
    (run,) = list_runs(tmp_path / "runs", tmp_path / "ck")
    assert run.status == "finished" and "attention_timeline" in run.problem and "boom" in run.problem


@pytest.mark.parametrize("part", ["attention_timeline", "uniform"])
def test_the_console_says_it_in_one_line_and_the_run_finishes(part, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(job_module, "PlotProcess", lambda: None)
    if part == "attention_timeline":
        monkeypatch.setattr(plots, "attention_timeline_gif", boom)
    else:
        real = report_module.evaluate
        monkeypatch.setattr(
            report_module,
            "evaluate",
            lambda *a, attend=None, **k: boom() if attend is False else real(*a, attend=attend, **k),
        )
    out = tmp_path / "out"
    code = main(["--no-ui", *QUICK_FLAGS, "--out", str(out), "--checkpoint", str(tmp_path / "ck" / "best.pt")])
    captured = capsys.readouterr()
    said = [line for line in (captured.out + captured.err).splitlines() if "boom" in line]
    assert len(said) == 1 and "failed" in said[0] and "second line" not in said[0]
    assert code == 0  # the run finished; its status and report say what is missing
    assert read(out)["failed_parts"][0]["part"] == part
    assert (out / "analysis.md").is_file() and (out / "loss_curve.png").is_file()
