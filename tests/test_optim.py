"""engine/train/optim.py: the hand-written Adam against torch.optim.Adam (and its C kernel against its
foreach ops), clipping, the LR schedule."""

import pytest
import torch

from engine.fast import native
from engine.impl import build_model
from engine.train.config import Config
from engine.train.data import WORDS, PairDataset, Vocab
from engine.train.optim import Adam, LrPlan, clip_grad_norm, scheduled_lr
from engine.train.trainer import masked_loss


def _model_and_batch(seed=0):
    torch.manual_seed(seed)
    cfg = Config(embed_dim=16, hidden_dim=24, layers=2, bidirectional=True)
    vocab = Vocab(WORDS)
    model = build_model(len(vocab), cfg)
    ds = PairDataset(["the cat sat on".split(), "big red car".split(), "a dog".replace("a", "old").split()], vocab)
    return model, ds.batch(torch.arange(3))


@pytest.mark.slow
def test_adam_matches_torch_optim_adam_over_100_steps():
    """The foreach ops, in torch.optim.Adam's order of operations, give its exact weights.
    (The C kernel's agreement with them is the next test: FMA rounds differently.)"""
    ours_model, batch = _model_and_batch()
    ref_model, _ = _model_and_batch()
    ours = Adam(ours_model.parameters(), lr=3e-3, betas=(0.85, 0.995), eps=1e-7, use_native=False)
    ref = torch.optim.Adam(ref_model.parameters(), lr=3e-3, betas=(0.85, 0.995), eps=1e-7)
    forcing = [True] * batch.tgt.size(1)
    for _ in range(100):
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            opt.zero_grad()
            logits, _ = model(batch.src, batch.src_len, batch.tgt_in, forcing)
            masked_loss(logits, batch.tgt).backward()
            opt.step()
    for (name, p), q in zip(ours_model.named_parameters(), ref_model.parameters()):
        assert torch.allclose(p, q, atol=1e-6, rtol=0), name
    # and it did move the weights
    start, _ = _model_and_batch()
    assert any(not torch.allclose(p, q) for p, q in zip(ours_model.parameters(), start.parameters()))


def test_adam_state_dict_round_trip_continues_identically():
    m1, batch = _model_and_batch()
    o1 = Adam(m1.parameters(), lr=1e-2)
    forcing = [True] * batch.tgt.size(1)

    def step(model, opt):
        opt.zero_grad()
        masked_loss(model(batch.src, batch.src_len, batch.tgt_in, forcing)[0], batch.tgt).backward()
        opt.step()

    for _ in range(3):
        step(m1, o1)
    m2, _ = _model_and_batch()
    m2.load_state_dict(m1.state_dict())
    o2 = Adam(m2.parameters(), lr=1e-2)
    o2.load_state_dict(o1.state_dict())
    for _ in range(3):
        step(m1, o1)
        step(m2, o2)
    for p, q in zip(m1.parameters(), m2.parameters()):
        torch.testing.assert_close(p, q)


def test_clipping_caps_the_norm_and_returns_the_norm_before():
    model, batch = _model_and_batch()
    logits, _ = model(batch.src, batch.src_len, batch.tgt_in, [True] * batch.tgt.size(1))
    (1000 * masked_loss(logits, batch.tgt)).backward()
    before = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert before > 1.0
    returned = clip_grad_norm(model.parameters(), 1.0)
    torch.testing.assert_close(returned, before)
    after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
    assert after <= 1.0 + 1e-5
    # a small gradient is left alone
    for p in model.parameters():
        if p.grad is not None:
            p.grad.mul_(0.1 / float(after))
    g0 = [p.grad.clone() for p in model.parameters() if p.grad is not None]
    clip_grad_norm(model.parameters(), 1.0)
    for a, p in zip(g0, [p for p in model.parameters() if p.grad is not None]):
        torch.testing.assert_close(a, p.grad)


