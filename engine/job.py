"""One run, for both faces: build (or resume) the trainer, write the resolved configuration
to OUT/config.toml, train, train the no-attention control when asked, then evaluate the best
checkpoint and write the artefacts.

`run_job` is a generator of small events. `reverse-tui --no-ui` prints them
(tui/headless.py); the app's training worker posts them as Textual messages (tui/app.py).
Neither face trains, resumes or evaluates by itself, so the two cannot drift apart.

Under torchrun (engine/train/distributed.py) every rank runs this same generator and trains its
share; rank 0 alone writes config.toml, the checkpoints, metrics.csv, the files another
process follows the run by (engine/runs/live.py: epochs.jsonl, snapshots.jsonl, progress.json) and
the evaluation's artefacts; the others end after training (their TrainingEnded is their last
event).

Stopping: `should_stop()` is asked after every batch (the headless run's signal flag, the
app's stop key). A stopped run still evaluates its best checkpoint; a consumer that wants
nothing more (the app quitting) simply stops iterating.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from .errors import CheckpointError, NonFiniteLoss
from .impl import describe_impl, kernels_summary
from .insight import tensorboard_log
from .insight.plot_process import PlotProcess, take_prestarted
from .insight.report import EvalPhase, Results, finish_run, write_metrics_csv, write_text_atomic
from .insight.tensorboard_log import TensorBoardLog
from .insight.watch import watch_sentences
from .runs.live import LiveFiles
from .runs.status import StatusFile
from .train import distributed
from .train.checkpoint import load
from .train.config import Config
from .train.data import splits_for
from .train.events import BatchDone, EpochDone, Snapshot
from .train.threads import ThreadsByLoad, busy_note, core_left_free, default_threads, load_is_readable, most_threads
from .train.trainer import Trainer, resolve_device


def control_path(checkpoint: str | Path) -> Path:
    """Where the no-attention control's best model goes: best.pt -> best.no-attention.pt."""
    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.stem + ".no-attention" + checkpoint.suffix)


def param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def describe(e: BaseException, checkpoint: str | Path | None = None) -> str:
    """One line for the user about an exception from the engine."""
    if isinstance(e, torch.cuda.OutOfMemoryError):
        return (
            "CUDA ran out of memory; try a smaller --batch-size or --hidden-dim, "
            "or --device cpu (the best checkpoint saved before is kept)"
        )
    if isinstance(e, (NonFiniteLoss, CheckpointError, distributed.PeerLost)):
        return str(e)
    if isinstance(e, OSError):
        where = f" {e.filename}" if e.filename else f" {checkpoint}" if checkpoint else ""
        return f"could not write{where}: {e.strerror or e} (the best checkpoint saved before is kept)"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"{type(e).__name__}: {text}"[:300]


