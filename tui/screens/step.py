"""Step-through screen: a probed sentence's decoding one output word at a time, forward and
back (engine/insight/stepper.py records it; widgets/step_view.py draws a step)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer

from engine.insight.stepper import Stepping

from ..widgets.step_view import StepView
from ..widgets.title_bar import TitleBar


class StepScreen(Screen):
    BINDINGS = [
        Binding("right,l", "move(1)", "Next", key_display="→", tooltip="the next decoder step"),
        Binding("left,h", "move(-1)", "Back", key_display="←", tooltip="the previous decoder step"),
        Binding("home", "jump(0)", "First", tooltip="the first step"),
        Binding("end", "jump(-1)", "Last", tooltip="the last step: the decoding's answer"),
        Binding("escape", "app.pop_screen", "Probe", tooltip="back to the probe screen"),
    ]

    def __init__(self, stepping: Stepping, title: str) -> None:
        super().__init__()
        self.stepping = stepping
        self.title_text = title

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
        self.view.index = index if index >= 0 else len(self.stepping.steps) - 1
