"""The terminal app driven by Textual's Pilot: a run trained for real on the tiny
configuration, end to end; stopping and quitting mid-run, the progress messages, new and
resumed runs on a canned run (tests/canned.py: the job's events with fixed values);
probing, saving the heatmap, errors shown in the app.

No sleeps: every wait is a bounded loop of `pilot.pause`, polling for the state the test
needs, and fails with a message when the state never comes. The one wait in the training
thread (CannedRun.hold) holds it at a chosen batch until the run's stop signal is set.

Across modules by design: tui/app.py with its screens (tui/screens/) and widgets
(tui/widgets/), driven as a user drives them, so it is not one module's test_<module>.py."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import sys
import time
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from textual._xterm_parser import XTermParser
from textual.widgets import Input

import engine.job
import tui.app
from engine import job_process
from engine.errors import NonFiniteLoss
from engine.insight.evaluate import MAX_PROBE_WORDS, probe
from engine.runs.status import read_status
from engine.train import threads as thread_rules
from engine.train.checkpoint import load_model
from engine.train.config import Config
from engine.train.events import BatchDone
from engine.train.trainer import Trainer
from tests.conftest import HOSTILE_STRINGS, QUICK, TINY
from tui import cli
from tui.app import CannotStart, ReverseApp, describe
from tui.common import RunOptions
from tui.messages import BatchProgress
from tui.screens.help import HelpScreen
from tui.screens.probe import ProbeScreen
from tui.screens.results import ResultsScreen
from tui.screens.train import TrainScreen
from tui.widgets.attention_grid import AttentionGrid
from tui.widgets.epoch_table import EpochTable
from tui.widgets.length_chart import LengthChart
from tui.widgets.loss_chart import LossChart
from tui.widgets.progress_line import ProgressLine

SIZE = (100, 32)


def make_app(tmp_path: Path, checkpoint: Path | None = None, **overrides) -> ReverseApp:
    args = RunOptions(checkpoint=checkpoint or tmp_path / "ck" / "best.pt", out=tmp_path / "out", threads=None)
    return ReverseApp(Config(**{**TINY, **overrides}), args)


async def until(pilot, condition, what: str, timeout: float = 60.0) -> None:
    """Waits for what a worker or a timer does; the deadline only turns a hang into a failure."""
    deadline = time.monotonic() + timeout
    while not condition():
        if pilot.app._exception is not None:  # the app died: say why, now
            raise pilot.app._exception
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.01)


async def probed(pilot, *keys: str) -> None:
    """Keys that ask the probe screen for a probe (enter, a pick from the history), then the
    wait until the answer, decoded in a thread worker, is on screen."""
    screen = pilot.app.screen
    asked = screen.asked
    await pilot.press(*keys)
    await until(pilot, lambda: screen.asked > asked and not screen.busy, "the probe's answer")


async def type_text(pilot, text: str) -> None:
    """Text typed into the input in focus, as a terminal sends it (type_as_a_terminal), then
    the wait until the input holds it: Pilot's press waits for an idle app after each key,
    ~50 ms a key, where what a test needs is the text in the input."""
    field = pilot.app.focused
    assert isinstance(field, Input), f"typing needs an input in focus, not {field!r}"
    at = field.cursor_position
    expected = field.value[:at] + text + field.value[at:]
    for event in XTermParser().feed(text):
        pilot.app.post_message(event)  # handled in order, as a terminal's keys are
    await until(pilot, lambda: field.value == expected, f"{text!r} in the input")


async def type_as_a_terminal(pilot, text: str) -> None:
    """The keys a terminal sends for text, read by Textual's own parser: Pilot's press names
    a key from its character's Unicode name and cannot name some emoji back (cat_face)."""
    for event in XTermParser().feed(text):
        pilot.app.post_message(event)  # handled in order, as a terminal's keys are
    await pilot.pause()


def run(coro):
    return asyncio.run(coro)


