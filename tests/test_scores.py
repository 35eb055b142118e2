"""The attention scores (--score, engine/model/seq2seq.py Attention.score): each is its formula,
masks padding to exactly zero weight, combines with the location term and coverage, trains
(the reference model: engine/fast has only the additive score), decodes every way (greedy, beam,
step-through, copy), saves and loads; a checkpoint from before the flag loads as additive."""

import math

import pytest
import torch
import torch.nn.functional as F

from engine.impl import build_model, choose_impl, describe_impl
from engine.insight.evaluate import decode, probe
from engine.insight.stepper import step_through
from engine.train.checkpoint import load_model, save_atomic
from engine.train.config import SCORES, Config
from engine.train.data import WORDS, PairDataset, Vocab
from engine.train.events import EpochDone
from engine.train.trainer import Trainer
from tests.conftest import QUICK

OTHERS = [s for s in SCORES if s != "additive"]
# the scores that are a function of s and h_j alone (shift reads where it looked last too:
# its formula is tests/test_shift_attention.py's)
FORMULAS = [s for s in SCORES if s != "shift"]
PRODUCTS = ["general", "dot", "scaled-dot"]
CPU = torch.device("cpu")


def make(score: str, seed: int = 0, **over):
    torch.manual_seed(seed)
    cfg = Config(embed_dim=16, hidden_dim=24, score=score, **over)
    vocab = Vocab(WORDS)
    return build_model(len(vocab), cfg).eval(), vocab


def batch(vocab):
    ds = PairDataset(["the cat sat".split(), "the quick brown fox jumps over".split()], vocab)
    return ds.batch(torch.arange(2))


def by_hand(att, score: str, s: torch.Tensor, h: torch.Tensor, added: torch.Tensor | None = None) -> torch.Tensor:
    """Each score from its textbook formula, with the module's weights; added (B, S, A): the
    location and coverage terms a product's keys take. s (B, H), h (B, S, K) -> (B, S)"""
    H = s.size(-1)
    if score == "additive":
        return att.v(torch.tanh(att.W_h(h) + att.W_s(s).unsqueeze(1))).squeeze(-1)
    if score == "general":  # s^T W h
        q, k, scale = s, h @ att.W_h.weight.t(), 1.0
    elif score == "dot":  # s^T h, a bidirectional h's two halves summed
        q, k, scale = s, (h[..., :H] + h[..., H:] if h.size(-1) == 2 * H else h), 1.0
    else:  # (W_q s)^T (W_k h) / sqrt(d)
        q, k = s @ att.W_s.weight.t(), h @ att.W_h.weight.t()
        scale = 1 / math.sqrt(q.size(-1))
    return torch.einsum("ba,bsa->bs", q, k if added is None else k + added) * scale


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("score", FORMULAS)
def test_each_score_is_its_formula_and_padding_gets_zero_weight(score, bidirectional):
    model, vocab = make(score, bidirectional=bidirectional, location_kernel=0)
    b = batch(vocab)
    enc_out, hidden, keys, mask = model.encode(b.src, b.src_len)
    assert not mask.all()  # the short sentence is padded
    att = model.decoder.attention
    s = hidden[-1]  # (B, H)
    context, weights = att.attend(att.project_query(s), keys, enc_out, mask)
    expected = torch.softmax(by_hand(att, score, s, enc_out).masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(weights, expected)
    assert torch.all(weights[~mask] == 0) and torch.all(weights[mask] > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    torch.testing.assert_close(context, (weights.unsqueeze(-1) * enc_out).sum(1))


@pytest.mark.parametrize("score", PRODUCTS)
def test_a_products_location_and_coverage_terms_join_its_keys(score):
    """In the products the location term U f_j, f = conv1d(prev), and coverage's w_c cov_j add
    to each key before the query meets it, as they add to W_h h_j in the additive score; a
    padded position stays at zero weight."""
    model, vocab = make(score, location_kernel=3, coverage=True)
    b = batch(vocab)
    enc_out, hidden, keys, mask = model.encode(b.src, b.src_len)
    att = model.decoder.attention
    assert att.location.weight.shape == (24, 1, 3) and att.coverage.shape == (24,)
    query = att.project_query(hidden[-1])
    prev = torch.softmax(torch.randn(mask.shape).masked_fill(~mask, float("-inf")), -1)  # (B, S)
    cov = prev + torch.rand(mask.shape) * mask
    f = F.conv1d(prev.unsqueeze(1), att.location.weight, padding=1).transpose(1, 2)  # (B, S, A)
    added = f + cov.unsqueeze(-1) * att.coverage
    expected = by_hand(att, score, hidden[-1], enc_out, added)
    torch.testing.assert_close(att.score(query, keys, prev, cov), expected)
    assert not torch.allclose(expected, by_hand(att, score, hidden[-1], enc_out))  # the terms count
    _, weights = att.attend(query, keys, enc_out, mask, prev, cov=cov)
    assert torch.all(weights[~mask] == 0)


@pytest.mark.parametrize("score", SCORES)
def test_each_score_decodes_a_sentence_alone_as_in_a_padded_batch(score):
    model, vocab = make(score, location_kernel=5, coverage=True)
    short = "the cat sat on the mat".split()
    ds = PairDataset(["the quick brown fox jumps over the lazy dog on".split(), short], vocab)
    b = ds.batch(torch.arange(2))
    alone = PairDataset([short], vocab)
    a = model.greedy(alone.src, alone.src_len)
    m = model.greedy(b.src, b.src_len)
    S, steps = int(alone.src_len[0]), int(a.length[0])
    assert int(m.length[1]) == steps and torch.equal(m.tokens[1, :steps], a.tokens[0, :steps])
    torch.testing.assert_close(m.attention[1, :steps, :S], a.attention[0, :steps, :S], atol=1e-5, rtol=1e-4)
    assert torch.all(m.attention[1, :steps, S:] == 0)


def test_the_flag_the_config_and_the_implementation():
    from tui.cli import config_from_args, main_parser

    assert Config().score == "additive"  # the textbook model stays the default
    for score in SCORES:
        assert config_from_args(main_parser().parse_args(["--score", score])).score == score
    for score in OTHERS:  # engine/fast has the additive score only: auto trains the reference
        cfg = Config(score=score)
        assert choose_impl(cfg) == "reference"
        assert f"engine/fast lacks the {score} attention score" in describe_impl("reference", cfg)
        with pytest.raises(ValueError, match=f"--score {score}"):
            choose_impl(Config(score=score, impl="fast"))
    with pytest.raises(ValueError, match="--score must be one of"):
        Config(score="cosine").validate()
    # uniform weights have no score: one line, not a model that ignores the flag
    with pytest.raises(ValueError, match="--no-attention"):
        Config(score="dot", attention=False).validate()
    Config(score="additive", attention=False).validate()


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--score", "cosine"], "invalid choice: 'cosine'"),
        (["--score", "dot", "--no-attention"], "--no-attention trains uniform weights"),
    ],
)
def test_a_bad_score_on_the_command_line_is_refused_with_usage(flags, words, capsys):
    from tui.cli import main

    with pytest.raises(SystemExit) as e:
        main(["--no-ui", *flags])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("usage:") and words in err.splitlines()[-1]


