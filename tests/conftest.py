import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.config import Config  # noqa: E402
from engine.train import Trainer  # noqa: E402

# Small enough to train in a few seconds on 2 CPU cores, big enough to learn short sentences.
# Its training settings are pinned (not the defaults, which are tuned for 3-30 words).
TINY = dict(train_size=600, val_size=100, test_size=100, min_len=3, max_len=6, embed_dim=16,
            hidden_dim=32, epochs=2, batch_size=32, lr=3e-3, unk_rate=0.03, device="cpu")


@pytest.fixture(autouse=True)
def _few_threads():
    torch.set_num_threads(1)  # deterministic and fair on a 2-core CI box
    yield


@pytest.fixture
def tiny_cfg() -> Config:
    return Config(**TINY)


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint from a short real training run, shared by the tests that only read it."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    trainer = Trainer(Config(**{**TINY, "epochs": 3}), path)
    for _ in trainer.run():
        pass
    return path