# -- training ---------------------------------------------------------------------------------
def test_a_run_trained_in_the_app_fills_the_screens_then_probes(tmp_path):
    """End to end, one of the few runs trained for real in the app (the others replay a
    canned run, tests/canned.py): the table, the chart and the epoch's counts by length, the
    results of the engine's evaluation, the run's files, then its model on the probe screen
    (on QUICK's sentences: a run, not a model that learned)."""
    sets = {k: QUICK[k] for k in ("train_size", "val_size", "test_size")}
    app = make_app(tmp_path, epochs=3, **sets)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            assert isinstance(app.screen, TrainScreen)
            table = app.screen.query_one(EpochTable)
            chart = app.screen.query_one(LossChart)
            by_length = app.screen.query_one(LengthChart)
            await until(pilot, lambda: not app.training, "training to end")
            assert table.row_count == 3
            assert chart.data_points == 3
            assert [table.row_text(i)[0] for i in range(3)] == ["1", "2", "3"]
            # beside the table, the last epoch's validation counts by length, every sentence once
            assert by_length.epoch is app.epochs[-1]
            assert sum(t for _, t in by_length.epoch.val_by_length.values()) == QUICK["val_size"]
            assert "epoch 3" in str(by_length.render()).split("\n")[0]
            best = app.best_epoch()
            assert best is not None
            assert "best" in table.row_text(best - 1)[-1]
            # one mark only: the model on disk
            assert sum("best" in table.row_text(i)[-1] for i in range(3)) == 1
            # a finished run goes on to the test results, from the engine's finish_run
            await until(pilot, lambda: app.results is not None, "the evaluation")
            await pilot.pause()
            assert isinstance(app.screen, ResultsScreen)
            examples = str(app.screen.query_one("#examples").render())
            assert examples.count("Input:") == 10 and examples.count("Reference:") == 10
            assert "Test exact match" in str(app.screen.query_one("#summary").render())
            sweep = app.screen.query_one("#sweep-chart")
            assert [x.label for x in sweep.series] == ["known words", "unknown words"]
            assert max(x for x, _ in sweep.series[0].points) > TINY["max_len"]  # past the training lengths
            assert "report.json" in str(app.screen.query_one("#files").render())
            for name in ("attention_heatmap.png", "loss_curve.png", "metrics.csv", "analysis.md", "report.json"):
                assert (tmp_path / "out" / name).exists(), name
            # p: the run's best model answers on the probe screen, as the engine's probe does
            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ProbeScreen), "the probe screen")
            await type_text(pilot, "the cat sat")
            await probed(pilot, "enter")
            loaded = load_model(tmp_path / "ck" / "best.pt")
            expected = probe(loaded.model, loaded.vocab, "the cat sat", torch.device("cpu"))
            assert f"Output:    {' '.join(expected.output)}" in str(app.screen.query_one("#verdict").render())

    run(body())
    assert load_model(tmp_path / "ck" / "best.pt").payload["best_epoch"] == app.best_epoch()


