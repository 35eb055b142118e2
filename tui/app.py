"""The Textual app: trains in a thread worker, shows each epoch live, evaluates the best
checkpoint with the engine's finish_run (the very code the headless run uses), then lets the
user probe the model and look at its attention.

The app owns the run's state and the workers; the screens only draw it. Workers report with
post_message and never touch a widget."""
from __future__ import annotations

import argparse
import asyncio
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

import torch
from textual import work
from textual.app import App
from textual.binding import Binding
from textual.worker import Worker, WorkerState, get_current_worker

from engine import native
from engine.checkpoint import CheckpointError, Loaded, load, load_model
from engine.config import Config
from engine.data import splits_for
from engine.report import finish_run
from engine.train import BatchDone, EpochDone, NonFiniteLoss, Trainer, resolve_device

from .cli import DEFAULT_CHECKPOINT, DEFAULT_OUT
from .headless import check_writable
from .messages import (BatchProgress, EpochFinished, ResultsFailed, ResultsReady, TrainingEnded,
                       TrainingStarted)
from .screens.confirm import ConfirmScreen
from .screens.help import HelpScreen
from .screens.probe import ProbeScreen
from .screens.results import ResultsScreen
from .screens.train import TrainScreen

BATCH_INTERVAL = 0.05  # seconds between progress messages: at most ~20 redraws a second
EPOCH_FIELDS = [f.name for f in fields(EpochDone)]


class CannotStart(Exception):
    """The app cannot open as asked (a bad checkpoint, an unwritable folder); one line."""


def describe(e: BaseException) -> str:
    """One line for the user about an exception from the engine."""
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return ("CUDA ran out of memory; try a smaller --batch-size or --hidden-dim, "
                "or --device cpu (the best checkpoint saved before is kept)")
    if isinstance(e, (NonFiniteLoss, CheckpointError)):
        return str(e)
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else ""
        return f"could not write{where}: {e.strerror or e} (the best checkpoint saved before is kept)"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:300]


def epochs_from_history(history: list[dict]) -> list[EpochDone]:
    """A checkpoint's history as table rows; fields an older checkpoint lacks read as zero."""
    try:
        return [EpochDone(**{k: h.get(k, False if k == "best" else 0) for k in EPOCH_FIELDS})
                for h in history]
    except (AttributeError, TypeError):
        return []  # not a list of dicts: show no history rather than fail to open


class ReverseApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "reverse-tui"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key, shown in the Footer
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (96, "-wide")]
    SCREENS = {"train": TrainScreen, "results": ResultsScreen, "probe": ProbeScreen}
    BINDINGS = [
        # priority, and the sentence Input lets "?" through: help opens on every screen
        # (the tokenizer drops punctuation, so nothing is lost by not typing it)
        Binding("question_mark,f1", "help", "Help", priority=True, tooltip="this help (also f1)"),
        Binding("ctrl+q", "quit", "Quit", priority=True, tooltip="quit; a run in progress stops, its best model is kept"),
    ]

    def __init__(self, cfg: Config, args: argparse.Namespace, autostart: bool = True) -> None:
        super().__init__()
        self.cfg = cfg
        self.checkpoint = Path(getattr(args, "checkpoint", None) or DEFAULT_CHECKPOINT)
        self.out = Path(getattr(args, "out", None) or DEFAULT_OUT)
        if getattr(args, "threads", None):
            torch.set_num_threads(args.threads)
        self.device = resolve_device(cfg.device)
        self.autostart = autostart
        # the run on show: its config, finished epochs, last progress, status line
        self.run_id = 0
        self.run_cfg = cfg
        self.run_facts = ""
        self.epochs: list[EpochDone] = []
        self.progress: BatchDone | None = None
        self.status: tuple[str, str] = ("", "info")
        self.training = False
        self.evaluating = False
        self.results = None
        self.test_sentences: list[list[str]] | None = None
        self.train_started = 0.0
        self.ended: tuple[str, str] = ("", "done")  # how the last run ended, for the status line
        # held by the training thread for its whole life: a new run waits for a stopped one
        self._train_lock = threading.Lock()
        self.loaded: Loaded | None = None
        self._loaded_key: tuple | None = None
        # a checkpoint the user opened predates this session: ask before training over it
        self.protect_checkpoint = False
        self.load_error: str | None = None
        # --compare-no-attention: after training, the same model without attention, compared
        self.compare_no_attention = bool(getattr(args, "compare_no_attention", False))
        # --resume: the first run continues that checkpoint's run, with its configuration
        self.resume_payload: dict | None = None
        if getattr(args, "resume", None):
            try:
                self.resume_payload = load(args.resume)
            except CheckpointError as e:
                raise CannotStart(f"cannot resume: {e}") from None
            resumed = Config.from_dict(self.resume_payload["config"])
            epochs = getattr(args, "epochs", None) or resumed.epochs
            self.cfg = Config.from_dict({**resumed.to_dict(), "epochs": epochs, "device": cfg.device})
        if (self.resume_payload is None and getattr(args, "checkpoint", None) is not None
                and self.checkpoint.exists()):
            try:
                self.probe_model()
            except CheckpointError as e:
                # shown on the training screen; the app lives on, and training over the
                # unreadable file asks first (it may be a model from another version)
                self.load_error = str(e)
                self.autostart = False
                self.protect_checkpoint = True
                self.status = (f"{e}. n trains a new model to this path; "
                               "--checkpoint another path to open another model.", "error")
                self.ended = self.status
                return
            self.run_cfg = self.loaded.config
            n_params = sum(p.numel() for p in self.loaded.model.parameters())
            self.run_facts = f"vocab {len(self.loaded.vocab)} · {n_params:,} params"
            self.epochs = epochs_from_history(self.loaded.payload["history"])
            self.protect_checkpoint = True
            self.status = (f"Opened {self.checkpoint}: {len(self.epochs)} epochs trained, best "
                           f"epoch {self.loaded.payload.get('best_epoch')}. n starts a new run.", "done")
            self.ended = self.status
        else:
            for d in {self.checkpoint.parent, self.out}:
                problem = check_writable(d)
                if problem:
                    raise CannotStart(problem)

    # -- screens ---------------------------------------------------------------------------
    def on_mount(self) -> None:
        if self.loaded is not None:
            self.push_screen("probe")
        else:
            self.push_screen("train")
            if self.load_error:
                self.set_status(*self.status)
                self.notify(self.load_error, title="Cannot open the checkpoint", severity="error")
            elif self.autostart:
                self.start_training()
            else:
                self.set_status("Not training. Press n to start a run.")

    def view(self, name: str):
        """The named screen if it has been drawn; otherwise it syncs itself when mounted."""
        screen = self.get_screen(name)
        return screen if screen.is_mounted else None

    def action_show(self, name: str) -> None:
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)
        if name == "results" and self.results is None and not self.evaluating and not self.training:
            self.evaluate()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
        else:
            self.push_screen(HelpScreen())

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
        if screen := self.view("train"):
            screen.set_status(text, kind)

    def best_epoch(self) -> int | None:
        return next((e.epoch for e in reversed(self.epochs) if e.best), None)

    # -- training --------------------------------------------------------------------------
    def request_new_run(self) -> None:
        """n: a new run, after a yes/no when it would end a run or replace an opened model."""
        if self.training or self.protect_checkpoint:
            why = ("This stops the run in progress" if self.training
                   else f"This replaces {self.checkpoint} (opened at start) after the first epoch")
            self.push_screen(ConfirmScreen(f"{why} and starts a new run with the "
                                           "command-line configuration. Go on?"),
                             lambda yes: self.start_training() if yes else None)
        else:
            self.start_training()

    def start_training(self) -> None:
        self.run_id += 1
        self.run_cfg, self.run_facts, self.epochs, self.progress = self.cfg, "", [], None
        self.results, self.evaluating, self.test_sentences = None, False, None
        self.training, self.protect_checkpoint = True, False
        self.train_started = time.perf_counter()
        self.status = ("Preparing data and model...", "info")
        if screen := self.view("train"):
            screen.begin()
        if screen := self.view("results"):
            screen.sync()
        self.refresh_bindings()
        resume, self.resume_payload = self.resume_payload, None  # only the first run resumes
        self._train(self.run_id, self.cfg, resume)

    def stop_training(self) -> None:
        if self.training:
            self.workers.cancel_group(self, "train")
            self.set_status("Stopping after this batch...")

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def _train(self, run_id: int, cfg: Config, resume: dict | None = None) -> None:
        worker = get_current_worker()
        with self._train_lock:
            if worker.is_cancelled:
                return
            trainer = None
            try:
                if resume is not None:
                    trainer = Trainer.resume(resume, self.checkpoint, self.device, epochs=cfg.epochs)
                    for done in epochs_from_history(trainer.history):  # the epochs before
                        self.post_message(EpochFinished(run_id, done))
                else:
                    trainer = Trainer(cfg, self.checkpoint, device=self.device)
                n_params = sum(p.numel() for p in trainer.model.parameters())
                n = torch.get_num_threads()
                where = f"{self.device} x{n}" if self.device.type == "cpu" else str(self.device)
                if self.device.type == "cpu" and native.kernels() is None:
                    where += " · no C kernels"  # the slower torch-ops path: say so
                self.post_message(TrainingStarted(
                    run_id, f"vocab {len(trainer.vocab)} · {n_params:,} params · {where}"))
                reason, last = "finished", 0.0
                for ev in trainer.run():
                    if worker.is_cancelled:  # checked on every batch
                        reason = "stopped"
                        break
                    if isinstance(ev, EpochDone):
                        self.post_message(EpochFinished(run_id, ev))
                    elif ev.batch == ev.batches or time.monotonic() - last >= BATCH_INTERVAL:
                        last = time.monotonic()
                        self.post_message(BatchProgress(run_id, ev))
            except Exception as e:  # shown in the app, which lives on
                self.post_message(TrainingEnded(
                    run_id, "failed", trainer.best_epoch if trainer else None,
                    trainer.splits.test if trainer else None, describe(e)))
                return
            extra = {}
            if reason == "finished" and self.compare_no_attention and cfg.attention:
                try:
                    extra["control_checkpoint"] = self._train_control(worker, cfg, trainer)
                except Exception as e:  # the main model stands; say why the comparison is missing
                    self.post_message(TrainingEnded(run_id, reason, trainer.best_epoch,
                                                    trainer.splits.test, f"control run: {describe(e)}"))
                    return
            self.post_message(TrainingEnded(run_id, reason, trainer.best_epoch, trainer.splits.test,
                                            extra=extra))

    def _train_control(self, worker, cfg: Config, trainer: Trainer) -> Path | None:
        """The no-attention control on the same data (runs in the training thread)."""
        path = self.checkpoint.with_name(self.checkpoint.stem + ".no-attention.pt")
        control = Trainer(replace(cfg, attention=False), path, splits=trainer.splits, device=self.device)
        for ev in control.run():
            if worker.is_cancelled:
                return None
            if isinstance(ev, EpochDone):
                self.call_from_thread(self.set_status, f"Training the no-attention control: epoch "
                                      f"{ev.epoch}/{cfg.epochs}, val exact match {100 * ev.val_exact_match:.1f}%")
        return path

    def on_training_started(self, msg: TrainingStarted) -> None:
        if msg.run_id != self.run_id:
            return
        self.run_facts = msg.facts
        self.set_status(f"Training · best model -> {self.checkpoint} · results -> {self.out}")
        if screen := self.view("train"):
            screen.sync()

    def on_batch_progress(self, msg: BatchProgress) -> None:
        if msg.run_id != self.run_id:
            return
        self.progress = msg.event
        if screen := self.view("train"):
            screen.progress(msg.event)

    def on_epoch_finished(self, msg: EpochFinished) -> None:
        if msg.run_id != self.run_id:
            return
        self.epochs.append(msg.event)
        if screen := self.view("train"):
            screen.add_epoch(msg.event)

    def on_training_ended(self, msg: TrainingEnded) -> None:
        if msg.run_id != self.run_id:
            return
        self.training = False
        self.test_sentences = msg.test_sentences
        self.refresh_bindings()
        done = len(self.epochs)
        kept = (f"the best model (epoch {msg.best_epoch}) is in {self.checkpoint}"
                if msg.best_epoch else "no epoch finished, so no model was saved")
        if msg.reason == "failed":
            self.ended = (f"Training failed: {msg.error}. {kept}.", "error")
            self.notify(msg.error or "training failed", title="Training failed", severity="error",
                        timeout=12)
        elif msg.reason == "stopped":
            self.ended = (f"Stopped after {done} finished epoch(s); {kept}.", "done")
        else:
            self.ended = (f"Finished {done} epochs; {kept}.", "done")
        self.set_status(self.ended[0] + (" Evaluating it on the test set..." if msg.best_epoch else ""),
                        self.ended[1])
        if screen := self.view("train"):
            screen.update_bars()
        if msg.best_epoch:
            extra = {"interrupted": msg.reason == "stopped", "failure": msg.error, "face": "tui",
                     "train_seconds": time.perf_counter() - self.train_started,
                     "threads": torch.get_num_threads(), **msg.extra}
            self.evaluate(extra)
            if msg.reason == "finished" and self.screen is self.get_screen("train"):
                self.switch_screen("results")

    # -- results ---------------------------------------------------------------------------
    def evaluate(self, extra: dict | None = None) -> None:
        """finish_run on the checkpoint on disk, in a thread; its test set is this run's, or
        for a model opened from disk the built-in corpus regenerated from its config."""
        if not self.checkpoint.exists():
            if screen := self.view("results"):
                screen.sync()
            return
        test = self.test_sentences
        if test is None:
            try:
                cfg = self.probe_model().config
            except CheckpointError as e:
                self.notify(str(e), title="Cannot evaluate", severity="error")
                return
            try:
                test = splits_for(cfg)[0].test  # the checkpoint's own test set, rebuilt
            except (OSError, ValueError) as e:
                self.notify(f"Cannot rebuild the test set: {e}", title="Cannot evaluate",
                            severity="error")
                return
        self.evaluating, self.results = True, None
        if screen := self.view("results"):
            screen.sync()
        self._finish(self.run_id, test, extra or {"face": "tui"})

    @work(thread=True, exclusive=True, group="results", exit_on_error=False)
    def _finish(self, run_id: int, test: list[list[str]], extra: dict) -> None:
        extra = dict(extra)
        control = extra.pop("control_checkpoint", None)
        try:
            res = finish_run(self.checkpoint, test, self.out, self.device, extra, control)
        except Exception as e:
            self.post_message(ResultsFailed(run_id, describe(e)))
        else:
            self.post_message(ResultsReady(run_id, res))

    def on_results_ready(self, msg: ResultsReady) -> None:
        if msg.run_id != self.run_id:
            return
        self.evaluating, self.results = False, msg.results
        if screen := self.view("results"):
            screen.sync()
        em = 100 * msg.results.evaluation.exact_match
        if self.screen is not self.get_screen("results"):
            self.notify(f"Test exact match {em:.1f}%; r shows the results", title="Evaluated")
        if not self.training:
            self.set_status(f"{self.ended[0]} Test exact match {em:.1f}%: r for results, p to probe.",
                            self.ended[1])

    def on_results_failed(self, msg: ResultsFailed) -> None:
        if msg.run_id != self.run_id:
            return
        self.evaluating = False
        if screen := self.view("results"):
            screen.sync(error=msg.error)
        self.notify(msg.error, title="Evaluation failed", severity="error", timeout=12)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # the workers catch their own errors; this is the net under them
        if event.state == WorkerState.ERROR:
            self.notify(describe(event.worker.error), title="Error", severity="error", timeout=12)

    # -- the model for probing ---------------------------------------------------------------
    def probe_model(self) -> Loaded | None:
        """The checkpoint on disk, reloaded when it changed (during training: the best so far).
        None when there is none yet; CheckpointError when it cannot be read."""
        try:
            st = self.checkpoint.stat()
        except OSError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        if self.loaded is None or key != self._loaded_key:
            self.loaded = load_model(self.checkpoint, self.device)
            self._loaded_key = key
        return self.loaded
