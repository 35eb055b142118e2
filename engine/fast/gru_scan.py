"""One direction of one GRU layer over a whole sequence, with its backward pass written by
hand: the encoder's recurrence in training on a CPU (engine/model/seq2seq.py, Encoder).

Why: torch.nn.GRU on a CPU records each step's gate ops for autograd, and its backward
computes a small (3H x B) x (B x H) weight-gradient matmul at every step and adds it up.
Here a step is one matmul and one fused kernel call each way (engine/fast/step_kernels.py), and
the recurrent weights' gradient is one matmul over all steps. The input projection
x W_ih^T + b_ih stays outside, under autograd: it is one matmul over all steps already.

Shapes: S steps, B batch, H hidden. Time-major.
"""

from __future__ import annotations

import torch

from .step_kernels import steps_for


class GRUScan(torch.autograd.Function):
    """states (S, B, H) = GRUScan.apply(gi (S, B, 3H), h0 (B, H), W_hh (3H, H), b_hh (3H,),
    native): torch.nn.GRU's equations, gi the input projection with its bias. The last
    state is the layer's final hidden state."""

    @staticmethod
    def forward(ctx, gi, h0, W_hh, b_hh, native=True):
        S, B, _ = gi.shape
        H = h0.size(1)
        gi = gi.contiguous()
        steps = steps_for(gi, native)
        new = gi.new_empty
        hs = new(S + 1, B, H)  # h0, then the state after each step
        hs[0] = h0
        gh, rz, n = new(S, B, 3 * H), new(S, B, 2 * H), new(S, B, H)
        gh.copy_(b_hh.expand(S, B, 3 * H))  # every step's bias at once: each step's matmul adds in place
        W_t = W_hh.t()
        # every step's views made at once: unbind costs half of indexing a step at a time
        gi_, gh_, hs_, rz_, n_ = gi.unbind(0), gh.unbind(0), hs.unbind(0), rz.unbind(0), n.unbind(0)
        for t in range(S):
            gh_[t].addmm_(hs_[t], W_t)  # (B, 3H)
            steps.gru_forward(gi_[t], gh_[t], hs_[t], hs_[t + 1], rz_[t], n_[t])
        ctx.native = native
        ctx.save_for_backward(W_hh, hs, gh, rz, n)
        return hs[1:]

    @staticmethod
    def backward(ctx, d_states):
        W_hh, hs, gh, rz, n = ctx.saved_tensors
        S, B, H = d_states.shape
        d_states = d_states.contiguous()  # rows of unit stride for the kernels
        steps = steps_for(hs, ctx.native)
        d_gi, d_gh = hs.new_empty(S, B, 3 * H), hs.new_empty(S, B, 3 * H)
        dh = hs.new_zeros(B, H)  # dL/dh_t through the later steps
        d_states_, hs_, rz_, n_ = d_states.unbind(0), hs.unbind(0), rz.unbind(0), n.unbind(0)
        gh_n, d_gi_, d_gh_ = gh[:, :, 2 * H :].unbind(0), d_gi.unbind(0), d_gh.unbind(0)
        for t in range(S - 1, -1, -1):
            direct = steps.gru_backward(dh, d_states_[t], hs_[t], rz_[t], n_[t], gh_n[t], d_gi_[t], d_gh_[t])
            dh = direct.addmm_(d_gh_[t], W_hh)  # (B, H)
        d_gh_rows = d_gh.view(S * B, 3 * H)
        d_W_hh = d_gh_rows.t() @ hs[:-1].reshape(S * B, H)  # every step's share in one matmul
        return d_gi, dh, d_W_hh, d_gh_rows.sum(0), None