def test_the_apps_run_trains_in_a_process_of_its_own(tmp_path, monkeypatch):
    """As a user's app does (tests/conftest.py turns it off for the others): the run trains
    in a child process (engine/job_process.py), never in the app's, and its epochs and
    results reach the screens as a thread's do."""
    monkeypatch.setattr(tui.app, "TRAIN_IN_PROCESS", True)
    monkeypatch.setattr(job_process, "CHILD_MODULE", "tests.lean_job_process")  # its stand-ins
    # 8 threads at most of 16 cores (OMP_NUM_THREADS=8): cores left for the app
    monkeypatch.setattr(thread_rules, "usable_cores", lambda: 16)
    monkeypatch.setattr(thread_rules, "TORCH_THREADS", 8)

    def trained_here(*args, **kwargs):
        raise AssertionError("the app's own process trained")

    monkeypatch.setattr(engine.job, "Trainer", trained_here)
    told: list[int] = []  # the losses each progress message carried
    show_progress = ReverseApp.on_batch_progress

    def on_batch_progress(self, msg):
        told.append(len(msg.losses))
        return show_progress(self, msg)

    monkeypatch.setattr(ReverseApp, "on_batch_progress", on_batch_progress)
    app = make_app(tmp_path, epochs=2, **{k: QUICK[k] for k in ("train_size", "val_size", "test_size")})

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.results is not None or app.results_error is not None, "the evaluation")
            assert app.results_error is None
            assert [e.epoch for e in app.epochs] == [1, 2]
            await pilot.pause()
            assert isinstance(app.screen, ResultsScreen)
            assert "Test exact match" in str(app.screen.query_one("#summary").render())
            # the live chart was told every batch's loss once, as the batches came
            assert sum(told) == 2 * -(-QUICK["train_size"] // TINY["batch_size"])
            await app.workers.wait_for_complete()

    run(body())
    assert read_status(tmp_path / "out")["state"] == "finished"
    assert load_model(tmp_path / "ck" / "best.pt").payload["best_epoch"] == app.best_epoch()


def test_a_run_given_no_threads_follows_the_load_in_a_thread_of_the_app(tmp_path, canned, monkeypatch):
    """On two cores the app's run may take both (engine/train/threads.py's ThreadsByLoad), so it
    trains in a thread of the app, told to follow the load; given --threads 1 it leaves the
    app a core and trains in a child."""
    monkeypatch.setattr(tui.app, "TRAIN_IN_PROCESS", True)
    monkeypatch.setattr(thread_rules, "usable_cores", lambda: 2)
    monkeypatch.setattr(thread_rules, "TORCH_THREADS", 2)
    monkeypatch.setattr(thread_rules, "cores_times", lambda cpus: (100.0, 50.0))  # readable, never changing
    monkeypatch.setattr(tui.app, "prestart", lambda: None)
    figures_ahead: list[int] = []  # the figures' process, started as the app starts up
    monkeypatch.setattr(tui.app.plot_process, "prestart", lambda: figures_ahead.append(1))
    told: list[dict] = []
    real = tui.app.run_job
    monkeypatch.setattr(tui.app, "run_job", lambda *a, **kw: told.append(kw) or real(*a, **kw))
    app = make_app(tmp_path, epochs=1)
    assert not app.trains_in_child(app.cfg) and figures_ahead == [1]
    assert ReverseApp(app.cfg, replace(app.opts, threads=1)).trains_in_child(app.cfg)
    assert figures_ahead == [1]  # one that trains in a child starts the child ahead instead

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.results is not None or app.results_error is not None, "the evaluation")
            assert app.results_error is None
            await app.workers.wait_for_complete()

    run(body())
    assert told and told[0]["threads_by_load"] and told[0]["choose_threads"] and canned.trained


def test_a_run_on_every_core_trains_in_a_thread_of_the_app(tmp_path, canned, monkeypatch):
    """Where the run takes every core of the CPU (here its one thread on one core), a child's
    training would lose a core to the app's thread at each of its bursts: the app trains it in
    a thread of its own process instead, and starts no child ahead for it."""
    monkeypatch.setattr(tui.app, "TRAIN_IN_PROCESS", True)
    monkeypatch.setattr(thread_rules, "usable_cores", lambda: 1)
    started: list[str] = []
    monkeypatch.setattr(tui.app, "prestart", lambda: started.append("ahead"))

    def in_a_child(*args, **kwargs):
        started.append("child")
        raise AssertionError("the run trained in a child")

    monkeypatch.setattr(tui.app, "run_job_in_process", in_a_child)
    app = make_app(tmp_path, epochs=2)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.results is not None or app.results_error is not None, "the evaluation")
            assert app.results_error is None and [e.epoch for e in app.epochs] == [1, 2]
            await app.workers.wait_for_complete()

    run(body())
    assert started == [] and canned.trained  # the test's stand-in trained it, in this process


def test_stop_mid_run_ends_the_worker_and_still_evaluates(tmp_path, canned):
    canned.hold = (2, 1)  # the run waits after this batch until the stop key is in
    app = make_app(tmp_path, epochs=30)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: canned.held.is_set() and len(app.epochs) == 1, "the second epoch's first batch")
            await pilot.press("s")
            await until(pilot, lambda: not app.training, "the worker to stop")
            # the batch in hand was the last: the run stopped at its next check
            assert canned.saw_stop and canned.trained[-1] == (2, 1)
            assert not app._train_lock.locked()  # the thread has left the training loop
            assert [e.epoch for e in app.epochs] == [1]
            ckpt = tmp_path / "ck" / "best.pt"
            assert app.status[0].startswith(f"Stopped after 1 finished epoch(s); the best model (epoch 1) is in {ckpt}")
            # the stop key still evaluates the best model
            await until(pilot, lambda: app.results is not None, "the evaluation of the best model")
            await app.workers.wait_for_complete()

    run(body())
    assert canned.trained[-1] == (2, 1) and canned.evaluated  # nothing trained after it
    assert app.best_epoch() == 1


