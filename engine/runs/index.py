"""The runs under runs/, each summed up from the small files its folder holds, for
`reverse-tui runs` and the app's runs screen.

A run's summary reads status.json, config.toml and metrics.csv (a few kilobytes), and
report.json where the run has one; never a checkpoint, so a hundred runs list in a blink.
Its curves (loss per epoch, exact match by length) are read only for the runs compared.

Every folder under runs/ is listed, whatever it holds: a run half-written, of an earlier
version, or not a run at all gets a row with its problem, in one line, and never stops the
listing. `latest` and hidden folders are skipped.

The runs of a seed group (engine/runs/groups.py) each say their group in status.json and
report.json; `grouped` lists such a group as one entry, a RunSummary of its own whose
figures are its runs' means and whose `spread` holds their mean and range.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path

from ..errors import RunIndexError
from ..train.config import Config
from .folders import BEST, LATEST
from .groups import FIGURES, Figure, Spread, member_figures, summarize_figures
from .status import Observed, observed, read_status

REPORT, METRICS, CONFIG = "report.json", "metrics.csv", "config.toml"
CONFIG_KEYS = [f.name for f in fields(Config)]


@dataclass
class LengthLimit:
    """Where exact match first falls below 99% and below 50%, by sentence length in words
    (None: not within the lengths measured, up to `longest`)."""

    below_99: int | None
    below_50: int | None
    longest: int | None


@dataclass
class RunSummary:
    name: str
    folder: Path
    status: str  # running, finished, stopped, failed; unknown where the folder cannot tell
    problems: list[str] = field(default_factory=list)  # one line each
    started: float | None = None  # seconds since the epoch
    config: dict | None = None  # config.toml (else report.json's), as written, plus Config.PREDATES where it lacks them
    epochs: int = 0  # epochs trained (rows of metrics.csv)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    train_seconds: float | None = None  # the sum of its epochs' times
    test_exact_match: float | None = None
    notebook_exact_match: float | None = None  # the notebook's test set (1,000 sentences of 3-10 words)
    notebook_is_test: bool = False  # trained on the notebook's data: its test set is the notebook's
    known: LengthLimit | None = None  # known words past the training lengths
    unknown: LengthLimit | None = None  # every word unknown
    checkpoint: Path | None = None  # its best model, where one exists
    has_report: bool = False
    figures: dict[str, Figure] = field(default_factory=dict)  # engine/runs/groups.py's FIGURES, from report.json
    group: str | None = None  # the seed group it is one run of
    # a group's entry (grouped): its runs, by seed, and each figure's mean and range over them
    members: list[RunSummary] = field(default_factory=list)
    spread: dict[str, Spread | None] | None = None

    @property
    def is_group(self) -> bool:
        return self.spread is not None

    @property
    def seed(self) -> int | None:
        value = (self.config or {}).get("seed")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def problem(self) -> str | None:
        return "; ".join(self.problems) or None

    @property
    def planned_epochs(self) -> int | None:
        value = (self.config or {}).get("epochs")
        return value if isinstance(value, int) else None


@dataclass
class RunCurves:
    """What the comparison draws of one run."""

    name: str
    loss: list[tuple[int, float, float]]  # (epoch, train loss, val loss)
    known: dict[int, float]  # exact match by length: the test set's lengths, then past them
    unknown: dict[int, float]  # every word unknown, by length


# -- reading ------------------------------------------------------------------------------------
def list_runs(runs_dir: Path, checkpoints_dir: Path | None = None) -> list[RunSummary]:
    """Every run folder in runs_dir, oldest first. RunIndexError when runs_dir is not a
    folder that can be read. checkpoints_dir: where the models are (default: beside runs_dir)."""
    runs_dir = Path(runs_dir)
    checkpoints_dir = Path(checkpoints_dir) if checkpoints_dir is not None else runs_dir.parent / "checkpoints"
    if not runs_dir.exists():
        raise RunIndexError(f"{runs_dir}: no such folder (a run writes its files to runs/NAME/)")
    if not runs_dir.is_dir():
        raise RunIndexError(f"{runs_dir}: not a folder")
    try:
        entries = sorted(runs_dir.iterdir())
    except OSError as e:
        raise RunIndexError(f"{runs_dir}: cannot read it ({e.strerror or e})") from None
    runs = [
        summarize(p, checkpoints_dir) for p in entries if p.name != LATEST and not p.name.startswith(".") and _is_dir(p)
    ]
    return sorted(runs, key=lambda r: (r.started is None, r.started or 0.0, r.name))


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def summarize(folder: Path, checkpoints_dir: Path) -> RunSummary:
    """One folder's summary; whatever is wrong with it goes into its problems."""
    run = RunSummary(folder.name, folder, "unknown")
    try:
        _summarize(run, checkpoints_dir)
    except OSError as e:  # unreadable folder or file: a row that says so
        run.problems.append(f"cannot read {e.filename or folder}: {e.strerror or e}")
    return run


