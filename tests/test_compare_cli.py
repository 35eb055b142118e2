"""tui/compare_cli.py and engine/insight/side_by_side.py: `reverse-tui compare RUN RUN --sentence`
prints each run's output and match as the probe decodes it, titled with the configuration
values that differ, and writes one PNG of their heatmaps side by side, never over a file;
a seed group's name stands for its first seed; bad input is one line and exit 2."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from engine.insight import side_by_side
from engine.insight.evaluate import probe
from engine.train.checkpoint import load_model
from tests.conftest import write_fake_run
from tui.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def two_models(tmp_path, trained_checkpoint) -> tuple[Path, Path]:
    """The trained tiny model, and the same weights recorded as another seed's: two models
    whose configurations differ in one value."""
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    shutil.copy(trained_checkpoint, a)
    raw = torch.load(trained_checkpoint, weights_only=True)
    torch.save({**raw, "config": {**raw["config"], "seed": 1234}}, b)
    return a, b


@pytest.mark.figures
def test_each_runs_output_and_one_png_never_over_another(two_models, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    a, b = two_models
    sentence = "the cat sat on the mat"
    assert main(["compare", str(a), str(b), "--sentence", sentence]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = probe(*_model(a), sentence, torch.device("cpu"))  # the probe's own decoding
    assert lines[:2] == [f"sentence:  {sentence}", f"reversal:  {' '.join(reversed(sentence.split()))}"]
    seed = load_model(a).config.seed
    verdict = "match" if expected.match else "no match"
    for path, seed_shown in ((a, seed), (b, 1234)):
        at = lines.index(f"{path} (seed={seed_shown}): {verdict}")
        assert lines[at + 1] == f"  {' '.join(expected.output) or '(nothing)'}"
    assert lines[-1] == "wrote compare-1.png"
    first = Path("compare-1.png").read_bytes()
    assert first.startswith(PNG)
    from PIL import Image

    with Image.open("compare-1.png") as image:
        width, height = image.size
    assert width > height  # two heatmaps side by side
    assert main(["compare", str(a), str(b), "--sentence", sentence]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "wrote compare-2.png"
    assert Path("compare-1.png").read_bytes() == first  # the first one stays as it was
    assert not list(tmp_path.glob(".*tmp*"))  # written to a temporary file and renamed


def _model(path: Path):
    loaded = load_model(path)
    return loaded.model, loaded.vocab


@pytest.fixture
def drawn(monkeypatch) -> list:
    """side_by_side.draw stood in: the panels it is asked for, a 1x1 PNG written."""
    calls = []

    def draw(decoded, path):
        calls.append(decoded)
        Path(path).write_bytes(PNG)
        return Path(path)

    monkeypatch.setattr(side_by_side, "draw", draw)
    return calls


def test_png_names_a_file_and_refuses_one_that_exists(two_models, tmp_path, monkeypatch, capsys, drawn):
    monkeypatch.chdir(tmp_path)
    a, b = two_models
    assert main(["compare", str(a), str(b), "--sentence", "the cat", "--png", "mine.png"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "wrote mine.png"
    assert [d.name for d in drawn[0]] == [str(a), str(b)]
    assert [d.differs for d in drawn[0]] == [{"seed": load_model(a).config.seed}, {"seed": 1234}]
    assert [d.result.source_tokens for d in drawn[0]] == [["the", "cat", "<eos>"]] * 2  # same input, same order
    Path("mine.png").write_bytes(b"the user's own")
    assert main(["compare", str(a), str(b), "--sentence", "the cat", "--png", "mine.png"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "--png mine.png: exists" in line and Path("mine.png").read_bytes() == b"the user's own"


def test_a_seed_group_stands_for_its_first_seed(two_models, tmp_path, monkeypatch, capsys, drawn):
    monkeypatch.chdir(tmp_path)
    a, b = two_models
    for seed in (2, 1):
        write_fake_run(Path("runs"), f"grp-seed{seed}", config={"seed": seed}, group="grp")
    shutil.copy(a, Path("checkpoints/grp-seed1/best.pt"))
    assert main(["compare", "grp", str(b), "--sentence", "the cat sat"]) == 0
    out = capsys.readouterr().out
    assert "\ngrp-seed1 (seed=" in out and drawn[0][0].name == "grp-seed1"  # the group's first seed


@pytest.mark.parametrize(
    "args, says",
    [
        (["{a}", "--sentence", "the cat"], "compare takes 2-8 runs, got 1"),
        (["{a}", "nope", "--sentence", "the cat"], "nope: no such checkpoint file, run name or run folder"),
        (["{a}", "{b}", "--sentence", "?!"], "no words in the input"),
        (["{a}", "{b}", "--sentence", "the cat", "--png", "no/such/folder/x.png"], "no such folder"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(two_models, tmp_path, monkeypatch, capsys, drawn, args, says):
    monkeypatch.chdir(tmp_path)
    a, b = two_models
    assert main(["compare", *(x.format(a=a, b=b) for x in args)]) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.strip().splitlines()
    assert line.startswith("reverse-tui: ") and says in line and captured.out == ""
    assert drawn == [] and not list(tmp_path.glob("*.png"))
