"""`reverse-tui --no-ui`: the whole job with plain log lines, for SSH, nohup and scripts. It
prints the events of engine.job.run_job, the same run the app shows.

Ctrl+C (SIGINT) or SIGTERM stops after the current batch; what was measured so far is
written, the best checkpoint is kept, and the exit status is 130 or 143."""
from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path

from rich.console import Console

from engine.checkpoint import CheckpointError
from engine.config import Config
from engine.evaluate import format_example
from engine.lengths import describe_limit
from engine.job import (ControlEpoch, ControlStarted, Failed, Finished, Started, TrainingEnded,
                        run_job)
from engine.train import EpochDone

from .common import DEFAULT_CHECKPOINT, check_writable


def epoch_line(ev: EpochDone, epochs: int) -> str:
    mark = "  * saved best" if ev.best else ""
    return (f"epoch {ev.epoch:>3}/{epochs}  train loss {ev.train_loss:.4f}  val loss {ev.val_loss:.4f}  "
            f"val exact match {100 * ev.val_exact_match:5.1f}%  {ev.seconds:5.1f}s  "
            f"grad norm {ev.grad_norm:.2f} (max {ev.grad_norm_max:.2f}){mark}")


class StopSignals:
    """Turns the first SIGINT/SIGTERM into a flag checked after every batch."""

    def __init__(self):
        self.signum: int | None = None

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
        return 128 + self.signum if self.signum else 0


def run_headless(cfg: Config, args: argparse.Namespace, first_line: str | None = None) -> int:
    """first_line: said before anything else (why a plain `reverse-tui` runs headless)."""
    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if first_line:
        console.print(first_line)
    import torch
    from engine.threads import default_threads
    torch.set_num_threads(getattr(args, "threads", None) or default_threads(cfg.hidden_dim))
    checkpoint = Path(getattr(args, "checkpoint", None) or DEFAULT_CHECKPOINT)
    out = Path(args.out)
    for d in {checkpoint.parent, out}:
        problem = check_writable(d)
        if problem:
            err.print(f"reverse-tui: {problem}")
            return 2
    t_start = time.perf_counter()
    resume = getattr(args, "resume", None)
    status, evaluating, res = 0, False, None
    with StopSignals() as stop:
        job = run_job(cfg, checkpoint, out, resume=resume, epochs=getattr(args, "epochs", None),
                      compare_no_attention=getattr(args, "compare_no_attention", False),
                      should_stop=lambda: stop.signum is not None)
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
                console.print(epoch_line(ev, cfg.epochs))
            elif isinstance(ev, Started):
                cfg = ev.cfg
                if ev.resumed_after is not None:
                    console.print(f"resuming {resume} after epoch {ev.resumed_after} of {cfg.epochs}")
                if ev.corpus_summary:
                    console.print(ev.corpus_summary)
                console.print(ev.line())
                if ev.busy_note:
                    console.print(ev.busy_note)
                console.print(f"config: {json.dumps(cfg.to_dict())}")
                console.print(f"best checkpoint -> {checkpoint}")
            elif isinstance(ev, ControlStarted):
                console.print(f"\ncontrol: the same training without attention -> {ev.checkpoint}")
            elif isinstance(ev, ControlEpoch):
                console.print("[no attention] " + epoch_line(ev.event, cfg.epochs))
            elif isinstance(ev, TrainingEnded):
                if ev.reason == "stopped":
                    status = stop.exit_code or 130
                    console.print(f"stopped by {signal.Signals(stop.signum or signal.SIGINT).name} after "
                                  f"{ev.epochs} finished epoch(s); the best checkpoint is kept")
                if ev.error:
                    err.print(f"reverse-tui: {ev.error}")
                    if ev.reason == "failed":
                        status = status or 1
                if ev.best_epoch is None:
                    err.print("reverse-tui: no epoch finished, so there is no model to evaluate; "
                              f"wrote {out / 'metrics.csv'}")
                    return status or 1
                evaluating = True
            elif isinstance(ev, Failed):
                err.print(f"reverse-tui: {ev.error}")
                return 2 if ev.stage == "start" or isinstance(ev.exception, CheckpointError) else 1
            elif isinstance(ev, Finished):
                res = ev.results
    if res is None:
        return status or 1

    ev = res.evaluation
    console.print(f"\nbest epoch {res.report['best_epoch']} (val loss {res.report['best_val_loss']:.4f}), "
                  f"reloaded from {checkpoint}")
    console.print(f"\n10 examples from the test set:\n")
    for r in res.examples(10):
        console.print(format_example(r) + "\n")
    console.print(f"test exact match: {100 * ev.exact_match:.2f}% "
                  f"({sum(r.match for r in ev.results)}/{len(ev.results)}), "
                  f"evaluated in {ev.seconds:.2f}s")
    console.print("by length: " + "  ".join(f"{n}: {100 * a:.1f}%" for n, a in ev.per_length.items()))
    if res.report["beam"]:
        b = res.report["beam"]
        console.print(f"beam search (width {b['width']}): {100 * b['exact_match']:.2f}% "
                      f"in {b['seconds']:.2f}s; greedy above")
    console.print(f"with uniform attention instead: {100 * res.uniform_exact_match:.2f}%")
    console.print(f"unseen words (1-3 per sentence): {100 * res.unseen['with_replacement']:.2f}% with <unk> "
                  f"replacement, {100 * res.unseen['without_replacement']:.2f}% without")
    console.print("beyond the training lengths, known words: " + "  ".join(
        f"{n}: {100 * a:.0f}%" for n, a in res.known.per_length.items()))
    console.print("every word unknown: " + "  ".join(
        f"{n}: {100 * a:.0f}%" for n, a in res.unknown.per_length.items()))
    console.print(describe_limit(res.known, "known words past the training lengths"))
    console.print(describe_limit(res.unknown, "every word unknown"))
    console.print(f"total {time.perf_counter() - t_start:.1f}s\n")
    for name, path in res.files.items():
        console.print(f"wrote {path}")
    return status