def test_quit_mid_training_waits_for_the_worker_and_evaluates_nothing(tmp_path, monkeypatch, canned):
    canned.hold = (2, 1)
    waited: list[bool] = []
    real_wait = ReverseApp._wait_train_idle

    def wait_train_idle(self, timeout):
        # the app's bound is for a hung thread; here the test waits for the behaviour
        waited.append(real_wait(self, 60.0))
        return waited[-1]

    monkeypatch.setattr(ReverseApp, "_wait_train_idle", wait_train_idle)
    app = make_app(tmp_path, epochs=50)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: canned.held.is_set() and len(app.epochs) == 1, "the second epoch's first batch")
            await pilot.press("ctrl+q")

    run(body())
    assert waited == [True]  # quitting waited for the training thread to leave its loop
    assert not app._train_lock.locked()
    assert canned.saw_stop and canned.trained[-1] == (2, 1)  # it left at the first check after the quit
    assert not canned.evaluated  # quitting evaluates nothing


def test_batch_progress_is_throttled(tmp_path, monkeypatch, canned):
    import tui.bridge

    seen: list[tuple[int, int]] = []
    losses: list[int] = []
    live: list[list[tuple[float, float]]] = []
    handler = ReverseApp.on_batch_progress

    def counting(self, msg):
        seen.append((msg.event.epoch, msg.event.batch))
        losses.append(len(msg.losses))
        handler(self, msg)
        live.append(list(self.live_losses))

    monkeypatch.setattr(ReverseApp, "on_batch_progress", counting)
    monkeypatch.setattr(tui.bridge, "BATCH_INTERVAL", 1000.0)  # nothing but the must-sends
    app = make_app(tmp_path, epochs=2)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            # wait for the evaluation that follows training too, so that the app is not torn
            # down while its results arrive
            await until(
                pilot,
                lambda: not app.training and not app.evaluating and app.results is not None,
                "training and evaluation to end",
            )

    run(body())
    batches = canned.batches
    # the first batch of the run, then the last batch of every epoch (the bar reaches 100%)
    assert seen == [(1, 1), (1, batches), (2, batches)]
    # no batch's loss is lost between two messages: the chart has every batch of the epoch
    assert losses == [1, batches - 1, batches]
    assert [x for x, _ in live[0]] == [1 / batches]  # the chart starts at the first batch
    assert [x for x, _ in live[1]] == pytest.approx([(k + 1) / batches for k in range(batches)])
    assert [x for x, _ in live[2]] == pytest.approx([1 + (k + 1) / batches for k in range(batches)])
    assert [y for _, y in live[1]] == pytest.approx(app.epochs[0].batch_losses)


def test_worker_exception_is_shown_and_app_lives_on(tmp_path, monkeypatch):
    def boom(self):
        yield BatchDone(1, 1, 19)
        raise NonFiniteLoss(1, 2)

    monkeypatch.setattr(Trainer, "run", boom)
    app = make_app(tmp_path)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: not app.training, "the failure")
            await pilot.pause()
            text, kind = app.status
            assert kind == "error" and "NaN or infinite" in text
            status = app.screen.query_one("#run-status")
            assert status.has_class("-error") and "NaN" in str(status.render())
            assert any(n.severity == "error" for n in app._notifications)
            # still alive and answering keys
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert isinstance(app.screen, TrainScreen)

    run(body())


def test_describe_cuda_out_of_memory():
    text = describe(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert "out of memory" in text and "--batch-size" in text


# -- probing ----------------------------------------------------------------------------------
def test_opens_on_checkpoint_and_probes(tmp_path, trained_checkpoint):
    app = make_app(tmp_path, checkpoint=trained_checkpoint)
    loaded = load_model(trained_checkpoint)
    expected = probe(loaded.model, loaded.vocab, "the cat sat", torch.device("cpu"))

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, ProbeScreen)
            assert screen.focused is screen.query_one("#sentence")
            await type_text(pilot, "the cat sat")
            await probed(pilot, "enter")
            verdict = str(screen.query_one("#verdict").render())
            assert f"Output:    {' '.join(expected.output)}" in verdict
            if expected.match:  # the reference is not repeated when the output is it
                assert "match: the exact reversal of the 3 words" in verdict and "Reference" not in verdict
            else:
                assert "Reference: sat cat the" in verdict and "no match" in verdict
            grid = screen.query_one(AttentionGrid)
            assert grid.display
            assert grid.row_count == expected.steps
            assert [str(c.label).strip() for c in grid.columns.values()] == ["the", "cat", "sat", "<eos>"]
            first = grid.get_row_at(0)
            assert [c.plain.strip() for c in first] == [
                "1.0" if x >= 0.995 else f"{x:.2f}"[1:] for x in expected.attention[0]
            ]
            assert screen.history == ["the cat sat"]

    run(body())


