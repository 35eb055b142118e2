"""The shift score (--score shift, engine/model/seq2seq.py Attention.shift_scores): where to look
from position, the previous weights moved by a soft offset. Its formula, its masking, a
hand-set model that moves one position a step and wraps onto EOS at each sentence's own
length, the preset that trains it, and the length sweep that goes as far as a model holds
(tests/test_scores.py runs it through training, decoding and checkpoints with the others)."""

import pytest
import torch
import torch.nn.functional as F

from engine.impl import build_model
from engine.insight import lengths
from engine.model.seq2seq import SHIFTS, PlaceQuery, shifted
from engine.model.tokens import EOS
from engine.train.config import Config
from engine.train.data import WORDS, PairDataset, Vocab

SENTENCES = ["the quick brown fox jumps over the lazy dog".split(), "the cat sat".split()]


def make(seed: int = 0, **over):
    torch.manual_seed(seed)
    cfg = Config(embed_dim=16, hidden_dim=24, score="shift", **over)
    vocab = Vocab(WORDS)
    return build_model(len(vocab), cfg).eval(), vocab


def enc_src(vocab) -> torch.Tensor:  # (B, S) the batch's source ids
    return PairDataset(SENTENCES, vocab).batch(torch.arange(2)).src


def encoded(model, vocab):
    b = PairDataset(SENTENCES, vocab).batch(torch.arange(2))
    return model.encode(b.src, b.src_len)  # enc_out (B, S, K), hidden, keys (B, S, A), mask (B, S)


def set_place(model, offset: int, gate: float = -50.0, first: float = -50.0) -> None:
    """Every step moves by `offset` exactly, without content (gate ~ 0) or sharpening
    (gamma = 1), starting from the last real position (first ~ 0)."""
    locate = model.decoder.attention.locate
    with torch.no_grad():
        locate.weight.zero_()
        bias = torch.full((len(SHIFTS) + 3,), -50.0)
        bias[SHIFTS.index(offset)] = 50.0
        bias[len(SHIFTS) + 1], bias[len(SHIFTS) + 2] = gate, first
        locate.bias.copy_(bias)