def _summarize(run: RunSummary, checkpoints_dir: Path) -> None:
    folder = run.folder
    seen: Observed | None = None
    status: dict | None = None
    try:
        status = read_status(folder)
        seen = observed(status) if status is not None else None
    except ValueError as e:
        run.problems.append(str(e))
    config_problem = None
    if (folder / CONFIG).is_file():
        run.config, config_problem = _read_toml(folder / CONFIG)
    rows, metrics_problem = _read_metrics(folder / METRICS) if (folder / METRICS).is_file() else (None, None)
    report, report_problem = _read_report(folder / REPORT) if (folder / REPORT).is_file() else (None, None)
    run.has_report = report is not None
    for problem in (config_problem, metrics_problem, report_problem):
        if problem:
            run.problems.append(problem)
    if run.config is None and report is not None and isinstance(report.get("config"), dict):
        run.config = report["config"]
    if isinstance(run.config, dict):  # a setting a run predates: what leaving it out meant (score: additive)
        run.config = {**Config.PREDATES, **run.config}
    named = [d.get("group") for d in (status, report) if isinstance(d, dict)]
    run.group = next((g for g in named if isinstance(g, str) and g), None)

    if seen is not None:
        run.status, run.started = seen.state, seen.started
        if seen.problem:
            run.problems.append(seen.problem)
        if report is None and seen.state != "running" and status.get("evaluated"):
            run.problems.append("report.json is missing")
    elif report is not None:  # a run of a version before status.json
        run.status = "stopped" if report.get("interrupted") else "failed" if report.get("failure") else "finished"
        if isinstance(report.get("failure"), str):
            run.problems.append(report["failure"])
    elif rows is not None:
        run.problems.append("no status.json or report.json: it ended before its evaluation, or runs still")
    elif run.problems:  # a damaged file of a run: said above
        pass
    elif (folder / CONFIG).exists():
        run.problems.append("only config.toml: it ended before its first epoch")
    elif not any(True for _ in folder.iterdir()):
        run.problems.append("empty: a run starting, or one that could not start")
    else:
        run.problems.append("not a run: no config.toml, metrics.csv or report.json")

    if rows:
        run.epochs = len(rows)
        run.train_seconds = sum(r["seconds"] for r in rows)
        best = [r for r in rows if r["best_model"]] or [r for r in rows if r["best"]]
        if best:
            run.best_epoch, run.best_val_loss = best[-1]["epoch"], best[-1]["val_loss"]
    if report is not None:
        _read_figures(run, report)
    if run.started is None:
        run.started = _started_from_name(run.name) or _mtime(folder)
    run.checkpoint = _checkpoint(run, status, report, checkpoints_dir)
    if run.checkpoint is None and run.best_epoch is not None and run.status != "unknown":
        run.problems.append(f"no checkpoint found (not in {checkpoints_dir / run.name / BEST})")


