"""The copy mixture's log-probabilities over all training steps at once (engine/model/copy.py's
copy_mixture: the same maths), with its backward pass written by hand.

Why: under autograd the mixture is a chain of out-of-place ops over (tokens x extended
vocabulary): softmax, scaling, padding, a scatter, a clamp and a log forward, and the backward
of each, a dozen passes over ~1,500 words per token on a 5,000-sentence text. Here the forward
writes the mixture once into its padded buffer and takes its log; the backward reads the
upstream gradient once into dL/dp = g / p and derives every input's gradient from it and the
saved softmax. With the loss read as a log-likelihood (masked_loss's log_probs), a batch of
768 tokens over 1,535 words took 12-13 ms forward and backward against 19-24 ms.

tests/test_copy_mixture.py holds values and gradients to the autograd version, in float64
with gradcheck and on the fast path's shapes.

Shapes: N rows (tokens), V vocabulary, S source positions, n_ext >= V the extended vocabulary.
"""

from __future__ import annotations

import torch

softmax_backward = torch.ops.aten._softmax_backward_data


class CopyMixture(torch.autograd.Function):
    """log p (N, n_ext) = CopyMixture.apply(logits (N, V), gate_logit (N, 1), weights (N, S),
    src_ext (N, S), n_ext): p = p_gen softmax(logits) (padded to n_ext) + (1 - p_gen) times
    the attention added up at each source word's extended id, p_gen = sigmoid(gate_logit),
    clamped at the dtype's smallest normal number before the log (as copy_mixture does)."""

    @staticmethod
    def forward(ctx, logits, gate_logit, weights, src_ext, n_ext):
        N, V = logits.shape
        p_gen = torch.sigmoid(gate_logit)  # (N, 1)
        soft = torch.softmax(logits, -1)  # (N, V)
        p = logits.new_zeros(N, n_ext)
        torch.mul(soft, p_gen, out=p[:, :V])
        p.scatter_add_(1, src_ext, weights * (1 - p_gen))  # a repeated word's weights add up
        tiny = torch.finfo(p.dtype).tiny
        kept = p >= tiny  # where the clamp passes the gradient (clamp_min's rule)
        p.clamp_min_(tiny)
        ctx.save_for_backward(soft, p_gen, weights, src_ext, p, kept)
        return torch.log(p)

    @staticmethod
    def backward(ctx, g_logp):
        soft, p_gen, weights, src_ext, p, kept = ctx.saved_tensors
        V = soft.size(1)
        g_p = torch.where(kept, g_logp / p, 0.0)  # (N, n_ext) dL/dp
        g_vocab = g_p[:, :V]  # (N, V)
        g_src = g_p.gather(1, src_ext)  # (N, S): dL/dp at each source word's id
        # p[:, :V] = p_gen * softmax(logits)
        d_logits = softmax_backward(g_vocab * p_gen, soft, 1, soft.dtype)
        d_p_gen = (g_vocab * soft).sum(1, keepdim=True) - (g_src * weights).sum(1, keepdim=True)  # (N, 1)
        d_gate = d_p_gen * p_gen * (1 - p_gen)
        d_weights = g_src * (1 - p_gen)
        return d_logits, d_gate, d_weights, None, None


def copy_mixture_log_probs(
    logits: torch.Tensor, gate_logit: torch.Tensor, weights: torch.Tensor, src_ext: torch.Tensor, n_ext: int
) -> torch.Tensor:
    """engine/model/copy.py's copy_mixture(...)[0], through CopyMixture: logits (N, V),
    gate_logit (N, 1), weights (N, S), src_ext (N, S) -> log p (N, n_ext)"""
    return CopyMixture.apply(logits, gate_logit, weights, src_ext, n_ext)
