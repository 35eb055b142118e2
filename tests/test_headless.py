"""tui/headless.py: `reverse-tui --no-ui` end to end on a tiny configuration (also on a corpus
file, and resumed); stopped by a signal, failing to write, failing to save."""

import csv
import json
import os
import re
import signal
import subprocess
import sys

import pytest
import torch

from engine.train.checkpoint import load
from engine.train.config import Config
from engine.train.events import EpochDone
from engine.train.trainer import Trainer
from tests.conftest import LEAN_TUI, QUICK_FLAGS, ROOT, TINY, TINY_FLAGS, write_corpus
from tui.cli import main

REPORT_KEYS = {
    "test_exact_match",
    "per_length",
    "epochs",
    "best_epoch",
    "checkpoint",
    "device",
    "config",
    "test_eval_seconds",
}


@pytest.mark.slow  # the plot process draws the figures: one of the runs kept end to end
@pytest.mark.figures
def test_headless_run_writes_every_artefact(tmp_path, capsys):
    out, ckpt = tmp_path / "out", tmp_path / "ck" / "best.pt"
    code = main(["--no-ui", *TINY_FLAGS, "--out", str(out), "--checkpoint", str(ckpt)])
    assert code == 0
    for name in ("attention_heatmap.png", "loss_curve.png", "metrics.csv", "analysis.md", "report.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "attention_heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report)
    assert 0.0 <= report["test_exact_match"] <= 1.0
    assert [e["epoch"] for e in report["epochs"]] == [1, 2]
    assert set(report["epochs"][0]) >= {"epoch", "train_loss", "val_loss", "val_exact_match", "seconds"}
    # what each epoch cost the machine (engine/train/resources.py), kept per epoch
    assert set(report["epoch_details"][0]) >= {"lr", "tokens_per_s", "seconds_left", "rss_mib", "gpu_peak_mib"}
    assert set(report["per_length"]) == {str(n) for n in range(3, 7)}
    assert report["config"]["hidden_dim"] == 32 and report["device"] == "cpu"
    assert report["native_kernels"].startswith("C kernels: ")  # on, or off and why
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert torch.load(ckpt, weights_only=True)["epoch"] == 2
    text = capsys.readouterr().out
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["epoch", "loss", "loss"])
    assert lines[header + 1].startswith("  1/2 ") and lines[header + 2].startswith("  2/2 ")
    assert "s/epoch" in lines[header] and "tok/s" in lines[header] and "test exact match" in text
    assert report["native_kernels"] in text.splitlines()[0]
    assert text.count("\nReference: ") == 10
    # the analysis quotes the measured numbers of this run
    analysis = (out / "analysis.md").read_text()
    assert f"{100 * report['attention']['mirror_peak_rate']:.1f}%" in analysis


