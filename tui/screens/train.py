"""Training screen: the run's configuration in brief, progress of the epoch and of the run,
a row per finished epoch beside the newest one's validation exact match by length, the loss
chart and beside it the first watch sentence's attention at the newest snapshot (w: every
snapshot, on the timeline screen). It only draws: the app owns the worker and the run's
state, in reactive attributes that this screen watches."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Static

from engine.train.config import Config
from engine.train.events import BatchDone, EpochDone
from engine.train.resources import seconds_left

from .. import units
from ..widgets.epoch_table import EpochTable
from ..widgets.length_chart import LengthChart
from ..widgets.loss_chart import LossChart
from ..widgets.progress_line import ProgressLine
from ..widgets.title_bar import TitleBar
from ..widgets.watch_view import WatchView
from .timeline import TimelineScreen


def config_brief(cfg: Config, facts: str = "") -> str:
    """The configuration on two short lines (80 columns); facts: what the trainer built."""
    model = f"GRU {cfg.embed_dim}/{cfg.hidden_dim} x{cfg.layers}{' bi' if cfg.bidirectional else ''}"
    if cfg.dropout:
        model += f" dropout {cfg.dropout:g}"
    if getattr(cfg, "score", "additive") != "additive":
        model += f" {cfg.score} score"
    if getattr(cfg, "location_kernel", 0):
        model += f" loc {cfg.location_kernel}"
    if getattr(cfg, "coverage", False):
        model += " coverage"
    source = f"{cfg.corpus} " if getattr(cfg, "corpus", "") else ""
    train = getattr(cfg, "training_sentences", cfg.train_size) or "all"
    first = f"data {source}{train}/{cfg.val_size}/{cfg.test_size}, {cfg.min_len}-{cfg.max_len} words · {model}"
    second = (
        f"Adam lr {cfg.lr:g} {cfg.lr_schedule} · batch {cfg.batch_size} · forcing "
        f"{cfg.teacher_forcing:g} · clip {cfg.clip:g} · {cfg.epochs} epochs"
        + (f" · patience {cfg.patience}" if cfg.patience else "")
        + f" · seed {cfg.seed}"
    )
    return f"{first}{' · ' + facts if facts else ''}\n{second}"


def machine_brief(ev: EpochDone) -> str:
    """What the newest epoch cost the machine, for the title bar."""
    parts = [f"{units.rate(ev.tokens_per_s)} tok/s"] if ev.tokens_per_s else []
    if ev.rss_mib is not None:
        parts.append(f"mem {units.mebibytes(ev.rss_mib)}")
    if ev.gpu_mib is not None:
        # the peak is in the epoch table; utilisation only where NVML answers
        gpu = f"gpu {units.mebibytes(ev.gpu_mib)}"
        parts.append(gpu + (f" {units.percent(ev.gpu_util)} busy" if ev.gpu_util is not None else ""))
    return " · ".join(parts)


def _unless_gone(draw):
    """A watcher that does nothing once the screen's widgets are gone (the app exiting)."""

    def watcher() -> None:
        try:
            draw()
        except NoMatches:
            pass

    return watcher


class TrainScreen(Screen):
    BINDINGS = [
        Binding("s", "stop", "Stop", tooltip="stop training after this batch; the best model is kept"),
        Binding("n", "new_run", "New run", tooltip="start a new run with the command-line configuration"),
        Binding("r", "app.show('results')", "Results", tooltip="the results screen: test set, examples, analysis"),
        Binding("p", "app.show('probe')", "Probe", tooltip="the probe screen: type your own sentences"),
        Binding(
            "w",
            "timeline",
            "Timeline",
            tooltip="the attention timeline: every snapshot of the watch sentences, to step through and play",
        ),
    ]

    def compose(self) -> ComposeResult:
        yield TitleBar()
        yield Static(id="config")
        yield Static(id="run-status")
        yield ProgressLine("run", id="epoch-line")
        yield ProgressLine("epoch", id="batch-line")
        with Horizontal(id="epochs-row"):
            yield EpochTable(id="epochs")
            yield LengthChart(id="by-length")
        with Horizontal(id="train-lower"):
            yield LossChart(id="chart")
            yield WatchView("Attention: from batch 1 on.", compact=True, id="watch", classes="-one-line")
        yield Footer()

    def on_mount(self) -> None:
        for name, draw in (
            ("run_cfg", self._draw_config),
            ("run_facts", self._draw_config),
            ("epochs", self._draw_epochs),
            ("live_losses", self._draw_chart),
            ("progress", self._draw_progress),
            ("status", self._draw_status),
            ("training", self._epoch_bar),
            ("following", self._epoch_bar),
            ("snapshots", self._draw_watch),
        ):
            self.watch(self.app, name, _unless_gone(draw))

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "stop":
            return True if self.app.training else None  # None: shown, but greyed out
        return True

    def action_stop(self) -> None:
        self.app.stop_training()

    def action_new_run(self) -> None:
        self.app.request_new_run()

    def action_timeline(self) -> None:
        self.app.push_screen(TimelineScreen())

    def sync(self) -> None:
        """Redraw everything from the app's state."""
        self._draw_config()
        self._draw_epochs()
        self._draw_progress()
        self._draw_status()
        self._draw_watch()

    def _draw_config(self) -> None:
        self.query_one("#config", Static).update(config_brief(self.app.run_cfg, self.app.run_facts))
        self._epoch_bar()  # the run's length

    def on_resize(self) -> None:
        self.query_one(EpochTable).show(self.app.epochs)  # its columns follow the screen's width

    def _draw_epochs(self) -> None:
        app = self.app
        self.query_one(EpochTable).show(app.epochs)
        self.query_one(LengthChart).show(
            app.epochs[-1] if app.epochs else None, (app.run_cfg.min_len, app.run_cfg.max_len)
        )
        self._draw_chart()
        self._epoch_bar()

    def _draw_chart(self) -> None:
        self.query_one(LossChart).show(self.app.epochs, self.app.live_losses)

    def _draw_watch(self) -> None:
        snaps = self.app.snapshots
        self.query_one(WatchView).show(snaps[-1] if snaps else None)

    def _draw_progress(self) -> None:
        ev: BatchDone | None = self.app.progress
        line = self.query_one("#batch-line", ProgressLine)
        if ev is None:
            # no batch yet, or a run opened from its files: a bar still, empty or full
            line.update("epoch", total=1, progress=1 if self.app.epochs and not self.app.training else 0)
            return
        line.update(f"epoch {ev.epoch} batch {ev.batch}/{ev.batches}", total=ev.batches, progress=ev.batch)

    def _draw_status(self) -> None:
        text, kind = self.app.status
        status = self.query_one("#run-status", Static)
        status.update(text)
        status.set_class(kind == "error", "-error")
        status.set_class(kind == "done", "-done")

    def _epoch_bar(self) -> None:
        app = self.app
        done, total = len(app.epochs), app.run_cfg.epochs
        if self.app.progress is None:
            self._draw_progress()  # its still bar follows whether a run is on and has epochs
        going = app.training or app.following
        title = "watching a run" if app.following else "training" if app.training else "training (idle)"
        text = f"run {done}/{total} epochs"
        if going and app.epochs and done < total:
            # a steadier estimate than the bar's own: whole epochs, measured
            left = units.clock(seconds_left([e.seconds for e in app.epochs], total - done))
            text += f" ~{left} left"
            title += f" · {left} left"
        if going and app.epochs and (brief := machine_brief(app.epochs[-1])):
            title += f" · {brief}"
        self.query_one(TitleBar).show(title)
        self.query_one("#epoch-line", ProgressLine).update(text, total=total, progress=done)
