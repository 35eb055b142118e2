"""`reverse-tui --no-ui`: the whole job with plain log lines, for SSH, nohup and scripts. It
prints the events of engine.job.run_job, the same run the app shows.

Ctrl+C (SIGINT) or SIGTERM stops after the current batch; what was measured so far is
written, the best checkpoint is kept, and the exit status is 130 or 143.

Under torchrun every process runs this; rank 0 prints and writes, the others print only
their errors (prefixed with their rank), and all of them stop after the same batch when any
one is signalled (engine/train/distributed.py)."""

from __future__ import annotations

import json
import signal
import time

from rich.console import Console

from engine.errors import CheckpointError, RunError
from engine.insight.evaluate import format_example
from engine.insight.lengths import REPEATED_LENGTHS, describe_limit
from engine.insight.report import PART_NAMES, Results
from engine.job import ControlEpoch, ControlStarted, Evaluating, Failed, Finished, Started, TrainingEnded, run_job
from engine.runs.folders import RunPaths, remove_run
from engine.train import distributed
from engine.train.config import Config
from engine.train.events import EpochDone

from .common import RunOptions, check_writable, paths_for
from .epoch_lines import EpochLines

CONTROL_PREFIX = "[no attn] "


class StopSignals:
    """Turns the first SIGINT/SIGTERM into a flag checked after every batch."""

    def __init__(self):
        self.signum: int | None = None  # the first signal this process received
        self.agreed: int | None = None  # torchrun: the largest any process received

    @property
    def requested(self) -> int | None:
        return self.signum or self.agreed

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for s, h in self._old.items():
            signal.signal(s, h)

    @property
    def exit_code(self) -> int:
        return 128 + self.requested if self.requested else 0


def run_headless(cfg: Config, opts: RunOptions, first_line: str | None = None) -> int:
    """first_line: said before anything else (why a plain `reverse-tui` runs headless)."""
    # the run's folders first: a run that would write over another is refused before anything
    # is written (under torchrun by rank 0, whose exit 2 ends the others)
    main = not distributed.launched() or distributed.env_rank() == 0
    try:
        paths, payload = paths_for(opts, reserve=main)
    except RunError as e:
        if main:
            Console(stderr=True, highlight=False, soft_wrap=True, markup=False).print(f"reverse-tui: {e}")
        return 2
    if not distributed.launched():
        return _run(cfg, opts, first_line, paths, payload)
    # torchrun: join the other processes first (a bad setting fails on every rank alike)
    try:
        if cfg.batch_size < distributed.env_world():
            raise ValueError(
                f"--batch-size {cfg.batch_size} is the global batch; with {distributed.env_world()} "
                f"processes it must be at least {distributed.env_world()}"
            )
        group = distributed.init(cfg.device, opts.dist_timeout or distributed.DEFAULT_TIMEOUT_S)
    except ValueError as e:
        if distributed.env_rank() == 0:
            Console(stderr=True, highlight=False, soft_wrap=True, markup=False).print(f"reverse-tui: {e}")
        distributed.shutdown(forget=True)
        return 2
    try:
        return _run(cfg, opts, first_line, paths, payload, group)
    finally:
        group.wait_for_main()  # rank 0 is done (or gone) before any rank leaves
        distributed.shutdown(forget=True)


