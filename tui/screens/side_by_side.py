"""Side by side: the runs selected on the runs screen (a seed group: its first seed), a column
each, decoding the same typed sentence: each run's output, whether it is the exact reversal,
and its attention as a numbered grid, or as a map where the grid does not fit the column.
Every column has the same input tokens in the same order, so the patterns compare at a
glance; a column's title names the run and its configuration values that differ from the
others' (engine/insight/side_by_side.py). The models are read and the sentence decoded in
thread workers; the newest sentence asked for is the one shown."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from engine.errors import CheckpointError
from engine.insight.evaluate import SentenceResult
from engine.insight.side_by_side import Decoded, decode_each
from engine.runs.index import RunSummary
from engine.train.checkpoint import Loaded, load_model

from ..widgets.attention_grid import grid_text, grid_text_size
from ..widgets.attention_map import render_map
from ..widgets.title_bar import TitleBar
from .probe import SentenceInput


def attention_text(r: SentenceResult, width: int, height: int) -> Text:
    """The numbered grid where it fits width x height, else the map (render_map)."""
    w, h = grid_text_size(r.source_tokens, r.output_tokens)
    if w <= width and h <= height:
        return grid_text(r.attention, r.source_tokens, r.output_tokens)
    return render_map(r.attention, r.source_tokens, r.output_tokens, max(4, width), max(2, height))


def model_of(run: RunSummary) -> tuple[str, Path | None]:
    """The name a column shows and the model it decodes with: a group's first seed's."""
    if run.is_group and run.members:
        return run.members[0].name, run.checkpoint
    return run.name, run.checkpoint


class SideBySideScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back", tooltip="side by side: back to the runs"),
    ]

    def __init__(self, runs: list[RunSummary]) -> None:
        super().__init__()
        self.runs = runs
        self.names = [model_of(r)[0] for r in runs]
        self.models: list[Loaded | None] = [None] * len(runs)
        self.errors: list[str | None] = [None] * len(runs)
        self.decoded: list[Decoded | None] = [None] * len(runs)
        self.asked = 0  # the newest sentence asked for: the only one whose answer shows
        self.answered = 0  # the newest sentence whose answer (or error) is on screen
        self.ready = False  # every model has been read (or failed to be)

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield SentenceInput(placeholder="type a sentence and press Enter: each run decodes it", id="sentence")
        yield Static(id="side-note")
        with Horizontal(id="side-columns"):
            for k in range(len(self.runs)):
                with Vertical(classes="side-column"):
                    yield Static(id=f"side-head-{k}", classes="side-head")
                    yield Static(id=f"side-grid-{k}", classes="side-grid")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TitleBar).show(f"side by side: {len(self.runs)} runs, one sentence")
        self.query_one("#side-note", Static).update(Text("Reading the models…"))
        self.show_heads()
        self.query_one(SentenceInput).focus()
        self.read_models()

    # -- the models, read in a thread ---------------------------------------------------------
    @work(thread=True, exclusive=True, group="side-models", exit_on_error=False)
    def read_models(self) -> None:
        models: list[Loaded | None] = []
        errors: list[str | None] = []
        for run in self.runs:
            checkpoint = model_of(run)[1]
            try:
                if checkpoint is None:
                    raise CheckpointError(f"{run.name} has no model ({run.problem or 'no best.pt'})")
                models.append(load_model(checkpoint, self.app.device))
                errors.append(None)
            except CheckpointError as e:
                models.append(None)
                errors.append(str(e))
            except Exception as e:  # e.g. CUDA out of memory: a line, never a traceback
                models.append(None)
                errors.append(f"{type(e).__name__}: {e}")
        self.app.call_from_thread(self.models_read, models, errors)

    def models_read(self, models: list[Loaded | None], errors: list[str | None]) -> None:
        self.models, self.errors, self.ready = models, errors, True
        readable = sum(m is not None for m in models)
        self.query_one("#side-note", Static).update(
            Text(f"{readable} of {len(models)} models read. Type a sentence: every run decodes it.")
        )
        self.show_heads()
        value = self.query_one(SentenceInput).value
        if value.strip():  # typed while the models were read
            self.run_sentence(value)

    # -- a sentence, decoded in a thread -------------------------------------------------------
    @on(Input.Submitted, "#sentence")
    def submitted(self, event: Input.Submitted) -> None:
        if not self.ready:
            self.query_one("#side-note", Static).update(Text("Still reading the models; the sentence follows."))
            return
        self.run_sentence(event.value)

    def run_sentence(self, text: str) -> None:
        self.asked += 1
        self.query_one(SentenceInput).border_subtitle = "decoding…"
        self.decode(self.asked, text)

    @work(thread=True, exclusive=True, group="side-decode", exit_on_error=False)
    def decode(self, seq: int, text: str) -> None:
        named = [(name, m) for name, m in zip(self.names, self.models) if m is not None]
        try:
            decoded = decode_each(named, text, self.app.device) if named else []
        except ValueError as e:  # the probe's rules for typed input
            self.app.call_from_thread(self.show_error, seq, f"Cannot decode that: {e}.")
            return
        except Exception as e:  # e.g. CUDA out of memory
            self.app.call_from_thread(self.show_error, seq, f"The decoding failed: {type(e).__name__}: {e}")
            return
        self.app.call_from_thread(self.show_decoded, seq, decoded)

    def show_error(self, seq: int, message: str) -> None:
        if seq != self.asked:
            return
        self.answered = seq
        self.query_one(SentenceInput).border_subtitle = None
        self.query_one("#side-note", Static).update(Text(message, style="red"))

    def show_decoded(self, seq: int, decoded: list[Decoded]) -> None:
        if seq != self.asked:  # a newer sentence asked for since
            return
        self.answered = seq
        self.query_one(SentenceInput).border_subtitle = None
        answers = iter(decoded)
        self.decoded = [next(answers) if m is not None else None for m in self.models]
        first = decoded[0].result if decoded else None
        note = Text()
        if first is not None:
            right = sum(d.result.match for d in decoded)
            note.append(f"{len(first.source)} words · {right} of {len(decoded)} runs reverse it exactly · ")
            note.append("reversal: ", style="bold")
            note.append(" ".join(first.reference))
        self.query_one("#side-note", Static).update(note)
        self.show_heads()
        self.call_after_refresh(self.draw_grids)  # the heads' heights first: the grids get the rest

    # -- drawing ----------------------------------------------------------------------------------
    def show_heads(self) -> None:
        for k, name in enumerate(self.names):
            d, error = self.decoded[k], self.errors[k]
            head = Text(name, style="bold")
            if d is not None and d.differs_text():
                head.append("\n" + d.differs_text(), style="italic")
            if error is not None:
                head.append("\n" + error, style="red")
            elif d is not None:
                head.append("\n" + d.verdict(), style="bold green" if d.result.match else "bold red")
                head.append("\n" + (" ".join(d.result.output) or "(nothing)"))
            self.query_one(f"#side-head-{k}", Static).update(head)

    def draw_grids(self) -> None:
        for k, d in enumerate(self.decoded):
            grid = self.query_one(f"#side-grid-{k}", Static)
            if d is None:
                grid.update("")
                continue
            column = grid.parent
            head = self.query_one(f"#side-head-{k}", Static)
            width = max(4, column.content_size.width)
            height = max(2, column.content_size.height - head.outer_size.height - 1)
            grid.update(attention_text(d.result, width, height))

    def on_resize(self) -> None:
        if any(d is not None for d in self.decoded):
            self.call_after_refresh(self.draw_grids)
