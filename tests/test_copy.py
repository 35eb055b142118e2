"""The copy mechanism (engine/model/copy.py): its mixture's gradients, the extended vocabulary's
edge cases, training and decoding with it, and checkpoints from before it."""

import random

import numpy as np
import pytest
import torch

from engine.impl import build_model, choose_impl
from engine.insight.analysis import attention_stats, copy_stats, write_analysis
from engine.insight.evaluate import SentenceResult, decode, probe
from engine.insight.exact_match import output_words
from engine.model.copy import copy_mixture, extended_size
from engine.train.checkpoint import load, load_model, save_atomic
from engine.train.config import Config
from engine.train.data import EOS, PAD, UNK, PairDataset, Vocab
from engine.train.trainer import Trainer, masked_loss, with_unknown_words
from tests.conftest import TINY


def plain_mixture(logits, gate_logit, weights, src_ext, n_ext):
    """The mixture written word by word, as the equations say it: for every extended word w,
    p_gen * p_vocab(w) + (1 - p_gen) * the weights of the positions holding w (probabilities)."""
    B, V = logits.shape
    p_gen = torch.sigmoid(gate_logit[:, 0])
    p_vocab = torch.softmax(logits, -1)
    rows = []
    for b in range(B):
        row = []
        for w in range(n_ext):
            generated = p_gen[b] * p_vocab[b, w] if w < V else logits.new_zeros(())
            copied = sum(
                (weights[b, j] for j in range(src_ext.size(1)) if int(src_ext[b, j]) == w), logits.new_zeros(())
            )
            row.append(generated + (1 - p_gen[b]) * copied)
        rows.append(torch.stack(row))
    return torch.stack(rows)  # (B, n_ext) probabilities


def mixture_inputs(seed=0, B=3, V=7, S=5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, V, generator=g, dtype=torch.float64, requires_grad=True)
    gate = torch.randn(B, 1, generator=g, dtype=torch.float64, requires_grad=True)
    scores = torch.randn(B, S, generator=g, dtype=torch.float64)
    scores[2, 3:] = float("-inf")  # the last sentence is padded: weight exactly 0 there
    weights = torch.softmax(scores, -1).requires_grad_()
    # a word repeated (5 twice), a vocabulary word (4), an unknown word twice (V), two unknowns,
    # <unk> itself, EOS, PAD under padding
    src_ext = torch.tensor([[5, 4, 5, EOS, PAD + 4], [V, 4, V, V + 1, EOS], [UNK, 6, EOS, PAD, PAD]])
    return logits, gate, weights, src_ext, V + 2


