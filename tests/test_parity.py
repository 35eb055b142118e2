"""engine/fast runs the model of engine/model/seq2seq.py: for each configuration it implements, the
same weights give the same loss, every gradient, greedy words and attention (so the probe's
answer: a probe is a greedy decoding) through both (dropout off: the two draw their masks
differently). Beam search has one implementation (Seq2Seq.beam), so nothing to hold equal.
A change to engine/model/seq2seq.py's maths that the fast layer lacks fails here first.

Across modules by design (engine/fast/ against engine/model/seq2seq.py), so not one module's
test_<module>.py."""

from dataclasses import replace

import pytest
import torch

from engine.impl import build_model, choose_impl, fast_lacks
from engine.model.seq2seq import Seq2Seq
from engine.train.config import Config
from engine.train.data import PAD, PairDataset, Vocab
from engine.train.trainer import masked_loss

CONFIGS = {  # the shapes the fast layer implements, each once
    "default": Config(),
    "notebook": Config.notebook(dropout=0.0, embed_dim=16, hidden_dim=24),
    "two layers, bidirectional, location 3": Config(layers=2, location_kernel=3, hidden_dim=24),
    "no location term": Config(location_kernel=0),
    "no attention (control)": Config(attention=False),
}
WORDS = "the cat sat on a mat big red dog ran over hill".split()


def pair(cfg: Config, seed: int = 0) -> tuple[Seq2Seq, Seq2Seq]:
    """The fast model and the reference with its very weights."""
    torch.manual_seed(seed)
    fast = build_model(len(WORDS) + 4, replace(cfg, impl="fast"))
    reference = build_model(len(WORDS) + 4, replace(cfg, impl="reference"))
    reference.load_state_dict(fast.state_dict())
    assert (fast.impl, reference.impl) == ("fast", "reference")
    return fast, reference


def batch(lengths: list[int], seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    sentences = [[WORDS[int(i)] for i in torch.randint(len(WORDS), (n,), generator=g)] for n in lengths]
    return PairDataset(sentences, Vocab.build([WORDS], 1)), sentences


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("lengths", [[5, 5, 5], [6, 3, 4, 6]], ids=["no padding", "padded"])
def test_loss_and_every_gradient_are_the_reference_ones(name, lengths):
    fast, reference = pair(CONFIGS[name])
    ds, _ = batch(lengths)
    b = next(ds.batches(len(lengths)))
    forcing = torch.tensor([True, False, True, True, False, True, False][: b.tgt.size(1)])
    results = []
    for model in (fast, reference):
        model.train()
        model.zero_grad()
        logits, attention = model(b.src, b.src_len, b.tgt_in, forcing)
        loss = masked_loss(logits, b.tgt)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), logits.detach(), attention.detach(), grads))
    (loss_f, logits_f, attn_f, grads_f), (loss_r, logits_r, attn_r, grads_r) = results
    torch.testing.assert_close(loss_f, loss_r, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(logits_f, logits_r, atol=1e-4, rtol=1e-4)
    real = (b.tgt != PAD)[..., None]  # past a sentence's end the two may differ: nothing reads it
    torch.testing.assert_close(attn_f * real, attn_r * real, atol=1e-5, rtol=1e-4)
    assert set(grads_f) == set(grads_r)
    for n, g in grads_r.items():
        torch.testing.assert_close(grads_f[n], g, atol=1e-5, rtol=1e-3, msg=f"{name}: gradient of {n}")


COPY_CONFIGS = {
    "copy": Config(copy="on"),
    "copy, two layers, location 3": Config(copy="on", layers=2, location_kernel=3, hidden_dim=24),
}


@pytest.mark.parametrize("name", list(COPY_CONFIGS))
@pytest.mark.parametrize("lengths", [[5, 5, 5], [6, 3, 4, 6]], ids=["no padding", "padded"])
def test_the_copy_mixtures_loss_and_every_gradient_are_the_reference_ones(name, lengths):
    """With copy the fast loop's guesses are the mixture's argmax (an unknown word copied is
    read as <unk>) and its attention is differentiable: the mixture's gradient reaches the
    scores through it. Sentences with unknown words, some repeated, on extended ids."""
    fast, reference = pair(COPY_CONFIGS[name])
    g = torch.Generator().manual_seed(2)
    pool = WORDS + ["zebra", "piano", "moon"]  # three words outside the vocabulary
    sentences = [[pool[int(i)] for i in torch.randint(len(pool), (n,), generator=g)] for n in lengths]
    ds = PairDataset(sentences, Vocab.build([WORDS], 1))
    b = next(ds.batches(len(lengths)))
    assert int(b.source_ext.max()) >= len(WORDS) + 4  # an unknown word at an extended id
    forcing = torch.tensor([True, False, False, True, False, True, False][: b.tgt.size(1)])
    results = []
    for model in (fast, reference):
        model.train()
        model.zero_grad()
        logp, attention = model(b.src, b.src_len, b.tgt_in, forcing, b.source_ext)
        loss = masked_loss(logp, b.target_ext)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss.detach(), logp.detach(), grads))
    (loss_f, logp_f, grads_f), (loss_r, logp_r, grads_r) = results
    torch.testing.assert_close(loss_f, loss_r, atol=1e-5, rtol=1e-5)
    real = (b.tgt != PAD)[..., None]
    torch.testing.assert_close(logp_f * real, logp_r * real, atol=1e-4, rtol=1e-4)
    assert "decoder.copy_gate.weight" in grads_r and set(grads_f) == set(grads_r)
    for n, grad in grads_r.items():
        torch.testing.assert_close(grads_f[n], grad, atol=1e-5, rtol=1e-3, msg=f"{name}: gradient of {n}")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_greedy_words_and_attention_are_the_reference_ones(name):
    fast, reference = pair(CONFIGS[name], seed=3)
    ds, _ = batch([3, 5, 7, 4, 6, 5], seed=4)  # untrained weights: arbitrary words, the same in both
    for attend in (None, False):  # the learned attention, and the uniform ablation
        outs = [m.eval().greedy(ds.src, ds.src_len, attend=attend) for m in (fast, reference)]
        (f, r) = outs
        assert f.tokens.tolist() == r.tokens.tolist() and f.length.tolist() == r.length.tolist()
        for j, n in enumerate(f.length.tolist()):
            torch.testing.assert_close(f.attention[j, :n], r.attention[j, :n], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list(COPY_CONFIGS))
