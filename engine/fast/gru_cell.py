"""One GRU update and its gradients, for the decoder loop's hand-written backward pass
(engine/fast/decoder_loop.py): torch.nn.GRU's equations (gates r, z, n in that order), each
direction a handful of fused kernels writing into tensors the caller gives, so that the
per-step values land straight in the buffers the backward pass reads.

Shapes: B batch, H hidden size.
"""

from __future__ import annotations

import torch

# dL/dx of tanh and sigmoid from their outputs, one kernel each, written into a given tensor
tanh_backward = torch.ops.aten.tanh_backward.grad_input  # grad * (1 - out^2)
sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input  # grad * out * (1 - out)


def gru_cell_forward(
    gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor, out: torch.Tensor, rz: torch.Tensor, n: torch.Tensor
) -> torch.Tensor:
    """One GRU update, written into given tensors (no copies to stack them later).
    gi, gh (B, 3H): input and recurrent projections, biases included; h (B, H) the previous
    state. Writes the new state into out (B, H), and what the backward pass needs: rz (B, 2H)
    the reset and update gates, n (B, H) the candidate."""
    H = h.size(-1)
    torch.sigmoid(gi[:, : 2 * H] + gh[:, : 2 * H], out=rz)
    torch.tanh(torch.addcmul(gi[:, 2 * H :], rz[:, :H], gh[:, 2 * H :]), out=n)
    return torch.lerp(n, h, rz[:, H:], out=out)  # n + z (h - n)


def gru_cell_backward(
    dh_new: torch.Tensor,
    h: torch.Tensor,
    rz: torch.Tensor,
    n: torch.Tensor,
    gh_n: torch.Tensor,
    dgi: torch.Tensor,
    dgh: torch.Tensor,
) -> torch.Tensor:
    """Gradients of one GRU update, given dL/dh_new. gh_n (B, H) is the n-part of the
    recurrent projection. Writes dL/dgi and dL/dgh (B, 3H) into dgi and dgh; returns the part
    of dL/dh that flows straight through the update gate (the part via gh is the caller's
    matmul)."""
    H = h.size(-1)
    r, z = rz[:, :H], rz[:, H:]
    direct = dh_new * z
    tanh_backward(dh_new - direct, n, grad_input=dgi[:, 2 * H :])  # n = tanh(.)
    torch.mul(dh_new, h - n, out=dgi[:, H : 2 * H])  # z's share
    torch.mul(dgi[:, 2 * H :], gh_n, out=dgi[:, :H])  # r's share
    sigmoid_backward(dgi[:, : 2 * H], rz, grad_input=dgi[:, : 2 * H])  # through r, z's sigmoids
    dgh[:, : 2 * H].copy_(dgi[:, : 2 * H])
    torch.mul(dgi[:, 2 * H :], r, out=dgh[:, 2 * H :])
    return direct
