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


# What a user might type or paste where a sentence goes, each with the words the tokenizer
# keeps (engine/data.py: runs of letters or digits); no words is a clear error, and so is
# more than engine.evaluate.MAX_PROBE_WORDS. The engine, CLI and app tests all probe these.
HOSTILE_STRINGS: dict[str, list[str]] = {
    "": [],
    "   ": [],
    "\t\n": [],
    "?!...": [],
    "!!! ... ,,,": [],
    "🐱🐶": [],
    "\x00\x07": [],
    "[/]": [],                                           # Rich markup: a closing tag alone
    "\x1b[2J\x1b[H": ["2j", "h"],                        # ANSI: clear the screen, go home
    "the cat, sat!": ["the", "cat", "sat"],
    "is it? here": ["is", "it", "here"],
    "the\x00cat\x1bsat": ["the", "cat", "sat"],          # NUL and ESC between words
    "\x1b[31mthe cat\x1b[0m sat": ["31mthe", "cat", "0m", "sat"],
    "[bold]the cat[/bold] sat": ["bold", "the", "cat", "bold", "sat"],
    "[link=https://x.y]cat[/link] [/]": ["link", "https", "x", "y", "cat", "link"],
    "the 🐱 cat sat ✨": ["the", "cat", "sat"],
    "café déjà vu": ["café", "déjà", "vu"],
    "The Zebra ate MY hat, today!": ["the", "zebra", "ate", "my", "hat", "today"],
    "שלום עולם the cat": ["שלום", "עולם", "the", "cat"],   # right to left
    "\u202ethe cat sat": ["the", "cat", "sat"],          # RTL override
    " ".join(["fast"] * 600): ["fast"] * 600,            # too many words to probe
    "x" * 2000: ["x" * 2000],                            # one very long word
}