def test_copy_greedy_words_attention_and_copy_shares_are_the_reference_ones(name):
    """A copying model greedy-decodes through the fast step too: the mixture's argmax on
    extended ids (unknown words copied by position, read back as <unk>), the attention and each
    step's p_copy, as the reference's, on trained-looking weights where copying wins."""
    fast, reference = pair(COPY_CONFIGS[name], seed=5)
    with torch.no_grad():  # a gate that mostly copies, so that unknown words come out
        for m in (fast, reference):
            m.decoder.copy_gate.bias.fill_(-6.0)
    sentences = [  # unknown words (zebra, piano, moon, kite) beside known ones, one sentence all unknown
        "zebra piano moon kite zebra".split(),
        "the zebra sat on a piano mat".split(),
        "big red dog".split(),
        "moon ran over the hill".split(),
    ]
    ds = PairDataset(sentences, Vocab.build([WORDS], 1), extended=True)
    V = len(WORDS) + 4
    for attend in (None, False):
        f, r = (m.eval().greedy(ds.src, ds.src_len, attend=attend, src_ext=ds.src_ext) for m in (fast, reference))
        assert f.tokens.tolist() == r.tokens.tolist() and f.length.tolist() == r.length.tolist()
        for j, n in enumerate(f.length.tolist()):
            torch.testing.assert_close(f.attention[j, :n], r.attention[j, :n], atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(f.copy[j, :n], r.copy[j, :n], atol=1e-5, rtol=1e-4)
    assert int(f.tokens.max()) >= V  # an unknown word was copied


def test_auto_picks_the_fast_layer_where_it_implements_the_configuration():
    for cfg in [*CONFIGS.values(), *COPY_CONFIGS.values()]:
        assert fast_lacks(cfg) == [] and choose_impl(cfg) == "fast"
        assert choose_impl(replace(cfg, impl="reference")) == "reference"
    with pytest.raises(ValueError, match="--impl must be"):
        choose_impl(replace(Config(), impl="quick"))


def test_the_reference_trains_as_the_fast_layer_does(tmp_path, capsys):
    """The same seed, data and batches: the first batches' losses agree (float rounding then
    drifts apart slowly, as with one thread against two), and the run says which model ran."""
    from engine.train.events import EpochDone
    from engine.train.trainer import Trainer
    from tests.conftest import TINY, cli_flags
    from tui.cli import main

    runs = {}
    for impl in ("fast", "reference"):
        trainer = Trainer(Config(**{**TINY, "epochs": 1, "impl": impl}), tmp_path / f"{impl}.pt")
        runs[impl] = [e for e in trainer.run() if isinstance(e, EpochDone)][0]
    fast, reference = runs["fast"], runs["reference"]
    assert reference.batch_losses[:5] == pytest.approx(fast.batch_losses[:5], rel=1e-4)
    assert reference.val_loss == pytest.approx(fast.val_loss, rel=1e-2)
    assert reference.batch_losses[-1] < reference.batch_losses[0]  # it learns
    flags = cli_flags(
        impl="reference",
        train_size=300,
        val_size=50,
        test_size=50,
        max_len=6,
        epochs=1,
        hidden_dim=32,
        embed_dim=16,
        device="cpu",
    )
    code = main(["--no-ui", *flags, "--checkpoint", str(tmp_path / "ck" / "best.pt"), "--out", str(tmp_path / "out")])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "model: reference (engine/model, plain PyTorch under autograd)"
    assert main(["probe", "--checkpoint", str(tmp_path / "ck" / "best.pt"), "the cat sat"]) == 0