def _read_toml(path: Path) -> tuple[dict | None, str | None]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            return None, None  # report.json's copy of the configuration stands in
    try:
        return tomllib.loads(path.read_text()), None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError):
        return None, f"{CONFIG}: not valid TOML"


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _read_metrics(path: Path) -> tuple[list[dict] | None, str | None]:
    """metrics.csv's rows as numbers, up to the first it cannot read."""
    rows = []
    with open(path, newline="", errors="replace") as f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames or []
        except csv.Error:
            header = []
        if not {"epoch", "train_loss", "val_loss"} <= set(header):
            return None, f"{METRICS}: not a run's metrics (no epoch, train_loss and val_loss columns)"
        try:
            for row in reader:
                rows.append(
                    {
                        "epoch": int(row["epoch"]),
                        "train_loss": float(row["train_loss"]),
                        "val_loss": float(row["val_loss"]),
                        "seconds": float(row.get("seconds") or 0.0),
                        "best": row.get("best") == "True",
                        "best_model": row.get("best_model") == "True",
                    }
                )
        except (KeyError, TypeError, ValueError, csv.Error):
            return rows, f"{METRICS}: row {len(rows) + 1} cannot be read"
    return rows, None


def _read_report(path: Path) -> tuple[dict | None, str | None]:
    try:
        report = json.loads(path.read_bytes())
    except ValueError:
        return None, f"{REPORT}: not JSON (half-written or damaged)"
    if not isinstance(report, dict):
        return None, f"{REPORT}: not a run's report"
    return report, None


def _read_figures(run: RunSummary, report: dict) -> None:
    run.figures = member_figures(report)
    run.test_exact_match = _number(report.get("test_exact_match"))
    if isinstance(report.get("best_epoch"), int):
        run.best_epoch = report["best_epoch"]
        run.best_val_loss = _number(report.get("best_val_loss"))
    notebook = report.get("notebook_test")
    if isinstance(notebook, dict):
        run.notebook_exact_match = _number(notebook.get("exact_match"))
    elif _on_notebook_data(run.config):
        run.notebook_exact_match, run.notebook_is_test = run.test_exact_match, True
    limits = report.get("length_limits")
    if isinstance(limits, dict):
        run.known = _limit(limits.get("known_words"))
        run.unknown = _limit(limits.get("unknown_words"))


def _on_notebook_data(config: dict | None) -> bool:
    try:
        return Config.from_dict(config).on_notebook_data if isinstance(config, dict) else False
    except TypeError:
        return False


def _limit(curve) -> LengthLimit | None:
    if not isinstance(curve, dict):
        return None

    def length(key: str) -> int | None:
        at = curve.get(key)
        return at["length"] if isinstance(at, dict) and isinstance(at.get("length"), int) else None

    return LengthLimit(length("first_below_99"), length("first_below_50"), max(_per_length(curve), default=None))


def _per_length(curve) -> dict[int, float]:
    """A curve's {"12": 0.99, ...} as {12: 0.99}, skipping what is not a length and a figure."""
    per_length = curve.get("per_length") if isinstance(curve, dict) else None
    out = {}
    for n, acc in (per_length if isinstance(per_length, dict) else {}).items():
        if str(n).isdigit() and _number(acc) is not None:
            out[int(n)] = float(acc)
    return dict(sorted(out.items()))


def _started_from_name(name: str) -> float | None:
    """A name of the default form (20261203-094507, maybe with -2): its local time."""
    try:
        return time.mktime(time.strptime(name[:15], "%Y%m%d-%H%M%S"))
    except (ValueError, OverflowError):
        return None


def _mtime(folder: Path) -> float | None:
    for path in (folder / CONFIG, folder / METRICS, folder):
        try:
            return path.stat().st_mtime
        except OSError:
            continue
    return None


def _checkpoint(run: RunSummary, status: dict | None, report: dict | None, checkpoints_dir: Path) -> Path | None:
    """The run's best model: where its status or report says (a path relative to where the
    run started, which is usually beside runs/), else checkpoints/NAME/best.pt."""
    named = [d.get("checkpoint") for d in (status, report) if isinstance(d, dict)]
    for path in [Path(p) for p in named if isinstance(p, str)] + [checkpoints_dir / run.name / BEST]:
        for candidate in (path, run.folder.parent.parent / path) if not path.is_absolute() else (path,):
            if candidate.is_file():
                return candidate
    return None


