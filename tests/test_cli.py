"""tui/cli.py, the command line: config.toml written by every run and read back by --config
(flags override it), --version, invalid flags refused with the usage, and a plain
`reverse-tui` without a terminal running headless."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from engine.job import Started, run_job
from engine.train.config import Config
from tests.conftest import LEAN_TUI, QUICK_FLAGS, ROOT, TINY
from tui.cli import config_from_args, main, main_parser


def test_the_run_writes_its_config_and_it_repeats_the_run(tmp_path):
    cfg = Config(**{**TINY, "epochs": 1, "seed": 7})
    job = run_job(cfg, tmp_path / "best.pt", tmp_path / "out")
    assert isinstance(next(job), Started)
    job.close()
    written = tmp_path / "out" / "config.toml"
    args = main_parser().parse_args(["--config", str(written)])
    assert config_from_args(args) == cfg


def test_a_flag_overrides_the_file(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(Config(**{**TINY, "hidden_dim": 48}).to_toml())
    args = main_parser().parse_args(["--config", str(path), "--hidden-dim", "40", "--no-bidirectional"])
    assert config_from_args(args) == Config(**{**TINY, "hidden_dim": 40, "bidirectional": False})
    # a partial file: the rest from the preset
    path.write_text("epochs = 5\nlr = 1\n")
    got = config_from_args(main_parser().parse_args(["--config", str(path), "--preset", "notebook"]))
    assert got == replace(Config.notebook(), epochs=5, lr=1.0)


@pytest.mark.parametrize(
    "text, words",
    [
        ("hiden_dim = 3\n", "unknown setting(s) hiden_dim"),
        ('hidden_dim = "big"\n', "hidden_dim must be int, got str"),
        ("bidirectional = 1\n", "bidirectional must be bool"),
        ("epochs = 2.5\n", "epochs must be int, got float"),
        ("epochs = \n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_one_line_and_exit_2(tmp_path, capsys, text, words):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    assert main(["--no-ui", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"reverse-tui: --config {path}: ") and words in err[0]


def test_a_missing_config_file(tmp_path, capsys):
    assert main(["--config", str(tmp_path / "nope.toml")]) == 2
    assert "cannot read it" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert re.fullmatch(r"reverse-tui \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--train-size", "-1"], "--train-size"),
        (["--hidden-dim", "-3"], "--hidden-dim"),
        (["--min-len", "8", "--max-len", "4"], "--min-len"),
        (["--teacher-forcing", "1.5"], "--teacher-forcing"),
        (["--device", "tpu"], "invalid choice"),
        (["--epochs", "many"], "invalid int"),
        (["--location-kernel", "4"], "--location-kernel"),
    ],
)
def test_invalid_flags_are_refused_with_usage(flags, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--no-ui", *flags])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and words in err


@pytest.mark.parametrize(
    "flag, auto, number",
    [("--min-freq", 0, "3"), ("--train-size", 0, "900"), ("--join", -1, "5"), ("--repeat-rate", -1.0, "0.2")],
)
def test_the_flags_whose_default_is_auto_take_auto(flag, auto, number):
    """docs/flags.md and --help give `auto` as these flags' default: the word is a value too,
    the same as the number that stands for it (which config.toml keeps)."""
    field = flag[2:].replace("-", "_")
    given = config_from_args(main_parser().parse_args([flag, "auto"]))
    assert getattr(given, field) == auto and given == Config()
    assert given == config_from_args(main_parser().parse_args([flag, str(auto)]))
    assert getattr(config_from_args(main_parser().parse_args([flag, number])), field) == type(auto)(number)


def test_a_word_other_than_auto_is_refused_with_usage(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--no-ui", "--repeat-rate", "often"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage:") and "invalid float value: 'often'" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--no-ui", "--device", "cuda"])
    assert e.value.code == 2 and "no CUDA device" in capsys.readouterr().err


def test_missing_corpus_is_refused(capsys):
    import pytest

    with pytest.raises(SystemExit) as e:
        main(["--no-ui", "--corpus", "/nonexistent/file.txt"])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err


@pytest.mark.slow
def test_without_a_terminal_the_app_runs_headless_and_says_so(tmp_path):
    flags = [*QUICK_FLAGS, "--epochs", "1"]
    r = subprocess.run(
        [*LEAN_TUI, *flags, "--out", str(tmp_path / "o"), "--checkpoint", str(tmp_path / "c.pt")],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    first = r.stdout.splitlines()[0]
    assert first == "reverse-tui: no terminal (stdin and stdout not a tty), running headless as --no-ui"
    assert "test exact match" in r.stdout
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["config"]["epochs"] == 1
    assert (tmp_path / "o" / "config.toml").exists()
    # an existing checkpoint the app would have opened is not trained over
    before = (tmp_path / "c.pt").read_bytes()
    r = subprocess.run(
        [sys.executable, "-m", "tui", "--checkpoint", str(tmp_path / "c.pt")],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "exists" in r.stderr
    assert (tmp_path / "c.pt").read_bytes() == before


def test_a_run_leaves_what_the_imports_made_out_of_the_collectors_sight(monkeypatch, capsys):
    """torch's ~170k module objects live as long as the process: main freezes them once
    torch is imported, before anything is trained, so no full collection of the run
    traverses them (a --threads 0 run is refused just after, without training)."""
    import gc

    frozen = []
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append(True))
    with pytest.raises(SystemExit):
        main(["--no-ui", "--threads", "0"])
    assert frozen == [True]
    assert "--threads must be at least 1" in capsys.readouterr().err