def test_the_weights_are_the_shifted_sharpened_mix_and_padding_gets_none():
    model, vocab = make(location_kernel=0)
    enc_out, hidden, keys, mask = encoded(model, vocab)
    att = model.decoder.attention
    s = hidden[-1]  # (B, H)
    query = att.project_query(s)
    prev = torch.softmax(torch.randn(mask.shape).masked_fill(~mask, float("-inf")), -1)  # (B, S)
    context, weights = att.attend(query, keys, enc_out, mask, prev)
    assert weights.shape == mask.shape and context.shape == (2, enc_out.size(-1))
    # by hand: gate, offsets, gamma from the last step's context; the shift wraps round each
    # sentence's real positions
    read = (prev.unsqueeze(-1) * enc_out).sum(1)  # (B, K)
    raw = read @ att.locate.weight.t() + att.locate.bias
    D = len(SHIFTS)
    p, gamma = torch.softmax(raw[:, :D], -1), 1 + F.softplus(raw[:, D])
    g = torch.sigmoid(raw[:, D + 1])
    content = att.v(torch.tanh(att.W_h(enc_out) + att.W_s(s).unsqueeze(1))).squeeze(-1)
    content = torch.softmax(content.masked_fill(~mask, float("-inf")), -1)
    mixed = g[:, None] * content + (1 - g[:, None]) * prev
    for b, n in enumerate(mask.sum(-1).tolist()):
        moved = sum(p[b, k] * torch.roll(mixed[b, :n], d) for k, d in enumerate(SHIFTS))
        sharp = moved ** gamma[b]
        torch.testing.assert_close(weights[b, :n], sharp / sharp.sum())
    assert torch.all(weights[~mask] == 0) and torch.all(weights[mask] > 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    torch.testing.assert_close(context, (weights.unsqueeze(-1) * enc_out).sum(1))


def test_shifted_moves_by_each_offset_within_the_real_positions():
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    w = torch.tensor([[0.0, 0.1, 0.2, 0.3, 0.4], [0.5, 0.25, 0.25, 0.0, 0.0]])
    for k, d in enumerate(SHIFTS):
        one_hot = F.one_hot(torch.tensor([k, k]), len(SHIFTS)).float()
        out = shifted(w, mask, one_hot)
        torch.testing.assert_close(out[0], torch.roll(w[0], d))
        torch.testing.assert_close(out[1, :3], torch.roll(w[1, :3], d))
        assert torch.all(out[1, 3:] == 0)


def test_a_hand_set_shift_walks_left_one_word_a_step_and_wraps_onto_eos():
    """One-hot offset -1, no content: the focus starts on the last word and moves one to the
    left each step; the step after the first word it is on the sentence's own EOS, whatever
    its length and however it is padded: the stop cue does not count steps."""
    model, vocab = make()
    set_place(model, -1)
    enc_out, hidden, keys, mask = encoded(model, vocab)
    att = model.decoder.attention
    n = mask.sum(-1)  # (B,) words + EOS
    w = torch.zeros(mask.shape)
    for t in range(int(n.max()) + 1):
        _, w = att.attend(att.project_query(hidden[-1]), keys, enc_out, mask, w)
        expected = (n - 2 - t) % n  # the last word first; past the first word, EOS (n - 1)
        assert torch.equal(w.argmax(-1), expected)
        assert torch.all(w.max(-1).values > 1 - 1e-6) and torch.all(w[~mask] == 0)
        for b in range(2):  # after its n - 1 words, each sentence's step is on its own EOS
            if t == int(n[b]) - 1:
                assert int(w[b].argmax()) == int(n[b]) - 1 and int(enc_src(vocab)[b, t]) == EOS
    set_place(model, +1, first=50.0)  # the other way: from the first word, rightwards
    w = torch.zeros(mask.shape)
    for t in range(3):
        _, w = att.attend(att.project_query(hidden[-1]), keys, enc_out, mask, w)
        assert torch.equal(w.argmax(-1), (1 + t) % n)


def test_the_offsets_gamma_gate_and_start_are_what_they_claim():
    raw = torch.randn(4, len(SHIFTS) + 3) * 5
    q = PlaceQuery.of(raw)
    torch.testing.assert_close(q.offsets.sum(-1), torch.ones(4))
    assert torch.all(q.gamma >= 1) and torch.all((q.gate > 0) & (q.gate < 1))
    assert torch.all((q.first > 0) & (q.first < 1))


def test_a_sentence_decodes_alone_as_in_a_padded_batch_after_training_like_weights():
    """Length invariance: the same model on a padded batch and on each sentence alone gives
    the same words and weights (random weights, its sharpening and content share on)."""
    model, vocab = make(seed=3)
    batch = PairDataset(SENTENCES, vocab)
    both = model.greedy(batch.src, batch.src_len)
    for i, sentence in enumerate(SENTENCES):
        alone = PairDataset([sentence], vocab)
        a = model.greedy(alone.src, alone.src_len)
        steps, S = int(a.length[0]), int(alone.src_len[0])
        assert int(both.length[i]) == steps and torch.equal(both.tokens[i, :steps], a.tokens[0, :steps])
        torch.testing.assert_close(both.attention[i, :steps, :S], a.attention[0, :steps, :S], atol=1e-5, rtol=1e-4)
        assert torch.all(both.attention[i, :steps, S:] == 0)


def test_the_long_preset_is_the_papers_setup_with_the_shift_score():
    from tui.cli import config_from_args, main_parser

    cfg = config_from_args(main_parser().parse_args(["--preset", "long"]))
    assert cfg == Config.long() and (cfg.min_len, cfg.max_len, cfg.score) == (5, 10, "shift")
    cfg.validate()
    assert config_from_args(main_parser().parse_args(["--preset", "long", "--max-len", "12"])).max_len == 12
    Config(score="shift", location_kernel=3, coverage=True).validate()  # both join its content part
    with pytest.raises(ValueError, match="--no-attention"):
        Config.long(attention=False).validate()


def test_a_run_on_five_to_ten_words_is_swept_to_a_hundred():
    beyond, every = lengths.sweep_lengths(5, 10)
    assert {15, 20, 25, 30, 50, 60, 100} <= set(beyond) and beyond[-1] == 100
    assert set(beyond) - set(every) == set()
    assert lengths.held_lengths(30) == [240, 300] and lengths.held_from(30) == 180
