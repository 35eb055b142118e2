"""Where a run's files go, so that no run replaces another's.

Each run has a name (`--name`, else a sortable timestamp such as 20261203-0945-07) and two
folders: its models in checkpoints/<name>/ (best.pt, best.last.pt) and its artefacts in
runs/<name>/ (config.toml, metrics.csv, the PNGs, analysis.md, report.json). `latest` in
each of the two points at the newest run: a relative symlink, or a one-line file holding the
name where the file system has no links.

A name is taken by creating its folders with mkdir, which fails when another process made
them first: two runs started in the same second get `<stamp>` and `<stamp>-2`. An explicit
--checkpoint FILE or --out DIR is used as given, but a run never writes into another run's
files unless told to (--overwrite): every check here happens before anything is written.

A model is found from a run's name, either of its folders, `latest`, or a checkpoint file;
the flat checkpoints/best.pt of earlier versions still loads.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunError

CHECKPOINTS = Path("checkpoints")
RUNS = Path("runs")
LATEST = "latest"
BEST = "best.pt"
LEGACY_CHECKPOINT = CHECKPOINTS / BEST  # where earlier versions kept their one model
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
# what makes a folder a run's: any of these means it holds another run's results
ARTEFACTS = (
    "report.json",
    "metrics.csv",
    "config.toml",
    "analysis.md",
    "attention_heatmap.png",
    "loss_curve.png",
    "status.json",
    "epochs.jsonl",
    "snapshots.jsonl",
    "progress.json",
)


def last_path(checkpoint: Path) -> Path:
    """Where a run's latest full state goes beside its best model: best.pt -> best.last.pt."""
    return checkpoint.with_name(checkpoint.stem + ".last" + checkpoint.suffix)


def best_path(last: Path) -> Path:
    """The best model beside a latest-state file: best.last.pt -> best.pt (else itself)."""
    stem = last.stem
    return last.with_name(stem[: -len(".last")] + last.suffix) if stem.endswith(".last") else last


@dataclass(frozen=True)
class RunPaths:
    """The files of one run. name: None for a run given only explicit paths of its own."""

    name: str | None
    checkpoint: Path  # the best model
    out: Path  # config.toml, metrics, PNGs, analysis, report
    group: str | None = None  # the seed group it is one run of (--seeds), listed as one row

    def __post_init__(self):
        if self.group is not None:
            check_name(self.group)

    @property
    def last(self) -> Path:
        return last_path(self.checkpoint)

    def record(self) -> dict:
        """What a checkpoint and report.json keep of where the run lives (plain values)."""
        record = {
            "name": self.name,
            "checkpoint": str(self.checkpoint),
            "last_checkpoint": str(self.last),
            "out": str(self.out),
        }
        return record if self.group is None else {**record, "group": self.group}


def check_name(name: str) -> str:
    if name == LATEST or not NAME_PATTERN.fullmatch(name):
        raise RunError(
            f"--name {name!r}: a run's name is 1-100 letters, digits, '.', '_' or '-', "
            f"starting with a letter or digit, and not {LATEST!r}"
        )
    return name


