"""`reverse-tui --no-ui`: the whole job with plain log lines, for SSH, nohup and scripts.

Ctrl+C (SIGINT) or SIGTERM stops after the current batch; what was measured so far is
written, the best checkpoint is kept, and the exit status is 130 or 143."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from rich.console import Console

from engine import native
from engine.checkpoint import CheckpointError, load
from engine.config import Config
from engine.evaluate import format_example
from engine.report import finish_run, write_metrics_csv
from engine.train import BatchDone, EpochDone, NonFiniteLoss, Trainer, resolve_device

from .cli import DEFAULT_CHECKPOINT


def check_writable(directory: Path) -> str | None:
    """None if a file can be created in directory (made if missing), else the reason."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as e:
        return f"{directory}: cannot write there ({e.strerror or e})"
    return None


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


def run_headless(cfg: Config, args: argparse.Namespace) -> int:
    console = Console(highlight=False, soft_wrap=True)
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    checkpoint = Path(args.checkpoint or DEFAULT_CHECKPOINT)
    out = Path(args.out)
    for d in {checkpoint.parent, out}:
        problem = check_writable(d)
        if problem:
            err.print(f"reverse-tui: {problem}")
            return 2
    device = resolve_device(cfg.device)
    t_start = time.perf_counter()
    if args.resume:
        try:
            payload = load(args.resume)
            trainer = Trainer.resume(payload, checkpoint, device, epochs=args.epochs)
        except (CheckpointError, ValueError) as e:
            err.print(f"reverse-tui: cannot resume: {e}")
            return 2
        cfg = trainer.cfg
        console.print(f"resuming {args.resume} after epoch {len(trainer.history)} of {cfg.epochs}")
    else:
        try:
            trainer = Trainer(cfg, checkpoint, device=device)
        except (OSError, ValueError) as e:
            err.print(f"reverse-tui: {e}")
            return 2
    if trainer.corpus_stats:
        console.print(trainer.corpus_stats.summary(cfg.min_len, cfg.max_len))
    n_params = sum(p.numel() for p in trainer.model.parameters())
    console.print(f"reverse-tui: {len(trainer.train_set)} train / {len(trainer.val_set)} val / "
                  f"{len(trainer.splits.test)} test sentences of {cfg.min_len}-{cfg.max_len} words, "
                  f"vocabulary {len(trainer.vocab)}, {n_params:,} parameters, device {device}"
                  + (f", {torch.get_num_threads()} threads, {native.summary()}" if device.type == "cpu" else ""))
    console.print(f"config: {json.dumps(cfg.to_dict())}")
    console.print(f"best checkpoint -> {checkpoint}")

    status, failure = 0, None
    with StopSignals() as stop:
        try:
            for ev in trainer.run():
                if isinstance(ev, EpochDone):
                    console.print(epoch_line(ev, cfg.epochs))
                if stop.signum:
                    break
        except NonFiniteLoss as e:
            failure, status = str(e), 1
        except KeyboardInterrupt:
            stop.signum = stop.signum or signal.SIGINT
        except OSError as e:
            err.print(f"reverse-tui: could not save the checkpoint {checkpoint}: {e.strerror or e}; "
                      "the previous best is unchanged")
            return 1
        train_seconds = time.perf_counter() - t_start
        if stop.signum:
            status = stop.exit_code
            console.print(f"stopped by {signal.Signals(stop.signum).name} after "
                          f"{len(trainer.history)} finished epoch(s); the best checkpoint is kept")
        if failure:
            err.print(f"reverse-tui: {failure}")
        if trainer.best_epoch is None:
            write_metrics_csv(trainer.history, out / "metrics.csv")
            err.print("reverse-tui: no epoch finished, so there is no model to evaluate; "
                      f"wrote {out / 'metrics.csv'}")
            return status or 1
        extra = {"interrupted": bool(stop.signum), "failure": failure,
                 "train_seconds": train_seconds, "threads": torch.get_num_threads(),
                 "native_kernels": native.summary(device.type)}
        control = None
        if getattr(args, "compare_no_attention", False) and not stop.signum and not failure:
            control = checkpoint.with_name(checkpoint.stem + ".no-attention.pt")
            console.print(f"\ncontrol: the same training without attention -> {control}")
            control_trainer = Trainer(replace(cfg, attention=False), control, splits=trainer.splits,
                                      device=device)
            for ev in control_trainer.run():
                if isinstance(ev, EpochDone):
                    console.print("[no attention] " + epoch_line(ev, cfg.epochs))
                if stop.signum:
                    control = None
                    break
        try:
            res = finish_run(checkpoint, trainer.splits.test, out, device, extra, control)
        except KeyboardInterrupt:
            err.print("reverse-tui: interrupted during evaluation; the best checkpoint is kept")
            return 130
        except CheckpointError as e:
            err.print(f"reverse-tui: {e}")
            return 2

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
    if res.beyond:
        console.print("beyond the training lengths: " + "  ".join(
            f"{n}: {100 * a:.0f}%" for n, a in res.beyond.per_length.items()))
    console.print(f"total {time.perf_counter() - t_start:.1f}s\n")
    for name, path in res.files.items():
        console.print(f"wrote {path}")
    return status
