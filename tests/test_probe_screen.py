"""The probe screen never blocks the app: reading a checkpoint and decoding (a probe, F3's
steps, a run opened from the runs screen) run in thread workers, and their answers come back
as messages. The slow part is the real one wrapped in a gate that blocks on a threading.Event
the test holds, so each test knows what is still running when it acts: no sleeps, no clock.

A gate called on the UI thread does not block (that would hang the test's own event loop);
it records the thread, and the test fails on that instead."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections import defaultdict
from pathlib import Path

import pytest

import tui.opening
import tui.screens.probe
from engine.insight.evaluate import probe
from engine.insight.stepper import step_through
from engine.train.checkpoint import load_model
from engine.train.config import Config
from engine.train.trainer import Trainer
from tests.conftest import TINY
from tests.test_app import SIZE, type_text, until
from tui.app import ReverseApp
from tui.common import RunOptions
from tui.screens.probe import ProbeScreen
from tui.screens.step import StepScreen
from tui.widgets.title_bar import TitleBar


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> Path:
    """An untrained model of the tiny configuration, saved as a run saves one: enough to read
    and to decode (its answers are wrong, and nothing here needs them right)."""
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    Trainer(Config(**TINY), path).save(path)
    return path


class Gate:
    """Wraps a slow function: every call records its thread and its key, then waits until the
    test opens the gate for that key (keys not held pass at once) and runs the real thing."""

    def __init__(self, real):
        self.real = real
        self.held: dict[str, threading.Event] = {}
        self.entered: defaultdict[str, threading.Event] = defaultdict(threading.Event)
        self.threads: list[threading.Thread] = []

    def hold(self, key: str) -> None:
        self.held[key] = threading.Event()

    def release(self, key: str) -> None:
        self.held[key].set()

    def release_all(self) -> None:
        for event in self.held.values():
            event.set()

    def on_ui_thread(self) -> bool:
        return any(t is threading.main_thread() for t in self.threads)

    def __call__(self, key: str, *args, **kwargs):
        self.threads.append(threading.current_thread())
        self.entered[key].set()
        if key in self.held and threading.current_thread() is not threading.main_thread():
            self.held[key].wait()
        return self.real(*args, **kwargs)


def gate_probe(monkeypatch) -> Gate:
    gate = Gate(probe)

    def gated(model, vocab, text, device, beam=1):
        return gate(text, model, vocab, text, device, beam)

    monkeypatch.setattr(tui.screens.probe, "probe", gated)
    return gate


def answers(monkeypatch, cls, handler: str) -> list[int]:
    """The request numbers of the answers cls's handler receives, stale ones too."""
    seen: list[int] = []
    real = getattr(cls, handler)

    def spy(self, msg):
        seen.append(msg.seq)
        real(self, msg)

    monkeypatch.setattr(cls, handler, spy)
    return seen


def app_for(tmp_path: Path, checkpoint: Path) -> ReverseApp:
    opts = RunOptions(checkpoint=checkpoint, out=tmp_path / "out", threads=None)
    return ReverseApp(Config(**TINY), opts, autostart=False)


def drive(app: ReverseApp, gate: Gate, body) -> None:
    async def main():
        async with app.run_test(size=SIZE) as pilot:
            try:
                await body(pilot)
            finally:  # a failed assertion must not leave a thread waiting: the app waits for it
                gate.release_all()

    asyncio.run(main())


def verdict(screen) -> str:
    return str(screen.query_one("#verdict").render())


@pytest.mark.parametrize("late", ["older after the newer", "older before the newer"])
def test_keys_typed_while_a_probe_decodes_land_in_order_and_the_newer_probe_wins(
    tmp_path, small_checkpoint, monkeypatch, late
):
    gate = gate_probe(monkeypatch)
    seen = answers(monkeypatch, ProbeScreen, "on_probed")
    gate.hold("the cat sat")
    if late == "older before the newer":
        gate.hold("a big dog")
    app = app_for(tmp_path, small_checkpoint)

    async def body(pilot):
        screen = app.screen
        sentence = screen.query_one("#sentence")
        await type_text(pilot, "the cat sat")
        await pilot.press("enter")
        await until(pilot, gate.entered["the cat sat"].is_set, "the first probe decoding")
        assert not gate.on_ui_thread()
        assert screen.busy and sentence.border_subtitle == "decoding…"
        # the decoding is blocked: keys typed now land in the input, in order
        await pilot.press("ctrl+u")
        assert sentence.value == ""
        for typed, key in enumerate(["a", "space", "b", "i", "g", "space", "d", "o", "g"], start=1):
            await pilot.press(key)
            assert sentence.value == "a big dog"[:typed]
        await pilot.press("f3")  # the sentence on screen is not the one decoding: F3 waits
        assert isinstance(app.screen, ProbeScreen)
        assert any("Still decoding" in n.message for n in app._notifications)
        await pilot.press("enter")  # the newer probe
        await until(pilot, gate.entered["a big dog"].is_set, "the second probe decoding")
        if late == "older after the newer":
            await until(pilot, lambda: 2 in seen, "the newer answer")
            assert not screen.busy and screen.result.source == ["a", "big", "dog"]
            gate.release("the cat sat")
            await until(pilot, lambda: 1 in seen, "the older answer, late")
        else:
            gate.release("the cat sat")
            await until(pilot, lambda: 1 in seen, "the older answer, first")
            await pilot.pause()
            assert screen.busy and screen.result is None  # dropped: the newer is still awaited
            assert "the cat sat" not in screen.history and "Output:" not in verdict(screen)
            gate.release("a big dog")
            await until(pilot, lambda: 2 in seen, "the newer answer")
        await pilot.pause()
        assert seen == ([2, 1] if late == "older after the newer" else [1, 2])
        assert not screen.busy and not sentence.border_subtitle
        assert screen.result.source == ["a", "big", "dog"]
        assert "Reference: dog big a" in verdict(screen) or "match: the exact reversal" in verdict(screen)
        assert screen.history == ["a big dog"]  # the older sentence was never shown
        assert not gate.on_ui_thread() and len(gate.threads) == 2

    drive(app, gate, body)


def test_the_checkpoint_is_read_off_the_ui_thread(tmp_path, small_checkpoint, monkeypatch):
    """The probe screen opened on a checkpoint not read yet: the title says it is being read,
    keys typed meanwhile land in the input, a probe asked for waits for it, and it is read
    once, in a thread."""
    checkpoint = tmp_path / "ck" / "best.pt"
    gate = Gate(load_model)
    monkeypatch.setattr(tui.opening, "load_model", lambda path, device="cpu": gate(str(path), path, device))
    gate.hold(str(checkpoint))
    app = app_for(tmp_path, checkpoint)  # nothing there yet: the app opens on the training screen

    async def body(pilot):
        checkpoint.parent.mkdir(exist_ok=True)  # the app checked it is writable
        shutil.copy(small_checkpoint, checkpoint)  # then a model appears
        app.action_show("probe")
        await until(pilot, gate.entered[str(checkpoint)].is_set, "the checkpoint being read")
        screen = app.screen
        assert isinstance(screen, ProbeScreen) and not gate.on_ui_thread()
        assert "reading the model" in str(screen.query_one(TitleBar).render())
        sentence = screen.query_one("#sentence")
        for typed, key in enumerate(["t", "h", "e", "space", "c", "a", "t"], start=1):
            await pilot.press(key)
            assert sentence.value == "the cat"[:typed]
        await pilot.press("enter")
        await until(pilot, lambda: screen.asked == 1, "the probe asked for")
        await pilot.pause()
        assert screen.busy and screen.result is None  # the probe waits for the model
        gate.release(str(checkpoint))
        await until(pilot, lambda: not screen.busy, "the probe's answer")
        assert screen.result.source == ["the", "cat"]
        assert f"probe {checkpoint}: epoch" in str(screen.query_one(TitleBar).render())
        assert len(gate.threads) == 1 and not gate.on_ui_thread()  # read once, in a thread

    drive(app, gate, body)


def test_a_run_opened_from_the_runs_screen_is_read_off_the_ui_thread(tmp_path, small_checkpoint, monkeypatch):
    """The runs screen's enter reads the checkpoint in a thread; a run asked for later wins
    over one still being read."""
    older, newer = tmp_path / "older" / "best.pt", tmp_path / "newer" / "best.pt"
    for path in (older, newer):
        path.parent.mkdir()
        shutil.copy(small_checkpoint, path)
    gate = Gate(load_model)
    monkeypatch.setattr(tui.opening, "load_model", lambda path, device="cpu": gate(str(path), path, device))
    seen = answers(monkeypatch, ReverseApp, "on_run_opened")
    gate.hold(str(older))
    app = app_for(tmp_path, tmp_path / "ck" / "best.pt")

    async def body(pilot):
        assert app.open_run(older, older.parent)  # returns at once, the file still being read
        await until(pilot, gate.entered[str(older)].is_set, "the older run being read")
        assert not isinstance(app.screen, ProbeScreen) and app.loaded is None
        assert app.open_run(newer, newer.parent)
        await until(pilot, lambda: isinstance(app.screen, ProbeScreen), "the newer run on the probe screen")
        assert app.checkpoint == newer and app.out == newer.parent
        gate.release(str(older))
        await until(pilot, lambda: 1 in seen, "the older run's answer, late")
        await pilot.pause()
        assert seen == [2, 1]
        assert app.checkpoint == newer and app.out == newer.parent and app.loaded.path == newer
        assert not gate.on_ui_thread() and len(gate.threads) == 2

    drive(app, gate, body)


def test_f3_steps_off_the_ui_thread_and_a_newer_probe_wins(tmp_path, small_checkpoint, monkeypatch):
    gate = Gate(step_through)
    monkeypatch.setattr(
        tui.screens.probe,
        "step_through",
        lambda model, vocab, text, device, beam=1: gate(text, model, vocab, text, device, beam),
    )
    seen = answers(monkeypatch, ProbeScreen, "on_stepped")
    gate.hold("the cat sat")
    app = app_for(tmp_path, small_checkpoint)

    async def body(pilot):
        screen = app.screen
        sentence = screen.query_one("#sentence")
        await type_text(pilot, "the cat sat")
        await pilot.press("enter")
        await until(pilot, lambda: screen.result is not None, "the probe's answer")
        await pilot.press("f3")
        await until(pilot, gate.entered["the cat sat"].is_set, "the steps being made")
        assert not gate.on_ui_thread() and screen.busy
        await pilot.press("ctrl+u", *"dog", "enter")  # typed and probed while the steps are made
        assert sentence.value == "dog"
        await until(pilot, lambda: screen.result.source == ["dog"], "the newer probe's answer")
        gate.release("the cat sat")
        await until(pilot, lambda: seen, "the steps' answer, late")
        await pilot.pause()
        assert seen == [2]  # asked second, after the probe; the newer probe was the third
        assert app.screen is screen  # the steps of a sentence no longer on screen do not open
        await pilot.press("f3")
        await until(pilot, lambda: isinstance(app.screen, StepScreen), "the steps of the sentence on screen")
        assert app.screen.stepping.source == ["dog"]
        assert not gate.on_ui_thread() and len(gate.threads) == 2

    drive(app, gate, body)