# -- events ------------------------------------------------------------------------------------
@dataclass
class Started:
    """Data, vocabulary and model are built; the first batch is next."""

    cfg: Config  # what this run trains with (a resumed run: the checkpoint's)
    device: torch.device
    checkpoint: Path
    sizes: tuple[int, int, int]  # train / val / test sentences (train: the text's own)
    vocab: int
    params: int
    threads: int
    native: str  # "C kernels: on ..." or off and why
    corpus_summary: str | None = None  # --corpus: what was read
    resumed_after: int | None = None  # --resume: epochs already trained
    history: list[EpochDone] = field(default_factory=list)  # those epochs
    busy_note: str | None = None  # several threads on cores other work keeps busy
    impl: str = "fast"  # which implementation runs: engine/model/seq2seq.py's or engine/fast's
    watch: list[list[str]] = field(default_factory=list)  # decoded as it learns (engine/insight/watch.py)
    joined: int = 0  # training sentences joined from the text's (Config.join)
    rewritten: int = 0  # training sentences rewritten as repeated words (Config.repeat_rate)
    most_threads: int | None = None  # threads by load (ThreadsByLoad): the most; `threads` is the start

    def line(self) -> str:
        """The headless run's first facts."""
        cfg = self.cfg
        train, val, test = self.sizes
        added = [f"+{self.joined} joined"] if self.joined else []
        if self.rewritten:
            added.append(f"{self.rewritten} rewritten as repeated words")
        added_text = f" ({', '.join(added)})" if added else ""
        return (
            f"reverse-tui: {train} train{added_text} / {val} val / {test} test sentences of "
            f"{cfg.min_len}-{cfg.max_len} words, vocabulary {self.vocab}, {self.params:,} "
            f"parameters, device {self.device}"
            + (f", {self.thread_words()}, {self.native}" if self.device.type == "cpu" else "")
        )

    def thread_words(self) -> str:
        if self.most_threads:
            return f"1-{self.most_threads} threads as other work leaves the cores free"
        return f"{self.threads} thread{'s' if self.threads != 1 else ''}"

    def impl_line(self) -> str:
        line = describe_impl(self.impl, self.cfg)
        if self.cfg.copy_on:
            line += "; copy mechanism on (--no-copy: off)"
        return line

    def brief(self) -> str:
        """The same facts in a few words, for the app's configuration line."""
        threads = f"1-{self.most_threads}" if self.most_threads else str(self.threads)  # by load: its range
        where = f"{self.device} x{threads}" if self.device.type == "cpu" else str(self.device)
        if self.impl == "reference":
            where += " · reference model"
        if self.cfg.copy_on:
            where += " · copy"
        if self.joined:
            where += f" · +{self.joined:,} joined"
        if self.device.type == "cpu" and not self.native.startswith("C kernels: on"):
            where += " · no C kernels"  # the slower torch-ops path: say so
        return f"vocab {self.vocab} · {self.params:,} params · {where}"


@dataclass
class ControlStarted:
    """--compare-no-attention: the same model without attention, on the same data."""

    checkpoint: Path
    epochs: int


@dataclass
class ControlEpoch:
    event: EpochDone


@dataclass
class TrainingEnded:
    """reason: "finished" (all epochs, or early stopping), "stopped", "failed"."""

    reason: str
    epochs: int  # finished epochs
    best_epoch: int | None  # None: no model was saved, nothing will be evaluated
    test_sentences: list[list[str]]
    seconds: float
    error: str | None = None  # one line: why training (or the control run) failed
    exception: BaseException | None = None


@dataclass
class Evaluating:
    """A part of the evaluation after training has ended (the test set, a length sweep, the
    files), with its time: what the faces show while the evaluation runs."""

    phase: EvalPhase


@dataclass
class Finished:
    results: Results


@dataclass
class Failed:
    """stage "start": nothing was trained (bad --resume, bad corpus); "evaluate": the best
    checkpoint could not be evaluated at all (it could not be loaded). A part of the
    evaluation that fails while the rest is written is in Finished's results.failed_parts."""

    stage: str
    error: str
    exception: BaseException | None = None


Event = (
    Started
    | BatchDone
    | EpochDone
    | Snapshot
    | ControlStarted
    | ControlEpoch
    | TrainingEnded
    | Evaluating
    | Finished
    | Failed
)


def evaluate_run(
    checkpoint: str | Path,
    out: str | Path,
    device: torch.device,
    test_sentences: list[list[str]] | None = None,
    extra: dict | None = None,
    control: Path | None = None,
    plotter: PlotProcess | None = None,
    history: list[dict] | None = None,
    on_phase=None,
    snapshots=None,
) -> Results:
    """The evaluation of a run's best checkpoint, the one way in for both faces (at the end of
    run_job, and the app's "evaluate again"): finish_run on the run's test set, or for a model
    opened from disk, its own test set rebuilt from its configuration. CheckpointError,
    OSError, ValueError: for describe() to say in one line."""
    if test_sentences is None:
        cfg = Config.from_dict(load(checkpoint)["config"])
        test_sentences = splits_for(cfg)[0].test
    return finish_run(
        checkpoint,
        test_sentences,
        out,
        device,
        extra,
        control,
        plotter,
        history=history,
        on_phase=on_phase,
        snapshots=snapshots,
    )


