"""Checkpoints hold plain values, load with weights_only=True and round-trip exactly; a bad or
untrusted file is one clear error and runs no code; a save killed midway never leaves a
broken checkpoint."""

import os
import pickle
import random
import signal
import subprocess

import pytest
import torch

from engine.errors import CheckpointError
from engine.train.checkpoint import FORMAT, load, load_model, save_atomic
from engine.train.config import Config
from engine.train.data import PairDataset
from tests.conftest import PY, ROOT, bad_checkpoints, run_cli


def test_checkpoint_round_trips_with_weights_only(trained_checkpoint):
    raw = torch.load(trained_checkpoint, map_location="cpu", weights_only=True)
    assert raw["format"] == FORMAT
    for key in ("model", "optimizer", "config", "vocab", "epoch", "history", "best_epoch"):
        assert key in raw
    assert isinstance(raw["config"], dict) and isinstance(raw["vocab"], list)
    assert [h["epoch"] for h in raw["history"]] == list(range(1, raw["epoch"] + 1))
    loaded = load_model(trained_checkpoint)
    assert loaded.config == Config.from_dict(raw["config"])
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, raw["model"][k]), k
    # the reloaded model decodes exactly like the weights say
    ds = PairDataset(["the cat sat".split()], loaded.vocab)
    a = loaded.model.greedy(ds.src, ds.src_len)
    b = load_model(trained_checkpoint).model.greedy(ds.src, ds.src_len)
    assert torch.equal(a.tokens, b.tokens)


def test_checkpoint_optimizer_state_is_plain_tensors(trained_checkpoint):
    raw = load(trained_checkpoint)
    opt = raw["optimizer"]
    assert opt["t"] > 0
    assert all(isinstance(t, torch.Tensor) and t.device.type == "cpu" for t in opt["m"] + opt["v"])


def test_bad_checkpoints_give_one_clear_line(tmp_path, trained_checkpoint):
    for what, path in bad_checkpoints(tmp_path, trained_checkpoint).items():
        with pytest.raises(CheckpointError) as e:
            load_model(path)
        msg = str(e.value)
        assert str(path) in msg and "\n" not in msg, what


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow
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
from engine.train.checkpoint import save_atomic
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


@pytest.mark.slow
def test_sigkill_while_saving_never_leaves_a_broken_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    save_atomic({"format": "x", "version": 0, "w": torch.zeros(10)}, path)
    script = tmp_path / "saver.py"
    script.write_text(SAVER.format(root=str(ROOT)))
    rng = random.Random(0)
    versions = set()
    for _ in range(4):  # each a new process that imports torch: a few seconds
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
