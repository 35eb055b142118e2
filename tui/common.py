"""What the command line, the headless run and the app share, importing none of them (and
not textual): the check that a folder can be written."""
from __future__ import annotations

import tempfile
from pathlib import Path


def check_writable(directory: Path) -> str | None:
    """None if a file can be created in directory (made if missing), else the reason."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-"):
            pass
    except OSError as e:
        return f"{directory}: cannot write there ({e.strerror or e})"
    return None


def paths_for(args, reserve: bool = True):
    """(RunPaths, resume payload or None) for the command line's run: a new run's folders
    (engine.runs.new_run), or with --resume the resumed run's own. RunError: one line, with
    nothing written. reserve=False works the paths out without making anything (torchrun's
    other processes, which write nothing)."""
    from engine.checkpoint import CheckpointError, load
    from engine.runs import RunError, find_checkpoint, new_run, resumed_run

    checkpoint, out = getattr(args, "checkpoint", None), getattr(args, "out", None)
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    out = Path(out) if out is not None else None
    try:
        if getattr(args, "resume", None) is not None:
            last = find_checkpoint(args.resume, want_last=True)
            try:
                payload = load(last)
            except CheckpointError as e:
                raise RunError(f"cannot resume: {e}") from None
            return resumed_run(last, payload.get("run"), checkpoint, out, reserve=reserve), payload
        return new_run(getattr(args, "name", None), checkpoint, out,
                       overwrite=bool(getattr(args, "overwrite", False)), reserve=reserve), None
    except OSError as e:
        where = e.filename or checkpoint or out or "checkpoints/, runs/"
        raise RunError(f"{where}: cannot write there ({e.strerror or e})") from None


def writable_folder(folder: Path) -> Path:
    """The folder to test for writing before a run takes its own there: a run's folder
    (checkpoints/NAME) is made when the run starts, so its parent stands in for it."""
    from engine.runs import CHECKPOINTS, RUNS
    return folder.parent if folder.parent in (CHECKPOINTS, RUNS) and not folder.exists() else folder


def opened_run_folder(checkpoint: Path) -> Path:
    """Where a model opened from disk writes what the app makes of it (an evaluation again, a
    saved heatmap): its run's folder as its checkpoint recorded it, else runs/<its name>."""
    from engine.checkpoint import CheckpointError, load
    from engine.runs import BEST, LEGACY_CHECKPOINT, RUNS
    try:
        record = load(checkpoint).get("run")
    except CheckpointError:
        record = None
    if isinstance(record, dict) and isinstance(record.get("out"), str):
        return Path(record["out"])
    if checkpoint == LEGACY_CHECKPOINT and (RUNS / "latest").is_dir():
        return RUNS / "latest"  # where earlier versions wrote that model's files
    return RUNS / (checkpoint.parent.name if checkpoint.name == BEST else checkpoint.stem)