def run_curves(run: RunSummary) -> RunCurves:
    """Read for the runs compared: the loss per epoch (metrics.csv) and exact match by length
    (report.json); empty where the run has not written them. A group's: its runs' mean, at
    each epoch and length, over those of its runs that have it."""
    if run.is_group:
        return _mean_curves(run.name, [run_curves(m) for m in run.members])
    rows = _read_metrics(run.folder / METRICS)[0] if (run.folder / METRICS).is_file() else None
    loss = [(r["epoch"], r["train_loss"], r["val_loss"]) for r in rows or []]
    known, unknown = {}, {}
    report = _read_report(run.folder / REPORT)[0] if (run.folder / REPORT).is_file() else None
    if report is not None:
        limits = report.get("length_limits") if isinstance(report.get("length_limits"), dict) else {}
        known = {**_per_length(report), **_per_length(limits.get("known_words"))}
        known = dict(sorted(known.items()))
        unknown = _per_length(limits.get("unknown_words"))
    return RunCurves(run.name, loss, known, unknown)


def _mean_curves(name: str, curves: list[RunCurves]) -> RunCurves:
    def mean_by(key: str) -> dict[int, float]:
        found: dict[int, list[float]] = {}
        for c in curves:
            for n, acc in getattr(c, key).items():
                found.setdefault(n, []).append(acc)
        return {n: sum(v) / len(v) for n, v in sorted(found.items())}

    losses: dict[int, list[tuple[float, float]]] = {}
    for c in curves:
        for epoch, train, val in c.loss:
            losses.setdefault(epoch, []).append((train, val))
    loss = [(e, sum(t for t, _ in v) / len(v), sum(x for _, x in v) / len(v)) for e, v in sorted(losses.items())]
    return RunCurves(name, loss, mean_by("known"), mean_by("unknown"))


# -- seed groups --------------------------------------------------------------------------------
STATE_ORDER = ("running", "failed", "unknown", "stopped", "finished")  # a group's state: its first runs'


def grouped(runs: list[RunSummary]) -> list[RunSummary]:
    """The runs as listed: each seed group one entry, where its first run started; the
    others as they are."""
    by_group: dict[str, list[RunSummary]] = {}
    for r in runs:
        if r.group is not None:
            by_group.setdefault(r.group, []).append(r)
    out, placed = [], set()
    for r in runs:
        if r.group is None:
            out.append(r)
        elif r.group not in placed:
            placed.add(r.group)
            out.append(group_entry(r.group, by_group[r.group]))
    return out


def find_group(runs: list[RunSummary], name: str) -> RunSummary | None:
    """The entry of the seed group of that name among these runs."""
    members = [r for r in runs if r.group == name]
    return group_entry(name, members) if members else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _span(values: list) -> object:
    """A configuration value across a group's runs: the value where they agree; else, for
    whole numbers (the seeds), their range "1-5" or list "1,3,7"; else "varies"."""
    distinct = sorted({json_key(v) for v in values})
    if len(distinct) == 1:
        return values[0]
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        ints = sorted(set(values))
        return f"{ints[0]}-{ints[-1]}" if ints == list(range(ints[0], ints[-1] + 1)) else ",".join(map(str, ints))
    return "varies"


def json_key(value) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


