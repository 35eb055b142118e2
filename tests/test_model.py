"""The model's contract: padding never changes an answer, attention is a proper
distribution over real tokens, the context is its weighted sum, and the hand-written GRU
follows torch.nn.GRU's equations."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from engine.impl import build_model
from engine.model.seq2seq import gru_cell as gru
from engine.train.config import Config
from engine.train.data import EOS, PAD, WORDS, PairDataset, Vocab


def make(cfg_kwargs=None, seed=0):
    torch.manual_seed(seed)
    cfg = Config(embed_dim=16, hidden_dim=24, **(cfg_kwargs or {}))
    vocab = Vocab(WORDS)
    return build_model(len(vocab), cfg).eval(), vocab


ARCHS = [
    {},
    {"bidirectional": True},
    {"layers": 2, "dropout": 0.1},
    {"layers": 2, "bidirectional": True},
    {"location_kernel": 5},
    {"bidirectional": True, "location_kernel": 3},
]


@pytest.mark.parametrize("arch", ARCHS)
def test_same_output_alone_in_a_batch_and_padded(arch):
    model, vocab = make(arch)
    target = "the cat sat on the mat".split()
    longer = ["the quick brown fox jumps over the lazy dog on".split(), "big red car".split()]
    alone = PairDataset([target], vocab)
    a = model.greedy(alone.src, alone.src_len)

    # inside a batch with longer sentences: target row is padded on the right
    mixed = PairDataset([longer[0], target, longer[1]], vocab)
    rows = torch.arange(3)
    b = mixed.batch(rows)
    assert b.src.size(1) > alone.src.size(1)
    m = model.greedy(b.src, b.src_len)

    # the same sentence padded to any width
    wide = torch.full((1, 15), PAD, dtype=torch.long)
    wide[0, : alone.src.size(1)] = alone.src[0]
    w = model.greedy(wide, alone.src_len)

    steps = int(a.length[0])
    S = int(alone.src_len[0])
    for other, row in ((m, 1), (w, 0)):
        assert int(other.length[row]) == steps
        assert torch.equal(other.tokens[row, :steps], a.tokens[0, :steps])
        torch.testing.assert_close(other.attention[row, :steps, :S], a.attention[0, :steps, :S], atol=1e-5, rtol=1e-4)
        assert torch.all(other.attention[row, :steps, S:] == 0)


@pytest.mark.parametrize("arch", [{"bidirectional": True}, {"layers": 2, "dropout": 0.1}])
def test_packing_sorted_on_the_host_is_torchs_own_packing(arch):
    """Encoder.packed (the rows sorted on the host, no index read back from the device) against
    pack_padded_sequence(enforce_sorted=False), the packing it replaced: the same outputs,
    final states and gradients, bit for bit, with lengths out of order and tied."""
    model, _ = make(arch)
    enc = model.encoder.train()
    src_len = torch.tensor([3, 6, 6, 2, 5, 3])
    results = []
    for ours in (True, False):
        torch.manual_seed(1)  # the same dropout masks
        x = torch.randn(6, 6, 16, requires_grad=True)
        if ours:
            out, hidden = enc.packed(x, src_len)
        else:
            packed = pack_padded_sequence(x, src_len, batch_first=True, enforce_sorted=False)
            out, hidden = enc.gru(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=6)
        (out.square().sum() + hidden.sum()).backward()
        results.append([out, hidden, x.grad] + [p.grad for p in enc.gru.parameters()])
        enc.zero_grad()
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_attention_is_a_distribution_over_real_tokens_and_context_is_weighted_sum():
    model, vocab = make({"bidirectional": True})
    ds = PairDataset(
        [
            "a b c".replace("a", "the").replace("b", "cat").replace("c", "sat").split(),
            "the quick brown fox jumps over".split(),
        ],
        vocab,
    )
    b = ds.batch(torch.arange(2))
    enc_out, hidden, keys, mask = model.encode(b.src, b.src_len)
    query = model.decoder.attention.W_s(hidden[-1])
    context, weights = model.decoder.attention.attend(query, keys, enc_out, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2))
    assert torch.all(weights[~mask] == 0)
    assert torch.all(weights[mask] > 0)
    torch.testing.assert_close(context, (weights.unsqueeze(-1) * enc_out).sum(1))
    # the attention score is v . tanh(W_h h_j + W_s s), computed by hand
    att = model.decoder.attention
    scores = att.v(torch.tanh(att.W_h(enc_out) + att.W_s(hidden[-1]).unsqueeze(1))).squeeze(-1)
    expected = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(weights, expected)


def test_decoder_gru_matches_torch_grucell():
    model, _ = make()
    dec = model.decoder
    H, E, K = 24, 16, dec.W_ic.size(1)
    cell = torch.nn.GRUCell(E + K, H)
    with torch.no_grad():
        cell.weight_ih.copy_(torch.cat([dec.W_ie, dec.W_ic], 1))
        cell.weight_hh.copy_(dec.W_hh[0])
        cell.bias_ih.copy_(dec.b_ih[0])
        cell.bias_hh.copy_(dec.b_hh[0])
    emb, ctx, h = torch.randn(5, E), torch.randn(5, K), torch.randn(5, H)
    gi = torch.nn.functional.linear(emb, dec.W_ie, dec.b_ih[0]) + torch.nn.functional.linear(ctx, dec.W_ic)
    gh = torch.nn.functional.linear(h, dec.W_hh[0], dec.b_hh[0])
    torch.testing.assert_close(gru(gi, gh, h), cell(torch.cat([emb, ctx], 1), h))


def test_greedy_stops_when_every_sentence_has_emitted_eos():
    model, vocab = make()
    ds = PairDataset(["the cat sat".split(), "big dog ran fast".split()], vocab)
    out = model.greedy(*(lambda b: (b.src, b.src_len))(ds.batch(torch.arange(2))))
    T = out.tokens.size(1)
    # either it ran to the step limit or the last step finished the last open sentence
    assert T == 2 * 5 + 5 or bool(((out.tokens == EOS).any(1)).all())
    # after a sentence's EOS only PAD follows
    for i in range(2):
        n = int(out.length[i])
        assert torch.all(out.tokens[i, n:] == PAD)


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_decoding_path_matches_the_training_path(arch):
    """greedy() steps one at a time (decode_step), forward() runs the whole training loop
    (DecoderLoop): fed greedy's own words, the same answers."""
    model, vocab = make(arch, seed=3)
    ds = PairDataset(["the cat sat on the mat".split(), "big red car".split()], vocab)
    b = ds.batch(torch.arange(2))
    out = model.greedy(b.src, b.src_len)
    T = out.tokens.size(1)
    tgt_in = torch.cat([torch.full((2, 1), 1), out.tokens[:, :-1]], 1)  # the greedy words fed back
    with torch.no_grad():
        logits, attn = model(b.src, b.src_len, tgt_in, [True] * T)
    for i in range(2):
        n = int(out.length[i])
        assert torch.equal(logits[i, :n].argmax(-1), out.tokens[i, :n])
        torch.testing.assert_close(attn[i, :n], out.attention[i, :n], atol=1e-5, rtol=1e-4)


