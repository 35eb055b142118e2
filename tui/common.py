"""What the command line, the headless run and the app share, importing none of them (and
not textual): the check that a folder can be written, and whether a stream is a terminal."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True)
class RunOptions:
    """What the command line says besides the model's configuration: where the run's files
    go and how it runs. Both faces take a Config and one of these."""

    name: str | None = None  # --name: checkpoints/NAME/, runs/NAME/
    checkpoint: Path | None = None  # --checkpoint: where the best model goes (or, in the app, a model to open)
    out: Path | None = None  # --out
    overwrite: bool = False  # --overwrite
    resume: str | None = None  # --resume: a run's name, folder or best.last.pt
    epochs: int | None = None  # --epochs as given: a resumed run trains up to it
    compare_no_attention: bool = False
    threads: int | None = None  # --threads
    dist_timeout: float | None = None  # --dist-timeout, under torchrun
    watch: tuple[str, ...] = ()  # --watch: sentences decoded as it learns
    tensorboard: bool = False  # --tensorboard: OUT/tensorboard/ (engine/insight/tensorboard_log.py)
    group: str | None = None  # the seed group this run is one of (tui/seeds.py)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        given = {
            f.name: getattr(args, f.name, None) if f.type != "bool" else bool(getattr(args, f.name, False))
            for f in fields(cls)
        }
        return cls(**{**given, "watch": tuple(given["watch"] or ())})


def check_writable(directory: Path) -> str | None:
    """None if a file can be created in directory (made if missing), else the reason."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as e:
        return f"{directory}: cannot write there ({e.strerror or e})"
    return None


def paths_for(opts: RunOptions, reserve: bool = True):
    """(RunPaths, resume payload or None) for the command line's run: a new run's folders
    (engine.runs.folders.new_run), or with --resume the resumed run's own. RunError: one line, with
    nothing written. reserve=False works the paths out without making anything (torchrun's
    other processes, which write nothing)."""
    from engine.errors import CheckpointError, RunError
    from engine.runs.folders import find_checkpoint, new_run, resumed_run
    from engine.train.checkpoint import load

    checkpoint, out = opts.checkpoint, opts.out
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    out = Path(out) if out is not None else None
    try:
        if opts.resume is not None:
            last = find_checkpoint(opts.resume, want_last=True)
            try:
                payload = load(last)
            except CheckpointError as e:
                raise RunError(f"cannot resume: {e}") from None
            return resumed_run(last, payload.get("run"), checkpoint, out, reserve=reserve), payload
        return new_run(opts.name, checkpoint, out, overwrite=opts.overwrite, reserve=reserve, group=opts.group), None
    except OSError as e:
        where = e.filename or checkpoint or out or "checkpoints/, runs/"
        raise RunError(f"{where}: cannot write there ({e.strerror or e})") from None


def writable_folder(folder: Path) -> Path:
    """The folder to test for writing before a run takes its own there: a run's folder
    (checkpoints/NAME) is made when the run starts, so its parent stands in for it."""
    from engine.runs.folders import CHECKPOINTS, RUNS

    return folder.parent if folder.parent in (CHECKPOINTS, RUNS) and not folder.exists() else folder


def opened_run_folder(checkpoint: Path, record: dict | None) -> Path:
    """Where a model opened from disk writes what the app makes of it (an evaluation again, a
    saved heatmap): its run's folder as its checkpoint recorded it (record: the checkpoint's
    "run"), else runs/<its name>."""
    from engine.runs.folders import BEST, LEGACY_CHECKPOINT, RUNS

    if isinstance(record, dict) and isinstance(record.get("out"), str):
        return Path(record["out"])
    if checkpoint == LEGACY_CHECKPOINT and (RUNS / "latest").is_dir():
        return RUNS / "latest"  # where earlier versions wrote that model's files
    return RUNS / (checkpoint.parent.name if checkpoint.name == BEST else checkpoint.stem)


def isatty(f) -> bool:
    """f is a terminal (False for a stream closed or replaced by something without isatty)."""
    try:
        return f is not None and f.isatty()
    except (AttributeError, ValueError):
        return False


def free_numbered_path(folder: Path, stem: str, suffix: str = ".png") -> Path:
    """STEM-1.png, STEM-2.png, ...: the first name not taken, taken at once (O_EXCL, an empty
    file the writer then replaces), so that a picture never replaces another."""
    for k in range(1, 100_000):
        path = Path(folder) / f"{stem}-{k}{suffix}"
        try:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        return path
    raise OSError(f"{folder}: no free {stem}-N{suffix} name")
