"""Bad input, untrusted checkpoints, interrupted and failing runs."""
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings, strategies as st

from engine.checkpoint import CheckpointError, load, load_model, save_atomic
from engine.config import Config
from engine.evaluate import MAX_PROBE_WORDS, probe
from engine.train import NonFiniteLoss, Trainer
import engine.train as train_mod
from tests.conftest import HOSTILE_STRINGS, ROOT, TINY
from tests.test_headless import TINY_FLAGS
from tui.cli import main

PY = sys.executable


def run_cli(*args, timeout=300):
    return subprocess.run([PY, "-m", "tui", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


# -- sentences -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def loaded(trained_checkpoint):
    return load_model(trained_checkpoint)


@pytest.mark.parametrize("text, expect", [
    ("the cat sat", ["the", "cat", "sat"]),
    ("The CAT  sat", ["the", "cat", "sat"]),
    ("the\tcat\nsat", ["the", "cat", "sat"]),
    ("the zebra sat", ["the", "zebra", "sat"]),
] + [(text, words) for text, words in HOSTILE_STRINGS.items() if 0 < len(words) <= MAX_PROBE_WORDS])
def test_probe_tokenises_by_the_documented_rule(loaded, text, expect):
    r = probe(loaded.model, loaded.vocab, text, torch.device("cpu"))
    assert r.source == expect and r.reference == expect[::-1]
    assert r.attention.shape[1] == len(expect) + 1


@pytest.mark.parametrize("text", [text for text, words in HOSTILE_STRINGS.items() if not words])
def test_probe_without_words_is_a_clear_error(loaded, text):
    with pytest.raises(ValueError, match="no words"):
        probe(loaded.model, loaded.vocab, text, torch.device("cpu"))


def test_probe_of_200_words_answers(loaded):
    text = " ".join(random.Random(0).choice(["the", "cat", "sat", "dog"]) for _ in range(200))
    r = probe(loaded.model, loaded.vocab, text, torch.device("cpu"))
    assert len(r.source) == 200 and r.steps <= 2 * 201 + 5


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_probe_never_raises_anything_but_a_clear_error(loaded_module_model, text):
    model, vocab = loaded_module_model
    try:
        r = probe(model, vocab, text, torch.device("cpu"))
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert r.source and r.attention.shape[0] == r.steps


@pytest.fixture(scope="module")
def loaded_module_model(loaded):
    return loaded.model, loaded.vocab


def test_probe_cli_bad_input_is_one_line_and_status_2(trained_checkpoint):
    r = run_cli("probe", "--checkpoint", str(trained_checkpoint), "?!")
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "no words" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("probe", "--checkpoint", str(trained_checkpoint), "the zebra sat")
    assert r.returncode == 0 and "zebra" in r.stderr  # a note about the unknown word


# -- checkpoints -----------------------------------------------------------------------------

def _bad_checkpoints(tmp: Path, good: Path) -> dict[str, Path]:
    data = good.read_bytes()
    cases = {
        "missing": tmp / "nope.pt",
        "empty": tmp / "empty.pt",
        "truncated": tmp / "trunc.pt",
        "random": tmp / "random.pt",
        "directory": tmp / "adir",
        "other version": tmp / "other.pt",
        "other vocabulary": tmp / "vocab.pt",
        "other configuration": tmp / "config.pt",
        "not a dict": tmp / "list.pt",
    }
    cases["empty"].write_bytes(b"")
    cases["truncated"].write_bytes(data[: len(data) // 2])
    cases["random"].write_bytes(os.urandom(4096))
    cases["directory"].mkdir()
    raw = torch.load(good, weights_only=True)
    torch.save({**raw, "format": "reverse-tui checkpoint v0"}, cases["other version"])
    torch.save({**raw, "vocab": raw["vocab"] + ["zebra", "lion"]}, cases["other vocabulary"])
    torch.save({**raw, "config": {**raw["config"], "hidden_dim": 48}}, cases["other configuration"])
    torch.save([1, 2, 3], cases["not a dict"])
    return cases


def test_bad_checkpoints_give_one_clear_line(tmp_path, trained_checkpoint):
    for what, path in _bad_checkpoints(tmp_path, trained_checkpoint).items():
        with pytest.raises(CheckpointError) as e:
            load_model(path)
        msg = str(e.value)
        assert str(path) in msg and "\n" not in msg, what


def test_bad_checkpoints_exit_2_from_the_cli(tmp_path, trained_checkpoint):
    cases = _bad_checkpoints(tmp_path, trained_checkpoint)
    for what in ("missing", "truncated", "random", "directory", "other configuration"):
        r = run_cli("probe", "--checkpoint", str(cases[what]), "the cat sat")
        assert r.returncode == 2, what
        assert "Traceback" not in r.stderr and str(cases[what]) in r.stderr, what
        assert len(r.stderr.strip().splitlines()) == 1, (what, r.stderr)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_crafted_to_run_code_does_not_run_it(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "reverse-tui checkpoint v1", "model": _Evil(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused"):
        load(evil)
    assert not marker.exists()
    # a raw pickle file too
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Evil(marker)))
    with pytest.raises(CheckpointError):
        load(raw)
    assert not marker.exists()
    r = run_cli("probe", "--checkpoint", str(evil), "the cat sat")
    assert r.returncode == 2 and not marker.exists()
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


SAVER = """
import sys, torch
sys.path.insert(0, {root!r})
from engine.checkpoint import save_atomic
path = sys.argv[1]
i = 0
print("ready", flush=True)
while True:
    i += 1
    # two versions that differ in size and content
    n = 20000 if i % 2 else 60000
    save_atomic({{"format": "x", "version": i, "w": torch.full((n,), float(i))}}, path)
    print("saved", i, flush=True)
"""


def test_sigkill_while_saving_never_leaves_a_broken_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    save_atomic({"format": "x", "version": 0, "w": torch.zeros(10)}, path)
    script = tmp_path / "saver.py"
    script.write_text(SAVER.format(root=str(ROOT)))
    rng = random.Random(0)
    versions = set()
    for _ in range(16):
        p = subprocess.Popen([PY, str(script), str(path)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "ready"
        # Kill once the k-th save has returned, while a later one is under way: counted in
        # saves, not seconds (the saver may finish a few more before the kill lands).
        k = rng.randint(1, 8)
        while p.stdout.readline().split() != ["saved", str(k)]:
            pass
        p.send_signal(signal.SIGKILL)
        p.wait()
        d = torch.load(path, weights_only=True)  # always whole
        assert torch.all(d["w"] == float(d["version"]))
        assert d["version"] >= k  # the k-th save had returned: nothing older may be left
        versions.add(d["version"])
    assert len(versions) >= 2  # the kills did land at different points of the loop
    leftovers = [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    assert all(f.startswith(".ck.pt.") for f in leftovers)  # only hidden temp files, never the target


# -- interrupted and failing runs --------------------------------------------------------------

@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_after_the_batch_keeps_the_best_and_writes_results(tmp_path, sig, code):
    out, ckpt = tmp_path / "out", tmp_path / "best.pt"
    flags = [f for f in TINY_FLAGS]
    flags[flags.index("--epochs") + 1] = "200"
    p = subprocess.Popen([PY, "-m", "tui", "--no-ui", *flags, "--out", str(out), "--checkpoint", str(ckpt)],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "PYTHONUNBUFFERED": "1"})
    for line in p.stdout:
        if line.startswith("epoch   2/"):
            break
    p.send_signal(sig)
    t0 = time.monotonic()
    rest, err = p.communicate(timeout=120)
    assert p.returncode == code, err
    assert "Traceback" not in err
    assert f"stopped by {sig.name}" in rest
    import json
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True and len(report["epochs"]) >= 2
    assert load(ckpt)["epoch"] >= 2


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_the_best(tmp_path, monkeypatch):
    ckpt = tmp_path / "best.pt"
    trainer = Trainer(Config(**{**TINY, "epochs": 3}), ckpt)
    real = train_mod.masked_loss
    calls = {"n": 0}
    batches_per_epoch = trainer.train_set.num_batches(TINY["batch_size"])
    val_batches = trainer.val_set.num_batches(TINY["batch_size"])

    def poisoned(logits, tgt):
        calls["n"] += 1
        loss = real(logits, tgt)
        # epoch 2, batch 3 (epoch 1 = its batches + validation batches)
        return loss * float("nan") if calls["n"] == batches_per_epoch + val_batches + 3 else loss

    monkeypatch.setattr(train_mod, "masked_loss", poisoned)
    with pytest.raises(NonFiniteLoss) as e:
        for _ in trainer.run():
            pass
    assert (e.value.epoch, e.value.batch) == (2, 3)
    assert "epoch 2, batch 3" in str(e.value)
    saved = load(ckpt)
    assert saved["epoch"] == 1 and all(torch.isfinite(v).all() for v in saved["model"].values())


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


@pytest.mark.parametrize("flags, words", [
    (["--train-size", "-1"], "--train-size"),
    (["--hidden-dim", "-3"], "--hidden-dim"),
    (["--min-len", "8", "--max-len", "4"], "--min-len"),
    (["--teacher-forcing", "1.5"], "--teacher-forcing"),
    (["--device", "tpu"], "invalid choice"),
    (["--epochs", "many"], "invalid int"),
    (["--location-kernel", "4"], "--location-kernel"),
])
def test_invalid_flags_are_refused_with_usage(flags, words, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--no-ui", *flags])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:") and words in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--no-ui", "--device", "cuda"])
    assert e.value.code == 2 and "no CUDA device" in capsys.readouterr().err