def test_location_band_equals_the_conv():
    """The one builder of the location term (training, the reference's attention) gives
    conv1d(prev, W_loc, padding=k//2), the convolution of Chorowski et al."""
    model, _ = make({"location_kernel": 5})
    loc = model.decoder.attention.location
    prev = torch.softmax(torch.randn(3, 9), -1)
    conv = torch.nn.functional.conv1d(prev.unsqueeze(1), loc.weight, padding=2).transpose(1, 2)  # (B, S, A)
    torch.testing.assert_close((prev @ loc.band(9)).view(3, 9, -1), conv)


def test_location_weights_keep_the_conv1d_checkpoint_layout():
    """Checkpoints from when the location term was an nn.Conv1d load as they are: same key,
    shape, place among the parameters (Adam's state is a list in that order) and initial values."""
    model, _ = make({"location_kernel": 5})
    names = [n for n, _ in model.named_parameters()]
    assert names.index("decoder.attention.location.weight") == names.index("decoder.attention.v.weight") + 1
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(1, 24, 5, padding=2, bias=False)
    torch.manual_seed(0)
    loc = type(model.decoder.attention.location)(24, 5)
    assert torch.equal(loc.weight, conv.weight)  # same shape, same draw
    model.decoder.attention.load_state_dict(  # a Conv1d-era state dict
        {**model.decoder.attention.state_dict(), "location.weight": conv.weight.detach()}
    )
    assert torch.equal(model.decoder.attention.location.weight, conv.weight)