def _run(
    cfg: Config,
    opts: RunOptions,
    first_line: str | None,
    paths: RunPaths,
    payload: dict | None,
    group: distributed.Group | None = None,
) -> int:
    main = group is None or group.is_main
    # plain text, no markup: "[no attention] epoch ..." and paths in [brackets] print as written
    console = Console(highlight=False, soft_wrap=True, markup=False, quiet=not main)  # torchrun: rank 0 speaks
    err = Console(stderr=True, highlight=False, soft_wrap=True, markup=False)
    who = "reverse-tui" if group is None else f"reverse-tui (rank {group.rank})"
    if first_line:
        console.print(first_line)
    import torch

    from engine.train.threads import default_threads

    threads = default_threads(cfg.hidden_dim)
    if group is not None:  # N processes on one box share its cores
        threads = distributed.threads_per_process(threads)
    torch.set_num_threads(opts.threads or threads)
    checkpoint, out = paths.checkpoint, paths.out
    for d in {checkpoint.parent, out} if main else ():
        problem = check_writable(d)
        if problem:
            err.print(f"reverse-tui: {problem}")
            return 2
    t_start = time.perf_counter()
    resume = opts.resume
    status, evaluating, res = 0, False, None
    told: set[str] = set()  # the parts whose failure a phase line already said
    table: EpochLines | None = None  # the epochs' columns, set once the run has started
    with StopSignals() as stop:

        def should_stop() -> bool:  # after every batch; torchrun: every rank stops at the same one
            if group is None:
                return stop.signum is not None
            # decided on the agreed value alone: a signal that lands during the all-reduce
            # counts at the next batch, on every rank
            stop.agreed = group.agree_stop(stop.signum)
            return stop.agreed is not None

        extra = None if group is None else {"processes": group.world, "backend": group.backend}
        job = run_job(
            cfg,
            checkpoint,
            out,
            resume=payload,
            epochs=opts.epochs,
            compare_no_attention=opts.compare_no_attention,
            should_stop=should_stop,
            extra=extra,
            run=paths.record(),
            watch=list(opts.watch),
            tensorboard=opts.tensorboard,
            choose_threads=opts.threads is None,
            threads_by_load=opts.threads is None,
        )
        while True:
            try:
                ev = next(job)
            except StopIteration:
                break
            except KeyboardInterrupt:  # a second signal
                if evaluating:
                    err.print("reverse-tui: interrupted during evaluation; the best checkpoint is kept")
                    return 130
                stop.signum = stop.signum or signal.SIGINT
                continue
            if isinstance(ev, EpochDone):
                console.print(table.line(ev))
            elif isinstance(ev, Started):
                cfg = ev.cfg
                if ev.resumed_after is not None:
                    console.print(f"resuming {resume} after epoch {ev.resumed_after} of {cfg.epochs}")
                if ev.corpus_summary:
                    console.print(ev.corpus_summary)
                console.print(ev.line())
                console.print(ev.impl_line())
                if group is not None:
                    console.print(group.describe(cfg.batch_size))
                if ev.busy_note:
                    console.print(ev.busy_note)
                console.print(f"config: {json.dumps(cfg.to_dict())}")
                if paths.name:
                    console.print(f"run {paths.name}: models -> {checkpoint.parent}/, files -> {out}/")
                console.print(f"best checkpoint -> {checkpoint}")
                for words in ev.watch:
                    console.print(f"watching the attention of: {' '.join(words)}")
                table = EpochLines(cfg.epochs, cuda=ev.device.type == "cuda")
                console.print("\n".join(table.header()))
            elif isinstance(ev, ControlStarted):
                console.print(f"\ncontrol: the same training without attention -> {ev.checkpoint}")
                table = EpochLines(ev.epochs, cuda=table.cuda, prefix=CONTROL_PREFIX)
                console.print("\n".join(table.header()))
            elif isinstance(ev, ControlEpoch):
                console.print(table.line(ev.event))
            elif isinstance(ev, TrainingEnded):
                if ev.reason == "stopped":
                    status = stop.exit_code or 130
                    console.print(
                        f"stopped by {signal.Signals(stop.requested or signal.SIGINT).name} after "
                        f"{ev.epochs} finished epoch(s); the best checkpoint is kept"
                    )
                if ev.error:
                    err.print(f"{who}: {ev.error}")
                    if ev.reason == "failed":
                        status = status or 1
                if not main:
                    continue  # rank 0 evaluates and writes
                if ev.best_epoch is None:
                    err.print(
                        f"reverse-tui: no epoch finished, so there is no model to evaluate; wrote {out / 'metrics.csv'}"
                    )
                    return status or 1
                evaluating = True
                console.print(
                    f"\ntraining ended after {ev.seconds:.1f}s; evaluating the best model (epoch {ev.best_epoch}):"
                )
            elif isinstance(ev, Evaluating):
                console.print("  " + ev.phase.line())
                if ev.phase.error is not None:
                    told.add(ev.phase.name)
            elif isinstance(ev, Failed):
                if ev.stage == "start" and main and payload is None:
                    remove_run(paths)  # nothing was written into its folders: the name is free again
                err.print(f"{who}: {ev.error}")
                return 2 if ev.stage == "start" or isinstance(ev.exception, CheckpointError) else 1
            elif isinstance(ev, Finished):
                res = ev.results
    if res is None:
        return (status or 1) if main else status
    print_results(console, res, checkpoint)
    for part in res.failed_parts:  # one line each, those the phases did not say already
        if PART_NAMES.get(part.part, part.part) not in told:
            err.print(f"reverse-tui: {part.line()}")
    console.print(f"total {time.perf_counter() - t_start:.1f}s\n")
    for path in res.files.values():
        console.print(f"wrote {path}")
    return status


