"""Probe screen: type a sentence, see the model's output against the true reversal and the
attention grid; save the grid as a PNG, export it as CSV, JSON or .npy; bring back earlier
sentences from the history.

Reading the checkpoint, decoding a sentence (a long one with a beam takes a while) and saving
the PNG run in thread workers, never on the UI thread: keys typed meanwhile land in the input.
The workers post their answers (tui/messages.py); every probe or step asked for gets a number,
and an answer to any but the newest is dropped, so a slow older probe never overwrites a newer."""

from __future__ import annotations

import re
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, OptionList, Static
from textual.worker import get_current_worker

from engine.errors import CheckpointError
from engine.insight.evaluate import SentenceResult, probe, probe_notes
from engine.insight.export import write_attention
from engine.insight.plots import attention_heatmap
from engine.insight.stepper import step_through
from engine.train.checkpoint import Loaded

from ..common import free_numbered_path
from ..messages import Exported, HeatmapSaved, ModelRead, Probed, Stepped
from ..widgets.attention_grid import AttentionGrid, legend
from ..widgets.title_bar import TitleBar
from .prompt import Prompt
from .step import StepScreen

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1


def free_probe_path(folder: Path) -> Path:
    """probe-1.png, probe-2.png, ...: a saved heatmap never replaces the run's
    attention_heatmap.png or an earlier probe's."""
    return free_numbered_path(folder, "probe")


def free_export_path(folder: Path, suffix: str = ".csv") -> Path:
    """probe-1.csv, probe-2.csv, ...: the first name not taken (offered; the file is made on export)."""
    names = (folder / f"probe-{k}{suffix}" for k in range(1, 100_000))
    return next(path for path in names if not path.exists())


class SentenceInput(Input):
    # Input's own Enter binding is hidden; this one shows in the Footer. Keys typed before
    # the app has put the terminal in raw mode arrive through the tty's line discipline,
    # which turns Enter into a newline: ctrl+j. It submits too, so they are not lost.
    BINDINGS = [
        Binding("enter", "submit", "Probe", tooltip="probe the sentence typed"),
        Binding("ctrl+j", "submit", show=False),
    ]

    def validate_value(self, value: str) -> str:
        # a control character would reach the terminal raw (ESC [2J clears it); the tokenizer
        # reads one as a gap between words, so a space in its place probes the same words
        return _CONTROL.sub(" ", value)