def test_beam_is_reported_beside_greedy(tmp_path):
    out = tmp_path / "out"
    flags = [*QUICK_FLAGS, "--epochs", "1"]
    assert main(["--no-ui", *flags, "--beam", "3", "--out", str(out), "--checkpoint", str(tmp_path / "c.pt")]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["beam"]["width"] == 3 and 0 <= report["beam"]["exact_match"] <= 1
    assert set(report["beam"]["per_length"]) == set(report["per_length"])
    assert "test_exact_match" in report  # greedy stays the main figure


@pytest.mark.slow
def test_no_ui_runs_without_textual_and_without_the_c_kernels(tmp_path):
    """The GPU box has torch, rich, matplotlib and seaborn but no textual, and a GPU runs
    the PyTorch-ops path of every step (as does a machine without a C compiler): the whole
    job, with the kernels turned off."""
    code = (
        "import sys; sys.modules['textual'] = None; sys.modules['plotext'] = None\n"
        "from tests.lean_run import stand_in\n"
        "stand_in()\n"  # the figures (tests/lean_run.py): their process never sees this one's modules
        "from tui.cli import main\n"
        f"sys.exit(main(['--no-ui', *{QUICK_FLAGS!r}, '--epochs', '1', '--out', {str(tmp_path / 'o')!r},"
        f" '--checkpoint', {str(tmp_path / 'c.pt')!r}]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "REVERSE_TUI_NATIVE": "0"},
    )
    assert r.returncode == 0, r.stderr[-2000:]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["native_kernels"].startswith("C kernels: off (turned off")


def test_no_attention_control_is_trained_and_compared(tmp_path, capsys):
    out, ckpt = tmp_path / "out", tmp_path / "best.pt"
    flags = [*QUICK_FLAGS, "--epochs", "1"]
    assert main(["--no-ui", *flags, "--out", str(out), "--checkpoint", str(ckpt), "--compare-no-attention"]) == 0
    assert "\n[no attn]   1/1 " in capsys.readouterr().out  # printed as written, not as markup
    report = json.loads((out / "report.json").read_text())
    control = report["no_attention_control"]
    assert control["attention"] is False and 0 <= control["test_exact_match"] <= 1
    assert torch.load(tmp_path / "best.no-attention.pt", weights_only=True)["config"]["attention"] is False
    analysis = (out / "analysis.md").read_text()
    assert "| length | with attention | without attention |" in analysis
    assert f"{100 * control['test_exact_match']:.1f}%" in analysis
    # its knock-outs: every weight equal, the "most attended" word drawn among them
    faith = control["faithfulness"]
    assert faith["attention"] is False and faith["tied_top"] == 1.0 and faith["sentences"] == 40
    assert "The no-attention control, measured the same way:" in analysis


def test_resume_ends_with_the_same_losses_as_an_uninterrupted_run(tmp_path):
    # dropout: the torch RNG matters too; a few batches an epoch show it as well as many
    cfg = {**TINY, "train_size": 128, "val_size": 32, "test_size": 32, "epochs": 4, "dropout": 0.2, "layers": 2}
    full = Trainer(Config(**cfg), tmp_path / "full.pt")
    full_losses = [(e.train_loss, e.val_loss) for e in full.run() if isinstance(e, EpochDone)]

    first = Trainer(Config(**cfg), tmp_path / "part.pt")
    for ev in first.run():
        if isinstance(ev, EpochDone) and ev.epoch == 2:
            break  # "interrupted" after epoch 2
    last = tmp_path / "part.last.pt"
    assert torch.load(last, weights_only=True)["epoch"] == 2
    torch.manual_seed(12345)  # whatever happened to the global RNG in between
    # --device cpu: the comparison is with a CPU run, whatever this machine has (without it, a
    # CPU checkpoint stays on the CPU anyway: engine.train.trainer.resumed_config)
    code = main(
        [
            "--no-ui",
            "--resume",
            str(last),
            "--checkpoint",
            str(tmp_path / "part.pt"),
            "--out",
            str(tmp_path / "out"),
            "--device",
            "cpu",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    resumed = [(e["train_loss"], e["val_loss"]) for e in report["epochs"]]
    assert resumed == full_losses


def test_headless_run_on_a_corpus(tmp_path, capsys):
    path = write_corpus(tmp_path / "c.txt", 3000, vocab_size=40)
    out = tmp_path / "out"
    code = main(
        [
            "--no-ui",
            "--corpus",
            str(path),
            "--max-len",
            "10",
            "--train-size",
            "400",
            "--epochs",
            "1",
            "--embed-dim",
            "16",
            "--hidden-dim",
            "32",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--checkpoint",
            str(tmp_path / "c.pt"),
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "kept 2,820 of 3,000 lines" in text
    # a quarter of its training sentences joined, and a tenth of those of 6+ words as repeated words
    assert re.search(r"400 train \(\+100 joined, \d+ rewritten as repeated words\) / ", text)
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["corpus"] == str(path) and report["test_sentences"] == 282


# -- interrupted and failing runs --------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_after_the_batch_keeps_the_best_and_writes_results(tmp_path, sig, code):
    out, ckpt = tmp_path / "out", tmp_path / "best.pt"
    flags = [*QUICK_FLAGS, "--epochs", "200"]
    p = subprocess.Popen(
        [*LEAN_TUI, "--no-ui", *flags, "--out", str(out), "--checkpoint", str(ckpt)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in p.stdout:
        if line.split()[:1] == ["2/200"]:  # the second epoch's line
            break
    p.send_signal(sig)
    rest, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert f"stopped by {sig.name}" in rest
    import json

    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True and len(report["epochs"]) >= 2
    assert load(ckpt)["epoch"] >= 2


def test_unwritable_output_is_reported_before_training(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["--no-ui", *TINY_FLAGS, "--out", str(blocker / "out"), "--checkpoint", str(tmp_path / "c.pt")])
    assert code == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "epoch" not in err
    assert not (tmp_path / "c.pt").exists()


def test_failed_save_keeps_the_previous_best(tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "best.pt"
    save_calls = {"n": 0}
    real_save = torch.save

    def full_disk(obj, f, *a, **k):
        save_calls["n"] += 1
        if save_calls["n"] > 1:
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full_disk)
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("--epochs") + 1] = "4"
    code = main(["--no-ui", *flags, "--out", str(tmp_path / "o"), "--checkpoint", str(ckpt)])
    monkeypatch.setattr(torch, "save", real_save)
    assert save_calls["n"] == 2  # epoch 1 saved; epoch 2's better model hit the full disk
    assert code == 1
    assert "No space left" in capsys.readouterr().err
    assert load(ckpt)["epoch"] == 1
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []
