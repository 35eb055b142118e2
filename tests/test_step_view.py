"""The step-through screen driven by Pilot: F3 after a probe opens it, the arrows (and l/h)
step forward and back, home/end jump, escape goes back; greedy and beam; every step fits at
80x24 and 100x32. The pictures are in tests/test_step_snapshots.py."""

from __future__ import annotations

import asyncio
import io

import pytest
import torch
from rich.console import Console

from engine.insight.stepper import step_through
from engine.train.checkpoint import load_model
from tests.test_app import make_app, probed, until
from tui.screens.probe import ProbeScreen
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
