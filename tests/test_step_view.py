"""The step-through screen driven by Pilot: F3 after a probe opens it, the arrows (and l/h)
step forward and back, home/end jump, escape goes back; greedy and beam; every step fits at
80x24 and 100x32; the interventions' keys change the decoding, undo and clear; s shows the
computation, - and + the temperature. The pictures are in tests/test_step_snapshots.py."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
import torch
from rich.console import Console

from engine.insight.interventions import Edits, Force, Knockout, Pin
from engine.insight.stepper import step_through
from engine.train.checkpoint import load_model
from tests.test_app import make_app, probed, until
from tui.screens.probe import ProbeScreen
from tui.screens.prompt import Prompt
from tui.screens.step import StepScreen
from tui.widgets.step_view import StepView

SIXTEEN = "yesterday my old friend from the village told me a long story about the zebra today"


def drawn(view: StepView) -> list[str]:
    """The lines the view draws at its size."""
    console = Console(width=view.size.width, file=io.StringIO(), record=True, color_system=None)
    console.print(view.render())
    return console.export_text().splitlines()


async def probe_then_step(pilot, text: str) -> StepScreen:
    await pilot.pause()
    pilot.app.screen.query_one("#sentence").value = text  # typing it: tests/test_app.py
    await probed(pilot, "enter")
    await pilot.press("f3")  # the steps are made in a thread too
    await until(pilot, lambda: isinstance(pilot.app.screen, StepScreen), "the step-through screen")
    return pilot.app.screen


def test_f3_opens_the_steps_and_the_keys_move_through_them(tmp_path, reversing_checkpoint):
    app = make_app(tmp_path, checkpoint=reversing_checkpoint)
    loaded = load_model(reversing_checkpoint)
    text = "the zebra ate my xylophone today"
    expected = step_through(loaded.model, loaded.vocab, text, torch.device("cpu"))
    last = len(expected.steps) - 1

    async def body():
        async with app.run_test(size=(100, 32)) as pilot:
            screen = await probe_then_step(pilot, text)
            view = screen.query_one(StepView)
            assert view.index == 0 and f"Step 1 of {last + 1}" in drawn(view)[0]
            for key, index in [("right", 1), ("l", 2), ("left", 1), ("h", 0), ("left", 0), ("end", last)]:
                await pilot.press(key)
                await pilot.pause()
                assert view.index == index, key
                lines = "\n".join(drawn(view))
                step = expected.steps[index]
                assert f"Step {index + 1} of {last + 1}" in lines
                assert all(word in lines for word, _ in step.top)  # the top five words
                if step.copied:
                    assert f"<unk> copies “{step.copied}”" in lines
            assert "the decoding ends here" in lines and " ".join(expected.output) in lines
            await pilot.press("right")  # past the last: stays
            assert view.index == last
            await pilot.press("home")
            assert view.index == 0
            await pilot.press("escape")
            await pilot.pause()
            assert isinstance(app.screen, ProbeScreen)

    asyncio.run(body())


def test_f3_before_a_probe_says_what_to_do(tmp_path, reversing_checkpoint):
    app = make_app(tmp_path, checkpoint=reversing_checkpoint)

    async def body():
        async with app.run_test(size=(100, 32)) as pilot:
            await pilot.pause()
            await pilot.press("f3")
            await pilot.pause()
            assert isinstance(app.screen, ProbeScreen)
            assert any("Probe a sentence first" in n.message for n in app._notifications)

    asyncio.run(body())


def test_the_probe_footer_names_the_step_key():
    steps = [b for b in ProbeScreen.BINDINGS if b.key == "f3"]
    assert len(steps) == 1 and steps[0].description == "Step"


# the beam's steps hold more lines than greedy's: it goes to both sizes, greedy to the smaller
@pytest.mark.parametrize(("beam", "size"), [(1, (80, 24)), (3, (80, 24)), (3, (100, 32))])
def test_every_step_of_sixteen_words_fits(tmp_path, reversing_checkpoint, size, beam):
    """Each step of a 16-word sentence, greedy and with a beam of 3, drawn within the view:
    no line wider than it, no more lines than its height; with a beam the fates are there."""
    app = make_app(tmp_path, checkpoint=reversing_checkpoint, beam=beam)

    async def body():
        async with app.run_test(size=size) as pilot:
            screen = await probe_then_step(pilot, SIXTEEN)
            view = screen.query_one(StepView)
            assert (f"beam {beam}" if beam > 1 else "greedy") in drawn(view)[0]
            seen = set()
            for index in range(len(view.stepping.steps)):
                view.index = index
                lines = drawn(view)
                assert len(lines) <= view.size.height, (index, lines)
                assert max(len(line.rstrip()) for line in lines) <= view.size.width
                if beam > 1:
                    seen |= {fate for fate in ("survives", "pruned", "finished") if fate in "\n".join(lines)}
            if beam > 1:
                assert seen == {"survives", "pruned", "finished"}
                assert "search ends: no live one can beat it" in "\n".join(lines)

    asyncio.run(body())


async def changed_by(pilot, screen: StepScreen, *keys: str) -> None:
    """Keys that change the decoding, then the wait until the changed one, made in a thread, shows."""
    asked = screen.asked
    await pilot.press(*keys)
    await until(pilot, lambda: screen.asked > asked and not screen.busy, "the changed decoding")
    await pilot.pause()


def test_knockout_pin_force_undo_and_clear_change_the_decoding(tmp_path, reversing_checkpoint):
    """At step 1 the cursor stands on the word the step looks at; k knocks it out and the
    changed decoding (the engine's, with the same edits) shows beside the original; the
    cursor follows each step's peak until [ ] move it, then stays where it was put; p pins,
    2 forces the second likeliest word, f a word typed; u undoes one at a time, c clears,
    and u brings the cleared changes back."""
    app = make_app(tmp_path, checkpoint=reversing_checkpoint)
    loaded = load_model(reversing_checkpoint)
    text = "the cat sat on the mat"
    original = step_through(loaded.model, loaded.vocab, text, torch.device("cpu"))

    async def body():
        async with app.run_test(size=(100, 32)) as pilot:
            screen = await probe_then_step(pilot, text)
            view = screen.query_one(StepView)
            assert view.cursor == 5 and not view.changed  # "mat": where step 1 looks
            await changed_by(pilot, screen, "k")
            knocked = Edits((Knockout(5, 0),))
            assert screen.history.edits == knocked and view.changed
            expected = step_through(loaded.model, loaded.vocab, text, torch.device("cpu"), edits=knocked)
            assert view.stepping.output == expected.output != original.output
            lines = "\n".join(drawn(view))
            assert "Changes (1, u undo, c clear): 1 knock out “mat” (input 6) from step 1" in lines
            assert "Original: mat the on sat cat the" in lines and "Changed:  " + " ".join(expected.output) in lines
            assert "✗" in lines and "“mat” p " in lines and " now" in lines
            await pilot.press("right")  # step 2: the cursor follows the word the step looks at
            peak = int(np.argmax(view.step.attention))
            assert view.index == 1 and view.cursor == peak and peak > 1
            await pilot.press("left_square_bracket", "left_square_bracket", "right", "left")  # moved by hand: it stays
            target = peak - 2
            assert view.index == 1 and view.cursor == target
            await changed_by(pilot, screen, "p")
            assert screen.history.edits.changes[-1] == Pin(1, target) and view.step.attention[target] == 1
            second = view.step.top[1][0]
            await changed_by(pilot, screen, "2")
            assert screen.history.edits.changes[-1] == Force(1, second) and view.step.forced
            await changed_by(pilot, screen, "u")
            assert screen.history.edits == Edits((Knockout(5, 0), Pin(1, target)))
            await pilot.press("c")
            await pilot.pause()
            assert not screen.history.edits and not view.changed and view.stepping is screen.stepping
            await changed_by(pilot, screen, "u")  # the clear undone: both changes back
            assert screen.history.edits == Edits((Knockout(5, 0), Pin(1, target))) and view.changed
            await pilot.press("f")  # a word typed
            await until(pilot, lambda: isinstance(app.screen, Prompt), "the word prompt")
            await pilot.press("d", "o", "g", "enter")
            await until(
                pilot, lambda: not screen.busy and screen.history.edits.changes[-1:] == (Force(1, "dog"),), "dog"
            )
            assert view.stepping.output[1] == "dog"

    asyncio.run(body())


def test_scores_temperature_and_a_beam(tmp_path, reversing_checkpoint):
    """s shows the step's raw scores, weights and context shares; - lowers the temperature
    (in the head and the changes); with a beam the changes are refused with a reason."""
    app = make_app(tmp_path, checkpoint=reversing_checkpoint)

    async def body():
        async with app.run_test(size=(80, 24)) as pilot:
            screen = await probe_then_step(pilot, "the cat sat on the mat")
            view = screen.query_one(StepView)
            await pilot.press("s")
            await pilot.pause()
            lines = drawn(view)
            assert any(line.startswith("e_tj") for line in lines) and any(line.startswith("share") for line in lines)
            assert any(line.startswith("context: ") and "“mat”" in line for line in lines)
            await changed_by(pilot, screen, "minus")
            assert screen.history.edits.temperature == 0.7
            lines = drawn(view)
            assert "T = 0.7" in lines[0] and "e_tj / 0.7" in "\n".join(lines)
            assert len(lines) <= view.size.height and max(len(x.rstrip()) for x in lines) <= view.size.width
            screen.stepping.beam = 3  # as a beam's decoding: no changes
            await pilot.press("k")
            await pilot.pause()
            assert any("greedy decoding only" in n.message for n in app._notifications)

    asyncio.run(body())


def test_the_step_keys_are_in_the_footer_and_help():
    described = {b.description for b in StepScreen.BINDINGS if b.show}
    assert {"Word", "Knock out", "Pin", "Force", "Force word", "Undo", "Clear", "Scores", "T"} <= described
    assert {b.key for b in ProbeScreen.BINDINGS if b.description == "Export"} == {"ctrl+o"}