def test_the_no_attention_control_is_attention_with_v_zero_and_frozen():
    """The control runs the same loop as every model; with v = 0 every score is equal, so the
    masked softmax gives exactly 1/n on the n real positions, in training and in decoding."""
    model, vocab = make({"attention": False, "location_kernel": 3}, seed=4)
    v = model.decoder.attention.v.weight
    assert not v.requires_grad and torch.all(v == 0)
    ds = PairDataset(["the cat sat on the mat".split(), "big red car".split(), "dog".split()], vocab)
    b = ds.batch(torch.arange(3))
    mask = torch.arange(b.src.size(1))[None, :] < b.src_len[:, None]  # (B, S)
    uniform = mask.float() / b.src_len[:, None]
    out = model.greedy(b.src, b.src_len)
    assert torch.equal(out.attention, uniform[:, None].expand_as(out.attention))
    model.train()
    tgt_in = torch.randint(4, len(vocab), (3, 5))
    logits, attn = model(b.src, b.src_len, tgt_in, [True, False, True, False, True])
    assert torch.equal(attn, uniform[:, None].expand_as(attn))
    logits.sum().backward()
    assert v.grad is None and model.decoder.W_ic.grad is not None


def test_an_old_control_checkpoint_decodes_uniformly():
    """Before v was frozen the control trained a v it never used: loading zeroes it."""
    model, vocab = make({"attention": False})
    state = model.state_dict()
    state["decoder.attention.v.weight"] = torch.randn_like(state["decoder.attention.v.weight"])
    model.load_state_dict(state)
    assert torch.all(model.decoder.attention.v.weight == 0)
    assert not model.decoder.attention.v.weight.requires_grad


def test_the_uniform_ablation_is_a_zero_v():
    """greedy(attend=False) on an attention model: exactly uniform weights, as the control's."""
    model, vocab = make({"location_kernel": 5}, seed=5)
    ds = PairDataset(["the cat sat on the mat".split(), "big red car".split()], vocab)
    b = ds.batch(torch.arange(2))
    out = model.greedy(b.src, b.src_len, attend=False)
    uniform = (torch.arange(b.src.size(1))[None, :] < b.src_len[:, None]).float() / b.src_len[:, None]
    assert torch.equal(out.attention, uniform[:, None].expand_as(out.attention))
    assert not torch.equal(model.greedy(b.src, b.src_len).attention[:, :1], out.attention[:, :1])


def test_beams_score_no_worse_than_greedy_by_their_measure(trained_checkpoint):
    """A beam of one follows greedy's path while its word is not EOS and sets greedy's answer
    aside when it is, so its answer scores (summed log-probability / length) no worse;
    a wider beam, in these sentences, no worse again."""
    from engine.train.checkpoint import load_model

    loaded = load_model(trained_checkpoint)
    model, vocab = loaded.model, loaded.vocab
    for words in ["the cat sat".split(), "big red car on the mat".split(), "dog".split() * 4]:
        ds = PairDataset([words], vocab)

        def norm_logprob(tokens, ds=ds):
            tgt = tokens[None]
            tgt_in = torch.cat([torch.tensor([[1]]), tgt[:, :-1]], 1)
            with torch.no_grad():
                logits, _ = model(ds.src, ds.src_len, tgt_in, [True] * tgt.size(1))
            return float(torch.log_softmax(logits, -1).gather(2, tgt[..., None]).sum()) / tgt.size(1)

        g = model.greedy(ds.src, ds.src_len)
        b1, b4 = model.beam(ds.src, ds.src_len, 1), model.beam(ds.src, ds.src_len, 4)
        assert norm_logprob(b1.tokens[0]) >= norm_logprob(g.tokens[0, : int(g.length[0])]) - 1e-5
        assert norm_logprob(b4.tokens[0]) >= norm_logprob(b1.tokens[0]) - 1e-5