class ProbeScreen(Screen):
    BINDINGS = [
        Binding(
            "ctrl+s",
            "save",
            "Save PNG",
            tooltip="save the attention heatmap of the sentence on screen "
            "as probe-N.png in the run's folder (a new file each time)",
        ),
        Binding(
            "ctrl+o",
            "export",
            "Export",
            tooltip="write the attention matrix of the sentence on screen as .csv, .json or .npy "
            "(asks where; a new file each time)",
        ),
        Binding(
            "f3",
            "step",
            "Step",
            tooltip="step through the decoding of the sentence on screen, one output word at a time",
        ),
        Binding("ctrl+t", "app.show('train')", "Train", tooltip="the training screen"),
        Binding("ctrl+r", "app.show('results')", "Results", tooltip="the results screen"),
        Binding("escape", "focus_input", "Input", show=False, tooltip="back to the sentence input"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.result: SentenceResult | None = None  # the sentence on screen
        self.history: list[str] = []
        self.saved_path = None
        self.asked = 0  # the newest probe or step asked for: the only one whose answer shows
        self.busy = False  # it is being decoded
        self.described = 0  # the newest reading of the model for the title bar

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield SentenceInput(placeholder="type a sentence and press Enter, e.g. the cat sat", id="sentence")
        with Horizontal(id="probe-body"):
            with Vertical(id="probe-main"):
                yield Static(id="verdict")
                yield Static(id="legend")
                yield AttentionGrid(id="grid")
                yield Static(id="saved")
            with Vertical(id="history-box"):
                yield Label("History", id="history-title")
                yield OptionList(id="history")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#legend", Static).display = False
        self.query_one("#saved", Static).display = False
        self.query_one(AttentionGrid).display = False
        self.describe_model()
        self.query_one("#verdict", Static).update(
            "Type a sentence and press Enter to see its reversal and where the model looks at "
            "each step. Words it never saw reach it as <unk> and are copied through its attention."
        )
        self.action_focus_input()

    def on_screen_resume(self) -> None:
        self.describe_model()

    # -- the model: read in a thread when it is not loaded yet or changed on disk -------------
    def describe_model(self) -> None:
        fresh, loaded = self.app.cached_probe_model()
        if fresh:
            self.show_model(loaded)
            return
        self.described += 1
        self.query_one(TitleBar).show(f"probe {self.app.checkpoint}: reading the model…")
        self.read_model(self.described)

    @work(thread=True, exclusive=True, group="model", exit_on_error=False)
    def read_model(self, seq: int) -> None:
        try:
            self.post_message(ModelRead(seq, self.app.probe_model()))
        except CheckpointError as e:
            self.post_message(ModelRead(seq, None, str(e)))
        except Exception as e:  # e.g. CUDA out of memory: a message, never a traceback
            self.post_message(ModelRead(seq, None, f"{type(e).__name__}: {e}"))

    def on_model_read(self, msg: ModelRead) -> None:
        if msg.seq != self.described:  # read again since, or a probe's answer told it
            return
        if msg.error is not None:
            self.show_unreadable(msg.error)
        else:
            self.show_model(msg.loaded)

    def show_model(self, loaded: Loaded | None) -> None:
        app = self.app
        if loaded is None:
            self.query_one(TitleBar).show("probe: no model yet")
        else:
            p = loaded.payload
            so_far = " (best so far)" if app.training else ""
            self.query_one(TitleBar).show(f"probe {app.checkpoint}: epoch {p.get('best_epoch')}{so_far}")

    def show_unreadable(self, error: str) -> None:
        self.query_one(TitleBar).show(f"probe: {self.app.checkpoint} cannot be read")
        self.notify(error, title="Checkpoint", severity="error")

    # -- probing: decoded in a thread, the newest request's answer shown ---------------------
    def action_focus_input(self) -> None:
        self.query_one(SentenceInput).focus()

    @on(Input.Submitted, "#sentence")
    def submitted(self, event: Input.Submitted) -> None:
        self.run_probe(event.value)

    @on(OptionList.OptionSelected, "#history")
    def history_selected(self, event: OptionList.OptionSelected) -> None:
        text = str(event.option.prompt)
        self.query_one(SentenceInput).value = text
        self.run_probe(text)

    def run_probe(self, text: str) -> None:
        seq = self.ask()
        self.described += 1  # the answer names the model it was decoded by
        self.decode(seq, text)

    def ask(self) -> int:
        """A new request: the one whose answer shows. Until it comes, the input's border says
        it is decoding."""
        self.asked += 1
        self.set_busy(True)
        return self.asked

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.query_one(SentenceInput).border_subtitle = "decoding…" if busy else None

    @work(thread=True, exclusive=True, group="decode", exit_on_error=False)
    def decode(self, seq: int, text: str) -> None:
        app, loaded = self.app, None
        try:
            loaded = app.probe_model()
            if get_current_worker().is_cancelled:  # a newer probe asked for: no need to decode
                return
            if loaded is None:
                error = "There is no trained model yet: the first finished epoch saves one (ctrl+t shows the training)."
                self.post_message(Probed(seq, None, error=error))
                return
            r = probe(loaded.model, loaded.vocab, text, app.device, beam=app.beam_width(loaded))
        except CheckpointError as e:
            self.post_message(Probed(seq, None, error=str(e), unreadable=True))
            return
        except ValueError as e:  # the engine's rules for typed input: a sentence for the user
            self.post_message(Probed(seq, loaded, error=f"Cannot probe that: {e}."))
            return
        except Exception as e:  # e.g. CUDA out of memory: a message, never a traceback
            error = f"The probe failed: {type(e).__name__}: {e}"
            self.post_message(Probed(seq, loaded, error=error, unreadable=loaded is None))
            return
        cfg = loaded.config
        self.post_message(Probed(seq, loaded, r, probe_notes(r, loaded.vocab, cfg.min_len, cfg.max_len)))

    def on_probed(self, msg: Probed) -> None:
        if msg.seq != self.asked:  # a newer probe or step was asked for since
            return
        self.set_busy(False)
        if msg.unreadable:
            self.query_one(TitleBar).show(f"probe: {self.app.checkpoint} cannot be read")
        else:
            self.show_model(msg.loaded)
        if msg.error is not None:
            self.show_error(msg.error)
            return
        self.show_result(msg.result, msg.notes)
        self.remember(" ".join(msg.result.source))

    def show_result(self, r: SentenceResult, notes: list[str] = ()) -> None:
        self.result = r
        text = Text()
        text.append("Output:    ", style="bold")
        text.append(" ".join(r.output) or "(nothing)")
        if r.match:  # the reference would repeat the output: a long sentence needs the rows for its grid
            text.append(f"\nmatch: the exact reversal of the {len(r.source)} words", style="bold green")
        else:
            text.append("\nReference: ", style="bold")
            text.append(" ".join(r.reference))
            text.append("\nno match", style="bold red")
        for note in notes:  # unknown words, lengths never trained on
            text.append(f"\nnote: {note}", style="yellow")
        verdict = self.query_one("#verdict", Static)
        verdict.update(text)
        verdict.remove_class("-error")
        grid = self.query_one(AttentionGrid)
        grid.show(r.attention, r.source_tokens, r.output_tokens, r.copy)
        grid.display = True
        self.query_one("#legend", Static).update(legend())
        self.query_one("#legend", Static).display = True
        self.query_one("#saved", Static).display = False

    def show_error(self, message: str) -> None:
        verdict = self.query_one("#verdict", Static)
        verdict.update(Text(message))  # Text, not markup: an error's text may hold "["
        verdict.add_class("-error")
        self.result = None
        self.query_one(AttentionGrid).display = False
        self.query_one("#legend", Static).display = False
        self.query_one("#saved", Static).display = False

    def remember(self, sentence: str) -> None:
        """Newest first, each sentence once."""
        if sentence in self.history:
            self.history.remove(sentence)
        self.history.insert(0, sentence)
        options = self.query_one("#history", OptionList)
        options.clear_options()
        options.add_options(self.history)
        options.highlighted = 0

    def action_save(self) -> None:
        if self.busy:
            self.notify("Still decoding; ctrl+s saves the heatmap once it shows.", severity="warning")
            return
        if self.result is None:
            self.notify("Probe a sentence first; ctrl+s saves its attention heatmap.", severity="warning")
            return
        self.save_heatmap(self.result, self.app.out)

    def action_export(self) -> None:
        if self.busy:
            self.notify("Still decoding; ctrl+o exports the matrix once it shows.", severity="warning")
            return
        if self.result is None:
            self.notify("Probe a sentence first; ctrl+o exports its attention matrix.", severity="warning")
            return
        result = self.result

        def chosen(path: str | None) -> None:
            if path:
                self.export_matrix(result, Path(path).expanduser())

        question = "Write the attention matrix to (.csv, .json or .npy, by the extension):"
        self.app.push_screen(Prompt(question, str(free_export_path(self.app.out))), chosen)

    @work(thread=True, exclusive=True, group="save", exit_on_error=False)
    def export_matrix(self, r: SentenceResult, path: Path) -> None:
        try:
            if path.exists():  # nothing a user made is overwritten
                raise ValueError(f"{path} exists; give another name")
            path.parent.mkdir(parents=True, exist_ok=True)
            written = write_attention(path, r.attention, r.source_tokens, r.output_tokens)
        except ValueError as e:
            self.post_message(Exported(None, str(e)))
        except Exception as e:
            self.post_message(Exported(None, f"{type(e).__name__}: {e}"))
        else:
            self.post_message(Exported(written))

    def on_exported(self, msg: Exported) -> None:
        if msg.error:
            self.notify(f"Could not export: {msg.error}", severity="error")
            return
        saved = self.query_one("#saved", Static)
        saved.update(Text(f"exported {msg.path}"))
        saved.display = True
        self.notify(f"Exported {msg.path}", title="Attention matrix")

    def action_step(self) -> None:
        """The decoding of the sentence on screen, step by step: the reference decoder's
        steps, made in a thread as the probe is."""
        if self.busy:
            self.notify("Still decoding; F3 steps through the sentence once it shows.", severity="warning")
            return
        if self.result is None:
            self.notify("Probe a sentence first; F3 steps through its decoding.", severity="warning")
            return
        self.step(self.ask(), " ".join(self.result.source))

    @work(thread=True, exclusive=True, group="decode", exit_on_error=False)
    def step(self, seq: int, text: str) -> None:
        app = self.app
        try:
            loaded = app.probe_model()
            if loaded is None:  # gone from the disk since the probe
                self.post_message(Stepped(seq, None))
                return
            beam = app.beam_width(loaded)
            stepping = step_through(loaded.model, loaded.vocab, text, app.device, beam)
        except (CheckpointError, ValueError) as e:
            self.post_message(Stepped(seq, None, error=str(e)))
            return
        except Exception as e:  # e.g. CUDA out of memory: a message, never a traceback
            self.post_message(Stepped(seq, None, error=f"{type(e).__name__}: {e}"))
            return
        mode = "greedy" if beam == 1 else f"beam {beam}"
        self.post_message(Stepped(seq, stepping, f"step through ({mode}): {text}"))

    def on_stepped(self, msg: Stepped) -> None:
        if msg.seq != self.asked:  # a probe asked for since: its sentence is the one on screen
            return
        self.set_busy(False)
        if msg.error is not None:
            self.notify(msg.error, title="Step", severity="error")
        elif msg.stepping is not None and self.app.screen is self:  # not over another screen
            self.app.push_screen(StepScreen(msg.stepping, msg.title))

    @work(thread=True, exclusive=True, group="save", exit_on_error=False)
    def save_heatmap(self, r: SentenceResult, folder) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = free_probe_path(folder)
            saved = attention_heatmap(r.attention, r.source_tokens, r.output_tokens, path)
        except Exception as e:
            self.post_message(HeatmapSaved(None, f"{type(e).__name__}: {e}"))
        else:
            self.post_message(HeatmapSaved(saved))

    def on_heatmap_saved(self, msg: HeatmapSaved) -> None:
        if msg.error:
            self.notify(f"Could not save the heatmap: {msg.error}", severity="error")
            return
        self.saved_path = msg.path
        saved = self.query_one("#saved", Static)
        saved.update(Text(f"saved {msg.path}"))  # a path may hold "[": not markup
        saved.display = True
        self.notify(f"Saved {msg.path}", title="Heatmap")
