"""tui/probe_cli.py: `reverse-tui probe --checkpoint PATH "the cat sat"` prints the reversal (and
the grid); bad input or a bad checkpoint is one line and status 2. With no sentence (or `-`):
one output line per line of standard input, in order, notes on standard error."""

import io
import subprocess
import sys

import pytest
import torch

import tui.probe_cli as probe_cli
from engine.insight.evaluate import probe
from engine.train.checkpoint import load_model
from tests.conftest import HOSTILE_STRINGS, ROOT, bad_checkpoints, run_cli
from tui.cli import main

LINES = [
    "the cat sat",
    "",  # no words: an empty line back, no note
    "!!! ...",  # no words either: an empty line back, and a note
    "The Zebra ate MY hat, today!",  # unknown words, punctuation, capitals
    "dog",  # shorter than training
    " ".join(["fast"] * 600),  # too long to probe: an empty line back, and a note
    "slow dog ran",
] + [text for text in HOSTILE_STRINGS if "\n" not in text and "\r" not in text]  # one line each


@pytest.fixture(scope="module")
def loaded(trained_checkpoint):
    return load_model(trained_checkpoint)


@pytest.mark.slow
def test_probe_prints_the_reversal(trained_checkpoint):
    cmd = [
        sys.executable,
        "-m",
        "tui",
        "probe",
        "--checkpoint",
        str(trained_checkpoint),
        "--grid",
        "--beam",
        "2",
        "the cat sat",
    ]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines[0].split()) >= 1
    assert "<eos>" in lines[1]  # the grid's header row names the encoder tokens


def test_lines_come_back_in_order_with_notes_apart(loaded, monkeypatch):
    monkeypatch.setattr(probe_cli, "CHUNK", 3)  # chunk boundaries inside the input
    out, err = io.StringIO(), io.StringIO()
    probe_cli.probe_lines(loaded, io.StringIO("\n".join(LINES) + "\n"), out, err, torch.device("cpu"))
    got = out.getvalue().split("\n")
    assert got[-1] == "" and len(got) - 1 == len(LINES)  # one line per input line, newline-ended
    for line, answer in zip(LINES, got):
        try:
            expected = " ".join(probe(loaded.model, loaded.vocab, line, torch.device("cpu")).output)
        except ValueError:
            expected = ""  # no words, or too many
        assert answer == expected, line
    notes = err.getvalue().splitlines()
    assert any(n.startswith("line 3: no words") for n in notes)
    assert any(n.startswith("line 4: note: not in the vocabulary") and "zebra" in n for n in notes)
    assert any(n.startswith("line 6:") and "at most" in n for n in notes)
    assert not any(n.startswith(("line 1:", "line 2:", "line 7:")) for n in notes)
    assert not any(n.split(":")[0] == "line" for n in out.getvalue().splitlines())  # no notes in the output


@pytest.mark.slow
@pytest.mark.parametrize("args", [[], ["-"]])
def test_cli_reads_standard_input(trained_checkpoint, loaded, args):
    p = subprocess.run(
        [sys.executable, "-m", "tui", "probe", "--checkpoint", str(trained_checkpoint), *args],
        input="the cat sat\n\nslow dog ran\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    lines = p.stdout.split("\n")
    assert len(lines) == 4 and lines[1] == "" and lines[3] == ""
    for line, answer in zip(["the cat sat", "slow dog ran"], [lines[0], lines[2]]):
        assert answer == " ".join(probe(loaded.model, loaded.vocab, line, torch.device("cpu")).output)
    assert "Traceback" not in p.stderr


@pytest.mark.slow
def test_cli_stdin_with_a_bad_checkpoint_exits_2(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    p = subprocess.run(
        [sys.executable, "-m", "tui", "probe", "--checkpoint", str(bad)],
        input="the cat sat\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert p.returncode == 2
    assert p.stdout == "" and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_probe_cli_bad_input_is_one_line_and_status_2(trained_checkpoint):
    r = run_cli("probe", "--checkpoint", str(trained_checkpoint), "?!")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no words" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("probe", "--checkpoint", str(trained_checkpoint), "the zebra sat")
    assert r.returncode == 0 and "zebra" in r.stderr  # a note about the unknown word


def test_bad_checkpoints_exit_2_from_the_cli(tmp_path, trained_checkpoint, capsys):
    """Through the command line's main, in this process (one bad checkpoint in a process of its
    own, from standard input: test_cli_stdin_with_a_bad_checkpoint_exits_2)."""
    cases = bad_checkpoints(tmp_path, trained_checkpoint)
    for what in ("missing", "truncated", "random", "directory", "other configuration"):
        assert main(["probe", "--checkpoint", str(cases[what]), "the cat sat"]) == 2, what
        captured = capsys.readouterr()
        assert captured.out == "" and "Traceback" not in captured.err and str(cases[what]) in captured.err, what
        assert len(captured.err.strip().splitlines()) == 1, (what, captured.err)
