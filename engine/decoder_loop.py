"""The attention decoder's training loop over all target steps, with its backward pass
(backpropagation through time) written by hand.

Why: run step by step under autograd, the decoder costs ~40 small recorded ops per step
forward and as many backward, each a few microseconds of dispatch on a CPU, and every
weight's gradient is a small (B x in) matmul per step. Here the forward records nothing,
each step is a few matmuls plus one call per GRU layer and one for the attention
(engine/step_kernels.py: fused C kernels on a CPU, torch ops elsewhere), and every weight
gradient is one large matmul over all steps at the end. Two exact rewrites save the CPU's
slow tanh:
  - v . tanh(e) ranks positions as (2v) . sigmoid(2e) does (tanh(e) = 2 sigmoid(2e) - 1,
    and the constant -sum(v) cancels in the softmax), and sigmoid is ~3x cheaper here;
  - the location term conv(prev weights) is one matmul with a banded (S, S*A) matrix
    (location_band, which decoding and the NumPy probe use too).
The equations are Decoder.step's (engine/model.py); tests/test_recurrence.py holds the
outputs and every gradient equal to autograd's, and checks them against finite differences.

Shapes: B batch, S source positions, T target steps, E embedding, H hidden, K encoder
output, A attention size, V vocabulary, L layers, k location kernel. Time-major inside.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .data import PAD
from .step_kernels import steps_for


@dataclass(frozen=True)
class LoopSpec:
    layers: int
    teacher_forcing: tuple[bool, ...]  # step t reads the true previous word (t = 0: SOS)
    location_kernel: int               # 0: content-only attention
    native: bool = True                # the C kernels where they apply (engine/step_kernels.py)


def _band_taps(S: int, k: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For every (s', s): which kernel tap links prev[s'] to f[s] (s' - s + k//2), and
    whether that tap exists. -> offset (S', S) long, inside (S', S) bool"""
    pos = torch.arange(S, device=device)
    offset = pos[:, None] - pos[None, :] + k // 2
    return offset, (offset >= 0) & (offset < k)


def location_band(W_loc: torch.Tensor, S: int) -> torch.Tensor:
    """The location term as a matrix, the one place it is built (training forward and
    backward, greedy and beam decoding, the NumPy probe): f = conv1d(prev, W_loc,
    padding=k//2), the Conv1d of Chorowski et al., is prev (B, S) @ M = f (B, S*A), with
    M[s', s, a] = W_loc[a, s' - s + k//2] where that index exists. One matmul, and its
    gradient is one matmul too. W_loc (A, k) -> (S, S*A)"""
    A, k = W_loc.shape
    offset, inside = _band_taps(S, k, W_loc.device)
    M = W_loc.t()[offset.clamp(0, k - 1)] * inside[..., None]  # (S', S, A)
    return M.reshape(S, S * A)


def location_band_grad(dM: torch.Tensor, A: int, k: int) -> torch.Tensor:
    """The gradient of W_loc (A, k) from that of its band dM (S, S*A): sum along each band."""
    S = dM.size(0)
    offset, inside = _band_taps(S, k, dM.device)
    dM = dM.view(S, S, A)
    return torch.zeros(k, A, dtype=dM.dtype, device=dM.device).index_add_(0, offset[inside], dM[inside]).t()


