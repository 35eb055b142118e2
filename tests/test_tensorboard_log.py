"""--tensorboard: the event file holds every epoch's figures as report.json has them, and
the watch sentence's attention; without the tensorboard package the flag is refused in one
line with exit 2, before anything is trained (that test runs everywhere: the import is made
to fail)."""

from __future__ import annotations

import json
import sys

import pytest

from engine.insight import tensorboard_log
from engine.insight.tensorboard_log import CELL, INSTALL, SCALARS, attention_image
from tests.conftest import QUICK_FLAGS
from tui.cli import main


def test_without_tensorboard_the_flag_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import fails
    out = tmp_path / "out"
    assert (
        main(["--no-ui", *QUICK_FLAGS, "--tensorboard", "--out", str(out), "--checkpoint", str(tmp_path / "b.pt")]) == 2
    )
    err = capsys.readouterr().err
    assert err.strip() == f"reverse-tui: {INSTALL}" and "Traceback" not in err
    assert not out.exists() and not (tmp_path / "b.pt").exists()  # nothing was trained or written


def test_without_tensorboard_the_app_is_refused_the_same_way(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    assert main(["--tensorboard"]) == 2  # before the app would start
    assert INSTALL in capsys.readouterr().err


def test_the_install_line_names_the_extra():
    assert "pip install 'reverse-tui[tensorboard]'" in INSTALL


def test_attention_image_is_grey_cells_of_the_weights():
    img = attention_image([[1.0, 0.0], [0.25, 0.75]])
    assert img.shape == (2 * CELL, 2 * CELL) and str(img.dtype) == "torch.uint8"
    assert img[0, 0] == 255 and img[0, CELL] == 0 and img[CELL, 0] == 64 and img[-1, -1] == 191


def test_the_event_file_holds_what_report_json_holds(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    code = main(["--no-ui", *QUICK_FLAGS, "--tensorboard", "--out", str(out), "--checkpoint", str(tmp_path / "b.pt")])
    assert code == 0
    assert tensorboard_log.missing() is None
    report = json.loads((out / "report.json").read_text())
    epochs = report["epoch_details"]
    board = EventAccumulator(str(out / tensorboard_log.FOLDER), size_guidance={"scalars": 0, "images": 0})
    board.Reload()
    tags = board.Tags()
    known = {tag for tag, name in SCALARS.items() if epochs[0][name] is not None}
    assert set(tags["scalars"]) == known  # a CPU run: no GPU figures
    assert {"loss/train", "loss/val", "exact_match/val", "learning_rate", "grad_norm/mean"} <= known
    assert "throughput/tokens_per_s" in known
    for tag in known:
        events = board.Scalars(tag)
        assert [e.step for e in events] == [h["epoch"] for h in epochs], tag
        # float32 in the event file
        assert [e.value for e in events] == pytest.approx([h[SCALARS[tag]] for h in epochs], rel=1e-6), tag
    images = board.Images("attention/watch")
    assert [i.step for i in images] == [h["epoch"] for h in epochs]
    words = len(
        report["config"] and json.loads((out / "attention_timeline.json").read_text())[-1]["sentences"][0]["source"]
    )
    assert images[-1].width == (words + 1) * CELL  # the words and EOS, CELL pixels each
