"""The fused C kernels (engine/fast/native/fused.c through engine/fast/step_kernels.NativeSteps)
against the same maths in torch ops (TorchSteps); which steps run where (steps_for). Building
the kernels, and the fallback where they cannot be built: tests/test_native.py."""

import pytest
import torch

from engine.fast import native
from engine.fast.decoder_loop import LoopSpec, decoder_loop
from engine.fast.step_kernels import BAND_UP_TO, NativeSteps, TorchSteps, steps_for
from engine.model.seq2seq import location_band
from tests.conftest import loop_args, needs_kernels


def close(a, b, tol=2e-6):
    scale = max(1.0, float(a.abs().max()))
    assert float((a - b).abs().max()) <= tol * scale, float((a - b).abs().max())


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("extra", [False, True])
def test_gru_kernels_equal_torch(threads, extra):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    B, H, A = 37, 48, 8  # odd sizes: the vector loops' remainders run too
    ref, nat = TorchSteps(), NativeSteps(native.kernels())
    gi = torch.randn(B, 3 * H) * 2
    gh = torch.randn(B, 3 * H + A)[:, : 3 * H] * 2  # a strided view, as the decoder passes it
    h = torch.randn(B, H)
    outs = [[torch.full(s, float("nan")) for s in ((B, H), (B, 2 * H), (B, H))] for _ in range(2)]
    ref.gru_forward(gi, gh, h, *outs[0])
    nat.gru_forward(gi, gh, h, *outs[1])
    for a, b in zip(*outs):
        close(a, b)

    out, rz, n = outs[0]
    dh = torch.randn(B, 2 * H)[:, :H]
    dh_extra = torch.randn(B, 4, H)[:, 1] if extra else None
    grads = [
        [torch.full((B, 3 * H), float("nan")), torch.full((B, 3 * H + A), float("nan"))[:, : 3 * H]] for _ in range(2)
    ]
    d_ref = ref.gru_backward(dh, dh_extra, h, rz, n, gh[:, 2 * H :], *grads[0])
    d_nat = nat.gru_backward(dh, dh_extra, h, rz, n, gh[:, 2 * H :], *grads[1])
    close(d_ref, d_nat)
    for a, b in zip(*grads):
        close(a, b)


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("loc,extra", [(0, False), (5, True), (3, False)])
@pytest.mark.parametrize("A", [40, 36])  # whole eight-lane vectors (their own path on AVX2), and not
def test_attention_kernels_equal_torch(threads, loc, extra, A):
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    B, S, K = 29, 7, 24
    enc_out, keys, v = torch.randn(B, S, K), torch.randn(B, S, A), torch.randn(1, A)
    lengths = torch.randint(1, S + 1, (B,))
    lengths[:2] = torch.tensor([1, S])  # a one-word source beside a full one: padding is always there
    mask = torch.arange(S)[None, :] < lengths[:, None]
    W_loc = torch.randn(A, loc) if loc else None
    ref, nat = TorchSteps(enc_out, v, mask, keys, W_loc), NativeSteps(native.kernels(), enc_out, v, mask, keys, W_loc)
    q = torch.randn(B, 3 * A)[:, A : 2 * A]  # a strided view, as the decoder passes it
    prev = torch.softmax(torch.randn(B, S).masked_fill(~mask, float("-inf")), 1) if loc else None
    outs = [[torch.full(s, float("nan")) for s in ((B, S, A), (B, S), (B, K))] for _ in range(2)]
    ref.attend(q, prev, *outs[0])
    nat.attend(q, prev, *outs[1])
    for a, b in zip(*outs):
        close(a, b)
    for _, weights, _ in outs:  # no weight on padding, on either side
        assert torch.equal(weights[~mask], torch.zeros(int((~mask).sum())))
    sig, w, _ = outs[0]
    close(w.sum(1), torch.ones(B))

    dc = torch.randn(B, K)
    dw_extra = torch.randn(B, S) if extra else None
    d_keys0 = torch.randn(B, S, A)  # the kernels add to it
    got = []
    for steps in (ref, nat):
        dscore, d_keys = torch.full((B, S), float("nan")), d_keys0.clone()
        dq = torch.full((B, 2 * A), float("nan"))[:, :A]
        d_prev = steps.attend_backward(dc, dw_extra, w, prev, sig, dscore, d_keys, dq)
        # twice, as two decoder steps: the location weights' gradient adds up over steps
        d_prev2 = steps.attend_backward(dc * 0.5, dw_extra, w, prev, sig, dscore.clone(), d_keys, dq.clone())
        got.append([dscore, d_keys, dq] + ([d_prev, d_prev2, steps.location_grad()] if loc else []))
        assert (d_prev is None) == (not loc)
    for a, b in zip(*got):
        close(a, b, 1e-5)