def test_cosine_schedule_warms_up_then_decays_to_a_twentieth():
    lrs = [scheduled_lr(1.0, "cosine", s, 100) for s in range(100)]
    assert lrs[0] < lrs[4] <= 1.0
    assert max(lrs) == 1.0
    assert all(a >= b for a, b in zip(lrs[5:], lrs[6:]))
    assert abs(lrs[-1] - 0.05) < 0.01
    assert scheduled_lr(0.3, "constant", 57, 100) == 0.3


def test_a_plan_resumed_at_another_length_goes_on_without_rising():
    plan = LrPlan.fresh(1.0, "cosine", 100)  # warm-up: steps 0-4
    assert [plan.rate(s) for s in range(100)] == [scheduled_lr(1.0, "cosine", s, 100) for s in range(100)]
    assert plan.resumed(100, 40, plan.rate(39)) is plan  # the same length: the same rates
    # past the warm-up: a cosine from the last step's rate down to the floor at the new end
    later = plan.resumed(300, 40, plan.rate(39))
    tail = [later.rate(s) for s in range(40, 300)]
    assert tail[0] < plan.rate(39) and all(a > b for a, b in zip(tail, tail[1:]))
    assert later.rate(39) == plan.rate(39) and later.rate(300) == 0.05
    # during the warm-up: it finishes as planned, then the cosine runs to the new end
    early = plan.resumed(300, 3, plan.rate(2))
    assert [early.rate(s) for s in range(3, 6)] == [plan.rate(s) for s in range(3, 6)] == [0.8, 1.0, 1.0]
    assert early.rate(150) > plan.rate(150)
    assert LrPlan.fresh(0.3, "constant", 10).resumed(50, 10, 0.3).rate(40) == 0.3
    # a checkpoint's record, and back
    assert LrPlan.from_record(later.record(40, plan.rate(39))) == later
    with pytest.raises(ValueError, match="unreadable"):
        LrPlan.from_record({**later.record(40, 0.1), "warmup_steps": "x"})


@pytest.mark.skipif(native.kernels() is None, reason="no C kernels here: the foreach ops run")
def test_adams_c_kernel_equals_its_foreach_ops():
    """On a CPU the update runs in engine/fast/native/fused.c; the foreach ops are the reference
    (and what a GPU runs). Same gradients in, the same weights and moments out, to float
    rounding (a missing bias correction or a wrong beta would be off by ~1e-3)."""
    torch.manual_seed(3)
    shapes = [(37, 11), (5,), (300, 70)]  # one big enough to be split over threads
    params = [[torch.randn(s, requires_grad=True) for s in shapes] for _ in range(2)]
    for a, b in zip(*params):
        b.data.copy_(a.data)
    opts = [Adam(params[0], lr=1e-2, use_native=True), Adam(params[1], lr=1e-2, use_native=False)]
    for _ in range(20):
        grads = [torch.randn(s) for s in shapes]
        for ps, opt in zip(params, opts):
            for p, g in zip(ps, grads):
                p.grad = g.clone()
            opt.step()
    for a, b in zip(*params):
        torch.testing.assert_close(a, b, rtol=0, atol=5e-6)
    for x, y in zip(opts[0].m + opts[0].v, opts[1].m + opts[1].v):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert not torch.equal(params[0][0], params[0][0].new_zeros(shapes[0]))


def test_the_c_kernel_step_counts_as_a_write_to_every_weight():
    """Whatever keys on a tensor's version (autograd's check of its saved tensors) sees the
    C kernel's writes, made through raw pointers, as it sees an in-place op's."""
    if native.kernels() is None:
        pytest.skip("no C kernels here: the foreach ops run, and they count their writes")
    model, _ = _model_and_batch()
    params = list(model.parameters())
    for p in params:
        p.grad = torch.ones_like(p)
    was = [p._version for p in params]
    Adam(params, use_native=True).step()
    assert all(p._version > v for p, v in zip(params, was))
