"""Step-through screen: a probed sentence's decoding one output word at a time, forward and
back (engine/insight/stepper.py records it; widgets/step_view.py draws a step), and changed:
a word cursor over the input, knock a word out from this step on, pin this step on a word,
force this step's word, a temperature on the scores; the decoding goes on from each change
and the original stays beside it. Changes stack, undo one at a time, and clear (a clear is
undone like the rest). Greedy decoding only: with a beam the keys say so.

A changed decoding is made in a thread worker (a long sentence takes a moment), one at a
time: a change asked for while one is decoding waits its turn with a message, so that the
list of changes is exactly what was decoded."""

from __future__ import annotations

from dataclasses import dataclass

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer

from engine.errors import CheckpointError
from engine.insight.interventions import Change, EditHistory, Edits, Force, Knockout, Pin
from engine.insight.stepper import Stepping, step_through

from ..widgets.step_view import StepView
from ..widgets.title_bar import TitleBar
from .prompt import Prompt

# the temperatures the - and + keys step through (1: the model's own scores)
TEMPERATURES = [0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0]


def next_temperature(t: float, up: bool) -> float:
    """The next temperature on the ladder above (up) or below t."""
    if up:
        return next((x for x in TEMPERATURES if x > t + 1e-9), TEMPERATURES[-1])
    return next((x for x in reversed(TEMPERATURES) if x < t - 1e-9), TEMPERATURES[0])


@dataclass
class Redecoded(Message):
    """A changed decoding made in a thread: the decoding (None: the original), or why not."""

    seq: int
    edits: Edits
    undo: bool  # the history's step back (else a new state of the edits)
    stepping: Stepping | None = None
    error: str | None = None


