"""The decoder loop's hand-written backward pass (engine/fast/decoder_loop.py, engine/fast/gru_cell.py)
against finite differences, and the fused loop against the step-by-step reference
(engine/model/seq2seq.py's reference, under autograd)."""

import pytest
import torch

from engine.fast.decoder_loop import decoder_loop
from engine.impl import build_model
from engine.train.config import Config
from tests.conftest import decoder_inputs, loop_args


def test_the_loop_maps_each_gradient_to_its_argument_by_name():
    """Every differentiable argument gets a gradient of its own shape, the others none (a swap
    between arguments of the same shape is what the finite-difference test above catches)."""
    spec, tgt_in, drop_emb, drop_between, mask, grads, out, lower, leaves = decoder_inputs(L=3, loc=3)
    g = list(grads)
    g[3] = torch.cat([torch.zeros_like(g[3][:1]), g[3]])  # the PAD row
    args = loop_args(tgt_in, drop_emb, drop_between, mask, g, out, lower)
    states, contexts, _, _ = decoder_loop(spec, args)
    (states.sum() + contexts.sum()).backward()
    for leaf in leaves:
        assert leaf.grad is not None and leaf.grad.shape == leaf.shape
    assert out[0].grad is None and not drop_emb.requires_grad


@pytest.mark.parametrize("L,loc,drop", [(1, 0, False), (2, 3, True), (3, 5, True)])
def test_decoder_loop_gradients_match_finite_differences(L, loc, drop):
    spec, tgt_in, drop_emb, drop_between, mask, grads, out, lower, leaves = decoder_inputs(L, loc, drop)

    def f(*leaf_values):
        it = iter(leaf_values)
        g = [next(it) if x is not None else None for x in grads]
        low = [next(it) for _ in lower]
        # the PAD row is a constant: like nn.Embedding(padding_idx=PAD), the loop gives it no
        # gradient, though the model may read it
        g[3] = torch.cat([torch.zeros_like(g[3][:1]), g[3]])
        states, contexts, _, _ = decoder_loop(spec, loop_args(tgt_in, drop_emb, drop_between, mask, g, out, low))
        return states, contexts

    # fast mode checks random projections of the Jacobian: one backward per output, not per entry
    assert torch.autograd.gradcheck(f, tuple(leaves), fast_mode=L > 1)


ARCHS = [
    dict(layers=1, bidirectional=True, location_kernel=5),
    dict(layers=2, bidirectional=False, location_kernel=0),
    dict(layers=3, bidirectional=True, location_kernel=3),
    dict(layers=2, bidirectional=True, location_kernel=3, attention=False),
]


@pytest.mark.parametrize("arch", ARCHS)
def test_fused_decoder_equals_step_by_step_autograd(arch):
    """Same logits, attention and gradient for every parameter as the plain step-by-step
    decoder under autograd, Seq2Seq.forward_reference (dropout off: its masks are drawn
    differently on the two paths). The no-attention control
    runs the same loop with v = 0, frozen."""
    torch.manual_seed(1)
    model = build_model(20, Config(embed_dim=8, hidden_dim=12, dropout=0.0, **arch))
    src = torch.randint(4, 20, (5, 7))
    src_len = torch.tensor([7, 5, 7, 3, 6])
    tgt_in = torch.randint(4, 20, (5, 6))
    forcing = [True, False, True, False, False, True]

    def run(fused):
        model.zero_grad()
        if fused:
            logits, attn = model(src, src_len, tgt_in, forcing)
        else:
            logits, attn = model.forward_reference(src, src_len, tgt_in, torch.tensor(forcing))
        logits.sin().sum().backward()
        return logits.detach(), attn, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    logits, attn, grads = run(True)
    ref_logits, ref_attn, ref_grads = run(False)
    torch.testing.assert_close(logits, ref_logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(attn, ref_attn, atol=1e-6, rtol=1e-5)
    for name, g in ref_grads.items():
        torch.testing.assert_close(grads[name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_dropout_is_drawn_in_training_and_off_in_evaluation():
    torch.manual_seed(3)
    model = build_model(20, Config(embed_dim=8, hidden_dim=12, layers=2, dropout=0.5))
    src = torch.randint(4, 20, (4, 6))
    src_len = torch.full((4,), 6)
    tgt_in = torch.randint(4, 20, (4, 6))
    forcing = [True] * 6
    model.train()
    a, _ = model(src, src_len, tgt_in, forcing)
    b, _ = model(src, src_len, tgt_in, forcing)
    assert not torch.allclose(a, b)
    model.eval()
    c, _ = model(src, src_len, tgt_in, forcing)
    d, _ = model(src, src_len, tgt_in, forcing)
    assert torch.equal(c, d)
