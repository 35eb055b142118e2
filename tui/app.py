"""The Textual app: runs engine.job.run_job (the very run `--no-ui` prints) in a process of its
own (engine/job_process.py), read by a thread worker, keeps the run's state in reactive
attributes that the screens watch, then lets the user probe the model and look at its attention.

The worker posts messages (tui/messages.py, made by tui/bridge.py) and never touches a widget;
the app turns them into state on its own thread, and drops those of a run that is no longer
on show (tui/bridge.py's of_the_run_on_show on each handler). Which screen it opens on is
tui/startup.py's; reading a model from disk is tui/opening.py's."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import torch
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.worker import Worker, WorkerState, get_current_worker

from engine.errors import CheckpointError, RunError
from engine.insight import plot_process
from engine.job import describe, evaluate_run, run_job
from engine.job_process import child_pays, prestart, run_job_in_process
from engine.runs.folders import BEST, CHECKPOINTS, RunPaths, new_run
from engine.runs.follow import follow, is_running
from engine.train.checkpoint import Loaded
from engine.train.config import Config
from engine.train.events import BatchDone, EpochDone, Snapshot
from engine.train.threads import default_threads, load_is_readable
from engine.train.trainer import resolve_device

from .bridge import TrainingNews, ended_by, follow_news, of_the_run_on_show
from .common import RunOptions, opened_run_folder, paths_for
from .messages import (
    BatchProgress,
    EpochFinished,
    EvaluationProgress,
    FollowEnded,
    FollowStarted,
    ResultsFailed,
    ResultsReady,
    RunOpened,
    SnapshotTaken,
    StatusChanged,
    TrainingDone,
    TrainingStarted,
)
from .opening import OpenedRun, checkpoint_key, read_model, read_run
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.probe import ProbeScreen
from .screens.results import ResultsScreen
from .screens.runs import RunsScreen
from .screens.train import TrainScreen
from .startup import CannotStart, FollowRun, NewRun, OpenModel, ResumeRun, decide_start

__all__ = ["CannotStart", "ReverseApp", "describe"]


# Training runs in a child process where that pays (engine/job_process.py's child_pays): there
# the app's own thread (messages, layout, painting) costs it nothing, where in a thread of this
# process it made the training loops 10-21% slower; a run that may take every core of a CPU
# (given no --threads it follows the load, engine/train/threads.py) is the other way round
# (bench/README.md). False: always a thread of this process, which the tests' stand-ins
# (tests/conftest.py) reach
TRAIN_IN_PROCESS = True


class ReverseApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "reverse-tui"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key, shown in the Footer
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (96, "-wide")]
    SCREENS = {"train": TrainScreen, "results": ResultsScreen, "probe": ProbeScreen, "runs": RunsScreen}
    BINDINGS = [
        # f1 opens help from anywhere; "?" only where no text field has focus: a field that
        # takes the key (Input, TextArea) drops it from the chain, so "?" typed is text
        Binding("f1", "help", "Help", priority=True, tooltip="this help, from anywhere"),
        Binding("question_mark", "help", "Help", priority=True, show=False, tooltip="this help, outside a text field"),
        Binding(
            "ctrl+q", "quit", "Quit", priority=True, tooltip="quit; a run in progress stops, its best model is kept"
        ),
        Binding("f2", "runs", "Runs", tooltip="every run so far, side by side: compare them, open one to probe"),
    ]

    # The run on show; the screens watch these. Lists are replaced, never changed in place
    # (a watcher fires on assignment), and every assignment fires (always_update).
    run_cfg: var[Config] = var(Config, always_update=True)
    run_facts: var[str] = var("", always_update=True)  # vocabulary, parameters, device
    epochs: var[list[EpochDone]] = var(list, always_update=True)  # finished epochs
    progress: var[BatchDone | None] = var(None, always_update=True)  # the last batch reported
    live_losses: var[list[tuple[float, float]]] = var(list, always_update=True)  # (x, loss), this epoch
    status: var[tuple[str, str]] = var(("", "info"), always_update=True)  # (text, info|done|error)
    snapshots: var[list[Snapshot]] = var(list, always_update=True)  # the attention as it formed
    training: var[bool] = var(False, always_update=True, bindings=True)
    following: var[bool] = var(False, always_update=True)  # watching a run another process trains
    evaluating: var[bool] = var(False, always_update=True)
    eval_phase = var(None, always_update=True)  # engine.insight.report.EvalPhase: the last part done
    results = var(None, always_update=True)  # engine.insight.report.Results
    results_error: var[str | None] = var(None, always_update=True)

    def __init__(self, cfg: Config, opts: RunOptions, autostart: bool = True, follow: Path | None = None) -> None:
        """follow: a run's folder to watch (reverse-tui watch RUN). CannotStart: one line."""
        super().__init__()
        self.cfg = cfg
        self.opts = opts
        torch.set_num_threads(opts.threads or default_threads(cfg.hidden_dim))
        self.device = resolve_device(cfg.device)
        self.run_id = 0  # the run on show; messages of another are dropped
        self.run_cfg = cfg
        self.test_sentences: list[list[str]] | None = None
        self.ended: tuple[str, str] = ("", "done")  # how the last run ended, for the status line
        # held by the training thread while it trains: a new run waits for a stopped one
        self._train_lock = threading.Lock()
        self._stop = threading.Event()  # s: stop the run on show after its batch (and evaluate)
        self.loaded: Loaded | None = None
        self._loaded_key: tuple | None = None  # the checkpoint loaded: (path, mtime, size)
        # probe_model() runs in the probe screen's threads: one loads at a time, the others wait
        self._load_lock = threading.Lock()
        self._opening = 0  # the newest run asked for on the runs screen; an older one is dropped
        self.load_error: str | None = None
        # --compare-no-attention: after training, the same model without attention, compared
        self.compare_no_attention = opts.compare_no_attention
        self.paths: RunPaths | None = None  # the files of the run on show, when trained here
        self.follow_folder: Path | None = None  # a run another process trains, followed
        start = decide_start(cfg, opts, autostart, follow)
        # the run the app opened for: the first one trained takes the command line's --name,
        # --checkpoint and --out (or goes on with --resume's run); every other run gets
        # folders of its own. None once another run is on show
        self.first_run: NewRun | ResumeRun | None = start if isinstance(start, NewRun | ResumeRun) else None
        self.autostart = self.first_run is not None and self.first_run.autostart
        if self.autostart and self.trains_in_child(cfg):
            prestart()  # the child imports torch while the app starts up
        elif self.autostart and opts.threads is None and load_is_readable():  # it follows the load,
            plot_process.prestart()  # here: the figures' process imports as the app starts, not in epoch 1
        if isinstance(start, FollowRun):
            self.follow_folder = start.folder
            self.checkpoint, self.out = start.folder / BEST, start.folder  # until its status says
        elif isinstance(start, ResumeRun):
            self.paths = start.paths
            self.checkpoint, self.out = start.paths.checkpoint, start.paths.out
            self.run_cfg = start.cfg  # shown until the run starts
        elif isinstance(start, OpenModel):
            self.open_at_start(start)
        else:
            self.checkpoint, self.out = start.paths.checkpoint, start.paths.out

    def open_at_start(self, start: OpenModel) -> None:
        """--checkpoint of a trained model: read now, shown on the probe screen. One that
        cannot be read is shown on the training screen, and the app lives on."""
        try:
            opened = read_run(start.checkpoint, self.device)
        except CheckpointError as e:
            self.checkpoint = start.checkpoint
            self.out = start.out or opened_run_folder(start.checkpoint, None)
            # n trains a new run in folders of its own (the unreadable file may be a model
            # of another version)
            self.load_error = str(e)
            self.status = self.ended = (
                f"{e}. n trains a new run in folders of its own; --checkpoint another path opens another model.",
                "error",
            )
            return
        self.show_opened(opened, start.out or opened_run_folder(start.checkpoint, opened.loaded.payload.get("run")))

    # -- screens ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.follow_folder is not None:
            self.push_screen("train")
            self.follow_run(self.follow_folder)
        elif self.loaded is not None:
            self.push_screen("probe")
        else:
            self.push_screen("train")
            if self.load_error:
                self.notify(self.load_error, title="Cannot open the checkpoint", severity="error")
            elif self.autostart:
                self.start_training()
            else:
                self.set_status("Not training. Press n to start a run.")

    def action_show(self, name: str) -> None:
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)
        if name == "results" and self.results is None and not (self.evaluating or self.training or self.following):
            self.evaluate()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            self.push_screen(HelpScreen())

    def action_runs(self) -> None:
        """f2: the runs screen over the screen on show; f2 again goes back to that screen."""
        runs = self.get_screen("runs")
        if runs not in self.screen_stack:
            self.push_screen(runs)
            return
        while self.screen is not runs:  # the comparison, help
            self.pop_screen()
        self.pop_screen()

    def open_run(self, checkpoint: Path, out: Path) -> bool:
        """A run from the runs screen, on the probe screen, as --checkpoint opens one: its
        model, epochs and snapshots. The checkpoint is read in a thread (a big one never
        holds up the screen) and the newest run asked for wins. Not while a run trains (the
        screens follow that run). False: it will not be opened."""
        if self.training:
            self.notify("A run is training: s stops it, then another run can be opened.", severity="warning")
            return False
        if is_running(out):  # trained by another process: followed, as `reverse-tui watch` does
            return self.watch_run(Path(out))
        self._opening += 1
        self._read_run(self._opening, Path(checkpoint), Path(out))
        return True

    @work(thread=True, exclusive=True, group="open", exit_on_error=False)
    def _read_run(self, seq: int, checkpoint: Path, out: Path) -> None:
        try:
            opened = read_run(checkpoint, self.device)
        except Exception as e:  # e.g. CUDA out of memory: a message, never a traceback
            error = str(e) if isinstance(e, CheckpointError) else describe(e)
            self.post_message(RunOpened(seq, checkpoint, out, error=error))
            return
        self.post_message(RunOpened(seq, checkpoint, out, opened))

    def on_run_opened(self, msg: RunOpened) -> None:
        if msg.seq != self._opening or self.training:  # another run asked for, started or followed since
            return
        if msg.error is not None:
            self.notify(msg.error, title="Cannot open the run", severity="error", timeout=12)
            return
        self.show_opened(msg.opened, msg.out)
        while len(self.screen_stack) > 2:  # the runs screen, and whatever was pushed under it
            self.pop_screen()
        self.action_show("probe")

    def show_opened(self, opened: OpenedRun, out: Path) -> None:
        """A run read from disk on show (--checkpoint, or picked on the runs screen): its
        model for the probe screen, its epochs and snapshots, nothing going on."""
        self.reset_run(
            opened.checkpoint,
            out,
            cfg=opened.loaded.config,
            facts=opened.facts(),
            epochs=opened.epochs,
            snapshots=opened.snapshots,
        )
        self.loaded, self._loaded_key = opened.loaded, opened.key
        self.status = self.ended = (opened.status(), "done")

    def reset_run(
        self,
        checkpoint: Path,
        out: Path,
        paths: RunPaths | None = None,
        cfg: Config | None = None,
        facts: str = "",
        epochs: list[EpochDone] | None = None,
        snapshots: list[Snapshot] | None = None,
    ) -> None:
        """Another run on show (trained here, followed, or read from disk): what the screens
        show starts again from what is given (cfg None: kept until the run says), and the
        run before is let go: its news is dropped from now on, a run still being read for the
        runs screen is not opened, a run followed is left to itself."""
        self.run_id += 1
        self._opening += 1
        self.workers.cancel_group(self, "follow")
        self.following = False
        self.first_run = None
        self.paths, self.checkpoint, self.out = paths, checkpoint, out
        self.loaded, self._loaded_key = None, None  # the probe screen follows the new run
        if cfg is not None:
            self.run_cfg = cfg
        self.run_facts, self.epochs, self.progress, self.live_losses = facts, list(epochs or []), None, []
        self.snapshots = list(snapshots or [])
        self.results, self.results_error, self.evaluating, self.test_sentences = None, None, False, None

    async def action_quit(self) -> None:
        self.workers.cancel_all()
        # the training thread stops at its next batch; wait for it (bounded) so that a
        # checkpoint being written is finished, then leave
        await asyncio.to_thread(self._wait_train_idle, 3.0)
        self.exit()

    def _wait_train_idle(self, timeout: float) -> bool:
        if self._train_lock.acquire(timeout=timeout):
            self._train_lock.release()
            return True
        return False

    def set_status(self, text: str, kind: str = "info") -> None:
        self.status = (text, kind)

    def best_epoch(self) -> int | None:
        return next((e.epoch for e in reversed(self.epochs) if e.best), None)

    # -- training --------------------------------------------------------------------------
    def request_new_run(self) -> None:
        """n: a new run in folders of its own, after a yes/no when it would end a run."""
        if self.training:
            self.push_screen(
                ConfirmScreen(
                    "This stops the run in progress (its best model is kept) "
                    "and starts a new run with the command-line "
                    "configuration. Go on?"
                ),
                lambda yes: self.start_training() if yes else None,
            )
        else:
            self.start_training()

    def next_run_paths(self) -> RunPaths:
        """The run the app opened for: the command line's --name/--checkpoint/--out (or
        --resume's run); any other: a new name and folders of its own, so no run replaces
        another."""
        if isinstance(self.first_run, ResumeRun):
            return self.first_run.paths
        if isinstance(self.first_run, NewRun):
            return paths_for(self.opts)[0]  # taken now: its folders made
        return new_run()

    def start_training(self) -> None:
        try:
            paths = self.next_run_paths()
        except RunError as e:
            self.notify(str(e), title="Cannot start a run", severity="error", timeout=12)
            return
        resume = self.first_run if isinstance(self.first_run, ResumeRun) else None
        self.reset_run(
            paths.checkpoint,
            paths.out,
            paths,
            cfg=self.cfg if resume is None else resume.cfg,
            # a resumed run goes on with its own snapshots (the trainer does too); a new one has none yet
            snapshots=[Snapshot.from_dict(d) for d in resume.payload.get("snapshots") or []] if resume else [],
        )
        self._stop = threading.Event()
        self.training = True
        self.status = ("Preparing data and model...", "info")
        self._train(self.run_id, self.cfg, resume.payload if resume else None, self._stop, paths)

    def trains_in_child(self, cfg: Config) -> bool:
        """Whether a run of cfg trains in a child process (see TRAIN_IN_PROCESS)."""
        return TRAIN_IN_PROCESS and child_pays(cfg, self.opts.threads, by_load=self.opts.threads is None)

    def stop_training(self) -> None:
        if self.training:
            self._stop.set()
            self.set_status("Stopping after this batch...")

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _train(self, run_id: int, cfg: Config, resume: dict | None, stop: threading.Event, paths: RunPaths) -> None:
        """The job's events as messages (tui/bridge.py). Quitting or a new run cancels the
        worker: it leaves after the batch; the stop key ends training and still evaluates
        the best model."""
        worker = get_current_worker()
        post = self.post_message
        job = (run_job_in_process if self.trains_in_child(cfg) else run_job)(
            cfg,
            paths.checkpoint,
            paths.out,
            resume=resume,
            epochs=self.opts.epochs,
            compare_no_attention=self.compare_no_attention,
            should_stop=lambda: worker.is_cancelled or stop.is_set(),
            extra={"face": "tui"},
            run=paths.record(),
            watch=list(self.opts.watch),
            tensorboard=self.opts.tensorboard,
            choose_threads=self.opts.threads is None,
            threads_by_load=self.opts.threads is None,
        )
        news = TrainingNews(run_id, cfg.epochs)
        ended = None
        with self._train_lock:
            if worker.is_cancelled:
                return
            for ev in job:
                ended = ended_by(ev)
                if ended is not None:
                    break
                msg = news.training(ev, time.monotonic())
                if msg is not None:
                    post(msg)
        if ended is None:
            return
        post(TrainingDone(run_id, ended))  # after the lock: this run is off the trainer
        if worker.is_cancelled:  # quitting, or a new run: no evaluation
            job.close()
            return
        for ev in job:  # the evaluation, outside the lock: a new run need not wait for it
            msg = news.evaluation(ev)
            if msg is not None:
                post(msg)

    @of_the_run_on_show
    def on_training_started(self, msg: TrainingStarted) -> None:
        started = msg.started
        self.run_cfg, self.run_facts = started.cfg, started.brief()
        if started.history:  # resumed: the epochs before
            self.epochs = list(started.history)
        named = f" run {self.paths.name}" if self.paths is not None and self.paths.name else ""
        self.set_status(f"Training{named} · best model -> {self.checkpoint} · results -> {self.out}")
        if started.busy_note:
            self.notify(started.busy_note.removeprefix("note: "), title="Shared CPU", timeout=12)

    @of_the_run_on_show
    def on_batch_progress(self, msg: BatchProgress) -> None:
        ev = msg.event
        live = [] if ev.batch - len(msg.losses) <= 0 else self.live_losses
        first = ev.batch - len(msg.losses)  # the batches these losses belong to: first+1..batch
        self.live_losses = live + [
            (ev.epoch - 1 + (first + k + 1) / ev.batches, loss) for k, loss in enumerate(msg.losses)
        ]
        self.progress = ev

    @of_the_run_on_show
    def on_epoch_finished(self, msg: EpochFinished) -> None:
        self.live_losses = []  # the epoch's own list of losses takes over
        self.epochs = [*self.epochs, msg.event]

    @of_the_run_on_show
    def on_snapshot_taken(self, msg: SnapshotTaken) -> None:
        self.snapshots = [*self.snapshots, msg.snapshot]

    @of_the_run_on_show
    def on_status_changed(self, msg: StatusChanged) -> None:
        self.set_status(msg.text)

    @of_the_run_on_show
    def on_training_done(self, msg: TrainingDone) -> None:
        ended = msg.ended
        self.training = False
        self.test_sentences = ended.test_sentences or None
        done = len(self.epochs)
        kept = (
            f"the best model (epoch {ended.best_epoch}) is in {self.checkpoint}"
            if ended.best_epoch
            else "no epoch finished, so no model was saved"
        )
        if ended.reason == "failed":
            self.ended = (f"Training failed: {ended.error}. {kept}.", "error")
            self.notify(ended.error or "training failed", title="Training failed", severity="error", timeout=12)
        elif ended.reason == "stopped":
            self.ended = (f"Stopped after {done} finished epoch(s); {kept}.", "done")
        else:
            self.ended = (
                f"Finished {done} epochs; {kept}" + (f" ({ended.error})" if ended.error else "") + ".",
                "done",
            )
        evaluating = ended.best_epoch is not None  # the worker goes on to finish_run
        self.set_status(self.ended[0] + (" Evaluating it on the test set..." if evaluating else ""), self.ended[1])
        if evaluating:
            self.results, self.results_error, self.evaluating, self.eval_phase = None, None, True, None
            if ended.reason == "finished" and self.screen is self.get_screen("train"):
                self.switch_screen("results")

    # -- following a run another process trains (engine/runs/follow.py) --------------------------
    def watch_run(self, folder: Path) -> bool:
        """A running run from the runs screen, followed on the training screen."""
        if self.training:
            self.notify("A run is training: s stops it, then another run can be watched.", severity="warning")
            return False
        while len(self.screen_stack) > 2:  # the runs screen, and whatever was pushed under it
            self.pop_screen()
        self.follow_run(folder)
        self.action_show("train")
        return True

    def follow_run(self, folder: Path) -> None:
        """Show the run in folder as it trains elsewhere: the training screen, fed from its
        files. Nothing is written into the run."""
        self.reset_run(folder / BEST, folder)
        self.following = True
        self.status = (f"Watching {folder}: waiting for the run to write its configuration...", "info")
        self._follow(self.run_id, folder)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _follow(self, run_id: int, folder: Path) -> None:
        """The followed run's events as the messages a run trained here posts (tui/bridge.py)."""
        worker = get_current_worker()
        for ev in follow(folder, should_stop=lambda: worker.is_cancelled):
            msg = follow_news(ev, run_id, folder)
            if msg is not None:
                self.post_message(msg)

    @of_the_run_on_show
    def on_follow_started(self, msg: FollowStarted) -> None:
        w = msg.watching
        self.run_cfg, self.run_facts = w.cfg, w.facts
        self.checkpoint = w.checkpoint or CHECKPOINTS / w.name / BEST  # p probes the best so far
        where = f" (pid {w.pid} on {w.host})" if w.pid else ""
        self.set_status(f"Watching run {w.name}{where}, trained by another process · its files: {w.folder}")

    @of_the_run_on_show
    def on_follow_ended(self, msg: FollowEnded) -> None:
        ended = msg.ended
        self.following = False
        if ended.checkpoint is not None:
            self.checkpoint = ended.checkpoint
        probe = " p probes its best model." if self.checkpoint.exists() else ""
        kind = "error" if ended.state in ("failed", "gone") else "done"
        self.status = self.ended = (f"{ended.line[0].upper()}{ended.line[1:]}.{probe}", kind)

    # -- results ---------------------------------------------------------------------------
    def evaluate(self) -> None:
        """The engine's evaluation of the checkpoint on disk (engine.job.evaluate_run, as the
        run's own), in a thread: on this run's test set, or for a model opened from disk on
        its own test set, rebuilt from its configuration."""
        if not self.checkpoint.exists() or self.following:  # a run followed writes its own results
            self.results_error = None
            return
        self.results, self.results_error, self.evaluating, self.eval_phase = None, None, True, None
        self._evaluate(self.run_id, self.checkpoint, self.out, self.test_sentences)

    @work(thread=True, exclusive=True, group="results", exit_on_error=False)
    def _evaluate(self, run_id: int, checkpoint: Path, out: Path, test: list[list[str]] | None) -> None:
        try:
            res = evaluate_run(
                checkpoint,
                out,
                self.device,
                test,
                {"face": "tui"},
                on_phase=lambda phase: self.post_message(EvaluationProgress(run_id, phase)),
            )
        except Exception as e:  # a checkpoint gone bad, a corpus moved: one line on screen
            self.post_message(ResultsFailed(run_id, describe(e)))
        else:
            self.post_message(ResultsReady(run_id, res))

    @of_the_run_on_show
    def on_evaluation_progress(self, msg: EvaluationProgress) -> None:
        self.eval_phase = phase = msg.phase
        if not self.training:
            self.set_status(
                f"{self.ended[0]} Evaluating: {phase.done}/{phase.total} parts done "
                f"({phase.name}, {phase.seconds:.1f}s)...",
                self.ended[1],
            )

    @of_the_run_on_show
    def on_results_ready(self, msg: ResultsReady) -> None:
        self.evaluating, self.results = False, msg.results
        ev, lost = msg.results.evaluation, msg.results.failed_parts
        said = f"Test exact match {100 * ev.exact_match:.1f}%" if ev is not None else "The test set failed"
        if lost:
            said += f"; {len(lost)} part(s) of the evaluation failed"
        if self.screen is not self.get_screen("results"):
            severity = "warning" if lost else "information"
            self.notify(f"{said}; r shows the results", title="Evaluated", severity=severity)
        if not self.training:
            self.set_status(f"{self.ended[0]} {said}: r for results, p to probe.", self.ended[1])

    @of_the_run_on_show
    def on_results_failed(self, msg: ResultsFailed) -> None:
        self.evaluating, self.results_error = False, msg.error
        self.notify(msg.error, title="Evaluation failed", severity="error", timeout=12)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # the workers catch their own errors; this is the net under them
        if event.state == WorkerState.ERROR:
            self.notify(describe(event.worker.error), title="Error", severity="error", timeout=12)

    # -- the model for probing ---------------------------------------------------------------
    def beam_width(self, loaded: Loaded) -> int:
        """The probe's and step-through's beam: the command line's --beam when above 1 (a
        checkpoint opened with --beam 3 probes with a beam of 3), else the model's own."""
        return self.cfg.beam if self.cfg.beam > 1 else loaded.config.beam

    def probe_model(self) -> Loaded | None:
        """The checkpoint on disk, reloaded when it changed (during training: the best so far).
        None when there is none yet; CheckpointError when it cannot be read. Reading a
        checkpoint takes a while: the screens call this from a thread worker, never the UI
        thread once the app runs (cached_probe_model() is the UI thread's look)."""
        with self._load_lock:
            if self.loaded is None or checkpoint_key(self.checkpoint) != self._loaded_key:
                read = read_model(self.checkpoint, self.device)
                if read is None:
                    return None
                self.loaded, self._loaded_key = read
            return self.loaded

    def cached_probe_model(self) -> tuple[bool, Loaded | None]:
        """What probe_model() would give, without reading the checkpoint and without waiting:
        (True, None) when there is none, (True, the model) when the one loaded is the one on
        disk, (False, None) when it has to be read (or a thread is reading it now)."""
        if not self._load_lock.acquire(blocking=False):
            return False, None
        try:
            key = checkpoint_key(self.checkpoint)
            if key is None:
                return True, None
            if self.loaded is not None and key == self._loaded_key:
                return True, self.loaded
            return False, None
        finally:
            self._load_lock.release()