@pytest.mark.parametrize("score", OTHERS)
def test_each_score_trains_saves_loads_and_decodes_every_way(tmp_path, score):
    torch.manual_seed(0)
    path = tmp_path / f"{score}.pt"
    trainer = Trainer(Config(**{**QUICK, "score": score, "epochs": 3, "lr": 1e-2}), path)
    assert trainer.model.impl == "reference"
    history = [e for e in trainer.run() if isinstance(e, EpochDone)]
    assert history[-1].train_loss < history[0].train_loss  # it learns
    assert history[-1].batch_losses[-1] < history[0].batch_losses[0]
    loaded = load_model(path)  # weights_only
    assert loaded.config.score == score and loaded.model.impl == "reference"
    assert loaded.model.decoder.attention.kind == score
    state = torch.load(path, weights_only=True)["model"]
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in state.items())
    # greedy in a batch, the one-sentence probe, beam search and the step-through agree
    vocab = loaded.vocab
    sentences = [vocab.words()[:4], vocab.words()[4:9]]
    batched = decode(loaded.model, vocab, sentences, CPU)
    for s, r in zip(sentences, batched):
        text = " ".join(s)
        assert probe(loaded.model, vocab, text, CPU).output == r.output
        stepping = step_through(loaded.model, vocab, text, CPU)
        assert stepping.output == r.output
        for step in stepping.steps:
            assert step.attention.sum() == pytest.approx(1.0, abs=1e-5)
        beam = probe(loaded.model, vocab, text, CPU, beam=3)
        assert len(beam.attention) == len(beam.output) + 1  # a weight row per word and EOS
        assert step_through(loaded.model, vocab, text, CPU, beam=3).output == beam.output


@pytest.mark.parametrize("score", OTHERS)
def test_each_score_trains_with_the_copy_mechanism(tmp_path, score):
    torch.manual_seed(0)
    trainer = Trainer(Config(**{**QUICK, "score": score, "copy": "on", "epochs": 2, "lr": 1e-2}), tmp_path / "c.pt")
    history = [e for e in trainer.run() if isinstance(e, EpochDone)]
    assert history[-1].train_loss < history[0].train_loss
    loaded = load_model(tmp_path / "c.pt")
    assert loaded.model.copy and loaded.config.score == score
    unknown = "zorblat " + " ".join(loaded.vocab.words()[:3])  # a word it never saw, copied
    result = probe(loaded.model, loaded.vocab, unknown, CPU)
    assert result.output and probe(loaded.model, loaded.vocab, unknown, CPU, beam=2).output


def test_a_checkpoint_from_before_the_score_loads_as_additive(tmp_path):
    model, vocab = make("additive")
    config = {k: v for k, v in Config(embed_dim=16, hidden_dim=24).to_dict().items() if k != "score"}
    payload = {
        "format": "reverse-tui checkpoint v1",
        "model": model.state_dict(),
        "config": config,
        "vocab": vocab.itos,
        "epoch": 1,
        "history": [],
    }
    loaded = load_model(save_atomic(payload, tmp_path / "old.pt"))
    assert loaded.config.score == "additive" and loaded.model.decoder.attention.kind == "additive"
    b = batch(vocab)
    a, new = model.greedy(b.src, b.src_len), loaded.model.greedy(b.src, b.src_len)
    assert torch.equal(a.tokens, new.tokens) and torch.equal(a.attention, new.attention)


@pytest.mark.parametrize("score", OTHERS)
def test_a_checkpoint_of_one_score_does_not_load_as_another(tmp_path, score):
    """The score is the checkpoint's: weights of one never load quietly into another's model
    (dot has no weights of its own, so the others' extra ones are refused)."""
    model, vocab = make(score)
    config = Config(embed_dim=16, hidden_dim=24, score="additive").to_dict()
    payload = {
        "format": "reverse-tui checkpoint v1",
        "model": model.state_dict(),
        "config": config,
        "vocab": vocab.itos,
        "epoch": 1,
        "history": [],
    }
    from engine.errors import CheckpointError

    with pytest.raises(CheckpointError, match="do not fit"):
        load_model(save_atomic(payload, tmp_path / "mixed.pt"))
