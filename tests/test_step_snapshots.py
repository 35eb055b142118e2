"""Snapshots of the step-through screen on a fixed, hand-made decoding (no model inside):
greedy and beam, at 80x24 and 100x32, a 16-word sentence. Regenerate after a deliberate
change with `pytest tests/test_step_snapshots.py --snapshot-update`, and read the SVGs."""

from __future__ import annotations

import pytest

from engine.insight.stepper import Hypothesis, Step, Stepping
from tests.conftest import sizes
from tests.test_snapshots import attention, make_app
from tui.screens.step import StepScreen

SIXTEEN = "yesterday my old friend from the village told me a long story about the zebra today".split()
UNKNOWN = {"zebra", "yesterday"}  # emitted as <unk>, copied from the input


def greedy_stepping() -> Stepping:
    n = len(SIXTEEN)
    weights = attention(n, n + 1)  # step t looks at word n-1-t, then <eos>
    out = SIXTEEN[::-1]
    steps = []
    for t in range(n + 1):
        word = out[t] if t < n else "<eos>"
        chosen = "<unk>" if word in UNKNOWN else word
        others = [w for w in ("the", "<unk>", "<eos>", "story", "cat", "mat") if w != chosen][:4]
        top = [(chosen, 0.91 - 0.01 * (t % 3))] + list(zip(others, (0.05, 0.02, 0.01, 0.005)))
        steps.append(Step(weights[t], top, chosen, word if chosen == "<unk>" else None, out[: min(t + 1, n)]))
    return Stepping(SIXTEEN, steps, out)


def H(words: list[str], score: float, fate: str = "", parent: int = -1) -> Hypothesis:
    """A hypothesis whose unknown words came as <unk> and were copied."""
    return Hypothesis(words, score, fate, parent, [w in UNKNOWN for w in words])


def beam_stepping() -> Stepping:
    """The greedy steps, each with a beam of 3's ranking: the right hypothesis and two
    others survive, a short one finishes, two are pruned."""
    s = greedy_stepping()
    best = None
    for t, step in enumerate(s.steps):
        sofar = step.output[:-1] if step.chosen != "<eos>" else step.output
        live = [H(sofar, -0.01 * t), H(sofar[:-1] + ["the"], -6.2), H(["my"], -8.5)]
        if step.chosen == "<eos>":
            candidates = [
                H(sofar + ["<eos>"], -0.01 * t - 0.002, "finished", 0),
                H(live[1].words + ["<eos>"], -6.3, "finished", 1),
                H(sofar + ["the"], -9.1, "survives", 0),
                H(sofar + ["cat"], -9.4, "survives", 0),
                H(live[1].words + ["cat"], -11.0, "survives", 1),
                H(["my", "the"], -12.5, "pruned", 2),
            ]
            best = H(sofar + ["<eos>"], (-0.01 * t - 0.002) / (t + 1), "finished")
        else:
            candidates = [
                H(step.output, -0.01 * t - 0.001, "survives", 0),
                H(live[1].words + [step.output[-1]], -6.25, "survives", 1),
                H(sofar + ["<eos>"], -7.0, "finished", 0),
                H(sofar + ["the"], -7.4, "survives", 0),
                H(["my", "old"], -9.0, "pruned", 2),
                H(["my", "<eos>"], -9.2, "finished", 2),
            ]
            if best is None or -7.0 / (t + 2) > best.score:
                best = H(sofar + ["<eos>"], -7.0 / (t + 2), "finished")
        step.live, step.candidates, step.best = live, candidates, best
        step.stopped = step.chosen == "<eos>"
    s.beam = 3
    return s


def step_screen(stepping: Stepping, index: int):
    async def run_before(pilot):
        app = pilot.app
        mode = "greedy" if stepping.beam == 1 else f"beam {stepping.beam}"
        app.push_screen(StepScreen(stepping, f"step through ({mode}): {' '.join(stepping.source)}"))
        await pilot.pause()
        for _ in range(index):
            await pilot.press("right")
        await pilot.pause()

    return run_before


@pytest.mark.parametrize("size", sizes((80, 24), (100, 32)))
def test_step_screen_greedy_an_unk_copied(snap_compare, tmp_path, monkeypatch, size):
    """Step 2: the model emits <unk> and copies "zebra" from the input."""
    assert snap_compare(
        make_app(tmp_path, monkeypatch), terminal_size=size, run_before=step_screen(greedy_stepping(), 1)
    )


@pytest.mark.parametrize("size", sizes((80, 24), (100, 32)))
def test_step_screen_beam(snap_compare, tmp_path, monkeypatch, size):
    """A middle step of a beam of 3: survivors, a finished hypothesis, pruned ones."""
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=step_screen(beam_stepping(), 6))


@pytest.mark.parametrize("size", sizes((80, 24), (100, 32)))
def test_step_screen_beam_last_step(snap_compare, tmp_path, monkeypatch, size):
    """The last step: <eos>, the best finished hypothesis, and the search ending."""
    stepping = beam_stepping()
    assert snap_compare(
        make_app(tmp_path, monkeypatch), terminal_size=size, run_before=step_screen(stepping, len(stepping.steps) - 1)
    )