def group_entry(name: str, members: list[RunSummary]) -> RunSummary:
    """A seed group as one entry: its runs by seed; its figures their means (its time their
    sum: what the group cost); its checkpoint its first seed's; its configuration theirs,
    the values that differ between them (the seed) given as a range."""
    members = sorted(members, key=lambda m: (m.seed is None, m.seed or 0, m.name))
    states = {m.status for m in members}
    configs = [m.config for m in members if m.config is not None]
    keys = list(dict.fromkeys(k for c in configs for k in c))
    first = members[0]
    entry = RunSummary(
        name=name,
        folder=first.folder.parent / name,
        status=next((s for s in STATE_ORDER if s in states), first.status),
        problems=[f"{m.name}: {m.problem}" for m in members if m.problem],
        started=min((m.started for m in members if m.started is not None), default=None),
        config={k: _span([c.get(k) for c in configs]) for k in keys} if configs else None,
        epochs=round(_mean([m.epochs for m in members]) or 0),
        best_val_loss=_mean([m.best_val_loss for m in members if m.best_val_loss is not None]),
        train_seconds=sum(m.train_seconds for m in members if m.train_seconds is not None) or None,
        test_exact_match=_mean([m.test_exact_match for m in members if m.test_exact_match is not None]),
        notebook_exact_match=_mean([m.notebook_exact_match for m in members if m.notebook_exact_match is not None]),
        notebook_is_test=all(m.notebook_is_test for m in members),
        checkpoint=next((m.checkpoint for m in members if m.checkpoint is not None), None),
        has_report=any(m.has_report for m in members),
        group=None,
        members=members,
        spread=summarize_figures([m.figures for m in members]),
    )
    return entry


# -- comparing ----------------------------------------------------------------------------------
def differing_keys(runs: list[RunSummary]) -> list[str]:
    """The configuration values that are not the same in every run that has a configuration
    (a key one run lacks counts as a difference, unless Config.PREDATES says what lacking it
    meant: summarize fills those in), in the Config's order."""
    return differing_config_keys([r.config for r in runs if r.config is not None])


def differing_config_keys(configs: list[dict]) -> list[str]:
    """The keys whose values are not the same in every one of these configurations (a key
    one lacks counts as a difference): the Config's fields in their order, then any other."""
    if len(configs) < 2:
        return []
    keys = CONFIG_KEYS + sorted({k for c in configs for k in c} - set(CONFIG_KEYS))
    missing = object()
    return [k for k in keys if len({json.dumps(c.get(k, missing), default=repr) for c in configs}) > 1]


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).astimezone().isoformat(timespec="seconds")


def as_json(runs: list[RunSummary], runs_dir: Path) -> dict:
    """For scripts (`reverse-tui runs --json`): every run with its figures and the
    configuration values that differ between them; then each seed group among them, its
    runs and the mean and range of each figure over them."""
    keys = differing_keys(runs)

    def limit(x: LengthLimit | None) -> dict | None:
        return None if x is None else {"below_99": x.below_99, "below_50": x.below_50, "longest_measured": x.longest}

    def one(r: RunSummary) -> dict:
        return {
            "name": r.name,
            "folder": str(r.folder),
            "started": None if r.started is None else _iso(r.started),
            "status": r.status,
            "problem": r.problem,
            "epochs": r.epochs,
            "planned_epochs": r.planned_epochs,
            "best_epoch": r.best_epoch,
            "best_val_loss": r.best_val_loss,
            "test_exact_match": r.test_exact_match,
            "notebook_test_exact_match": r.notebook_exact_match,
            "notebook_test_is_its_test_set": r.notebook_is_test,
            "length_limits": {"known_words": limit(r.known), "unknown_words": limit(r.unknown)},
            "train_seconds": r.train_seconds,
            "checkpoint": None if r.checkpoint is None else str(r.checkpoint),
            "group": r.group,
            "figures": {k: r.figures[k].as_dict() for k in FIGURES if k in r.figures},
            "differs": {k: (r.config or {}).get(k) for k in keys} if r.config is not None else None,
            "config": r.config,
        }

    def group(g: RunSummary) -> dict:
        return {
            "name": g.name,
            "runs": [m.name for m in g.members],
            "seeds": [m.seed for m in g.members],
            "status": g.status,
            "problem": g.problem,
            "summary": {k: None if v is None else v.as_dict() for k, v in (g.spread or {}).items()},
            "train_seconds": g.train_seconds,
            "first_checkpoint": None if g.checkpoint is None else str(g.checkpoint),
            "config": g.config,
        }

    groups = [g for g in grouped(runs) if g.is_group]
    return {
        "runs_dir": str(runs_dir),
        "differing_keys": keys,
        "runs": [one(r) for r in runs],
        "groups": [group(g) for g in groups],
    }