def records_status(job: Callable[..., Iterator[Event]]) -> Callable[..., Iterator[Event]]:
    """The job's events, unchanged, while rank 0 keeps OUT/status.json (engine/runs/status.py)
    saying that the run is going and, at its end, how it ended: what `reverse-tui runs`
    reads. A consumer that stops iterating (the app quitting) ends it as stopped."""

    @functools.wraps(job)
    def recorded(cfg: Config, checkpoint: str | Path, out: str | Path, **kwargs) -> Iterator[Event]:
        events = job(cfg, checkpoint, out, **kwargs)
        status: StatusFile | None = None
        ended: TrainingEnded | None = None
        try:
            for ev in events:
                if isinstance(ev, Started) and distributed.is_main():
                    run = kwargs.get("run") or {}
                    status = StatusFile(Path(out), run.get("name"), Path(checkpoint), run.get("group"))
                elif isinstance(ev, TrainingEnded) and status is not None:
                    ended = ev
                    evaluating = ev.best_epoch is not None and not isinstance(ev.exception, distributed.PeerLost)
                    status.training_ended(ev.reason, ev.epochs, evaluating, ev.error)
                elif isinstance(ev, Finished) and status is not None:
                    lost = [asdict(f) for f in ev.results.failed_parts]  # the rest was written
                    status.end(ended.reason if ended else "finished", evaluated=True, failed_parts=lost)
                elif isinstance(ev, Failed) and ev.stage == "evaluate" and status is not None:
                    status.end("failed", evaluated=False, error=f"evaluation: {ev.error}")
                yield ev
        except Exception as e:
            if status is not None:
                status.end("failed", evaluated=False, error=describe(e, checkpoint))
            raise
        finally:  # GeneratorExit (the consumer stopped), KeyboardInterrupt, or the end
            events.close()
            if status is not None:
                status.end(ended.reason if ended else "stopped", evaluated=False)

    return recorded


