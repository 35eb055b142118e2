"""The encoder's hand-written GRU scan (engine/fast/gru_scan.py): its gradients against finite
differences, and the encoder through it equal to torch.nn.GRU under autograd."""

import pytest
import torch

import engine.fast.seq2seq as fast_module
from engine.fast.gru_scan import GRUScan
from engine.fast.seq2seq import encoder_gru, scan
from engine.model.seq2seq import Encoder


def test_scan_gradients_match_finite_differences():
    torch.manual_seed(0)
    S, B, H = 4, 3, 5
    d = dict(dtype=torch.double, requires_grad=True)
    gi, h0 = torch.randn(S, B, 3 * H, **d), torch.randn(B, H, **d)
    W_hh, b_hh = torch.randn(3 * H, H, **d), torch.randn(3 * H, **d)
    assert torch.autograd.gradcheck(lambda *a: GRUScan.apply(*a), (gi, h0, W_hh, b_hh))


@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (1, True), (3, True)])
def test_encoder_scan_equals_torch_gru(layers, bidirectional):
    """Outputs, final states and every parameter's gradient (dropout off: the two paths
    draw their masks differently)."""
    torch.manual_seed(1)
    enc = Encoder(vocab_size=13, embed_dim=6, hidden_dim=10, layers=layers, dropout=0.0, bidirectional=bidirectional)
    src = torch.randint(1, 13, (7, 5))
    x = enc.embedding(src)
    seeds = torch.randn(7, 5, enc.out_dim), torch.randn(layers * (2 if bidirectional else 1), 7, 10)
    results = []
    for run in (enc.gru, lambda x: scan(enc, x)):
        enc.zero_grad()
        out, hidden = run(enc.embedding(src))
        ((out * seeds[0]).sum() + (hidden * seeds[1]).sum()).backward()
        results.append([out.detach(), hidden.detach()] + [p.grad.clone() for p in enc.parameters()])
    assert x.shape[:2] == (7, 5)
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-6)


@pytest.mark.parametrize("layers,bidirectional", [(1, True), (2, True), (2, False)])
def test_a_padded_batch_on_the_scan_equals_packed_sequences(layers, bidirectional):
    """With padding, the scan gives what torch.nn.GRU over packed sequences gives: outputs
    (zeros past each end), each sentence's own final states, and every parameter's and the
    embeddings' gradient, a one-word sentence and a full one among them."""
    torch.manual_seed(4)
    enc = Encoder(vocab_size=13, embed_dim=6, hidden_dim=10, layers=layers, dropout=0.0, bidirectional=bidirectional)
    B, S = 6, 7
    src_len = torch.tensor([7, 1, 5, 7, 3, 6])
    src = torch.randint(1, 13, (B, S)).masked_fill(torch.arange(S)[None, :] >= src_len[:, None], 0)
    seeds = torch.randn(B, S, enc.out_dim), torch.randn(layers * (2 if bidirectional else 1), B, 10)
    results = []
    for run in (enc.packed, lambda x, n: scan(enc, x, n)):
        enc.zero_grad()
        x = enc.embedding(src).detach().requires_grad_()
        out, hidden = run(x, src_len)
        ((out * seeds[0]).sum() + (hidden * seeds[1]).sum()).backward()
        results.append([out.detach(), hidden.detach(), x.grad] + [p.grad.clone() for p in enc.gru.parameters()])
    assert torch.equal(results[1][0][1, 1:], torch.zeros(S - 1, enc.out_dim))  # past the one word: zeros
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=2e-6)


def test_the_encoder_trains_every_batch_on_the_scan(monkeypatch):
    enc = Encoder(vocab_size=13, embed_dim=6, hidden_dim=10, layers=2, dropout=0.1, bidirectional=True)
    calls = []
    real = GRUScan.apply
    monkeypatch.setattr(fast_module.GRUScan, "apply", lambda *a: calls.append(1) or real(*a))
    monkeypatch.setattr(fast_module, "kernels_for", lambda x: True)
    src = torch.randint(1, 13, (4, 6))
    enc(src, torch.full((4,), 6), gru=encoder_gru)  # what the fast layer's training pass passes
    assert len(calls) == 4  # 2 layers x 2 directions
    enc(src, torch.tensor([6, 5, 6, 3]), gru=encoder_gru)  # padding too
    assert len(calls) == 8
    calls.clear()
    with torch.no_grad():  # validation and decoding: torch.nn.GRU, no backward to save
        enc(src, torch.full((4,), 6), gru=encoder_gru)
        enc(src, torch.tensor([6, 5, 6, 3]), gru=encoder_gru)
    enc(src, torch.full((4,), 6))  # the reference (--impl reference): torch.nn.GRU
    assert calls == []


def test_encoder_dropout_between_layers_on_the_scan():
    torch.manual_seed(2)
    enc = Encoder(vocab_size=13, embed_dim=6, hidden_dim=10, layers=2, dropout=0.5, bidirectional=False)
    x = enc.embedding(torch.randint(1, 13, (4, 6)))
    enc.train()
    a, b = scan(enc, x)[0], scan(enc, x)[0]
    assert not torch.allclose(a, b)  # fresh masks each pass
    enc.eval()
    torch.testing.assert_close(scan(enc, x)[0], enc.gru(x)[0], rtol=1e-4, atol=2e-6)


def test_scan_dropout_between_layers_is_the_inverted_mask_on_each_lower_layer():
    """With the random stream replayed, the scan equals two single-layer torch.nn.GRUs with
    the same weights and dropout_mask(p) on the lower layer's output: values and gradients."""
    from engine.model.seq2seq import dropout_mask

    torch.manual_seed(3)
    p = 0.3
    enc = Encoder(vocab_size=13, embed_dim=6, hidden_dim=10, layers=2, dropout=p, bidirectional=True)
    layers = [torch.nn.GRU(6, 10, bidirectional=True), torch.nn.GRU(20, 10, bidirectional=True)]
    for l, gru in enumerate(layers):
        for name, param in gru.named_parameters():
            param.data.copy_(getattr(enc.gru, name.replace("_l0", f"_l{l}")).data)
    x = torch.randn(7, 4, 6)  # (B, S, E)
    seed = torch.randn(7, 4, 20)

    torch.manual_seed(9)
    out = scan(enc, x)[0]
    (out * seed).sum().backward()
    torch.manual_seed(9)  # the only random draw in the scan is the mask between the layers
    lower, _ = layers[0](x.transpose(0, 1))
    lower = lower * dropout_mask(lower.shape, p, lower.device)
    ref = layers[1](lower)[0].transpose(0, 1)
    (ref * seed).sum().backward()

    torch.testing.assert_close(out, ref, rtol=1e-4, atol=2e-6)
    for l, gru in enumerate(layers):
        for name, param in gru.named_parameters():
            mine = getattr(enc.gru, name.replace("_l0", f"_l{l}")).grad
            torch.testing.assert_close(mine, param.grad, rtol=1e-4, atol=2e-6)
