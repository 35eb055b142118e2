"""Which screen the app opens on, worked out from the command line alone: a plain function of
the configuration and options (no Textual), so every way of starting is tested without a
screen. What it returns says what to show; the app does the showing (tui/app.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import FollowError, RunError
from engine.runs.folders import RunPaths, find_checkpoint
from engine.runs.follow import is_running, resolve_run
from engine.train.config import Config
from engine.train.trainer import resumed_config

from .common import RunOptions, check_writable, paths_for, writable_folder


class CannotStart(Exception):
    """The app cannot open as asked (a bad --resume, an unwritable folder); one line."""


@dataclass(frozen=True)
class FollowRun:
    """A run another process trains (`reverse-tui watch RUN`, or --checkpoint naming a run
    going on): followed on the training screen from its files."""

    folder: Path


@dataclass(frozen=True)
class OpenModel:
    """--checkpoint names a model that exists: opened on the probe screen (or, when it
    cannot be read, the training screen says why)."""

    checkpoint: Path
    out: Path | None  # --out; None: the run's own folder, as its checkpoint records it


@dataclass(frozen=True)
class ResumeRun:
    """--resume: the first run goes on with that run, in its folders."""

    paths: RunPaths  # taken: its folders made
    payload: dict  # the checkpoint resumed from
    cfg: Config  # its configuration, on show until the run starts
    autostart: bool  # False: the training screen waits for n


@dataclass(frozen=True)
class NewRun:
    """A run of the command line's configuration, in the command line's files."""

    paths: RunPaths  # checked writable, nothing made yet: the run takes them when it starts
    autostart: bool  # False: the training screen waits for n


Start = FollowRun | OpenModel | ResumeRun | NewRun


def decide_start(cfg: Config, opts: RunOptions, autostart: bool = True, follow: Path | None = None) -> Start:
    """What the app opens on. CannotStart: one line, before anything is on screen."""
    if follow is not None:
        return FollowRun(Path(follow))
    if opts.checkpoint is not None and not opts.resume:
        try:
            folder = resolve_run(opts.checkpoint)
        except FollowError:
            folder = None
        if folder is not None and is_running(folder):
            return FollowRun(folder)
    if opts.resume:
        try:
            paths, payload = paths_for(opts)
        except RunError as e:
            raise CannotStart(str(e)) from None
        # the job works the resumed configuration out again itself when the run starts
        return ResumeRun(paths, payload, resumed_config(payload, opts.epochs, cfg.device), autostart)
    if opts.checkpoint is not None:
        try:  # a model that exists (a file, a run's name or folder, latest) opens
            return OpenModel(find_checkpoint(opts.checkpoint), Path(opts.out) if opts.out else None)
        except RunError:
            pass  # a path to train to
    try:  # the first run's files, checked now (nothing written), taken when it starts
        first = paths_for(opts, reserve=False)[0]
    except RunError as e:
        raise CannotStart(str(e)) from None
    for d in {writable_folder(first.checkpoint.parent), writable_folder(first.out)}:
        problem = check_writable(d)
        if problem:
            raise CannotStart(problem)
    return NewRun(first, autostart)