def test_a_run_opened_from_its_files_shows_still_full_bars(tmp_path, trained_checkpoint):
    # an indeterminate bar pulses as if something were training, and repaints all the while
    app = make_app(tmp_path, checkpoint=trained_checkpoint)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            await pilot.press("ctrl+t")
            await pilot.pause()
            assert not app.training and app.epochs
            lines = list(app.screen.query(ProgressLine))
            assert lines
            for line in lines:
                assert line.progress == line.total > 0, line.id
                assert str(line.render()).rstrip().endswith("100%"), line.id

    run(body())


def test_a_batchs_progress_repaints_its_line_without_laying_out_the_screen(tmp_path):
    """A few times a second while training: a new layout of the whole screen for each was
    most of what the app's thread did while training (sampled), and a run trained in the
    app's process waits for that thread."""
    args = RunOptions(checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out", threads=None)
    app = ReverseApp(Config(**TINY), args, autostart=False)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            app.training = True
            await pilot.pause()
            line = app.screen.query_one("#batch-line", ProgressLine)
            refreshed: list[tuple[str, bool]] = []
            for widget in app.screen.walk_children():
                plain = widget.refresh

                def refresh(*regions, layout=False, _plain=plain, _widget=widget, **kwargs):
                    refreshed.append((type(_widget).__name__, layout))
                    return _plain(*regions, layout=layout, **kwargs)

                widget.refresh = refresh
            for batch in (1, 12, 123):
                app.post_message(BatchProgress(app.run_id, BatchDone(3, batch, 123), [0.5]))
                await pilot.pause()
                shown = str(line.render())
                assert shown.startswith(f"epoch 3 batch {batch}/123 ")
                assert shown.endswith(f"{round(100 * batch / 123)}%")
            assert ("ProgressLine", False) in refreshed
            assert not [name for name, layout in refreshed if layout], refreshed

    run(body())


def test_a_newline_submits_like_enter(tmp_path, trained_checkpoint):
    """Keys typed while the app starts reach it through the tty's cooked mode, where Enter
    arrives as a newline (ctrl+j): the sentence must still be probed."""
    app = make_app(tmp_path, checkpoint=trained_checkpoint)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await type_text(pilot, "the cat sat")
            await probed(pilot, "ctrl+j")
            assert "Output:" in str(screen.query_one("#verdict").render())
            assert screen.history == ["the cat sat"]

    run(body())


def test_bad_input_shows_a_message(tmp_path, trained_checkpoint):
    app = make_app(tmp_path, checkpoint=trained_checkpoint)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            for text in ("", "!!! ... ,,,"):
                await type_text(pilot, text)
                await probed(pilot, "enter")
                verdict = screen.query_one("#verdict")
                assert verdict.has_class("-error")
                assert "Cannot probe that: no words" in str(verdict.render())
                assert not screen.query_one(AttentionGrid).display
                screen.query_one("#sentence").value = ""
            assert screen.history == []
            # and then a good one still works
            await type_text(pilot, "the cat sat")
            await probed(pilot, "enter")
            assert not screen.query_one("#verdict").has_class("-error")

    run(body())


def test_history_brings_a_sentence_back(tmp_path, trained_checkpoint):
    app = make_app(tmp_path, checkpoint=trained_checkpoint)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            for text in ("the cat sat", "a big red dog ran"):
                screen.query_one("#sentence").value = text
                await probed(pilot, "enter")
            assert screen.history == ["a big red dog ran", "the cat sat"]
            assert "not in the vocabulary" in str(screen.query_one("#verdict").render())
            await pilot.press("tab", "tab")  # past the grid to the history list
            assert screen.focused is screen.query_one("#history")
            await probed(pilot, "down", "enter")
            assert screen.query_one("#sentence").value == "the cat sat"
            assert "Output:" in str(screen.query_one("#verdict").render())
            assert screen.result.source == ["the", "cat", "sat"]
            assert screen.history[0] == "the cat sat"

    run(body())


def test_save_key_writes_a_new_png_each_time(tmp_path, trained_checkpoint, figures, monkeypatch):
    """ctrl+s hands the probe on screen to the heatmap figure, at a new numbered path each
    time (a 1x1 stand-in here, as for a run's figures: tests/conftest.py; the figure itself
    is drawn by the slow set's figures tests, tests/test_headless.py and
    tests/test_plot_process.py)."""
    import tui.screens.probe

    real = tui.screens.probe.attention_heatmap
    monkeypatch.setattr(tui.screens.probe, "attention_heatmap", figures.stand_in("attention_heatmap", real))
    app = make_app(tmp_path, checkpoint=trained_checkpoint)
    out = tmp_path / "out"
    out.mkdir()
    (out / "attention_heatmap.png").write_bytes(b"the run's own heatmap")

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await pilot.press("ctrl+s")  # nothing probed yet: a warning, no file
            await pilot.pause()
            assert not (out / "probe-1.png").exists()
            await type_text(pilot, "the cat sat")
            await probed(pilot, "enter")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: screen.saved_path is not None, "the PNG")
            assert screen.saved_path == out / "probe-1.png"
            assert str(out / "probe-1.png") in str(screen.query_one("#saved").render())
            screen.saved_path = None
            await pilot.press("ctrl+s")
            await until(pilot, lambda: screen.saved_path is not None, "the second PNG")
            assert screen.saved_path == out / "probe-2.png"
            return screen.result

    shown = run(body())
    drawn = figures.drawn["attention_heatmap"]
    assert [Path(d["path"]) for d in drawn] == [out / "probe-1.png", out / "probe-2.png"]
    for d in drawn:  # the probe on screen, its labels as the grid's
        assert d["attention"] is shown.attention
        assert (d["source_tokens"], d["output_tokens"]) == (shown.source_tokens, shown.output_tokens)
    for name in ("probe-1.png", "probe-2.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "attention_heatmap.png").read_bytes() == b"the run's own heatmap"


def test_a_question_mark_typed_is_part_of_the_sentence(tmp_path, trained_checkpoint):
    app = make_app(tmp_path, checkpoint=trained_checkpoint)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            await type_text(pilot, "is it? here")
            assert app.screen is screen  # no help screen over it
            assert screen.query_one("#sentence").value == "is it? here"
            await probed(pilot, "enter")
            verdict = screen.query_one("#verdict")
            assert not verdict.has_class("-error")
            assert "Output:" in str(verdict.render())
            # the tokenizer keeps words only: "?" separates them, like any punctuation
            assert screen.result.source == ["is", "it", "here"]
            assert screen.result.reference == ["here", "it", "is"]
            assert screen.history == ["is it here"]

    run(body())


def test_help_opens_with_f1_anywhere_and_question_mark_outside_a_field(tmp_path, trained_checkpoint):
    app = make_app(tmp_path, checkpoint=trained_checkpoint)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            sentence = screen.query_one("#sentence")
            await type_text(pilot, "the cat")
            # the footer offers f1 while the input has focus; "?" belongs to the input
            assert "f1" in screen.active_bindings and "question_mark" not in screen.active_bindings
            await pilot.press("f1")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert app.screen is screen and screen.focused is sentence
            assert sentence.value == "the cat"
            await probed(pilot, "enter")
            await pilot.press("tab")  # to the attention grid
            assert screen.focused is screen.query_one(AttentionGrid)
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("question_mark")  # and closes it
            assert app.screen is screen
            await pilot.press("tab")  # the history list: "?" opens help there too
            assert screen.focused is screen.query_one("#history")
            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")
            assert sentence.value == "the cat"

    run(body())


def test_hostile_input_in_the_probe_screen_gets_a_verdict(tmp_path, trained_checkpoint):
    app = make_app(tmp_path, checkpoint=trained_checkpoint)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            sentence = screen.query_one("#sentence")
            verdict = screen.query_one("#verdict")
            for text, words in HOSTILE_STRINGS.items():
                sentence.value = ""
                if text.isprintable() and len(text) <= 60:
                    await type_as_a_terminal(pilot, text)
                    assert sentence.value == text and app.screen is screen, repr(text)
                else:  # control characters, line breaks, a paste too long to type
                    sentence.value = text
                    # shown as spaces: raw, ESC [2J would clear the terminal
                    assert not any(unicodedata.category(c) == "Cc" for c in sentence.value), repr(text)
                await probed(pilot, "enter")
                assert app._exception is None, repr(text)
                shown = str(verdict.render())
                if not words:
                    assert verdict.has_class("-error") and "Cannot probe that: no words" in shown, repr(text)
                elif len(words) > MAX_PROBE_WORDS:
                    assert verdict.has_class("-error") and f"has {len(words)} words" in shown, repr(text)
                else:
                    assert not verdict.has_class("-error"), repr(text)
                    assert screen.result.source == words, repr(text)
                    assert "Output:" in shown, repr(text)
                    assert (
                        f"match: the exact reversal of the {len(words)} words" in shown
                        or f"Reference: {' '.join(words[::-1])}" in shown
                    ), repr(text)
                    assert screen.query_one(AttentionGrid).display, repr(text)
            assert app.screen is screen

    run(body())
    assert app._exception is None and app.return_code in (None, 0)


def test_a_new_run_after_opening_a_model_leaves_it_as_it_was(tmp_path, trained_checkpoint, monkeypatch, canned):
    monkeypatch.chdir(tmp_path)  # the new run's folders: checkpoints/NAME, runs/NAME, here
    ckpt = tmp_path / "model.pt"
    shutil.copy(trained_checkpoint, ckpt)
    before = ckpt.read_bytes()
    app = make_app(tmp_path, checkpoint=ckpt, epochs=1)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+t")
            assert isinstance(app.screen, TrainScreen)
            # the opened model's own history is on the table
            assert app.screen.query_one(EpochTable).row_count == 3
            await pilot.press("n")  # no question: nothing is replaced
            await until(pilot, lambda: app.paths is not None and app.results is not None, "the new run's results")

    run(body())
    assert ckpt.read_bytes() == before
    name = app.paths.name
    (call,) = canned.calls  # the run went to folders of its own
    assert call["checkpoint"] == app.checkpoint == Path("checkpoints") / name / "best.pt"
    assert call["out"] == Path("runs") / name and call["run"]["name"] == name
    assert (tmp_path / app.checkpoint).is_file()


def test_n_starts_each_run_in_folders_of_its_own(tmp_path, monkeypatch, canned):
    monkeypatch.chdir(tmp_path)
    args = RunOptions(checkpoint=None, out=None, threads=None, name="first")
    app = ReverseApp(Config(**{**TINY, "epochs": 1}), args)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.results is not None, "the first run's results")
            first = app.paths
            assert isinstance(app.screen, ResultsScreen)
            await pilot.press("t", "n")
            await until(pilot, lambda: app.results is not None and app.paths != first, "the second run")
            return first, app.paths

    first, second = run(body())
    assert first.name == "first" and second.name not in (None, "first")
    assert [(c["checkpoint"], c["out"], c["run"]["name"]) for c in canned.calls] == [
        (p.checkpoint, p.out, p.name) for p in (first, second)
    ]
    for paths in (first, second):
        assert (tmp_path / paths.checkpoint).is_file() and (tmp_path / paths.out).is_dir()
    assert os.readlink(tmp_path / "runs" / "latest") == second.name