def timestamp_name(now: float | None = None) -> str:
    """Sortable by start: 20261203-094507 (local time)."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now))


def holds_artefacts(directory: Path) -> list[str]:
    """The run files already in directory (none when it is missing or empty of them)."""
    return [f for f in ARTEFACTS if (directory / f).exists()] if directory.is_dir() else []


def _refuse(what: str) -> RunError:
    return RunError(
        f"{what}; nothing was written (--overwrite replaces it, --name NAME or no "
        "--checkpoint/--out starts a run of its own)"
    )


def new_run(
    name: str | None = None,
    checkpoint: Path | None = None,
    out: Path | None = None,
    overwrite: bool = False,
    reserve: bool = True,
    checkpoints: Path = CHECKPOINTS,
    runs: Path = RUNS,
    group: str | None = None,
) -> RunPaths:
    """The paths of a new run, checked and (reserve) taken: its folders made, `latest`
    pointed at it. RunError, with nothing written, when it would write over another run.
    reserve=False (torchrun's other processes) only works the paths out, refusing nothing:
    rank 0 checks and refuses (its exit 2 ends the others), and by the time a slower rank
    looks, rank 0 may already have taken the folders and begun the run's files there. group:
    the seed group the run belongs to (engine/runs/groups.py)."""
    explicit_name = name is not None
    if explicit_name:
        check_name(name)
    for path, what in ((checkpoint, "--checkpoint"), (out, "--out")):
        if path is not None and path.name == LATEST and path.parent in (checkpoints, runs):
            raise RunError(f"{what} {path}: 'latest' points at the newest run; give a run a name with --name")
    if checkpoint is not None and checkpoint.is_dir():
        raise RunError(f"--checkpoint {checkpoint}: is a folder; give the file to write, e.g. {checkpoint / BEST}")
    if checkpoint is not None and not overwrite and reserve:
        taken = [p for p in (checkpoint, last_path(checkpoint)) if p.exists()]
        if taken:
            raise _refuse(f"--checkpoint {checkpoint}: {taken[0]} already holds a model")
    if out is not None and not overwrite and reserve and holds_artefacts(out):
        raise _refuse(f"--out {out}: already holds a run's files ({', '.join(holds_artefacts(out)[:3])})")
    if checkpoint is not None and out is not None and not explicit_name:
        return _taken(RunPaths(None, checkpoint, out, group), overwrite, reserve)  # the user's own layout

    base = name or timestamp_name()
    for k in range(1, 1000):
        candidate = base if k == 1 else f"{base}-{k}"
        paths = RunPaths(candidate, checkpoint or checkpoints / candidate / BEST, out or runs / candidate, group)
        mine = [
            d
            for d in (
                checkpoints / candidate if checkpoint is None else None,
                runs / candidate if out is None else None,
            )
            if d is not None
        ]
        if reserve and any(d.exists() for d in mine):
            if explicit_name and not overwrite:
                taken = next(d for d in mine if d.exists())
                raise _refuse(f"--name {name}: run {name!r} exists ({taken})")
            if not explicit_name:
                continue  # a timestamp taken in the same second: the next suffix
        if not reserve:
            return paths
        made = []
        try:
            for d in mine:
                if explicit_name and overwrite and d.exists():
                    continue
                d.mkdir(parents=True)  # fails if another process took the name just now
                made.append(d)
        except FileExistsError:
            for d in made:  # undo the half this call made (never another's), so the name is free again
                d.rmdir()
            if explicit_name:
                raise _refuse(f"--name {name}: another run took the name {name!r} just now") from None
            continue
        return _taken(paths, overwrite, reserve)
    raise RunError(f"no free run name after {base}-999")


def _taken(paths: RunPaths, overwrite: bool, reserve: bool) -> RunPaths:
    if reserve:
        if overwrite:  # the old run's files go, so that nothing of it is mistaken for this one's
            control = paths.checkpoint.with_name(paths.checkpoint.stem + ".no-attention" + paths.checkpoint.suffix)
            for f in (paths.checkpoint, paths.last, control, *(paths.out / a for a in ARTEFACTS)):
                f.unlink(missing_ok=True)
        paths.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        paths.out.mkdir(parents=True, exist_ok=True)
        if paths.name is not None:
            point_latest(paths)
    return paths


def point_latest(paths: RunPaths) -> list[str]:
    """Point checkpoints/latest and runs/latest at this run, for those of its folders that sit
    in the usual place. Returns a note for each pointer it had to leave alone."""
    notes = []
    for folder in (paths.checkpoint.parent, paths.out):
        if folder.name != paths.name:
            continue
        pointer = folder.parent / LATEST
        if pointer.is_dir() and not pointer.is_symlink():  # an earlier version's runs/latest/
            notes.append(f"{pointer} is a folder of an earlier run, left as it is")
            continue
        _write_pointer(pointer, paths.name)
    return notes


def _write_pointer(pointer: Path, name: str) -> None:
    # a name of this process and thread alone: two runs starting at once each make their own
    tmp = pointer.with_name(f".{LATEST}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.unlink(missing_ok=True)
        os.symlink(name, tmp, target_is_directory=True)
        os.replace(tmp, pointer)
        return
    except OSError:  # no links here: a one-line file instead
        tmp.unlink(missing_ok=True)
    fd, tmp_file = tempfile.mkstemp(prefix=f".{LATEST}.", dir=pointer.parent)
    with os.fdopen(fd, "w") as f:
        f.write(name + "\n")
    os.replace(tmp_file, pointer)


def read_pointer(pointer: Path) -> Path | None:
    """The run folder `latest` names (a link or a one-line file), as the folder's own path, so
    that what is shown and recorded names the run, not the pointer; None when there is none."""
    if pointer.is_symlink():
        target = pointer.parent / os.readlink(pointer)
        return target if target.is_dir() else None
    if pointer.is_file() and pointer.stat().st_size <= 256:
        name = pointer.read_text(errors="replace").strip()
        if NAME_PATTERN.fullmatch(name) and (pointer.parent / name).is_dir():
            return pointer.parent / name
    return None


def _run_folder_checkpoint(folder: Path, checkpoints: Path) -> Path | None:
    """The best model of a runs/<name> folder: named in its report or config, else by name."""
    report = folder / "report.json"
    if report.is_file():
        try:
            named = json.loads(report.read_text()).get("checkpoint")
        except (OSError, ValueError, AttributeError):
            named = None
        if isinstance(named, str) and Path(named).is_file():
            return Path(named)
    by_name = checkpoints / folder.name / BEST
    return by_name if by_name.is_file() else None


def find_checkpoint(
    spec: str | Path | None, checkpoints: Path = CHECKPOINTS, runs: Path = RUNS, want_last: bool = False
) -> Path:
    """The checkpoint file a user means: a file; a run's name; its checkpoints/ or runs/
    folder; `latest`; nothing (the newest run, else the flat checkpoints/best.pt of earlier
    versions). want_last: the run's latest state (for --resume) where it has one."""

    def pick(best: Path) -> Path:
        return last_path(best) if want_last and last_path(best).is_file() else best

    if spec is None or str(spec) == LATEST:
        newest = read_pointer(checkpoints / LATEST)
        if newest is not None and (newest / BEST).is_file():
            return pick(newest / BEST)
        legacy = checkpoints / BEST
        if legacy.is_file():
            return pick(legacy)
        raise RunError(
            f"no trained model yet (no {checkpoints / LATEST} or {legacy}); "
            "train one with `reverse-tui` or `reverse-tui --no-ui`"
        )
    path = Path(spec)
    if path.name == LATEST:  # a pointer: the run it names
        path = read_pointer(path) or path
    if path.is_file():
        return path
    if path.is_dir():
        if (path / BEST).is_file():
            return pick(path / BEST)
        found = _run_folder_checkpoint(path, checkpoints)
        if found is not None:
            return pick(found)
        raise RunError(f"{path}: a folder with no model in it (no {BEST}, and no run's report naming one)")
    if len(path.parts) == 1 and NAME_PATTERN.fullmatch(str(spec)):  # a run's name
        if (checkpoints / path / BEST).is_file():
            return pick(checkpoints / path / BEST)
        if (runs / path).is_dir():
            found = _run_folder_checkpoint(runs / path, checkpoints)
            if found is not None:
                return pick(found)
    raise RunError(f"{spec}: no such checkpoint file, run name or run folder (the runs are in {checkpoints}/)")


def resumed_run(
    last: Path,
    record: dict | None,
    checkpoint: Path | None = None,
    out: Path | None = None,
    checkpoints: Path = CHECKPOINTS,
    runs: Path = RUNS,
    reserve: bool = True,
) -> RunPaths:
    """Where a resumed run goes on writing: its own files (as its checkpoint recorded them,
    else beside the file resumed from), unless --checkpoint/--out say elsewhere, which must
    not hold another run's files."""
    record = record if isinstance(record, dict) else {}
    own_checkpoint = best_path(last)
    name = record.get("name") if isinstance(record.get("name"), str) else None
    if name is None and own_checkpoint.parent.parent == checkpoints and own_checkpoint.name == BEST:
        name = own_checkpoint.parent.name
    own_out = Path(record["out"]) if isinstance(record.get("out"), str) else (runs / name if name else None)
    # reserve=False (torchrun's other processes): no refusals, as in new_run
    if reserve and checkpoint is not None and checkpoint != own_checkpoint and checkpoint.exists():
        raise _refuse(f"--checkpoint {checkpoint}: already holds another model than the run resumed")
    if reserve and out is not None and out != own_out and holds_artefacts(out):
        raise _refuse(f"--out {out}: already holds another run's files")
    if own_out is None and out is None:  # an earlier version's flat run: a folder of its own
        return _fresh_out(checkpoint or own_checkpoint, runs, reserve)
    group = record.get("group") if isinstance(record.get("group"), str) else None
    try:
        paths = RunPaths(name, checkpoint or own_checkpoint, out or own_out, group)
    except RunError:  # a group name this version would not give: the run goes on by itself
        paths = RunPaths(name, checkpoint or own_checkpoint, out or own_out)
    if not reserve:
        return paths
    paths.checkpoint.parent.mkdir(parents=True, exist_ok=True)
    paths.out.mkdir(parents=True, exist_ok=True)
    if paths.name is not None:
        point_latest(paths)
    return paths


def _fresh_out(checkpoint: Path, runs: Path, reserve: bool = True) -> RunPaths:
    """A resumed run from before run folders: its artefacts in a new runs/<stamp>."""
    base = timestamp_name()
    for k in range(1, 1000):
        name = base if k == 1 else f"{base}-{k}"
        if not reserve:
            return RunPaths(None, checkpoint, runs / name)
        try:
            (runs / name).mkdir(parents=True)
        except FileExistsError:
            continue
        return RunPaths(None, checkpoint, runs / name)
    raise RunError(f"no free run folder after {base}-999")


def remove_run(paths: RunPaths) -> None:
    """Take back a run's folders that nothing was written into (a run that could not start),
    and point `latest` back at the newest run left."""
    for d in (paths.checkpoint.parent, paths.out):
        if paths.name is None or d.name != paths.name or not d.is_dir() or any(d.iterdir()):
            continue
        d.rmdir()
        pointer = d.parent / LATEST
        if pointer.is_symlink() or (pointer.is_file() and read_pointer(pointer) is None):
            others = sorted(
                (p for p in d.parent.iterdir() if p.is_dir() and not p.is_symlink() and p.name != LATEST),
                key=lambda p: p.stat().st_mtime_ns,
            )
            if others:
                _write_pointer(pointer, others[-1].name)
            elif not pointer.exists():
                pointer.unlink()