@pytest.mark.parametrize("S, k", [(1, 5), (7, 3), (12, 5), (30, 5), (70, 5), (181, 7)])
def test_the_location_term_and_its_gradients_equal_autograd_on_the_band(S, k, monkeypatch):
    """The steps compute the location term from the previous weights themselves (the torch
    ops: the band up to BAND_UP_TO positions, windows past it; the C kernels: tap by tap).
    Each path's weights, and its gradients to the keys, the query, the previous weights and
    the location weights, against autograd through the reference's band, in float64 (the
    torch ops) and float32 (the kernels)."""
    torch.manual_seed(S * 10 + k)
    B, A, K = 3, 16, 8
    lengths = torch.randint(1, S + 1, (B,))
    lengths[0] = S
    mask = torch.arange(S)[None, :] < lengths[:, None]
    f64 = dict(dtype=torch.float64)
    keys, q, W_loc = torch.randn(B, S, A, **f64), torch.randn(B, A, **f64), torch.randn(A, k, **f64)
    v, enc = torch.randn(1, A, **f64), torch.randn(B, S, K, **f64)
    prev = torch.softmax(torch.randn(B, S, **f64).masked_fill(~mask, float("-inf")), 1)
    d_ctx, d_w = torch.randn(B, K, **f64), torch.randn(B, S, **f64)

    leaves = [x.clone().requires_grad_() for x in (keys, q, prev, W_loc)]
    k_, q_, p_, W_ = leaves
    energy = k_ + q_[:, None] + (p_ @ location_band(W_, S)).view(B, S, A)
    score = (torch.tanh(energy) @ v.t()).squeeze(2).masked_fill(~mask, float("-inf"))
    w_ref = torch.softmax(score, 1)
    ctx_ref = (w_ref.unsqueeze(1) @ enc).squeeze(1)
    ((ctx_ref * d_ctx).sum() + (w_ref * d_w).sum()).backward()
    want = [w_ref.detach(), ctx_ref.detach()] + [x.grad for x in leaves]

    paths = [("torch, band" if S <= BAND_UP_TO else "torch, windows", TorchSteps, torch.float64)]
    if S <= BAND_UP_TO:
        paths.append(("torch, windows", TorchSteps, torch.float64))
    if native.kernels() is not None:
        paths.append(("C kernels", lambda *a: NativeSteps(native.kernels(), *a), torch.float32))
    for name, make, dtype in paths:
        if name == "torch, windows":
            monkeypatch.setattr("engine.fast.step_kernels.BAND_UP_TO", 0)
        x = [t.to(dtype) for t in (keys, q, prev, W_loc, v, enc, d_ctx, d_w)]
        steps = make(x[5], x[4], mask, x[0], x[3])
        sig, w, ctx = torch.empty(B, S, A, dtype=dtype), torch.empty(B, S, dtype=dtype), torch.empty(B, K, dtype=dtype)
        steps.attend(x[1], x[2], sig, w, ctx)
        d_keys, dq, dscore = torch.zeros(B, S, A, dtype=dtype), torch.empty(B, A, dtype=dtype), torch.empty_like(w)
        d_prev = steps.attend_backward(x[6], x[7], w, x[2], sig, dscore, d_keys, dq)
        tol = 1e-10 if dtype == torch.float64 else 2e-5
        got = (w, ctx, d_keys, dq, d_prev, steps.location_grad())
        for label, a, b in zip(("w", "ctx", "d_keys", "d_q", "d_prev", "d_W_loc"), want, got):
            scale = max(1.0, float(a.abs().max()))
            assert float((a.detach() - b.double()).abs().max()) <= tol * scale, (name, label)
        monkeypatch.undo()


@needs_kernels
@pytest.mark.parametrize("A", [8, 6])  # the attention's eight-lane path and its plain loop
def test_a_nan_comes_out_of_the_kernels_as_nan(A):
    """A diverging run must show a non-finite loss, not a clamped finite one."""
    B, H, S, K = 4, 16, 5, 8
    nat = NativeSteps(
        native.kernels(),
        torch.randn(B, S, K),
        torch.randn(1, A),
        torch.ones(B, S, dtype=torch.bool),
        torch.randn(B, S, A),
    )
    gi, gh = torch.randn(B, 3 * H), torch.randn(B, 3 * H)
    gi[1, 0] = float("nan")
    out, rz, n = torch.empty(B, H), torch.empty(B, 2 * H), torch.empty(B, H)
    nat.gru_forward(gi, gh, torch.randn(B, H), out, rz, n)
    assert torch.isnan(out[1]).any() and torch.isfinite(out[0]).all()
    q = torch.randn(B, A)
    q[2, 3] = float("nan")
    sig, w, ctx = torch.empty(B, S, A), torch.empty(B, S), torch.empty(B, K)
    nat.attend(q, None, sig, w, ctx)
    assert torch.isnan(w[2]).all() and torch.isnan(ctx[2]).all() and torch.isfinite(w[0]).all()


