"""The Textual app: runs engine.job.run_job (the very run `--no-ui` prints) in a thread
worker, keeps the run's state in reactive attributes that the screens watch, then lets the
user probe the model and look at its attention.

The worker posts messages (tui/messages.py) and never touches a widget; the app turns them
into state on its own thread, and drops those of a run that is no longer on show in one
place (`_on_message`)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from pathlib import Path

import torch
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.reactive import var
from textual.worker import Worker, WorkerState, get_current_worker

from engine.errors import CheckpointError, FollowError, RunError
from engine.insight.report import latest_state, snapshots_of
from engine.job import (
    ControlEpoch,
    ControlStarted,
    Evaluating,
    Failed,
    Finished,
    Started,
    TrainingEnded,
    describe,
    evaluate_run,
    param_count,
    run_job,
)
from engine.runs.folders import BEST, CHECKPOINTS, RunPaths, find_checkpoint, new_run
from engine.runs.follow import Note, Progress, RunEnded, Watching, follow, is_running, resolve_run
from engine.train.checkpoint import Loaded, load_model
from engine.train.config import Config
from engine.train.events import BatchDone, EpochDone, Snapshot, epochs_from_history
from engine.train.threads import default_threads
from engine.train.trainer import resolve_device, resumed_config

from .common import RunOptions, check_writable, opened_run_folder, paths_for, writable_folder
from .messages import (
    BatchProgress,
    EpochFinished,
    EvaluationProgress,
    FollowEnded,
    FollowStarted,
    ResultsFailed,
    ResultsReady,
    RunMessage,
    RunOpened,
    SnapshotTaken,
    StatusChanged,
    TrainingDone,
    TrainingStarted,
)
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.probe import ProbeScreen
from .screens.results import ResultsScreen
from .screens.runs import RunsScreen
from .screens.train import TrainScreen

BATCH_INTERVAL = 0.25  # seconds between progress messages: 4 a second move the bars smoothly;
# each one costs the training thread the GIL for a while (20 a second: ~10% slower epochs)

__all__ = ["BATCH_INTERVAL", "CannotStart", "ReverseApp", "describe"]


class CannotStart(Exception):
    """The app cannot open as asked (a bad checkpoint, an unwritable folder); one line."""


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
        super().__init__()
        self.cfg = cfg
        self.opts = opts
        torch.set_num_threads(opts.threads or default_threads(cfg.hidden_dim))
        self.device = resolve_device(cfg.device)
        self.autostart = autostart
        self.run_id = 0
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
        # reverse-tui watch RUN, or --checkpoint of a run going on: that run's folder, followed
        self.follow_folder: Path | None = Path(follow) if follow is not None else None
        if self.follow_folder is None and opts.checkpoint is not None and not opts.resume:
            try:
                folder = resolve_run(opts.checkpoint)
            except FollowError:
                folder = None
            if folder is not None and is_running(folder):
                self.follow_folder = folder
        if self.follow_folder is not None:
            self.autostart = False
            self.checkpoint, self.out = self.follow_folder / "best.pt", self.follow_folder  # until its status says
            return
        # the run on show: its name and files. The first run takes the command line's --name,
        # --checkpoint and --out; every later one (n) gets folders of its own
        self.paths: RunPaths | None = None
        self.runs_started = 0
        # --resume: the first run continues that run, with its configuration, in its folders
        self.resume_payload: dict | None = None
        if opts.resume:
            try:
                self.paths, self.resume_payload = paths_for(opts)
            except RunError as e:
                raise CannotStart(str(e)) from None
            self.checkpoint, self.out = self.paths.checkpoint, self.paths.out
            # shown until the run starts; the job works the resumed configuration out itself
            self.run_cfg = resumed_config(self.resume_payload, opts.epochs, cfg.device)
            return
        opened = None
        if opts.checkpoint is not None:
            try:  # a model that exists (a file, a run's name or folder, latest) opens
                opened = find_checkpoint(opts.checkpoint)
            except RunError:
                opened = None  # a path to train to
        if opened is not None:
            self.checkpoint = opened
            self.out = Path(opts.out or opened_run_folder(opened, None))
            try:
                self.probe_model()
            except CheckpointError as e:
                # shown on the training screen; the app lives on, and n trains a new run in
                # folders of its own (the unreadable file may be a model of another version)
                self.load_error = str(e)
                self.autostart = False
                self.status = self.ended = (
                    f"{e}. n trains a new run in folders of its own; --checkpoint another path opens another model.",
                    "error",
                )
                return
            self.run_cfg = self.loaded.config
            self.run_facts = f"vocab {len(self.loaded.vocab)} · {param_count(self.loaded.model):,} params"
            self.out = Path(opts.out or opened_run_folder(opened, self.loaded.payload.get("run")))
            state = latest_state(self.checkpoint, self.loaded.payload)  # its epochs after the best too
            self.epochs = epochs_from_history(state["history"])
            self.snapshots = snapshots_of(state)
            self.status = self.ended = (
                f"Opened {self.checkpoint}: {len(self.epochs)} epochs trained, best "
                f"epoch {self.loaded.payload.get('best_epoch')}. n starts a new run.",
                "done",
            )
            return
        try:  # the first run's files, checked now (nothing written), taken when it starts
            first = paths_for(opts, reserve=False)[0]
        except RunError as e:
            raise CannotStart(str(e)) from None
        self.checkpoint, self.out = first.checkpoint, first.out
        for d in {writable_folder(first.checkpoint.parent), writable_folder(first.out)}:
            problem = check_writable(d)
            if problem:
                raise CannotStart(problem)

    async def _on_message(self, message) -> None:
        # the one place where news of a replaced run is dropped, and news that reaches an app
        # already closing (its screens gone: the worker's last words after a quit)
        if isinstance(message, RunMessage) and (message.run_id != self.run_id or not self.screen_stack):
            return
        await super()._on_message(message)

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
            key = checkpoint_key(checkpoint)  # before reading: a file changed meanwhile is read again
            if key is None:
                raise CheckpointError(f"{checkpoint}: no such file")
            loaded = load_model(checkpoint, self.device)
            state = latest_state(checkpoint, loaded.payload)  # its epochs after the best too
        except Exception as e:  # e.g. CUDA out of memory: a message, never a traceback
            error = str(e) if isinstance(e, CheckpointError) else describe(e)
            self.post_message(RunOpened(seq, checkpoint, out, error=error))
            return
        self.post_message(RunOpened(seq, checkpoint, out, loaded, state, key))

    def on_run_opened(self, msg: RunOpened) -> None:
        if msg.seq != self._opening or self.training:  # another run asked for, started or followed since
            return
        if msg.error is not None:
            self.notify(msg.error, title="Cannot open the run", severity="error", timeout=12)
            return
        loaded, state = msg.loaded, msg.state
        self.checkpoint, self.loaded, self._loaded_key = msg.checkpoint, loaded, msg.key
        self.run_id += 1  # news still coming from the run on show until now is dropped
        self.workers.cancel_group(self, "follow")  # a run watched until now is left to itself
        self.following = False
        self.out, self.paths, self.resume_payload = msg.out, None, None
        self.run_cfg = loaded.config
        self.run_facts = f"vocab {len(loaded.vocab)} · {param_count(loaded.model):,} params"
        self.epochs, self.progress, self.live_losses = epochs_from_history(state["history"]), None, []
        self.snapshots = snapshots_of(state)
        self.results, self.results_error, self.evaluating, self.test_sentences = None, None, False, None
        self.status = self.ended = (
            f"Opened {self.checkpoint}: {len(self.epochs)} epochs trained, best "
            f"epoch {loaded.payload.get('best_epoch')}. n starts a new run.",
            "done",
        )
        while len(self.screen_stack) > 2:  # the runs screen, and whatever was pushed under it
            self.pop_screen()
        self.action_show("probe")

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
        """The first run: the command line's --name/--checkpoint/--out (or --resume's run);
        each later one: a new name and folders of its own, so no run replaces another."""
        if self.runs_started == 0 and self.paths is not None:  # --resume
            return self.paths
        if self.runs_started == 0 and self.loaded is None and self.load_error is None:
            return paths_for(self.opts)[0]
        return new_run()

    def start_training(self) -> None:
        try:
            paths = self.next_run_paths()
        except RunError as e:
            self.notify(str(e), title="Cannot start a run", severity="error", timeout=12)
            return
        self.runs_started += 1
        self.paths, self.checkpoint, self.out = paths, paths.checkpoint, paths.out
        self.loaded, self._loaded_key = None, None  # the probe screen follows the new run
        self._opening += 1  # a run still being read for the runs screen is not opened
        self.run_id += 1
        self.workers.cancel_group(self, "follow")  # a run followed until now is left to itself
        self.following = False
        self._stop = threading.Event()
        resume, self.resume_payload = self.resume_payload, None  # only the first run resumes
        self.run_cfg = self.cfg if resume is None else self.run_cfg
        self.run_facts, self.epochs, self.progress = "", [], None
        self.live_losses = []
        # a resumed run goes on with its own snapshots (the trainer does too); a new one has none yet
        self.snapshots = [Snapshot.from_dict(d) for d in (resume or {}).get("snapshots") or []]
        self.results, self.results_error, self.evaluating, self.test_sentences = None, None, False, None
        self.training = True
        self.status = ("Preparing data and model...", "info")
        self._train(self.run_id, self.cfg, resume, self._stop, paths)

    def stop_training(self) -> None:
        if self.training:
            self._stop.set()
            self.set_status("Stopping after this batch...")

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _train(self, run_id: int, cfg: Config, resume: dict | None, stop: threading.Event, paths: RunPaths) -> None:
        """The job's events as messages. Quitting or a new run cancels the worker: it leaves
        after the batch; the stop key ends training and still evaluates the best model."""
        worker = get_current_worker()
        post = self.post_message
        job = run_job(
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
        )
        ended = None
        with self._train_lock:
            if worker.is_cancelled:
                return
            last, pending = -math.inf, []  # the first batch is always reported
            for ev in job:
                if isinstance(ev, BatchDone):
                    if ev.loss is not None:
                        pending.append(ev.loss)
                    now = time.monotonic()
                    if ev.batch == ev.batches or now - last >= BATCH_INTERVAL:
                        last = now
                        # the only read of these losses: a few times a second, not per batch
                        losses = torch.stack(pending).tolist() if pending else []
                        pending = []
                        post(BatchProgress(run_id, ev, losses))
                elif isinstance(ev, EpochDone):
                    post(EpochFinished(run_id, ev))
                elif isinstance(ev, Snapshot):
                    post(SnapshotTaken(run_id, ev))
                elif isinstance(ev, Started):
                    post(TrainingStarted(run_id, ev))
                elif isinstance(ev, ControlStarted):
                    post(StatusChanged(run_id, f"Training the no-attention control -> {ev.checkpoint}"))
                elif isinstance(ev, ControlEpoch):
                    post(
                        StatusChanged(
                            run_id,
                            f"Training the no-attention control: epoch "
                            f"{ev.event.epoch}/{cfg.epochs}, val exact match "
                            f"{100 * ev.event.val_exact_match:.1f}%",
                        )
                    )
                elif isinstance(ev, TrainingEnded):
                    ended = ev
                    break
                elif isinstance(ev, Failed):  # could not start
                    ended = TrainingEnded("failed", 0, None, [], 0.0, ev.error, ev.exception)
                    break
        if ended is None:
            return
        post(TrainingDone(run_id, ended))  # after the lock: this run is off the trainer
        if worker.is_cancelled:  # quitting, or a new run: no evaluation
            job.close()
            return
        for ev in job:  # the evaluation, outside the lock: a new run need not wait for it
            if isinstance(ev, Evaluating):
                post(EvaluationProgress(run_id, ev.phase))
            elif isinstance(ev, Finished):
                post(ResultsReady(run_id, ev.results))
            elif isinstance(ev, Failed):
                post(ResultsFailed(run_id, ev.error))

    def on_training_started(self, msg: TrainingStarted) -> None:
        started = msg.started
        self.run_cfg, self.run_facts = started.cfg, started.brief()
        if started.history:  # resumed: the epochs before
            self.epochs = list(started.history)
        named = f" run {self.paths.name}" if self.paths is not None and self.paths.name else ""
        self.set_status(f"Training{named} · best model -> {self.checkpoint} · results -> {self.out}")
        if started.busy_note:
            self.notify(started.busy_note.removeprefix("note: "), title="Shared CPU", timeout=12)

    def on_batch_progress(self, msg: BatchProgress) -> None:
        ev = msg.event
        live = [] if ev.batch - len(msg.losses) <= 0 else self.live_losses
        first = ev.batch - len(msg.losses)  # the batches these losses belong to: first+1..batch
        self.live_losses = live + [
            (ev.epoch - 1 + (first + k + 1) / ev.batches, loss) for k, loss in enumerate(msg.losses)
        ]
        self.progress = ev

    def on_epoch_finished(self, msg: EpochFinished) -> None:
        self.live_losses = []  # the epoch's own list of losses takes over
        self.epochs = [*self.epochs, msg.event]

    def on_snapshot_taken(self, msg: SnapshotTaken) -> None:
        self.snapshots = [*self.snapshots, msg.snapshot]

    def on_status_changed(self, msg: StatusChanged) -> None:
        self.set_status(msg.text)

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
        self.run_id += 1  # news of the run on show until now is dropped
        self._opening += 1  # a run still being read for the runs screen is not opened
        self.paths, self.resume_payload, self.loaded, self._loaded_key = None, None, None, None
        self.checkpoint, self.out = folder / "best.pt", folder
        self.run_facts, self.epochs, self.progress, self.live_losses, self.snapshots = "", [], None, [], []
        self.results, self.results_error, self.evaluating, self.test_sentences = None, None, False, None
        self.following = True
        self.status = (f"Watching {folder}: waiting for the run to write its configuration...", "info")
        self._follow(self.run_id, folder)

    @work(thread=True, exclusive=True, group="follow", exit_on_error=False)
    def _follow(self, run_id: int, folder: Path) -> None:
        """The followed run's events as the messages a run trained here posts."""
        worker = get_current_worker()
        post = self.post_message
        for ev in follow(folder, should_stop=lambda: worker.is_cancelled):
            if isinstance(ev, Progress):
                post(BatchProgress(run_id, ev.event, ev.losses))
            elif isinstance(ev, EpochDone):
                post(EpochFinished(run_id, ev))
            elif isinstance(ev, Snapshot):
                post(SnapshotTaken(run_id, ev))
            elif isinstance(ev, Watching):
                post(FollowStarted(run_id, ev))
            elif isinstance(ev, Note):
                post(StatusChanged(run_id, f"Watching {folder.name}: {ev.text}"))
            elif isinstance(ev, RunEnded):
                post(FollowEnded(run_id, ev))

    def on_follow_started(self, msg: FollowStarted) -> None:
        w = msg.watching
        self.run_cfg, self.run_facts = w.cfg, w.facts
        self.checkpoint = w.checkpoint or CHECKPOINTS / w.name / BEST  # p probes the best so far
        where = f" (pid {w.pid} on {w.host})" if w.pid else ""
        self.set_status(f"Watching run {w.name}{where}, trained by another process · its files: {w.folder}")

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

    def on_evaluation_progress(self, msg: EvaluationProgress) -> None:
        self.eval_phase = phase = msg.phase
        if not self.training:
            self.set_status(
                f"{self.ended[0]} Evaluating: {phase.done}/{phase.total} parts done "
                f"({phase.name}, {phase.seconds:.1f}s)...",
                self.ended[1],
            )

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
            path = self.checkpoint
            key = checkpoint_key(path)  # before reading: a file changed meanwhile is read again
            if key is None:
                return None
            if self.loaded is None or key != self._loaded_key:
                self.loaded = load_model(path, self.device)
                self._loaded_key = key
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


def checkpoint_key(path: Path) -> tuple | None:
    """(path, mtime, size): what tells a checkpoint changed on disk; None when there is none."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return (str(path), st.st_mtime_ns, st.st_size)
