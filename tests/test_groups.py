"""engine/runs/groups.py and the seed groups of engine/runs/index.py: a group's figures (mean,
lowest, highest) from its runs' report.json contents, with the runs that never crossed a
limit counted at the last length or epoch measured; the names a group takes; a group listed
as one entry, compared as one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.errors import RunError
from engine.runs.groups import FIGURES, Figure, free_group, group_summary, member_figures, spread
from engine.runs.index import as_json, find_group, grouped, list_runs, run_curves
from tests.conftest import write_fake_run


def report(test=0.99, known=40, unknown=36, repeated=0.85, val=(0.5, 0.995), longest=60) -> dict:
    """A report.json's contents, as much of it as a group reads. known/unknown None: no drop
    below 99% up to `longest` words."""

    def curve(below):
        return {
            "per_length": {str(n): 1.0 for n in range(7, longest + 1)},
            "first_below_99": None if below is None else {"length": below, "exact_match": 0.9},
        }

    return {
        "test_exact_match": test,
        "length_limits": {"known_words": curve(known), "unknown_words": curve(unknown)},
        "repeated_words": None if repeated is None else {"exact_match": repeated, "lengths": [21, 40]},
        "epochs": [{"epoch": e, "val_exact_match": v} for e, v in enumerate(val, start=1)],
    }


def test_a_groups_figures_are_the_mean_and_range_of_its_runs():
    summary = group_summary(
        [
            report(test=0.99, known=40, unknown=30, repeated=0.80, val=(0.5, 0.995, 1.0)),
            report(test=1.00, known=44, unknown=36, repeated=0.90, val=(0.99,)),
            report(test=0.97, known=42, unknown=33, repeated=0.85, val=(0.2, 0.6, 0.9, 0.991)),
        ]
    )
    assert list(summary) == list(FIGURES)
    test = summary["test_exact_match"]
    assert (test.mean, test.low, test.high, test.runs, test.beyond) == (
        pytest.approx(0.98666, abs=1e-4),
        0.97,
        1.0,
        3,
        0,
    )
    assert (summary["known_below_99"].mean, summary["known_below_99"].low, summary["known_below_99"].high) == (
        42,
        40,
        44,
    )
    assert (summary["unknown_below_99"].mean, summary["unknown_below_99"].low) == (33, 30)
    assert summary["repeated_exact_match"].mean == pytest.approx(0.85)
    epochs = summary["epochs_to_99"]  # the first epoch at or above 99%: 2, 1, 4
    assert (epochs.mean, epochs.low, epochs.high) == (pytest.approx(7 / 3), 1, 4)


def test_a_run_that_never_crosses_counts_at_the_last_length_or_epoch_measured():
    summary = group_summary(
        [
            report(known=None, unknown=50, longest=60, val=(0.5, 0.9)),  # never below 99%; never 99% in 2 epochs
            report(known=40, unknown=None, longest=60, val=(0.995,)),
        ]
    )
    known = summary["known_below_99"]
    assert (known.mean, known.low, known.high, known.beyond) == (50, 40, 60, 1)
    assert not known.low_beyond and known.high_beyond  # 60 words: past it, not at it
    unknown = summary["unknown_below_99"]
    assert (unknown.low, unknown.high, unknown.beyond, unknown.low_beyond, unknown.high_beyond) == (
        50,
        60,
        1,
        False,
        True,
    )
    epochs = summary["epochs_to_99"]
    assert (epochs.low, epochs.high, epochs.beyond, epochs.high_beyond) == (1, 2, 1, True)
    # at one value, the run past it is the higher one
    tie = spread([Figure(60, beyond=True), Figure(60)])
    assert (tie.low_beyond, tie.high_beyond) == (False, True)


def test_a_figure_a_run_lacks_is_left_out_not_zero():
    old = report(repeated=None)  # a report of a version before the repeated-word sentences
    del old["epochs"]
    failed = {**report(), "test_exact_match": None}  # its test set failed (failed_parts)
    assert "repeated_exact_match" not in member_figures(old) and "epochs_to_99" not in member_figures(old)
    summary = group_summary([old, failed, report(test=0.9, repeated=0.5)])
    assert (summary["test_exact_match"].runs, summary["test_exact_match"].mean) == (2, pytest.approx(0.945))
    assert (summary["repeated_exact_match"].runs, summary["repeated_exact_match"].mean) == (2, pytest.approx(0.675))
    assert group_summary([]) == {k: None for k in FIGURES}
    assert member_figures({"test_exact_match": float("nan"), "epochs": "x"}) == {}


def test_a_group_takes_names_no_run_has(tmp_path):
    ck, runs = tmp_path / "checkpoints", tmp_path / "runs"
    assert free_group("base", [3, 4], ck, runs) == ("base", ["base-seed3", "base-seed4"])
    (runs / "base-seed9").mkdir(parents=True)  # a run of an earlier group of that name
    with pytest.raises(RunError, match="base: a run or seed group of that name exists"):
        free_group("base", [1, 2], ck, runs)
    (ck / "solo").mkdir(parents=True)
    with pytest.raises(RunError, match="exists"):
        free_group("solo", [1], ck, runs)
    with pytest.raises(RunError, match="--name"):
        free_group("bad name", [1], ck, runs)
    group, names = free_group(None, [1, 2], ck, runs)  # the start time
    (runs / names[0]).mkdir()
    again, _ = free_group(None, [1, 2], ck, runs)
    assert again != group and again.startswith(group[:15])
    assert not (ck / "base-seed3").exists()  # nothing made: a run takes its folders when it starts


@pytest.fixture
def group_runs(tmp_path) -> Path:
    d = tmp_path / "runs"
    write_fake_run(d, "solo", config={"hidden_dim": 64}, started=1_700_000_000.0)
    for seed, test, known, repeated, losses in (
        (2, 0.98, (46, 60), 0.80, (0.9, 0.3, 0.05)),
        (1, 1.00, (None, None), 0.90, (0.9, 0.004, 0.003)),
        (3, 0.96, (40, 50), 0.70, (0.9, 0.005)),
    ):
        write_fake_run(
            d,
            f"base-seed{seed}",
            config={"seed": seed},
            group="base",
            started=1_700_000_100.0 + seed,
            test_exact_match=test,
            known_below=known,
            repeated=repeated,
            val_losses=losses,
        )
    write_fake_run(d, "later", started=1_700_009_000.0)
    return d


def test_a_group_is_one_entry_where_its_first_run_started(group_runs):
    runs = list_runs(group_runs)
    entries = grouped(runs)
    assert [e.name for e in entries] == ["solo", "base", "later"]
    base = entries[1]
    assert base.is_group and [m.name for m in base.members] == ["base-seed1", "base-seed2", "base-seed3"]  # by seed
    assert base.test_exact_match == pytest.approx(0.98) and base.status == "finished"
    assert base.config["seed"] == "1-3" and base.config["hidden_dim"] == 32  # the seeds as a range
    assert base.checkpoint == group_runs.parent / "checkpoints" / "base-seed1" / "best.pt"  # its first seed's
    assert base.train_seconds == pytest.approx(sum(m.train_seconds for m in base.members))
    assert base.spread == group_summary([_report(m.folder) for m in base.members])  # from the report.json files
    assert base.spread["repeated_exact_match"].low == 0.7
    assert find_group(runs, "base").name == "base" and find_group(runs, "solo") is None


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_a_group_compares_as_its_runs_mean(group_runs):
    base = find_group(list_runs(group_runs), "base")
    curves = run_curves(base)
    members = [run_curves(m) for m in base.members]
    # epoch 3: the two runs that trained it; epochs 1-2: all three
    assert curves.loss[0][2] == pytest.approx(0.9)
    assert curves.loss[1][2] == pytest.approx((0.004 + 0.3 + 0.005) / 3)
    assert curves.loss[2][2] == pytest.approx((0.003 + 0.05) / 2)
    n = next(iter(members[0].known))
    assert curves.known[n] == pytest.approx(sum(c.known[n] for c in members) / 3)


def test_json_lists_the_group_and_each_runs_group(group_runs):
    runs = list_runs(group_runs)
    data = as_json(runs, group_runs)
    assert len(data["runs"]) == 5  # every run, a group's too
    by_name = {r["name"]: r for r in data["runs"]}
    assert by_name["base-seed2"]["group"] == "base" and by_name["solo"]["group"] is None
    assert by_name["base-seed3"]["figures"]["epochs_to_99"] == {"value": 2.0, "beyond": False}
    (group,) = data["groups"]
    assert group["name"] == "base" and group["runs"] == ["base-seed1", "base-seed2", "base-seed3"]
    assert group["seeds"] == [1, 2, 3]
    test = group["summary"]["test_exact_match"]
    assert (test["mean"], test["min"], test["max"], test["runs"]) == (pytest.approx(0.98), 0.96, 1.0, 3)
    known = group["summary"]["known_below_99"]
    assert known["max_beyond"] and known["beyond"] == 1
