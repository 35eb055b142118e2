"""engine/train.py: the masked loss, <unk> masking of a batch, the same seed giving the same
losses, a non-finite loss stopping the run with its epoch and batch, and resuming a checkpoint
from before the vocabulary cap."""

import pytest
import torch

import engine.train as train_mod
from engine.checkpoint import load
from engine.config import Config
from engine.data import EOS, PAD, WORDS, PairDataset, Vocab
from engine.train import EpochDone, NonFiniteLoss, Trainer, masked_loss
from tests.conftest import TINY, write_corpus


def test_padded_targets_give_zero_loss_and_zero_gradient():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, requires_grad=True)
    tgt = torch.tensor([[4, 5, 2, PAD, PAD], [4, 6, 5, 5, 2]])
    loss = masked_loss(logits, tgt)
    loss.backward()
    assert torch.all(logits.grad[0, 3:] == 0)
    assert torch.all(logits.grad[0, :3].abs().sum(-1) > 0)
    # changing logits at padded positions changes nothing
    other = logits.detach().clone()
    other[0, 3:] = 100 * torch.randn(2, 7)
    torch.testing.assert_close(masked_loss(other, tgt), loss.detach())
    # and the mean is over the 8 real tokens only
    per_token = torch.nn.functional.cross_entropy(logits.detach().reshape(-1, 7), tgt.reshape(-1), reduction="none")
    torch.testing.assert_close(loss.detach(), per_token[tgt.reshape(-1) != PAD].mean())


def test_unknown_word_masking_mirrors_source_into_target():
    from engine.data import UNK
    from engine.train import with_unknown_words

    v = Vocab(WORDS)
    ds = PairDataset(["the cat sat on".split(), "big red car".split()], v)
    b = with_unknown_words(ds.batch(torch.arange(2)), 0.5, torch.Generator().manual_seed(3))
    for i, n in enumerate([4, 3]):
        src, tgt = b.src[i, :n].tolist(), b.tgt[i, :n].tolist()
        assert tgt == src[::-1]  # still the exact reversal, <unk>s included
        assert b.src[i, n] == EOS and b.tgt[i, n] == EOS
    assert (b.src == UNK).any()
    assert torch.equal(b.src_len, ds.src_len[:2])


def test_same_seed_same_losses_on_cpu(tmp_path):
    def losses(seed):
        t = Trainer(Config(**{**TINY, "seed": seed}), tmp_path / f"s{seed}.pt")
        return [(e.train_loss, e.val_loss) for e in t.run() if isinstance(e, EpochDone)]

    a, b = losses(7), losses(7)
    assert a == b
    assert losses(8) != a


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


def test_a_checkpoint_from_before_the_vocabulary_cap_resumes_with_every_word(tmp_path):
    """Old checkpoints have no max_vocab: resuming one rebuilds its uncapped vocabulary (the
    resume refuses a vocabulary that differs from the checkpoint's)."""
    from engine.config import Config
    from engine.train import Trainer
    from tests.conftest import TINY

    text = str(write_corpus(tmp_path / "c.txt", 400, vocab_size=60))
    cfg = Config(**{**TINY, "corpus": text, "min_freq": 1, "max_vocab": 0, "epochs": 1})
    trainer = Trainer(cfg, tmp_path / "old.pt")
    for _ in trainer.run():
        pass
    payload = torch.load(tmp_path / "old.last.pt", weights_only=True)
    del payload["config"]["max_vocab"]  # as saved before the cap existed
    assert Config.from_dict(payload["config"]).max_vocab == 0
    assert len(trainer.vocab) > 30  # more words than the small cap below would keep
    resumed = Trainer.resume(payload, tmp_path / "old.pt", epochs=2)
    assert resumed.vocab.words() == trainer.vocab.words()
    capped = Config(**{**TINY, "corpus": text, "min_freq": 1, "max_vocab": 30})
    assert len(Trainer(capped, tmp_path / "new.pt").vocab) == 30 + 4  # the cap, plus PAD SOS EOS UNK
