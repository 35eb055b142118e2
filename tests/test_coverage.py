"""Coverage attention (--coverage, engine/model/seq2seq.py BahdanauAttention): the score reads the sum
of the earlier steps' weights; the term is exactly additive, every decoder keeps its own
coverage (a beam's hypotheses theirs), and configurations from before it read as without it."""

import pytest
import torch

from engine.impl import build_model, choose_impl
from engine.insight.evaluate import decode, probe
from engine.train.checkpoint import load_model
from engine.train.config import Config
from engine.train.data import EOS, SOS, PairDataset, Vocab
from engine.train.trainer import Trainer, masked_loss
from tests.conftest import TINY

WORDS = ["a", "b", "c", "d", "e"]


def batch():
    vocab = Vocab(WORDS)
    ds = PairDataset([["a", "b", "a", "c"], ["d", "d", "e", "d"]], vocab)
    return vocab, ds.batch(torch.arange(2))


def test_config_the_fast_layer_and_the_flag():
    from tui.cli import config_from_args, main_parser

    assert not Config().coverage
    assert choose_impl(Config(coverage=True)) == "reference"  # the fast layer lacks it
    with pytest.raises(ValueError, match="coverage"):
        choose_impl(Config(coverage=True, impl="fast"))
    assert config_from_args(main_parser().parse_args(["--coverage"])).coverage
    # a configuration saved before coverage existed reads as without it
    old = {k: v for k, v in Config().to_dict().items() if k != "coverage"}
    assert not Config.from_dict(old).coverage


def test_with_a_zero_coverage_weight_the_model_is_the_model_without_it():
    torch.manual_seed(0)
    vocab, b = batch()
    plain = build_model(len(vocab), Config(**TINY, impl="reference"))
    covered = build_model(len(vocab), Config(**TINY, coverage=True))
    missing, unexpected = covered.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["decoder.attention.coverage"] and not unexpected  # the one new weight
    forcing = [True, False, True, False, True]
    with torch.no_grad():
        covered.decoder.attention.coverage.zero_()
        a, wa = plain(b.src, b.src_len, b.tgt_in, forcing)
        c, wc = covered(b.src, b.src_len, b.tgt_in, forcing)
        assert torch.equal(a, c) and torch.equal(wa, wc)
        covered.decoder.attention.coverage.fill_(3.0)
        c, wc = covered(b.src, b.src_len, b.tgt_in, forcing)
    assert torch.equal(wa[:, 0], wc[:, 0])  # step 0 has nothing covered yet
    assert not torch.allclose(wa[:, 1:], wc[:, 1:])  # after it, the weights so far move the scores


def test_the_loss_reaches_the_coverage_weight():
    torch.manual_seed(0)
    vocab, b = batch()
    model = build_model(len(vocab), Config(**TINY, coverage=True))
    logits, _ = model(b.src, b.src_len, b.tgt_in, [True] * b.tgt_in.size(1))
    masked_loss(logits, b.tgt).backward()
    assert model.decoder.attention.coverage.grad.abs().sum() > 0


def test_a_coverage_model_trains_saves_and_decodes_the_same_every_way(tmp_path):
    torch.manual_seed(0)
    trainer = Trainer(Config(**{**TINY, "coverage": True, "epochs": 3}), tmp_path / "cov.pt")
    for _ in trainer.run():
        pass
    loaded = load_model(tmp_path / "cov.pt")  # weights_only
    assert loaded.config.coverage and loaded.model.decoder.attention.coverage is not None
    assert loaded.model.impl == "reference"
    sentences = [["a", "b", "c"], ["the", "cat", "sat", "on", "the", "mat"]]
    sentences = [[w if w in loaded.vocab else loaded.vocab.words()[i] for i, w in enumerate(s)] for s in sentences]
    cpu = torch.device("cpu")
    batched = decode(loaded.model, loaded.vocab, sentences, cpu)  # both in one padded batch
    for s, r in zip(sentences, batched):
        one = probe(loaded.model, loaded.vocab, " ".join(s), cpu)
        assert one.output == r.output
        assert torch.allclose(torch.as_tensor(one.attention), torch.as_tensor(r.attention), atol=1e-6)
        # the beam's answer had the coverage of its own history, through every reindexing of
        # the live hypotheses: the weights of the same words fed back, teacher-forced
        src = torch.tensor([loaded.vocab.encode(s) + [EOS]])
        best = loaded.model.beam(src, torch.tensor([src.size(1)]), k=3)
        n = int(best.length[0])
        tgt_in = torch.cat([torch.tensor([[SOS]]), best.tokens[:, : n - 1]], 1)  # (1, n)
        with torch.no_grad():
            _, forced = loaded.model(src, torch.tensor([src.size(1)]), tgt_in, [True] * n)
        assert torch.allclose(best.attention[0, :n], forced[0], atol=1e-5)