class DecoderLoop(torch.autograd.Function):
    """states (B, T, H), contexts (B, T, K), attention (B, T, S) = DecoderLoop.apply(
        spec, tgt_in, drop_emb, drop_between, h0, enc_out, keys, mask,
        emb, W_ie, b_i0, W_ic, W_top, b_top, v, W_loc, W_out, b_out, *lower)

    tgt_in (B, T) the true previous words; drop_emb (B, T, E) and drop_between
    (L-1, T, B, H) dropout masks already scaled by 1/(1-p), or None; h0 (L, B, H);
    mask (B, S) True on real positions; W_top, b_top = [W_hh; W_s] of the top layer;
    v (1, A); W_loc (A, k) or None; lower = (W_hh, b_hh, W_ih, b_ih) for each layer under the
    top one (W_ih, b_ih: the input weights of the layer above it).
    W_out and b_out only choose the next word where it is not teacher-forced (an argmax, no
    gradient): the caller computes the logits from the returned states and contexts."""

    @staticmethod
    def forward(ctx, spec: LoopSpec, tgt_in, drop_emb, drop_between, h0, enc_out, keys, mask,
                emb, W_ie, b_i0, W_ic, W_top, b_top, v, W_loc, W_out, b_out, *lower):
        L, T = spec.layers, tgt_in.size(1)
        B, S, A = keys.shape
        H = h0.size(2)
        lower = [lower[4 * l: 4 * l + 4] for l in range(L - 1)]
        new = keys.new_empty
        steps = steps_for(keys, spec.native, enc_out=enc_out, v=v, mask=mask, keys=keys)  # the per-step kernels
        M2 = location_band(W_loc * 2, S) if spec.location_kernel else None
        W_ie_t, W_ic_t, W_top_t, W_out_t = W_ie.t(), W_ic.t(), W_top.t(), W_out.t()

        # the embedding half of the first layer's input, for every teacher-forced step at once
        x_emb = emb[tgt_in.t()]  # (T, B, E)
        if drop_emb is not None:
            x_emb = x_emb * drop_emb.transpose(0, 1)
        gi_forced = torch.addmm(b_i0, x_emb.reshape(T * B, -1), W_ie_t).view(T, B, -1)  # (T, B, 3H)
        y_in = tgt_in.clone()  # the words actually read: true or the model's own guesses

        # everything the backward pass reads is written straight into per-step slots
        hs = [new(T + 1, B, H) for _ in range(L)]  # per layer: h0, then the state after each step
        for l in range(L):
            hs[l][0] = h0[l]
        rz = [new(T, B, 2 * H) for _ in range(L)]
        n = [new(T, B, H) for _ in range(L)]
        gh_lower = [new(T, B, 3 * H) for _ in range(L - 1)]
        x_in = [new(T, B, H) for _ in range(L - 1)] if drop_between is not None else [hs[l][1:] for l in range(L - 1)]
        G = new(T, B, 3 * H + A)  # the top layer's recurrent projection and the query
        sig = new(T, B, S, A)
        w_all = new(T, B, S)
        c_all = new(T, B, enc_out.size(2))
        for t in range(T):
            if t == 0 or spec.teacher_forcing[t]:
                gi = gi_forced[t]
            else:  # the model's own previous guess
                y = torch.addmm(b_out, torch.cat([hs[-1][t], c_all[t - 1]], 1), W_out_t).argmax(1)  # (B,)
                y_in[:, t] = y
                x = emb[y] if drop_emb is None else emb[y] * drop_emb[:, t]
                gi = torch.addmm(b_i0, x, W_ie_t)
            # attention, read with the previous top state
            g = torch.addmm(b_top, hs[-1][t], W_top_t, out=G[t])  # (B, 3H + A)
            # the location term reads the previous weights (none before the first step)
            loc2 = (w_all[t - 1] @ M2).view(B, S, A) if M2 is not None and t > 0 else None
            steps.attend(g[:, 3 * H:], loc2, sig[t], w_all[t], c_all[t])  # weights, context
            # the GRU layers, bottom to top
            x = torch.addmm(gi, c_all[t], W_ic_t)  # (B, 3H)
            for l in range(L):
                gh = g[:, :3 * H] if l == L - 1 else torch.addmm(lower[l][1], hs[l][t], lower[l][0].t(), out=gh_lower[l][t])
                steps.gru_forward(x, gh, hs[l][t], hs[l][t + 1], rz[l][t], n[l][t])
                h = hs[l][t + 1]
                if l < L - 1:
                    below = h if drop_between is None else torch.mul(h, drop_between[l, t], out=x_in[l][t])
                    x = torch.addmm(lower[l][3], below, lower[l][2].t())

        ctx.spec = spec
        ctx.has_drop = (drop_emb is not None, drop_between is not None)
        none = torch.empty(0)
        ctx.save_for_backward(
            y_in, drop_emb if drop_emb is not None else none,
            drop_between if drop_between is not None else none,
            enc_out, emb, W_ie, W_ic, W_top, v, W_loc if W_loc is not None else none,
            G, sig, w_all, c_all, *hs, *rz, *n, *gh_lower, *x_in,
            *[t for layer in lower for t in layer])
        attn = w_all.transpose(0, 1)  # (B, T, S)
        ctx.mark_non_differentiable(attn)
        return hs[-1][1:].transpose(0, 1), c_all.transpose(0, 1), attn

    @staticmethod
    def backward(ctx, d_states, d_contexts, _d_attn):
        spec = ctx.spec
        L = spec.layers
        (y_in, drop_emb, drop_between, enc_out, emb, W_ie, W_ic, W_top, v, W_loc,
         G, sig, w_all, c_all, *rest) = ctx.saved_tensors
        hs, rz, n = rest[:L], rest[L:2 * L], rest[2 * L:3 * L]
        gh_lower, x_in = rest[3 * L:4 * L - 1], rest[4 * L - 1:5 * L - 2]
        lower_flat = rest[5 * L - 2:]
        lower = [lower_flat[4 * l: 4 * l + 4] for l in range(L - 1)]
        T, B, S, A = sig.shape
        H = hs[0].size(2)
        has_emb_drop, has_between_drop = ctx.has_drop
        loc = spec.location_kernel
        M = location_band(W_loc, S) if loc else None
        steps = steps_for(sig, spec.native, enc_out=enc_out, v=v)
        new = sig.new_empty
        # (B, T, H), rows of unit stride for the kernels (autograd may hand in any strides)
        d_states = sig.new_zeros(B, T, H) if d_states is None else d_states.contiguous()
        if d_contexts is None:
            d_contexts = torch.zeros_like(c_all).transpose(0, 1)

        dh = [sig.new_zeros(B, H) for _ in range(L)]
        dw_next = None  # dL/dw_t through step t+1's location term
        d_keys = sig.new_zeros(B, S, A)
        # per-step slots: d_x[l] is dL/d(layer l's input projection); d_x[0] the first layer's
        d_x = [new(T, B, 3 * H) for _ in range(L)]
        d_gh = [new(T, B, 3 * H) for _ in range(L - 1)]
        dG = new(T, B, 3 * H + A)
        d_c = new(T, B, enc_out.size(2))
        d_score = new(T, B, S)
        d_energy = new(T, B, S, A) if loc else None  # kept for the location weights' gradient
        for t in range(T - 1, -1, -1):
            # the GRU layers, top to bottom; the top one also gets this step's output gradient
            for l in range(L - 1, -1, -1):
                top = l == L - 1
                direct = steps.gru_backward(dh[l], d_states[:, t] if top else None, hs[l][t], rz[l][t],
                                            n[l][t], (G[t, :, 2 * H:3 * H] if top else gh_lower[l][t, :, 2 * H:]),
                                            d_x[l][t], dG[t, :, :3 * H] if top else d_gh[l][t])
                if top:
                    direct_top = direct
                else:
                    dh[l] = torch.addmm(direct, d_gh[l][t], lower[l][0])
                if l > 0:
                    d_below = d_x[l][t] @ lower[l - 1][2]
                    if has_between_drop:
                        d_below *= drop_between[l - 1, t]
                    dh[l - 1] = dh[l - 1] + d_below
            # attention
            dc = torch.addmm(d_contexts[:, t], d_x[0][t], W_ic, out=d_c[t])  # (B, K)
            # dL/dscore, dL/denergy (into d_keys, and d_energy[t] when kept), dL/dquery
            steps.attend_backward(dc, dw_next, w_all[t], sig[t], d_score[t], d_keys,
                                  d_energy[t] if loc else None, dG[t, :, 3 * H:])
            if loc:
                dw_next = d_energy[t].view(B, S * A) @ M.t()  # (B, S): the previous step's weights
            dh[L - 1] = torch.addmm(direct_top, dG[t], W_top)

        # every weight's gradient: one matmul over all steps
        TB = T * B
        d_gi, dG, d_c = d_x[0].view(TB, -1), dG.view(TB, -1), d_c.view(TB, -1)
        d_W_top = dG.t() @ hs[-1][:-1].reshape(TB, H)
        d_b_top = dG.sum(0)
        d_W_ic = d_gi.t() @ c_all.view(TB, -1)
        x_emb = emb[y_in.t()]  # (T, B, E)
        if has_emb_drop:
            x_emb = x_emb * drop_emb.transpose(0, 1)
        d_W_ie = d_gi.t() @ x_emb.reshape(TB, -1)
        d_b_i0 = d_gi.sum(0)
        d_x_emb = d_gi @ W_ie  # (T * B, E)
        if has_emb_drop:
            d_x_emb = d_x_emb * drop_emb.transpose(0, 1).reshape(TB, -1)
        d_emb = torch.zeros_like(emb).index_add_(0, y_in.t().reshape(-1), d_x_emb)
        d_emb[PAD] = 0  # nn.Embedding(padding_idx=PAD): the padding row never learns
        # context c_t = sum_s w_ts h_s, for every step at once
        d_enc = torch.bmm(w_all.permute(1, 2, 0), d_c.view(T, B, -1).transpose(0, 1))  # (B, S, K)
        d_v = (d_score.view(1, -1) @ sig.view(-1, A)) * 2  # v . tanh(e) = 2 v . sigmoid(2e) - const
        d_W_loc = None
        if loc:
            prev = torch.cat([torch.zeros_like(w_all[:1]), w_all[:-1]])  # (T, B, S) weights read
            dM = prev.view(TB, S).t() @ d_energy.view(TB, S * A)  # (S, S*A)
            d_W_loc = location_band_grad(dM, A, loc)
        d_lower = []
        for l in range(L - 1):
            dgh, dx = d_gh[l].view(TB, -1), d_x[l + 1].view(TB, -1)
            d_lower += [dgh.t() @ hs[l][:-1].reshape(TB, H), dgh.sum(0),
                        dx.t() @ x_in[l].reshape(TB, H), dx.sum(0)]
        return (None, None, None, None, torch.stack(dh), d_enc, d_keys, None,
                d_emb, d_W_ie, d_b_i0, d_W_ic, d_W_top, d_b_top, d_v.view_as(v), d_W_loc, None, None,
                *d_lower)