# A hand-made next-word table for beam_search: ids 3..6 are A B C D. From SOS, A (.55) or B
# (.45); after B the sentence ends (.99); after A it ends (.52) or goes on A B C D, each word
# near certain, to the best sentence by length-normalised score: -1.34 / 5 against B's -0.81 / 2.
A, B, C, D = 3, 4, 5, 6
TABLE = {
    (): {A: 0.55, B: 0.45},
    (B,): {EOS: 0.99, A: 0.01},
    (A,): {EOS: 0.52, B: 0.48},
    (A, B): {C: 0.999},
    (A, B, C): {D: 0.999},
}


def table_step():
    """beam_search's step function over TABLE (anything else ends at once); it keeps each
    row's prefix as its state, reindexed by the parents it is given."""
    prefixes: list[tuple[int, ...]] = [()]

    def step(y, parents):
        nonlocal prefixes
        if parents is not None:
            prefixes = [prefixes[p] + (int(w),) for p, w in zip(parents.tolist(), y.tolist())]
        p = torch.full((len(prefixes), 7), 1e-6)
        for row, prefix in enumerate(prefixes):
            for word, q in TABLE.get(prefix, {EOS: 0.999}).items():
                p[row, word] = q
        return torch.log(p / p.sum(1, keepdim=True)), torch.ones(len(prefixes), 1), None

    return step


def test_beam_search_a_short_finished_hypothesis_does_not_block_the_longer_right_one():
    """At step 2 the two best continuations both end ("B <eos>", "A <eos>"): a search that
    gave finished hypotheses beam slots and stopped once k had finished answered "B". The
    search keeps k live hypotheses ("A B" among them) and finds A B C D."""
    from engine.model.seq2seq import beam_search

    trace = []
    out = beam_search(table_step(), 2, 12, trace=trace)
    assert out.tokens[0].tolist() == [A, B, C, D, EOS]
    second = trace[1].candidates
    assert [(b, w, fate) for b, w, _, fate in second[:2]] == [(1, EOS, "finished"), (0, EOS, "finished")]
    assert [fate for *_, fate in second].count("survives") == 2  # k live despite two ending
    assert trace[-1].stopped and len(trace) == 5  # stopped once nothing live could beat A B C D


def test_beam_search_stops_when_no_live_hypothesis_can_beat_the_best_finished():
    from engine.model.seq2seq import beam_search

    trace = []
    beam_search(table_step(), 2, 40, trace=trace)
    for record in trace[:-1]:  # every step before the last had a live one that might still win
        assert (
            record.best is None or record.best[0] < max(s for _, _, s, f in record.candidates if f == "survives") / 40
        )
    assert len(trace) < 40


def test_beam_keeps_k_live_hypotheses_while_finished_ones_wait_aside(trained_checkpoint):
    from engine.train.checkpoint import load_model

    loaded = load_model(trained_checkpoint)
    ds = PairDataset(["the cat sat on the mat".split()], loaded.vocab)
    trace = []
    loaded.model.beam(ds.src, ds.src_len, 3, trace=trace)
    assert [len(r.live) for r in trace[1:]] == [3] * (len(trace) - 1)


def test_wider_beams_keep_what_greedy_gets_right(reversing_checkpoint):
    """On sentences the greedy decoder reverses, a beam of 2-4 (whose search can only add
    hypotheses greedy never looked at) answers the same reversal."""
    from engine.insight.evaluate import evaluate
    from engine.train.checkpoint import load_model
    from engine.train.data import splits_for

    loaded = load_model(reversing_checkpoint)
    model, vocab = loaded.model, loaded.vocab
    sentences = splits_for(loaded.config)[0].test[:40]
    greedy = evaluate(model, vocab, sentences, torch.device("cpu"))
    right = [r.source for r in greedy.results if r.match]
    assert len(right) >= 30  # the fixture's model reverses most of them
    for k in (2, 3, 4):
        assert evaluate(model, vocab, right, torch.device("cpu"), beam=k).exact_match == 1.0, k