def test_mixture_equals_the_equations_and_sums_to_one():
    logits, gate, weights, src_ext, n_ext = mixture_inputs()
    logp, p_copy = copy_mixture(logits, gate, weights, src_ext, n_ext)
    # probabilities compared: a word neither generated nor copied is -inf in the plain
    # formulation and the smallest float's log in the mixture
    assert torch.allclose(logp.exp(), plain_mixture(logits, gate, weights, src_ext, n_ext))
    assert torch.allclose(logp.exp().sum(-1), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(p_copy, 1 - torch.sigmoid(gate[:, 0]))


def test_mixture_gradients_against_autograd_and_finite_differences():
    logits, gate, weights, src_ext, n_ext = mixture_inputs(seed=1)
    target = torch.tensor([5, n_ext - 1, UNK])  # a repeated word, an unknown word, <unk>
    grads = []
    mixed = copy_mixture(logits, gate, weights, src_ext, n_ext)[0].gather(1, target[:, None])
    plain = plain_mixture(logits, gate, weights, src_ext, n_ext).gather(1, target[:, None]).log()
    for out in (mixed, plain):
        grads.append(torch.autograd.grad(-out.sum(), (logits, gate, weights)))
    for a, b in zip(*grads):
        assert torch.allclose(a, b)
    assert torch.autograd.gradcheck(lambda *x: copy_mixture(*x, src_ext, n_ext)[0], (logits, gate, weights))
    # a mixture's log-probabilities as logits (what training does): cross-entropy is -log p,
    # with -log p's gradient, for every change that keeps the weights a distribution (the
    # attention's scores, before its softmax)
    scores = torch.randn(weights.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    scores.requires_grad_()
    lp = copy_mixture(logits, gate, torch.softmax(scores, -1), src_ext, n_ext)[0]
    ce = torch.nn.functional.cross_entropy(lp, target, reduction="sum")
    nll = -lp.gather(1, target[:, None]).sum()
    assert torch.allclose(ce, nll)
    for a, b in zip(
        torch.autograd.grad(nll, (logits, gate, scores), retain_graph=True),
        torch.autograd.grad(ce, (logits, gate, scores)),
    ):
        assert torch.allclose(a, b)


def test_extended_vocabulary_edge_cases():
    vocab = Vocab(["cat", "sat"])
    V = len(vocab)
    words = ["zebra", "cat", "zebra", "lion", "<unk>", "sat"]
    # a repeated unknown word keeps one id; a vocabulary word keeps its own; "<unk>" typed is
    # the vocabulary's <unk>, not an unknown word
    assert vocab.source_unknowns(words) == ["zebra", "lion"]
    assert vocab.encode_extended(words) == [V, vocab.stoi["cat"], V, V + 1, UNK, vocab.stoi["sat"]]
    ds = PairDataset([words, ["cat", "sat"]], vocab)
    assert ds.src_ext[0].tolist() == [V, 4, V, V + 1, UNK, 5, EOS]
    assert ds.tgt_ext[0].tolist() == [5, UNK, V + 1, V, 4, V, EOS]
    assert ds.src_ext[1].tolist()[:3] == ds.src[1].tolist()[:3]  # no unknown word: as src
    assert ds.src[0].tolist() == [UNK, 4, UNK, UNK, UNK, 5, EOS]  # the encoder reads <unk>
    assert extended_size(V, ds.src_ext) == V + 2
    assert extended_size(V, ds.src[1:]) == V
    # ids back to words: an extended id is its unknown word, one past them reads <unk>
    ids = [5, UNK, V + 1, V, 4, V, V + 2, EOS, 4]
    attention = torch.eye(len(ids), 7).numpy()
    assert output_words(ids, attention, words, vocab, replace_unk=False) == [
        "sat",
        "<unk>",
        "lion",
        "zebra",
        "cat",
        "zebra",
        "<unk>",
    ]


def test_hidden_training_words_become_unknown_words_to_copy():
    vocab = Vocab(["a", "b", "c", "d"])
    ds = PairDataset([["a", "b", "c", "d"], ["d", "zz", "b"]], vocab)
    batch = ds.batch(torch.arange(2))
    V = len(vocab)
    out = with_unknown_words(batch, 0.5, torch.Generator().manual_seed(3), copy_from=V)
    plain = with_unknown_words(batch, 0.5, torch.Generator().manual_seed(3))
    assert torch.equal(out.src, plain.src) and torch.equal(out.tgt, plain.tgt)  # the same draw
    for b in range(2):
        n = int(batch.src_len[b]) - 1
        src, tgt = out.src_ext[b, :n].tolist(), out.tgt_ext[b, :n].tolist()
        assert tgt == src[::-1]  # the target still mirrors the source, extended ids included
        for j in range(n):
            if int(out.src[b, j]) == UNK:  # hidden (or unknown): an id past the vocabulary
                assert src[j] >= V
            else:
                assert src[j] == int(batch.src[b, j])
        assert len(set(src) - set(range(V))) == len([j for j in range(n) if int(out.src[b, j]) == UNK])


def test_copy_config_defaults_and_the_fast_layer():
    assert not Config().copy_on  # the built-in words: today's model
    assert Config(corpus="x.txt").copy_on
    assert not Config(corpus="x.txt", copy="off").copy_on
    assert Config(copy="on").copy_on
    assert choose_impl(Config(corpus="x.txt")) == "fast"  # the fast layer trains it (tests/test_parity.py)
    assert choose_impl(Config()) == "fast"
    with pytest.raises(ValueError, match="--copy"):
        Config(copy="maybe").validate()
    # a configuration saved before copy existed reads as no copy, even with a corpus
    old = {k: v for k, v in Config(corpus="x.txt").to_dict().items() if k != "copy"}
    assert Config.from_dict(old).copy == "off"


def test_cli_copy_flags():
    from tui.cli import config_from_args, main_parser

    def cfg(*argv):
        return config_from_args(main_parser().parse_args(list(argv)))

    assert cfg("--corpus", "x.txt").copy_on
    assert not cfg("--corpus", "x.txt", "--no-copy").copy_on
    assert cfg("--copy").copy_on
    assert not cfg().copy_on


def test_copy_model_trains_and_copies_unknown_words(tmp_path):
    torch.manual_seed(0)
    cfg = Config(**{**TINY, "copy": "on", "epochs": 4, "unk_rate": 0.3})
    trainer = Trainer(cfg, tmp_path / "copy.pt")
    for _ in trainer.run():
        pass
    assert trainer.model.impl == "fast" and trainer.model.decoder.copy_gate is not None
    loaded = load_model(tmp_path / "copy.pt")
    assert loaded.model.copy and loaded.config.copy == "on"
    rng = random.Random(0)
    sentences = [[rng.choice(["zebra", "lion", "piano", "moon"]) for _ in range(rng.randint(3, 6))] for _ in range(40)]
    results = decode(loaded.model, loaded.vocab, sentences, torch.device("cpu"), replace_unk=False)
    # every word unknown, no <unk> replacement: whatever comes out is copied, by extended id
    assert all(set(r.output) <= set(r.source) for r in results)
    assert all(r.output for r in results)
    # it learned to copy: on words it cannot generate, the gate stands on copying
    assert sum(float(r.copy.mean()) for r in results) / len(results) > 0.5
    for r in results:
        assert r.copy is not None and r.copy.shape == (r.steps,)
        assert ((0 <= r.copy) & (r.copy <= 1)).all()
    beam = decode(loaded.model, loaded.vocab, sentences[:3], torch.device("cpu"), beam=3)
    assert all(b.copy is not None and b.copy.shape == (b.steps,) for b in beam)
    one = probe(loaded.model, loaded.vocab, " ".join(sentences[0]), torch.device("cpu"))
    assert one.output == results[0].output and one.copy is not None


def test_copy_loss_on_a_batch_is_finite_and_reaches_the_gate():
    vocab = Vocab(["a", "b", "c"])
    model = build_model(len(vocab), Config(**{**TINY, "copy": "on"}))
    ds = PairDataset([["a", "zz", "b", "zz"], ["yy", "a", "c", "b"]], vocab)
    b = ds.batch(torch.arange(2))
    logits, _ = model(b.src, b.src_len, b.tgt_in, [True, False, True, True, True], b.source_ext)
    assert logits.shape[-1] == len(vocab) + 1  # one unknown word per sentence: one extended id
    loss = masked_loss(logits, b.target_ext)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.decoder.copy_gate.weight.grad.abs().sum() > 0


def test_old_checkpoint_without_copy_loads_and_probes_as_before(tmp_path, trained_checkpoint):
    """A checkpoint from before the copy mechanism: its config has no copy key and its weights
    no copy gate. Even said to be a --corpus run (where copy is on today) it loads as the model it
    was and answers exactly as the same weights did."""
    payload = load(trained_checkpoint)
    config = {k: v for k, v in payload["config"].items() if k != "copy"}
    old = {**payload, "config": {**config, "corpus": str(tmp_path / "gone.txt")}}
    assert not any("copy" in k for k in old["model"])
    save_atomic(old, tmp_path / "old.pt")
    then, now = load_model(trained_checkpoint), load_model(tmp_path / "old.pt")
    assert not now.model.copy and now.model.impl == then.model.impl == "fast"
    for text in ("the cat sat on the mat", "zebra the lion sat", "big red car"):
        a, b = (
            probe(then.model, then.vocab, text, torch.device("cpu")),
            probe(now.model, now.vocab, text, torch.device("cpu")),
        )
        assert a.output == b.output and (a.attention == b.attention).all() and b.copy is None


def copied_result(words, gate):
    """A correct reversal of words whose steps had these p_copy values (EOS step last)."""
    import numpy as np

    n = len(words)
    attention = np.zeros((n + 1, n + 1))
    for t in range(n):
        attention[t, n - 1 - t] = 1.0
    attention[n, n] = 1.0
    gate = np.asarray(gate, dtype=float)
    return SentenceResult(list(words), words[::-1], words[::-1], attention, n + 1, gate, match=True)


def test_analysis_reports_how_often_the_model_copies():
    results = [copied_result(["a", "b", "c"], [0.9, 0.8, 0.2, 0.6]), copied_result(["d", "e"], [1.0, 0.4, 0.1])]
    c = copy_stats(results)
    assert c["steps"] == 7
    assert c["p_copy_mean"] == pytest.approx((0.9 + 0.8 + 0.2 + 0.6 + 1.0 + 0.4 + 0.1) / 7)
    assert c["copy_dominates"] == pytest.approx(4 / 7)
    assert c["word_steps"]["copy_dominates"] == pytest.approx(3 / 5)
    assert c["eos_step"]["p_copy_mean"] == pytest.approx(0.35)
    text = write_analysis(attention_stats(results))
    assert "copy mechanism" in text and "57.1% of steps" in text
    # a model without it: nothing said
    plain = [SentenceResult(r.source, r.output, r.reference, r.attention, r.steps, match=r.match) for r in results]
    assert attention_stats(plain)["copy"] is None and "copy mechanism" not in write_analysis(attention_stats(plain))


def test_grid_text_and_snapshots_carry_the_gate():
    from engine.train.events import Snapshot, Watched
    from tui.probe_cli import grid_text

    r = copied_result(["a", "b"], [0.25, 0.5, 0.75])
    lines = grid_text(r).splitlines()
    assert lines[0].split()[-1] == "copy"
    assert [line.split()[-1] for line in lines[1:]] == ["0.25", "0.50", "0.75"]
    snap = Snapshot(1, 1, 2, [Watched(["a", "b"], ["b", "a"], [[0.0, 1.0, 0.0]] * 3, True, [0.25, 0.5, 0.75])])
    assert Snapshot.from_dict(snap.as_dict()).sentences[0].copy == [0.25, 0.5, 0.75]
    old = snap.as_dict()
    del old["sentences"][0]["copy"]  # a snapshot from before the copy mechanism
    assert Snapshot.from_dict(old).sentences[0].copy is None


def test_step_through_a_copy_model_shows_its_gate_and_the_words_it_copies(tmp_path):
    from engine.insight.stepper import step_through

    torch.manual_seed(0)
    cfg = Config(**{**TINY, "copy": "on", "epochs": 4, "unk_rate": 0.3})
    for _ in Trainer(cfg, tmp_path / "copy.pt").run():
        pass
    loaded = load_model(tmp_path / "copy.pt")
    text = "zebra lion piano moon lion"  # every word unknown: only copying can say them
    cpu = torch.device("cpu")
    r = probe(loaded.model, loaded.vocab, text, cpu)
    s = step_through(loaded.model, loaded.vocab, text, cpu)
    assert s.output == r.output and len(s.steps) == r.steps
    np.testing.assert_allclose([step.copy for step in s.steps], r.copy, atol=1e-5)
    words = [step.chosen for step in s.steps if step.chosen != "<eos>"]
    assert words and set(words) <= set(text.split()) | {"<unk>"}  # extended ids read as the source's words
    assert all(w in set(text.split()) | set(loaded.vocab.itos) for step in s.steps for w, _ in step.top)
    b = probe(loaded.model, loaded.vocab, text, cpu, beam=3)
    assert step_through(loaded.model, loaded.vocab, text, cpu, beam=3).output == b.output
