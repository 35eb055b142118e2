"""tui/runs_cli.py: `reverse-tui runs` prints the runs as a table that fits 80 columns, the
configuration values that differ and each problem in a line; --json for scripts; a bad
--runs-dir is one line and exit 2; a folder of damaged runs lists without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.runs.index import list_runs
from tests.conftest import ROOT, write_fake_run
from tui.cli import main


@pytest.fixture
def runs_dir(tmp_path):
    d = tmp_path / "runs"
    write_fake_run(d, "20261203-094507", config={"hidden_dim": 64}, started=1_700_000_000.0)
    write_fake_run(d, "20261203-101500", config={"hidden_dim": 128, "lr": 1e-3}, started=1_700_000_600.0)
    write_fake_run(d, "stopped-early", val_losses=(0.9,), state="stopped", started=1_700_001_200.0)
    (d / "half").mkdir()
    (d / "half" / "report.json").write_text('{"test_exact')
    return d


def test_the_table_fits_80_columns(runs_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    header = next(line for line in lines if line.startswith("run "))
    for words in ("started", "status", "ep", "val loss", "test", "notebk", "<99% at", "time"):
        assert words in header
    first = next(line for line in lines if line.startswith("20261203-094507 "))
    assert "finished" in first and "0.0500" in first and "99.0%" in first and "97.0%" in first and "40/36" in first
    assert "stopped" in next(line for line in lines if line.startswith("stopped-early "))
    assert "1/" not in first  # all its epochs
    # the configuration values that differ: here below the figures, a line per run
    assert "hidden_dim=64 epochs=3 lr=0.003" in out and "hidden_dim=128 epochs=3 lr=0.001" in out
    assert "half" in out and "report.json: not JSON" in out  # its problem, in a line


def test_a_wide_terminal_gets_one_table(runs_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "140")
    assert main(["runs", "--runs-dir", str(runs_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("run "))
    assert header.split()[-3:] == ["hidden_dim", "epochs", "lr"]  # the values that differ, as columns
    row = next(line for line in lines if line.startswith("20261203-101500 "))
    assert row.split()[-3:] == ["128", "3", "0.001"]


def test_json_for_scripts(runs_dir, capsys):
    assert main(["runs", "--runs-dir", str(runs_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = [r["name"] for r in data["runs"]]
    assert names == [r.name for r in list_runs(runs_dir)] and set(names) == {
        "20261203-094507",
        "20261203-101500",
        "stopped-early",
        "half",
    }
    by_name = {r["name"]: r for r in data["runs"]}
    assert by_name["20261203-101500"]["differs"] == {"hidden_dim": 128, "epochs": 3, "lr": 0.001}
    assert by_name["stopped-early"]["status"] == "stopped" and by_name["stopped-early"]["epochs"] == 1
    assert by_name["half"]["status"] == "unknown" and "report.json" in by_name["half"]["problem"]


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_a_bad_runs_dir_is_one_line_and_exit_2(tmp_path, capsys, what):
    path = tmp_path / "nope"
    if what == "a file":
        path.write_text("x")
    assert main(["runs", "--runs-dir", str(path)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"reverse-tui: {path}: ") and captured.out == ""


def test_no_runs_yet(tmp_path, capsys):
    assert main(["runs", "--runs-dir", str(tmp_path)]) == 0
    assert "no runs in" in capsys.readouterr().out
    assert main(["runs", "--runs-dir", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == []


def test_a_name_with_markup_prints_as_written(tmp_path, capsys):
    write_fake_run(tmp_path / "runs", "[bold]x[")
    assert main(["runs", "--runs-dir", str(tmp_path / "runs")]) == 0
    assert "[bold]x[" in capsys.readouterr().out


@pytest.mark.slow
def test_the_command_lists_without_torch(runs_dir):
    """`reverse-tui runs` starts without importing torch, let alone loading a model."""
    code = (
        "import sys; from tui.cli import main; "
        f"code = main(['runs', '--json', '--runs-dir', {str(runs_dir)!r}]); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)["runs"]) == 4


@pytest.fixture
def group_dir(runs_dir):
    """runs_dir and a seed group of three runs, seeds 1-3, one of them never below 99%."""
    for seed, test, known, repeated in (
        (1, 0.99, (40, 55), 0.8),
        (2, 1.0, (None, None), 0.9),
        (3, 0.97, (44, 60), 0.7),
    ):
        write_fake_run(
            runs_dir,
            f"base-seed{seed}",
            config={"seed": seed},
            group="base",
            started=1_700_002_000.0 + seed,
            test_exact_match=test,
            known_below=known,
            repeated=repeated,
        )
    return runs_dir


def test_a_seed_group_is_one_row_and_its_figures_spread(group_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["runs", "--runs-dir", str(group_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert not any(line.startswith("base-seed") for line in lines)  # its runs are not rows
    row = next(line for line in lines if line.startswith("base ×3 "))
    assert "98.7%" in row and "≥" in row  # the mean test figure; a known-words mean that is a lower bound
    at = lines.index(next(line for line in lines if line.startswith("seed group")))
    assert lines[at - 1].split() == ["test", "known", "unknown", "repeated", "epochs"]
    mean, lo_hi = lines[at + 2], lines[at + 3]  # under the header's rule: the means, then lowest-highest
    assert mean.split() == ["base", "3", "98.7", "≥88", "36", "80.0", ">3"]
    assert lo_hi.split() == ["97.0–100", "40–>180", "70.0–90.0"]  # the seeds' unknown limits and epochs agree


def test_runs_group_lists_its_runs_and_the_group(group_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    assert main(["runs", "base", "--runs-dir", str(group_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line.split()[0] for line in lines if line.startswith("base")]
    assert rows == ["base-seed1", "base-seed2", "base-seed3", "base", "base"]  # its runs, its row, its figures
    assert not any(line.startswith(("stopped-early", "20261203")) for line in lines)
    assert main(["runs", "base", "--runs-dir", str(group_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in data["runs"]] == ["base-seed1", "base-seed2", "base-seed3"]
    assert data["differing_keys"] == ["seed"] and data["groups"][0]["name"] == "base"


def test_json_has_the_groups(group_dir, capsys):
    assert main(["runs", "--runs-dir", str(group_dir), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["runs"]) == 7  # every run, the group's among them, each with its group
    assert [r["group"] for r in data["runs"]].count("base") == 3
    (group,) = data["groups"]
    summary = group["summary"]
    assert summary["test_exact_match"]["mean"] == pytest.approx(0.98666, abs=1e-4)
    assert (summary["repeated_exact_match"]["min"], summary["repeated_exact_match"]["max"]) == (0.7, 0.9)
    assert summary["known_below_99"] == {
        "mean": pytest.approx((40 + 180 + 44) / 3),
        "min": 40.0,
        "max": 180.0,
        "runs": 3,
        "beyond": 1,
        "min_beyond": False,
        "max_beyond": True,
    }
    assert summary["epochs_to_99"]["max_beyond"]  # the fake runs never reach 99% on validation


def test_an_unknown_group_is_one_line_and_exit_2(group_dir, capsys):
    assert main(["runs", "nope", "--runs-dir", str(group_dir)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("reverse-tui: nope: no seed group") and "(groups: base)" in line