def print_results(console: Console, res: Results, checkpoint) -> None:
    """The evaluation's figures; those of a part that failed are left out (said after)."""
    console.print(f"\nbest epoch {res.best_epoch} (val loss {res.best_val_loss:.4f}), reloaded from {checkpoint}")
    ev = res.evaluation
    if ev is not None:
        console.print("\n10 examples from the test set:\n")
        for r in res.examples(10):
            console.print(format_example(r) + "\n")
        console.print(
            f"test exact match: {100 * ev.exact_match:.2f}% "
            f"({sum(r.match for r in ev.results)}/{len(ev.results)}), "
            f"evaluated in {ev.seconds:.2f}s"
        )
        console.print("by length: " + "  ".join(f"{n}: {100 * a:.1f}%" for n, a in ev.per_length.items()))
    if res.notebook_test:
        nb = res.notebook_test
        console.print(
            f"the notebook's test set (3-10 words): {100 * nb.exact_match:.2f}% ({nb.correct}/{nb.sentences})"
        )
    if res.beam:
        console.print(
            f"beam search (width {res.beam.width}): {100 * res.beam.exact_match:.2f}% "
            f"in {res.beam.seconds:.2f}s; greedy above"
        )
    if res.uniform_exact_match is not None:
        console.print(f"with uniform attention instead: {100 * res.uniform_exact_match:.2f}%")
    unseen = res.unseen
    if unseen.complete:
        console.print(
            f"unseen words (1-3 per sentence): {100 * unseen.with_replacement:.2f}% with <unk> "
            f"replacement, {100 * unseen.without_replacement:.2f}% without"
        )
    faith = res.faithfulness
    if faith and faith["top_knockout_changes"] is not None:
        console.print(
            f"knock-outs ({faith['word_steps']} word steps): a step's word changes "
            f"{100 * faith['top_knockout_changes']:.1f}% of the time when the word it attends to most is knocked "
            f"out, {100 * faith['random_knockout_changes']:.1f}% for a random other word; a pin on another word "
            f"makes it that word {100 * (faith['pin_emits'] or 0):.1f}%"
        )
    if res.known is not None:
        console.print(
            "beyond the training lengths, known words: "
            + "  ".join(f"{n}: {100 * a:.0f}%" for n, a in res.known.per_length.items())
        )
    if res.unknown is not None:
        console.print(
            "every word unknown: " + "  ".join(f"{n}: {100 * a:.0f}%" for n, a in res.unknown.per_length.items())
        )
    if res.repeated is not None:
        ev, (a, b) = res.repeated.evaluation, REPEATED_LENGTHS
        console.print(
            f"repeated words (2-3 distinct words, {a}-{b} words long): {100 * ev.exact_match:.2f}% "
            f"({sum(r.match for r in ev.results)}/{len(ev.results)})"
        )
    if res.known is not None:
        console.print(describe_limit(res.known, "known words past the training lengths"))
    if res.unknown is not None:
        console.print(describe_limit(res.unknown, "every word unknown"))