# -- starting -----------------------------------------------------------------------------------
def test_bad_checkpoint_is_shown_and_the_app_lives_on(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    app = make_app(tmp_path, checkpoint=bad)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            assert isinstance(app.screen, TrainScreen)
            assert not app.training
            text, kind = app.status
            assert kind == "error" and "bad.pt: not a readable checkpoint" in text
            await pilot.press("question_mark")  # keys still answer
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape")

    run(body())
    assert bad.read_bytes() == b"not a checkpoint"
    assert "n trains a new run in folders of its own" in app.status[0]


def test_unwritable_folder_cannot_start(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(CannotStart, match="cannot write"):
        make_app(tmp_path, checkpoint=blocker / "best.pt")

    class Tty(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdin", Tty())
    monkeypatch.setattr(sys, "stdout", Tty())
    assert cli.main(["--checkpoint", str(blocker / "best.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("reverse-tui: ") and "cannot write" in err[0]


def test_resume_continues_the_run_in_the_app(tmp_path, trained_checkpoint, canned):
    ckpt = tmp_path / "ck" / "best.pt"
    last = ckpt.with_name("best.last.pt")
    ckpt.parent.mkdir()
    shutil.copy(trained_checkpoint, ckpt)
    shutil.copy(trained_checkpoint.with_name("tiny.last.pt"), last)  # 3 epochs trained
    payload = torch.load(last, weights_only=True)
    args = RunOptions(checkpoint=ckpt, out=tmp_path / "out", threads=None, resume=last, epochs=4)
    app = ReverseApp(Config(**TINY), args)
    assert app.run_cfg.epochs == 4  # the resumed run's own configuration, on show
    assert app.run_cfg.hidden_dim == payload["config"]["hidden_dim"]
    assert app.cfg == Config(**TINY)  # the command line's, for the runs after it (n)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: not app.training and len(app.epochs) == 4, "the resumed run")
            assert [e.epoch for e in app.epochs] == [1, 2, 3, 4]
            # the first three epochs are the first run's, as it measured them; the fourth is new
            assert [e.val_loss for e in app.epochs[:3]] == [h["val_loss"] for h in payload["history"]]
            # the table on the training screen (the results screen may be on show by now)
            assert app.get_screen("train").query_one(EpochTable).row_count == 4

    run(body())
    (call,) = canned.calls  # the job resumed the payload, in the run's own files, up to --epochs
    assert call["resume"]["epoch"] == 3 and call["epochs"] == 4
    assert (call["checkpoint"], call["out"]) == (ckpt, tmp_path / "out")


def test_compare_no_attention_in_the_app(tmp_path, monkeypatch, canned):
    said: list[str] = []
    real = ReverseApp.on_status_changed

    def on_status_changed(self, msg):
        said.append(msg.text)
        real(self, msg)

    monkeypatch.setattr(ReverseApp, "on_status_changed", on_status_changed)
    args = RunOptions(
        checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out", threads=None, compare_no_attention=True
    )
    app = ReverseApp(Config(**{**TINY, "epochs": 1}), args)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.results is not None, "results with the control")

    run(body())
    assert canned.calls[0]["compare_no_attention"] is True
    assert said == [  # the control's progress on the status line
        f"Training the no-attention control -> {tmp_path / 'ck' / 'best.no-attention.pt'}",
        "Training the no-attention control: epoch 1/1, val exact match 30.0%",
    ]


def test_an_opened_model_is_evaluated_on_its_own_test_set(tmp_path, trained_checkpoint):
    """The results screen of a model opened from disk: the engine's evaluate_run rebuilds the
    model's test set from its configuration, and every epoch of its run is on the report."""
    app = make_app(tmp_path, checkpoint=trained_checkpoint)

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("ctrl+r")
            assert isinstance(app.screen, ResultsScreen)
            await until(pilot, lambda: app.results is not None or app.results_error, "the evaluation")

    run(body())
    assert app.results_error is None and app.eval_phase is not None
    res = app.results
    assert len(res.evaluation.results) == TINY["test_size"] and res.checkpoint == trained_checkpoint
    assert res.best_epoch == load_model(trained_checkpoint).payload["best_epoch"]
    assert [e["epoch"] for e in res.report["epochs"]] == [1, 2, 3]
    assert (tmp_path / "out" / "report.json").is_file()


def test_the_workers_last_words_after_the_app_closed_are_dropped(tmp_path):
    # quitting pops every screen; a worker's TrainingDone handled after that would raise from
    # the bindings refresh it triggers (ScreenStackError) as the app exits
    from engine.job import TrainingEnded
    from tui.messages import TrainingDone

    app = ReverseApp(
        Config(**TINY), RunOptions(checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out"), autostart=False
    )

    async def body():
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            app.training = True
        assert not app.screen_stack  # closed
        await app._on_message(TrainingDone(app.run_id, TrainingEnded("stopped", 1, 1, [], 1.0)))

    run(body())
