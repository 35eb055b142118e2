"""Seed groups: one configuration trained on several seeds (`reverse-tui --no-ui --seeds N`),
each seed a run of its own (GROUP-seedS, in folders of its own), the group listed as one row
with the mean and the lowest and highest of each figure over its runs.

A group's figures come from its runs' report.json files alone (never a model, never torch):
test exact match, the lengths where exact match first drops below 99% (known words past
the training lengths, and every word unknown), exact match on sentences of 2-3 distinct words
repeated, and the epochs it took to reach 99% validation exact match. A run that never drops
below 99% within the lengths measured, or never reaches 99% within its epochs, counts with
the last length measured or the epochs it trained, marked as `beyond`: the true figure is
past it, so a mean over such runs is a lower bound (shown as >=).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import RunError
from .folders import CHECKPOINTS, RUNS, check_name, timestamp_name

SEED = "-seed"  # a group's run: GROUP-seedS
VAL_TARGET = 0.99  # the validation exact match whose first epoch is counted

# the figures of a run that a group sums up, in the order shown
FIGURES = {
    "test_exact_match": "test exact match",
    "known_below_99": "known words: first length below 99%",
    "unknown_below_99": "unknown words: first length below 99%",
    "repeated_exact_match": "repeated words: exact match",
    "epochs_to_99": "epochs to 99% validation exact match",
}


def member_name(group: str, seed: int) -> str:
    return f"{group}{SEED}{seed}"


def _taken(name: str, checkpoints: Path, runs: Path) -> bool:
    return (checkpoints / name).exists() or (runs / name).exists()


def _group_taken(group: str, checkpoints: Path, runs: Path) -> bool:
    """A run of that group exists already (whatever its seed), or a run of that very name:
    either would be listed as one with the new group."""
    if _taken(group, checkpoints, runs):
        return True
    for folder in (checkpoints, runs):
        if folder.is_dir() and any(folder.glob(f"{group}{SEED}*")):
            return True
    return False


def free_group(
    name: str | None, seeds: list[int], checkpoints: Path = CHECKPOINTS, runs: Path = RUNS
) -> tuple[str, list[str]]:
    """The group's name and its runs' names, one per seed, none of them taken: --name as
    given (RunError, nothing written, when a run of that name or group exists), else the
    start time, with -2, -3 ... when that is taken. Nothing is made here: each run takes its
    folders when it starts (engine/runs/folders.py's new_run)."""
    if name is not None:
        check_name(name)
        longest = member_name(name, max(seeds))
        if len(longest) > 100:
            raise RunError(f"--name {name!r}: too long for its runs' names ({longest})")
        if _group_taken(name, Path(checkpoints), Path(runs)):
            raise RunError(
                f"--name {name}: a run or seed group of that name exists; nothing was written "
                "(give the group a new --name)"
            )
        return name, [member_name(name, s) for s in seeds]
    base = timestamp_name()
    for k in range(1, 1000):
        group = base if k == 1 else f"{base}-{k}"
        if not _group_taken(group, Path(checkpoints), Path(runs)):
            return group, [member_name(group, s) for s in seeds]
    raise RunError(f"no free group name after {base}-999")


# -- the figures ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    """One run's figure. beyond: not reached within what was measured (no drop below 99% up
    to the longest length decoded, or 99% never reached in the epochs trained); value is then
    that last length or epoch count, and the true figure lies past it."""

    value: float
    beyond: bool = False

    def as_dict(self) -> dict:
        return {"value": self.value, "beyond": self.beyond}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _length_limit(curve) -> Figure | None:
    """Where a report's length curve first drops below 99%; past the longest measured when it
    never does (None: no curve, or no length measured)."""
    if not isinstance(curve, dict):
        return None
    below = curve.get("first_below_99")
    if isinstance(below, dict) and isinstance(below.get("length"), int):
        return Figure(float(below["length"]))
    per_length = curve.get("per_length")
    lengths = [int(n) for n in per_length if str(n).isdigit()] if isinstance(per_length, dict) else []
    return Figure(float(max(lengths)), beyond=True) if lengths else None


def _epochs_to(epochs, target: float = VAL_TARGET) -> Figure | None:
    """The first epoch whose validation exact match reached target; past the epochs trained
    when none did (None: no epochs in the report)."""
    if not isinstance(epochs, list):
        return None
    trained = [e for e in epochs if isinstance(e, dict) and isinstance(e.get("epoch"), int)]
    for e in trained:
        acc = _number(e.get("val_exact_match"))
        if acc is not None and acc >= target:
            return Figure(float(e["epoch"]))
    return Figure(float(max(e["epoch"] for e in trained)), beyond=True) if trained else None


def member_figures(report: dict) -> dict[str, Figure]:
    """A run's figures (FIGURES' keys) from its report.json; those it lacks (a part that
    failed, a report of an earlier version) are left out."""
    if not isinstance(report, dict):
        return {}
    limits = report.get("length_limits") if isinstance(report.get("length_limits"), dict) else {}
    repeated = report.get("repeated_words") if isinstance(report.get("repeated_words"), dict) else {}
    found = {
        "test_exact_match": _number(report.get("test_exact_match")),
        "known_below_99": _length_limit(limits.get("known_words")),
        "unknown_below_99": _length_limit(limits.get("unknown_words")),
        "repeated_exact_match": _number(repeated.get("exact_match")),
        "epochs_to_99": _epochs_to(report.get("epochs")),
    }
    return {k: v if isinstance(v, Figure) else Figure(v) for k, v in found.items() if v is not None}


@dataclass(frozen=True)
class Spread:
    """A figure over a group's runs: its mean, lowest and highest, of the `runs` that have it;
    `beyond` of them did not reach it within what was measured (Figure.beyond), so the mean
    is a lower bound where beyond > 0, and low or high is one of those where marked."""

    mean: float
    low: float
    high: float
    runs: int
    beyond: int = 0
    low_beyond: bool = False
    high_beyond: bool = False

    def as_dict(self) -> dict:
        return {
            "mean": self.mean,
            "min": self.low,
            "max": self.high,
            "runs": self.runs,
            "beyond": self.beyond,
            "min_beyond": self.low_beyond,
            "max_beyond": self.high_beyond,
        }


def spread(figures: list[Figure]) -> Spread | None:
    """The mean and range of these figures (None: none). Of two equal values, one beyond
    what was measured is the higher: its true figure is past it."""
    if not figures:
        return None
    low = min(figures, key=lambda f: (f.value, f.beyond))
    high = max(figures, key=lambda f: (f.value, f.beyond))
    return Spread(
        mean=sum(f.value for f in figures) / len(figures),
        low=low.value,
        high=high.value,
        runs=len(figures),
        beyond=sum(f.beyond for f in figures),
        low_beyond=low.beyond,
        high_beyond=high.beyond,
    )


def summarize_figures(per_run: list[dict[str, Figure]]) -> dict[str, Spread | None]:
    """Each of FIGURES over the runs that have it."""
    return {k: spread([f[k] for f in per_run if k in f]) for k in FIGURES}


def group_summary(reports: list[dict]) -> dict[str, Spread | None]:
    """A group's figures from its runs' report.json contents (dicts, as read)."""
    return summarize_figures([member_figures(r) for r in reports])
