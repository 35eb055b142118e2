"""The probe's NumPy path (engine/fast/sentence_decoder.py) gives Seq2Seq.greedy's answer."""

import numpy as np
import pytest
import torch

from engine.config import Config
from engine.data import EOS, WORDS, PairDataset, Vocab
from engine.evaluate import decode, probe
from engine.fast import native
from engine.fast.sentence_decoder import SentenceDecoder, sentence_decoder
from engine.model import Seq2Seq
from engine.optim import Adam
from engine.train import BatchDone, Trainer
from tests.conftest import TINY

ARCHS = [
    {},
    {"bidirectional": False, "location_kernel": 0},
    {"layers": 2, "bidirectional": True, "location_kernel": 3},
    {"layers": 3, "bidirectional": False, "location_kernel": 5},
    {"layers": 2, "attention": False},
]  # the control: v = 0, uniform weights
SENTENCES = ["the cat sat", "the quick brown fox jumps over the lazy dog on the mat", "zebra the cat", "dog"]


def make(arch, seed=0):
    torch.manual_seed(seed)
    vocab = Vocab(WORDS)
    return Seq2Seq(len(vocab), Config(embed_dim=16, hidden_dim=24, **arch)).eval(), vocab


@pytest.mark.parametrize("arch", ARCHS)
def test_same_tokens_and_attention_as_greedy(arch):
    model, vocab = make(arch)
    # an untrained model wanders: its tokens are arbitrary, which tests every branch of the
    # step budget as well as early EOS
    for text in SENTENCES:
        words = text.split()
        ds = PairDataset([words], vocab)
        ref = model.greedy(ds.src, ds.src_len)
        ids, attention = sentence_decoder(model).greedy(vocab.encode(words) + [EOS])
        steps = int(ref.length[0])
        assert ids == ref.tokens[0, :steps].tolist()
        torch.testing.assert_close(torch.from_numpy(attention), ref.attention[0, :steps], atol=2e-5, rtol=1e-4)


def test_probe_equals_the_batched_decode_path():
    model, vocab = make({})
    for text in SENTENCES:
        fast = probe(model, vocab, text, torch.device("cpu"))
        slow = decode(model, vocab, [text.split()], torch.device("cpu"), batch_size=1)[0]
        assert (fast.source, fast.output, fast.reference, fast.steps) == (
            slow.source,
            slow.output,
            slow.reference,
            slow.steps,
        )
        torch.testing.assert_close(
            torch.from_numpy(fast.attention), torch.from_numpy(slow.attention), atol=2e-5, rtol=1e-4
        )


def test_weights_are_copied_again_after_the_model_changes():
    model, vocab = make({}, seed=0)
    other, _ = make({}, seed=1)
    before = sentence_decoder(model)
    assert sentence_decoder(model) is before  # unchanged model: the copy is reused
    model.load_state_dict(other.state_dict())
    after = sentence_decoder(model)
    assert after is not before
    words = "the quick brown fox".split()
    ds = PairDataset([words], vocab)
    ref = other.greedy(ds.src, ds.src_len)
    ids, _ = after.greedy(vocab.encode(words) + [EOS])
    assert ids == ref.tokens[0, : int(ref.length[0])].tolist()


@pytest.mark.parametrize("use_native", [True, False], ids=["c-kernel", "foreach"])
def test_a_probe_after_a_training_step_decodes_with_the_new_weights(tmp_path, use_native):
    """Adam's C kernel writes the weights through raw pointers; the probe's copy of them must
    still be made afresh after the step, as after the foreach ops' in-place writes."""
    trainer = Trainer(Config(**{**TINY, "epochs": 1}), tmp_path / "best.pt")
    trainer.optimizer.use_native = use_native
    model, vocab, cpu = trainer.model, trainer.vocab, torch.device("cpu")
    assert model.impl == "fast" and not model.copy  # the probe decodes in NumPy
    words = "the cat sat on the mat".split()
    before = probe(model, vocab, " ".join(words), cpu)  # makes the probe's copy of the weights
    steps = trainer.run()
    assert isinstance(next(steps), BatchDone)  # one optimiser step, in this process
    steps.close()
    model.eval()
    after = probe(model, vocab, " ".join(words), cpu)
    ids, attention = SentenceDecoder(model).greedy(vocab.encode(words) + [EOS])  # a copy made now
    np.testing.assert_array_equal(after.attention, attention)
    assert not np.array_equal(after.attention, before.attention)  # the step changed the answer
    ds = PairDataset([words], vocab)
    ref = model.greedy(ds.src, ds.src_len)  # engine/model.py, on the weights as they are
    assert ids == ref.tokens[0, : int(ref.length[0])].tolist()


def test_the_c_kernel_step_counts_as_a_write_to_every_weight():
    if native.kernels() is None:
        pytest.skip("no C kernels here: the foreach ops run, and they count their writes")
    model, _ = make({})
    params = list(model.parameters())
    for p in params:
        p.grad = torch.ones_like(p)
    was = [p._version for p in params]
    Adam(params, use_native=True).step()
    assert all(p._version > v for p, v in zip(params, was))
