"""A GRU layer's recurrence over a whole sequence, with its backward pass written by hand.

Why not torch.nn.GRU: on the CPU it runs the recurrence as a chain of small autograd ops
(on this project's 2-core benchmark machine, ~13 ms forward for a 64 x 8 batch of the
notebook's 2-layer GRU, against ~5 ms of matrix work). Here:
  - the input projection W_ih x is one matmul over all steps, done outside (by autograd);
  - a forward step is 1 matmul + 4 elementwise ops, with no autograd graph;
  - the backward step is ~10 elementwise ops + 1 matmul, and the recurrent weight's gradient
    is one large matmul over all steps at the end instead of one small one per step.
The maths is torch.nn.GRU's (gates r, z, n in that order); tests/test_recurrence.py holds
outputs and every gradient equal to autograd's on the same equations.

Time-major shapes: S steps, B batch, H hidden size.
"""
from __future__ import annotations

import torch

# dL/dx of tanh and sigmoid from their outputs, one kernel each, written into a given tensor
tanh_backward = torch.ops.aten.tanh_backward.grad_input        # grad * (1 - out^2)
sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input  # grad * out * (1 - out)


def gru_cell_forward(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, out: torch.Tensor,
                     rz: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    """One GRU update, written into given tensors (no copies to stack them later).
    gi, gh (B, 3H): input and recurrent projections, biases included; h (B, H) the previous
    state. Writes the new state into out (B, H), and what the backward pass needs: rz (B, 2H)
    the reset and update gates, n (B, H) the candidate."""
    H = h.size(-1)
    torch.sigmoid(gi[:, :2 * H] + gh[:, :2 * H], out=rz)
    torch.tanh(torch.addcmul(gi[:, 2 * H:], rz[:, :H], gh[:, 2 * H:]), out=n)
    return torch.lerp(n, h, rz[:, H:], out=out)  # n + z (h - n)


def gru_cell_backward(dh_new: torch.Tensor, h: torch.Tensor, rz: torch.Tensor, n: torch.Tensor,
                      gh_n: torch.Tensor, dgi: torch.Tensor, dgh: torch.Tensor) -> torch.Tensor:
    """Gradients of one GRU update, given dL/dh_new. gh_n (B, H) is the n-part of the
    recurrent projection. Writes dL/dgi and dL/dgh (B, 3H) into dgi and dgh; returns the part
    of dL/dh that flows straight through the update gate (the part via gh is the caller's
    matmul)."""
    H = h.size(-1)
    r, z = rz[:, :H], rz[:, H:]
    direct = dh_new * z
    tanh_backward(dh_new - direct, n, grad_input=dgi[:, 2 * H:])        # n = tanh(.)
    torch.mul(dh_new, h - n, out=dgi[:, H:2 * H])                       # z's share
    torch.mul(dgi[:, 2 * H:], gh_n, out=dgi[:, :H])                     # r's share
    sigmoid_backward(dgi[:, :2 * H], rz, grad_input=dgi[:, :2 * H])     # through r, z's sigmoids
    dgh[:, :2 * H].copy_(dgi[:, :2 * H])
    torch.mul(dgi[:, 2 * H:], r, out=dgh[:, 2 * H:])
    return direct


def scan_forward(gi: torch.Tensor, h0: torch.Tensor, W_hh: torch.Tensor, b_hh: torch.Tensor,
                 valid: torch.Tensor | None, reverse: bool, keep: bool = False):
    """The recurrence (see GRUScan). keep=True also returns what the backward pass needs;
    without it (inference) nothing is kept. -> out (S, B, H), last state (B, H), saved"""
    S, B, _ = gi.shape
    H = h0.size(1)
    states = gi.new_empty(S, B, H)  # (S, B, H) the carried state after each step
    gh_all = gi.new_empty(S, B, 3 * H)
    rz_all = gi.new_empty(S, B, 2 * H)
    n_all = gi.new_empty(S, B, H)
    h_new = gi.new_empty(B, H) if valid is not None else None
    W_hh_t = W_hh.t()
    h = h0
    for t in (range(S - 1, -1, -1) if reverse else range(S)):
        gh = torch.addmm(b_hh, h, W_hh_t, out=gh_all[t])
        if valid is None:
            h = gru_cell_forward(gi[t], gh, h, states[t], rz_all[t], n_all[t])
        else:  # a padded step keeps the state
            gru_cell_forward(gi[t], gh, h, h_new, rz_all[t], n_all[t])
            h = torch.where(valid[t], h_new, h, out=states[t])
    out = states if valid is None else states * valid
    saved = (states, gh_all, rz_all, n_all) if keep else ()
    return out, h.clone(), saved  # h is a view of `states`


class GRUScan(torch.autograd.Function):
    """out, h_last = GRUScan.apply(gi, h0, W_hh, b_hh, valid, reverse)

    gi (S, B, 3H) the input projections of every step; h0 (B, H); valid (S, B, 1) bool or
    None when every sequence fills all S steps. reverse runs t = S-1 .. 0 (the backward
    direction of a bidirectional layer). A step that is not valid (padding) leaves the state
    as it was and outputs zeros, which is what a packed sequence gives torch.nn.GRU."""

    @staticmethod
    def forward(ctx, gi, h0, W_hh, b_hh, valid, reverse):
        out, h, saved = scan_forward(gi, h0, W_hh, b_hh, valid, reverse, keep=True)
        ctx.save_for_backward(h0, W_hh, *saved, valid if valid is not None else torch.empty(0))
        ctx.reverse, ctx.masked = reverse, valid is not None
        return out, h

    @staticmethod
    def backward(ctx, d_out, d_last):
        h0, W_hh, states, gh_all, rz_all, n_all, valid = ctx.saved_tensors
        S, B, H = states.shape
        # the state each step started from
        if ctx.reverse:
            h_prev = torch.cat([states[1:], h0[None]])
            order = range(S)
        else:
            h_prev = torch.cat([h0[None], states[:-1]])
            order = range(S - 1, -1, -1)
        if d_out is None:
            d_out = torch.zeros_like(states)
        elif ctx.masked:
            d_out = d_out * valid
        dh = d_last if d_last is not None else torch.zeros_like(h0)
        dgi_all, dgh_all = torch.empty_like(gh_all), torch.empty_like(gh_all)  # (S, B, 3H)
        for t in order:  # the forward order, reversed
            dh = dh + d_out[t]
            direct = gru_cell_backward(dh, h_prev[t], rz_all[t], n_all[t], gh_all[t, :, 2 * H:],
                                       dgi_all[t], dgh_all[t])
            if ctx.masked:  # a padded step passed the state through unchanged
                dgi_all[t] *= valid[t]
                dgh_all[t] *= valid[t]
                dh = torch.where(valid[t], torch.addmm(direct, dgh_all[t], W_hh), dh)
            else:
                dh = torch.addmm(direct, dgh_all[t], W_hh)
        # the recurrent weight's gradient: one matmul over all steps
        dW_hh = dgh_all.reshape(S * B, -1).t() @ h_prev.reshape(S * B, H)
        return dgi_all, dh, dW_hh, dgh_all.sum((0, 1)), None, None