@needs_kernels
@pytest.mark.parametrize("L,loc", [(1, 5), (2, 0), (3, 3)])
def test_decoder_loop_native_equals_torch_path(L, loc):
    """The whole hand-written loop in float32, with dropout masks, scheduled sampling and the
    location term: outputs and every gradient equal on both paths."""
    torch.manual_seed(2)
    B, S, T, E, H, K, A, V = 16, 6, 7, 8, 24, 20, 12, 11
    mask = torch.arange(S)[None, :] < torch.randint(2, S + 1, (B,))[:, None]
    tgt_in = torch.randint(1, V, (B, T))
    forcing = (True, False, True, True, False, False, True)
    drop_emb = (torch.rand(B, T, E) > 0.2).float() / 0.8
    drop_between = (torch.rand(L - 1, T, B, H) > 0.2).float() / 0.8 if L > 1 else None
    shapes = [
        (L, B, H),
        (B, S, K),
        (B, S, A),
        (V, E),
        (3 * H, E),
        (3 * H,),
        (3 * H, K),
        (3 * H + A, H),
        (3 * H + A,),
        (1, A),
        (A, loc) if loc else None,
    ]
    lower_shapes = [s for _ in range(L - 1) for s in ((3 * H, H), (3 * H,), (3 * H, H), (3 * H,))]
    values = [torch.randn(s) * 0.5 if s else None for s in shapes + lower_shapes]
    out = (torch.randn(V, H + K), torch.randn(V))
    seeds = [torch.randn(B, T, H), torch.randn(B, T, K)]  # upstream gradients

    results = []
    for native_path in (False, True):
        leaves = [x.clone().requires_grad_() if x is not None else None for x in values]
        states, contexts, attn, _ = decoder_loop(
            LoopSpec(L, loc, native_path),
            loop_args(tgt_in, drop_emb, drop_between, mask, leaves[:11], out, leaves[11:], torch.tensor(forcing)),
        )
        ((states * seeds[0]).sum() + (contexts * seeds[1]).sum()).backward()
        results.append([states, contexts, attn] + [x.grad for x in leaves if x is not None])
    for a, b in zip(*results):
        close(a.detach(), b.detach(), 2e-5)


def test_steps_for_keeps_float64_and_other_devices_on_torch():
    """gradcheck runs the loop in float64: that must never reach the float32 kernels."""
    assert isinstance(steps_for(torch.zeros(2, 3, 4, dtype=torch.float64)), TorchSteps)


@needs_kernels
def test_a_tensor_of_the_wrong_shape_is_refused_before_the_kernel_runs():
    """The C code trusts its sizes: a mismatch must be an exception, not a wild write."""
    nat = NativeSteps(native.kernels())
    B, H = 4, 8
    args = [
        torch.randn(B, 3 * H),
        torch.randn(B, 3 * H),
        torch.randn(B, H),
        torch.empty(B, H),
        torch.empty(B, 2 * H),
        torch.empty(B, H),
    ]
    nat.gru_forward(*args)
    for i, wrong in [
        (3, torch.empty(B - 1, H)),
        (4, torch.empty(B, H)),
        (0, torch.randn(B, 3 * H, 2)[..., 0]),
        (2, torch.randn(B, H, dtype=torch.float64)),
    ]:
        bad = list(args)
        bad[i] = wrong
        with pytest.raises(ValueError, match="native kernels need"):
            nat.gru_forward(*bad)


@needs_kernels
def test_the_attentions_own_tensors_are_checked_when_the_steps_are_made():
    """The encoder outputs, keys, mask and weights are checked once, when a NativeSteps is
    made: a wrong one is refused there; steps made without keys or mask (the backward pass's)
    refuse to run the forward kernel rather than hand it a null pointer."""
    B, S, A, K, k = 2, 5, 4, 6, 3
    good = dict(
        enc_out=torch.randn(B, S, K),
        v=torch.randn(1, A),
        mask=torch.ones(B, S, dtype=torch.bool),
        keys=torch.randn(B, S, A),
        W_loc=torch.randn(A, k),
    )
    NativeSteps(native.kernels(), **good)
    for name, wrong in [("keys", torch.randn(B, S + 1, A)), ("mask", torch.ones(B, S - 1, dtype=torch.bool))]:
        with pytest.raises(ValueError, match="native kernels need"):
            NativeSteps(native.kernels(), **{**good, name: wrong})
    backward_only = NativeSteps(native.kernels(), enc_out=good["enc_out"], v=good["v"], W_loc=good["W_loc"])
    with pytest.raises(ValueError, match="needs the keys and the mask"):
        backward_only.attend(torch.randn(B, A), None, torch.empty(B, S, A), torch.empty(B, S), torch.empty(B, K))
