"""tui/seeds.py: `reverse-tui --no-ui --seeds N` trains one configuration on N seeds, one run
after another, each in folders of its own and grouped under --name; `reverse-tui runs` lists
the group as one row. Bad input (--seeds 0, with --resume, --checkpoint, --overwrite, or in
the app) is one line and exit 2, with nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tui.headless
from tests.conftest import QUICK_FLAGS
from tui import cli
from tui.cli import main


def test_seeds_trains_a_run_per_seed_grouped_under_the_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["--no-ui", "--seeds", "2", "--seed", "7", "--name", "g", *QUICK_FLAGS]) == 0
    out = capsys.readouterr().out
    runs = Path("runs")
    for seed in (7, 8):
        name = f"g-seed{seed}"
        report = json.loads((runs / name / "report.json").read_text())
        assert report["config"]["seed"] == seed and report["group"] == "g" and report["run"] == name
        assert json.loads((runs / name / "status.json").read_text())["group"] == "g"
        assert report["repeated_words"]["exact_match"] is not None
        assert Path("checkpoints", name, "best.pt").is_file()
        assert f"== seed {seed} ({seed - 6}/2): run {name}" in out
    assert sorted(p.name for p in runs.iterdir()) == ["g-seed7", "g-seed8", "latest"]  # no folder for the group
    assert "seed group g: 2 runs (g-seed7, g-seed8)" in out  # then its figures over them

    assert main(["runs", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    (group,) = data["groups"]
    assert group["name"] == "g" and group["runs"] == ["g-seed7", "g-seed8"] and group["seeds"] == [7, 8]
    tests = [r["test_exact_match"] for r in data["runs"]]
    assert group["summary"]["test_exact_match"]["mean"] == pytest.approx(sum(tests) / 2)
    assert group["summary"]["test_exact_match"]["min"] == min(tests)

    # the same name again: refused before anything is trained or written
    before = sorted(str(p) for p in Path(".").rglob("*"))
    assert main(["--no-ui", "--seeds", "2", "--seed", "7", "--name", "g", *QUICK_FLAGS]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("reverse-tui: --name g: a run or seed group of that name exists")
    assert sorted(str(p) for p in Path(".").rglob("*")) == before


@pytest.mark.parametrize(
    "flags, says",
    [
        (["--seeds", "0"], "--seeds must be at least 1, got 0"),
        (["--seeds", "-2"], "--seeds must be at least 1"),
        (["--seeds", "2", "--resume", "latest"], "--resume continues one"),
        (["--seeds", "2", "--checkpoint", "x.pt"], "--checkpoint and --out name one run's"),
        (["--seeds", "2", "--out", "somewhere"], "--checkpoint and --out name one run's"),
        (["--seeds", "2", "--overwrite"], "never replaces a run"),
    ],
)
def test_bad_seeds_are_one_line_and_exit_2(tmp_path, monkeypatch, capsys, flags, says):
    monkeypatch.chdir(tmp_path)
    assert main(["--no-ui", *flags, *QUICK_FLAGS]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("reverse-tui: ") and says in line and captured.out == ""
    assert list(tmp_path.iterdir()) == []


def test_the_app_refuses_seeds_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "isatty", lambda f: True)  # a terminal: the app would start
    assert main(["--seeds", "3", *QUICK_FLAGS]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "add --no-ui" in line and list(tmp_path.iterdir()) == []


def test_a_failed_run_is_a_figure_and_a_stop_ends_the_group(tmp_path, monkeypatch, capsys):
    """A seed that fails (exit 1) leaves the next to train; one stopped (130) or refused (2)
    ends the group, and the runs not trained are named."""
    monkeypatch.chdir(tmp_path)
    asked, codes = [], iter([1, 130, 0])

    def run_headless(cfg, opts, first_line=None):
        asked.append((cfg.seed, opts.name, opts.group))
        return next(codes)

    monkeypatch.setattr(tui.headless, "run_headless", run_headless)
    assert main(["--no-ui", "--seeds", "4", "--seed", "1", "--name", "s", *QUICK_FLAGS]) == 1
    assert asked == [(1, "s-seed1", "s"), (2, "s-seed2", "s")]
    err = capsys.readouterr().err
    assert "the seed group stops here; not trained: s-seed3, s-seed4" in err
