"""Checkpoints hold plain values, load with weights_only=True and round-trip exactly."""
import torch

from engine.checkpoint import FORMAT, load, load_model
from engine.config import Config
from engine.data import PairDataset


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