class StepScreen(Screen):
    BINDINGS = [
        Binding("right,l", "move(1)", "Next", key_display="→", tooltip="the next decoder step"),
        Binding("left,h", "move(-1)", "Back", key_display="←", tooltip="the previous decoder step"),
        Binding("home", "jump(0)", "First", show=False, tooltip="the first step"),
        Binding("end", "jump(-1)", "Last", show=False, tooltip="the last step: the decoding's answer"),
        Binding(
            "left_square_bracket",
            "word(-1)",
            "Word",
            key_display="[ ]",
            tooltip="move the word cursor left / right over the input (it follows each step's peak until moved)",
        ),
        Binding("right_square_bracket", "word(1)", "", show=False, tooltip="the word cursor: one input word right"),
        Binding("k", "knockout", "Knock out", tooltip="knock the cursor's word out (weight 0) from this step on"),
        Binding("p", "pin", "Pin", tooltip="pin this step's attention on the cursor's word (this step only)"),
        Binding(
            "1", "force_top(0)", "Force", key_display="1-5", tooltip="force this step's word: the 1st-5th likeliest"
        ),
        *[Binding(str(k + 1), f"force_top({k})", "", show=False) for k in range(1, 5)],
        Binding("f", "force_typed", "Force word", tooltip="force this step's word: type it"),
        Binding("u", "undo", "Undo", tooltip="undo the last change (a clear too)"),
        Binding("c", "clear", "Clear", tooltip="clear every change: back to the model's own decoding"),
        Binding("s", "computation", "Scores", tooltip="show the step's raw scores, weights and context shares"),
        Binding("minus", "temperature(0)", "T", key_display="- +", tooltip="lower / raise the attention's temperature"),
        Binding("plus,equals_sign", "temperature(1)", "", show=False),
        Binding("escape", "app.pop_screen", "Probe", tooltip="back to the probe screen"),
    ]

    def __init__(self, stepping: Stepping, title: str) -> None:
        super().__init__()
        self.stepping = stepping
        self.title_text = title
        self.history = EditHistory()
        self.asked = 0  # the newest changed decoding asked for: the only one whose answer shows
        self.busy = False

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield StepView(self.stepping)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TitleBar).show(self.title_text)

    @property
    def view(self) -> StepView:
        return self.query_one(StepView)

    def action_move(self, delta: int) -> None:
        self.view.index += delta

    def action_jump(self, index: int) -> None:
        self.view.index = index if index >= 0 else len(self.view.stepping.steps) - 1

    def action_word(self, delta: int) -> None:
        self.view.cursor_moved = True
        self.view.cursor += delta

    def action_computation(self) -> None:
        if self.stepping.beam > 1:
            self.notify("The scores are recorded for greedy decoding only.", severity="warning")
            return
        self.view.computation = not self.view.computation

    # -- changes: each decoded in a thread, then kept -------------------------------------------
    def can_change(self) -> bool:
        if self.stepping.beam > 1:
            self.notify(
                "Interventions change greedy decoding only: open the probe without --beam to use them.",
                severity="warning",
            )
            return False
        if self.busy:
            self.notify("Still decoding the last change.", severity="warning")
            return False
        return True

    def change(self, change: Change) -> None:
        if not self.can_change():
            return
        try:
            edits = self.history.edits.plus(change)
        except ValueError as e:  # the rest (a word it cannot emit, a step never reached): the decoding says
            self.notify(str(e), title="Change", severity="warning")
            return
        self.redecode_to(edits)

    def action_knockout(self) -> None:
        self.change(Knockout(self.view.cursor, self.view.index))

    def action_pin(self) -> None:
        self.change(Pin(self.view.index, self.view.cursor))

    def action_force_top(self, k: int) -> None:
        top = self.view.step.top
        if k < len(top):
            self.change(Force(self.view.index, top[k][0]))

    def action_force_typed(self) -> None:
        if not self.can_change():
            return
        index = self.view.index

        def typed(word: str | None) -> None:
            if word:
                self.change(Force(index, word))

        top = ", ".join(w for w, _ in self.view.step.top)
        question = f"Force step {index + 1} to the word (the likeliest: {top}):"
        self.app.push_screen(Prompt(question, placeholder="a word the model knows, <eos>, <unk>"), typed)

    def action_temperature(self, up: int) -> None:
        if not self.can_change():
            return
        t = next_temperature(self.history.edits.temperature, bool(up))
        self.redecode_to(self.history.edits.with_temperature(t))

    def action_undo(self) -> None:
        if not self.can_change():
            return
        if self.history.previous is None:
            self.notify("Nothing to undo.")
            return
        self.redecode_to(self.history.previous, undo=True)

    def action_clear(self) -> None:
        if not self.can_change():
            return
        if not self.history.edits:
            self.notify("No changes to clear.")
            return
        self.history.clear()
        self.view.show(self.stepping)

    def redecode_to(self, edits: Edits, undo: bool = False) -> None:
        """Decode with `edits`; once decoded, they are the history's next state (undo: its
        step back)."""
        if not edits:  # the model's own decoding: the one on hand
            self.shown(edits, undo, self.stepping)
            return
        self.asked += 1
        self.busy = True
        self.redecode(self.asked, edits, undo)

    def shown(self, edits: Edits, undo: bool, stepping: Stepping) -> None:
        if undo:
            self.history.undo()
        else:
            self.history.push(edits)
        self.view.show(stepping)

    @work(thread=True, exclusive=True, group="intervene", exit_on_error=False)
    def redecode(self, seq: int, edits: Edits, undo: bool) -> None:
        app = self.app
        try:
            loaded = app.probe_model()
            if loaded is None:
                raise ValueError("the model is gone from the disk")
            text = " ".join(self.stepping.source)
            changed = step_through(loaded.model, loaded.vocab, text, app.device, edits=edits, against=self.stepping)
        except (CheckpointError, ValueError) as e:
            self.post_message(Redecoded(seq, edits, undo, error=str(e)))
            return
        except Exception as e:  # e.g. CUDA out of memory: a message, never a traceback
            self.post_message(Redecoded(seq, edits, undo, error=f"{type(e).__name__}: {e}"))
            return
        self.post_message(Redecoded(seq, edits, undo, changed))

    def on_redecoded(self, msg: Redecoded) -> None:
        if msg.seq != self.asked:
            return
        self.busy = False
        if msg.error is not None:  # nothing changes: the history is what is on screen
            self.notify(msg.error, title="Change", severity="warning")
            return
        self.shown(msg.edits, msg.undo, msg.stepping)
