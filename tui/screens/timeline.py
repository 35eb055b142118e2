"""Timeline screen: the run's attention snapshots (engine/insight/watch.py), one at a time, to step
through with the arrows or play as a film, for each watch sentence. It reads the app's
`snapshots` and follows them while a run goes on; it only draws."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from ..widgets.attention_grid import legend
from ..widgets.title_bar import TitleBar
from ..widgets.watch_view import WatchView, when

FPS = 4  # frames a second when playing: a first epoch's ~8 snapshots in two seconds


class TimelineScreen(Screen):
    # priority: the grid (a DataTable) would take the arrows to scroll
    BINDINGS = [
        Binding(
            "left",
            "step(-1)",
            "Back",
            priority=True,
            show=False,
            key_display="←",
            tooltip="timeline: the snapshot before",
        ),
        Binding(
            "right",
            "step(1)",
            "Step",
            priority=True,
            key_display="←/→",
            tooltip="timeline: the snapshot after (left: the one before)",
        ),
        Binding("home", "jump(0)", "First", priority=True, show=False, tooltip="timeline: the first snapshot"),
        Binding("end", "jump(-1)", "Last", priority=True, show=False, tooltip="timeline: the last snapshot"),
        Binding(
            "space",
            "play",
            "Play/pause",
            priority=True,
            tooltip=f"timeline: play the snapshots ({FPS} a second, stops at the last), or pause",
        ),
        Binding(
            "down,tab",
            "sentence(1)",
            "Sentence",
            priority=True,
            key_display="↓/tab",
            tooltip="timeline: the next watch sentence (up/shift+tab: the one before)",
        ),
        Binding("up,shift+tab", "sentence(-1)", show=False, priority=True),
        Binding("escape,w", "app.pop_screen", "Close", tooltip="timeline: back to the training screen"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.index = 0  # the snapshot on show
        self.sentence = 0  # the watch sentence on show
        self.player: Timer | None = None

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static(id="timeline-where")
        yield Static(legend(), id="timeline-legend")
        yield WatchView("No attention snapshots in this run: nothing to step through.", id="timeline-view")
        yield Footer()

    @property
    def snapshots(self):
        return self.app.snapshots

    @property
    def playing(self) -> bool:
        return self.player is not None

    def on_mount(self) -> None:
        self.query_one(TitleBar).show("attention over training")
        self.index = max(0, len(self.snapshots) - 1)  # the newest: what the training screen showed
        self.watch(self.app, "snapshots", self._follow, init=False)
        self.draw()

    def _follow(self) -> None:
        """New snapshots of a run going on: stay with the newest when it was on show."""
        n = len(self.snapshots)
        if not self.playing and self.index >= n - 2:
            self.index = max(0, n - 1)
        self.index = min(self.index, max(0, n - 1))
        self.draw()

    def draw(self) -> None:
        snaps = self.snapshots
        view = self.query_one(WatchView)
        where = self.query_one("#timeline-where", Static)
        self.query_one("#timeline-legend").display = bool(snaps)
        if not snaps:
            where.update("")
            where.display = False
            view.show(None)
            return
        where.display = True
        snap = snaps[self.index]
        k = len(snap.sentences)
        self.sentence = min(self.sentence, max(0, k - 1))
        line = Text(f"{when(snap)} ({self.index + 1} of {len(snaps)})", style="bold")
        if self.playing:
            line.append("  playing", style="bold yellow")
        line.append("\n")
        line.append_text(strip(snaps, self.index, self.sentence, self.size.width - 2))
        keys = "←/→ step · home/end first/last · space play/pause"
        if k > 1:
            keys += " · ↑/↓ or tab: sentence"
        line.append(f"\n{keys}", style="dim")
        where.update(line)
        source = " ".join(snap.sentences[self.sentence].source)
        view.show(snap, self.sentence, f"sentence {self.sentence + 1} of {k}: {source}")

    def on_resize(self) -> None:
        self.draw()

    def action_step(self, delta: int) -> None:
        self._pause()
        self._go(self.index + delta)

    def action_jump(self, where: int) -> None:
        self._pause()
        self._go(where if where >= 0 else len(self.snapshots) - 1)

    def action_sentence(self, delta: int) -> None:
        if self.snapshots:
            k = len(self.snapshots[self.index].sentences)
            self.sentence = (self.sentence + delta) % max(1, k)
            self.draw()

    def action_play(self) -> None:
        if self.playing:
            self._pause()
        elif self.snapshots:
            if self.index >= len(self.snapshots) - 1:
                self.index = 0  # from the start again
            self.player = self.set_interval(1 / FPS, self.next_frame)
        self.draw()

    def next_frame(self) -> None:
        """One frame on while playing; on the last one, the film stops."""
        if self.index >= len(self.snapshots) - 1:
            self._pause()
        else:
            self.index += 1
            if self.index >= len(self.snapshots) - 1:
                self._pause()  # the last frame: stop on it
        self.draw()

    def _pause(self) -> None:
        if self.player is not None:
            self.player.stop()
            self.player = None

    def _go(self, index: int) -> None:
        n = len(self.snapshots)
        if n:
            self.index = max(0, min(n - 1, index))
        self.draw()


def strip(snaps, index: int, sentence: int, width: int) -> Text:
    """The timeline in one line: a mark per snapshot, green where the sentence came out
    reversed, the one on show as a block; epochs after the first apart by a space."""
    t = Text()
    for k, snap in enumerate(snaps):
        if k and snap.epoch != snaps[k - 1].epoch:
            t.append(" ")
        s = snap.sentences[min(sentence, len(snap.sentences) - 1)] if snap.sentences else None
        mark = "█" if k == index else "▪"
        t.append(mark, style="bold green" if s is not None and s.match else ("bold" if k == index else "dim"))
    if t.cell_len > width:  # a run too long for one line: no strip
        return Text("")
    return t