# -- the run -----------------------------------------------------------------------------------
@records_status
def run_job(
    cfg: Config,
    checkpoint: str | Path,
    out: str | Path,
    *,
    resume: dict | str | Path | None = None,
    epochs: int | None = None,
    compare_no_attention: bool = False,
    should_stop: Callable[[], bool] = lambda: False,
    extra: dict | None = None,
    run: dict | None = None,
    watch: list[str] | None = None,
    tensorboard: bool = False,
    choose_threads: bool = False,
    threads_by_load: bool = False,
) -> Iterator[Event]:
    """cfg: the command line's configuration (a resumed run keeps its checkpoint's, with
    `epochs` when given and cfg.device: one rule for both faces). extra: added to report.json.
    run: where the run's files live (engine.runs.folders.RunPaths.record()), kept in its checkpoints
    and report.json. watch: sentences to decode as it learns (engine/insight/watch.py; default a
    test sentence of typical length). tensorboard: log every epoch in OUT/tensorboard/ too
    (engine/insight/tensorboard_log.py; the caller has checked that the package is there).
    choose_threads: set the CPU threads for training once the vocabulary is known
    (engine/train/threads.py's default_threads; False: the caller's --threads stands).
    threads_by_load: with choose_threads, on a CPU and in one process, let the count follow
    the cores that other work leaves free as it trains (engine/train/threads.py's ThreadsByLoad)
    instead: the choice of a face given no --threads."""
    checkpoint, out = Path(checkpoint), Path(out)
    t0 = time.perf_counter()
    try:
        if resume is not None:  # the device: an explicit cpu/cuda now, else the checkpoint's
            payload = resume if isinstance(resume, dict) else load(resume)
            trainer = Trainer.resume(payload, checkpoint, epochs=epochs, device_name=cfg.device)
        else:
            trainer = Trainer(cfg, checkpoint, device=resolve_device(cfg.device))
        device = trainer.device
        governor = None
        if choose_threads and device.type == "cpu":  # the output layer's size is known now
            threads = default_threads(trainer.cfg.hidden_dim, len(trainer.vocab))
            torch.set_num_threads(distributed.threads_per_process(threads) if distributed.current() else threads)
            if threads_by_load and not distributed.current() and load_is_readable():  # else the fixed choice
                governor = ThreadsByLoad(most_threads())  # starts on one thread
    except Exception as e:
        text = str(e) if isinstance(e, (ValueError, CheckpointError)) else describe(e)
        yield Failed("start", f"cannot resume: {text}" if resume is not None else text, e)
        return
    cfg = trainer.cfg
    trainer.run_record = run
    if not trainer.watch:  # a resumed run goes on watching its own sentences
        try:
            trainer.watch = watch_sentences(watch, trainer.splits.test)
        except ValueError as e:
            yield Failed("start", str(e), e)
            return
    try:  # the resolved configuration, so that `--config OUT/config.toml` repeats the run
        if distributed.is_main():  # data-parallel: rank 0 writes
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(
                out / "config.toml",
                cfg.to_toml(
                    "reverse-tui's configuration of this run; repeat it with\n"
                    f"  reverse-tui --config {out / 'config.toml'}   (flags given as well override it)"
                ),
            )
        # OUT/tensorboard/ (the control run's in a folder inside: TensorBoard shows them side by side)
        board = TensorBoardLog(out / tensorboard_log.FOLDER) if tensorboard and distributed.is_main() else None
    except OSError as e:
        yield Failed("start", describe(e), e)
        return
    except ImportError as e:  # the command line checks first; a caller of its own may not have
        yield Failed("start", tensorboard_log.INSTALL, e)
        return
    started = Started(
        cfg,
        device,
        checkpoint,
        (len(trainer.splits.train), len(trainer.val_set), len(trainer.splits.test)),
        len(trainer.vocab),
        param_count(trainer.model),
        torch.get_num_threads(),
        kernels_summary(device.type),
        trainer.corpus_stats.summary(cfg.min_len, cfg.max_len) if trainer.corpus_stats else None,
        len(trainer.history) if resume is not None else None,
        [EpochDone.from_dict(h) for h in trainer.history],
        # measured here, in the worker: it watches the machine for 0.2 s
        busy_note(torch.get_num_threads()) if device.type == "cpu" else None,
        trainer.model.impl,
        [list(w) for w in trainer.watch],
        len(trainer.joined),
        trainer.rewritten,
        most_threads=governor.most if governor is not None else None,
    )
    # what a follower reads (engine/runs/follow.py): rank 0 writes it, as it writes the rest
    live = None
    if distributed.is_main():
        live = LiveFiles(
            out,
            started.brief(),
            trainer.history,
            [s.as_dict() for s in trainer.snapshots],
            read_losses=lambda losses: torch.stack(list(losses)).tolist(),  # one read of them all
        )
    yield started

    # the process that draws the PNGs at the end (engine/insight/plot_process.py): it imports
    # matplotlib and seaborn on the core that training leaves free, from the end of the first
    # epoch, when the face has drawn its screens. Training on every core leaves none free: its
    # imports stalled a two-thread epoch by 1.7 s (each op's threads wait for the one the
    # import held up), so that run starts it when training ends, beside the evaluation. A run
    # that follows the load has it from the command line, started before torch's import
    # (prestart), or starts it now, while it trains on one thread and waits for it.
    plotter: PlotProcess | None = take_prestarted()
    group = distributed.current()
    plot_early = core_left_free(device, group.local_world if group else 1)
    if plotter is None and governor is not None:
        plotter = PlotProcess()
    reason, error, exception = "finished", None, None
    try:
        for ev in trainer.run():
            if isinstance(ev, Snapshot):  # rank 0's alone: not a batch, no stop check (a collective)
                if board:
                    board.add_snapshot(ev)
                if live is not None:
                    live.snapshot(ev.as_dict())
                yield ev
                continue
            if isinstance(ev, BatchDone):
                if governor is not None:
                    governor.after_batch()
                if live is not None:
                    live.batch(ev.epoch, ev.batch, ev.batches, ev.loss)
            if isinstance(ev, EpochDone) and live is not None:  # rank 0's
                if plotter is None and plot_early:
                    plotter = PlotProcess()
                # the log grows with the run: a run killed outright still has every epoch it finished
                write_metrics_csv(trainer.history, out / "metrics.csv", trainer.best_epoch)
                live.epoch(ev.as_dict())
                if board:
                    board.add_epoch(ev)
            yield ev
            if should_stop():  # after every batch
                reason = "stopped"
                break
    except KeyboardInterrupt:  # a second Ctrl+C: stop now, still evaluate the best
        reason = "stopped"
    except Exception as e:
        reason, error, exception = "failed", describe(e, checkpoint), e
        distributed.abandon(e)  # data-parallel: a failure of this rank alone ends the others' wait
    finally:
        if live is not None:
            live.close()

    control = None
    if reason == "finished" and compare_no_attention and cfg.attention:
        path = control_path(checkpoint)
        yield ControlStarted(path, cfg.epochs)
        control_board = None
        try:
            # uniform weights have no score: the control is the same whatever --score says
            c = Trainer(replace(cfg, attention=False, score="additive"), path, splits=trainer.splits, device=device)
            control_board = TensorBoardLog(board.folder / tensorboard_log.CONTROL_FOLDER) if board else None
            for ev in c.run():
                if isinstance(ev, EpochDone):
                    if control_board:
                        control_board.add_epoch(ev)
                    yield ControlEpoch(ev)
                if should_stop():
                    reason = "stopped"
                    break
            else:
                control = path
        except KeyboardInterrupt:
            reason = "stopped"
        except Exception as e:  # the main model stands; the comparison is missing, and why
            error, exception = f"control run: {describe(e, path)}", e
            distributed.abandon(e)
        finally:
            if control_board:
                control_board.close()
    if board:
        board.close()

    seconds = time.perf_counter() - t0
    yield TrainingEnded(
        reason, len(trainer.history), trainer.best_epoch, trainer.splits.test, seconds, error, exception
    )
    if not distributed.is_main():  # data-parallel: rank 0 evaluates and writes
        return
    # nothing to evaluate, or torchrun is tearing the run down (a process was lost: no
    # half-written artefacts); what was measured is still written
    if trainer.best_epoch is None or isinstance(exception, distributed.PeerLost):
        if plotter is not None:
            plotter.close()
        try:
            write_metrics_csv(trainer.history, out / "metrics.csv", trainer.best_epoch)
        except OSError:
            pass
        return
    if plotter is None:  # a run on every core, or a resumed one stopped before an epoch ended
        plotter = PlotProcess()
    extra = {
        "interrupted": reason == "stopped",
        "failure": error,
        "train_seconds": seconds,
        "threads": torch.get_num_threads() if governor is None else governor.most,
        # governed: (batches trained, threads from then on) at each change, from one thread
        "threads_by_load": governor.changes if governor is not None else None,
        "native_kernels": kernels_summary(device.type),
        "run": (run or {}).get("name"),
        "group": (run or {}).get("group"),  # the seed group it is one run of (--seeds)
        "control_checkpoint": str(control) if control else None,
        **(extra or {}),
    }
    # the evaluation runs in a thread of its own so that each part it finishes reaches the
    # face at once, as an Evaluating event; every epoch trained goes to its files, not only
    # those up to the best one its checkpoint holds
    news: queue.Queue = queue.Queue()
    outcome: dict = {}

    def evaluate() -> None:
        try:
            outcome["results"] = evaluate_run(
                checkpoint,
                out,
                device,
                trainer.splits.test,
                extra,
                control,
                plotter,
                history=trainer.history,
                on_phase=news.put,
                snapshots=trainer.snapshots,
            )
        except BaseException as e:  # handed to the generator's thread below
            outcome["error"] = e
        news.put(None)

    threading.Thread(target=evaluate, name="evaluate-run", daemon=True).start()
    while (phase := news.get()) is not None:
        yield Evaluating(phase)
    if "error" in outcome:
        e = outcome["error"]
        if isinstance(e, KeyboardInterrupt):
            raise e
        yield Failed("evaluate", describe(e), e)
        return
    yield Finished(outcome["results"])
