"""The decoder loop's per-step work, in two interchangeable implementations:

  - TorchSteps: torch ops; any device and dtype (the gradient checks run it in float64, a
    GPU runs it);
  - NativeSteps: the fused C kernels of engine/fast/native/fused.c, for float32 on a CPU, where
    each of the four calls below replaces five to eight torch kernels and their dispatch.

Both compute the same maths into the same buffers; tests/test_step_kernels.py holds them
equal. `steps_for` picks one for a batch (engine/fast/native's kernels_for decides).

Attention here is in the decoder loop's sigmoid form (engine/fast/decoder_loop.py explains it):
score_s = (2v) . sigmoid(2 (W_h h_s + q) [+ 2 loc_s]), softmax over real positions.
Shapes: B batch, S source positions, A attention size, K encoder output, H hidden.
"""

from __future__ import annotations

import torch

from . import native
from .gru_cell import gru_cell_backward, gru_cell_forward, sigmoid_backward

softmax_backward = torch.ops.aten._softmax_backward_data.out


class TorchSteps:
    """For the attention: enc_out (B, S, K); v (1, A) the score vector; mask (B, S) True on
    real positions and keys (B, S, A) = W_h enc_out, needed forward only. The GRU steps need
    none of them (the encoder's scan passes none)."""

    def __init__(
        self,
        enc_out: torch.Tensor | None = None,
        v: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
    ):
        self.scratch = None
        if enc_out is None:
            return
        B, S, _ = enc_out.shape
        A = v.numel()
        self.enc_out = enc_out
        self.keys2 = keys * 2 if keys is not None else None  # tanh(e) = 2 sigmoid(2e) - 1
        self.v2 = (v.reshape(A, 1) * 2).expand(B, A, 1)
        self.v4 = v.reshape(1, 1, A) * 4  # d/de of (2v) . sigmoid(2e)
        self.no_score = (
            enc_out.new_zeros(B, S, 1).masked_fill_(~mask.unsqueeze(2), float("-inf")) if mask is not None else None
        )

    def gru_forward(self, gi, gh, h, out, rz, n) -> None:
        """One GRU update into out (B, H); keeps rz (B, 2H) and n (B, H) for the backward."""
        gru_cell_forward(gi, gh, h, out, rz, n)

    def gru_backward(self, dh, dh_extra, h, rz, n, gh_n, dgi, dgh) -> torch.Tensor:
        """dL/dgi, dL/dgh into dgi, dgh (B, 3H) from dL/dh' = dh + dh_extra (or None);
        returns the part of dL/dh that flows straight through the update gate."""
        if dh_extra is not None:
            dh = dh + dh_extra
        return gru_cell_backward(dh, h, rz, n, gh_n, dgi, dgh)

    def attend(self, q, loc2, sig, w, ctx) -> None:
        """q (B, A) the query W_s s; loc2 (B, S, A) twice the location term, or None. Writes
        sig (B, S, A), the weights w (B, S) and the context ctx (B, K)."""
        energy2 = self.keys2 + (q * 2).unsqueeze(1)  # (B, S, A)
        if loc2 is not None:
            energy2 += loc2
        torch.sigmoid(energy2, out=sig)
        w.copy_(torch.softmax(torch.baddbmm(self.no_score, sig, self.v2).squeeze(2), 1))
        torch.bmm(w.unsqueeze(1), self.enc_out, out=ctx.unsqueeze(1))

    def attend_backward(self, dc, dw_extra, w, sig, dscore, d_keys, den, dq) -> None:
        """From dL/dctx dc (B, K) (+ dw_extra (B, S), more dL/dw, or None): dL/dscore into
        dscore (B, S); dL/denergy added to d_keys (B, S, A) and kept in den (B, S, A) when
        given; dL/dq into dq (B, A)."""
        dw = torch.bmm(self.enc_out, dc.unsqueeze(2)).squeeze(2)  # (B, S)
        if dw_extra is not None:
            dw += dw_extra
        softmax_backward(dw, w, 1, dw.dtype, grad_input=dscore)
        if den is None:
            if self.scratch is None:
                self.scratch = torch.empty_like(sig)
            den = self.scratch
        sigmoid_backward(dscore.unsqueeze(2) * self.v4, sig, grad_input=den)
        d_keys += den
        torch.sum(den, 1, out=dq)


def _rows(t: torch.Tensor, rows: int, cols: int) -> tuple[int, int]:
    """Data pointer and row stride of a (rows, cols) float32 view with unit column stride.
    The kernels trust these shapes, so they are checked here: a wrong one would be a wild
    write, not an exception."""
    if t.dtype != torch.float32 or t.shape != (rows, cols) or t.stride(1) != 1:
        raise ValueError(
            f"native kernels need float32 ({rows}, {cols}) rows of unit stride, "
            f"got {t.dtype} {tuple(t.shape)} strides {t.stride()}"
        )
    return t.data_ptr(), t.stride(0)


def _dense(t: torch.Tensor, *shape: int, dtype: torch.dtype = torch.float32) -> int:
    """Data pointer of a contiguous tensor of this shape and dtype (checked, see _rows)."""
    if t.dtype != dtype or t.shape != shape or not t.is_contiguous():
        raise ValueError(
            f"native kernels need a contiguous {dtype} {shape}, got {t.dtype} {tuple(t.shape)} strides {t.stride()}"
        )
    return t.data_ptr()


class NativeSteps:
    """TorchSteps' interface on the C kernels (CPU, float32)."""

    def __init__(
        self,
        dll: native.Kernels,
        enc_out: torch.Tensor | None = None,
        v: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
    ):
        self.dll = dll
        self.threads = torch.get_num_threads()  # OpenMP's own default is per calling thread
        if enc_out is None:
            return
        self.B, self.S, self.K = enc_out.shape
        self.A = v.numel()
        self.enc_out = enc_out.contiguous()
        self.keys2 = (keys * 2).contiguous() if keys is not None else None
        self.v2 = (v.reshape(-1) * 2).contiguous()
        self.v4 = (v.reshape(-1) * 4).contiguous()
        self.mask = mask.to(torch.uint8).contiguous() if mask is not None else None

    def gru_forward(self, gi, gh, h, out, rz, n) -> None:
        B, H = h.shape
        (gi_p, gi_rs), (gh_p, gh_rs) = _rows(gi, B, 3 * H), _rows(gh, B, 3 * H)
        self.dll.gru_forward(
            threads=self.threads,
            B=B,
            H=H,
            gi=gi_p,
            gi_rs=gi_rs,
            gh=gh_p,
            gh_rs=gh_rs,
            h=_dense(h, B, H),
            out=_dense(out, B, H),
            rz=_dense(rz, B, 2 * H),
            n=_dense(n, B, H),
        )

    def gru_backward(self, dh, dh_extra, h, rz, n, gh_n, dgi, dgh) -> torch.Tensor:
        B, H = h.shape
        direct = torch.empty_like(h)
        dh_p, dh_rs = _rows(dh, B, H)
        ex_p, ex_rs = _rows(dh_extra, B, H) if dh_extra is not None else (None, 0)
        ghn_p, ghn_rs = _rows(gh_n, B, H)
        (dgi_p, dgi_rs), (dgh_p, dgh_rs) = _rows(dgi, B, 3 * H), _rows(dgh, B, 3 * H)
        self.dll.gru_backward(
            threads=self.threads,
            B=B,
            H=H,
            dh=dh_p,
            dh_rs=dh_rs,
            dh_extra=ex_p,
            extra_rs=ex_rs,
            h=_dense(h, B, H),
            rz=_dense(rz, B, 2 * H),
            n=_dense(n, B, H),
            gh_n=ghn_p,
            ghn_rs=ghn_rs,
            dgi=dgi_p,
            dgi_rs=dgi_rs,
            dgh=dgh_p,
            dgh_rs=dgh_rs,
            direct=_dense(direct, B, H),
        )
        return direct

    def attend(self, q, loc2, sig, w, ctx) -> None:
        B, S, A, K = self.B, self.S, self.A, self.K
        q_p, q_rs = _rows(q, B, A)
        self.dll.attend_forward(
            threads=self.threads,
            B=B,
            S=S,
            A=A,
            K=K,
            keys2=_dense(self.keys2, B, S, A),
            q=q_p,
            q_rs=q_rs,
            loc=_dense(loc2, B, S, A) if loc2 is not None else None,
            v2=_dense(self.v2, A),
            mask=_dense(self.mask, B, S, dtype=torch.uint8),
            enc=_dense(self.enc_out, B, S, K),
            sig=_dense(sig, B, S, A),
            w=_dense(w, B, S),
            ctx=_dense(ctx, B, K),
        )

    def attend_backward(self, dc, dw_extra, w, sig, dscore, d_keys, den, dq) -> None:
        B, S, A, K = self.B, self.S, self.A, self.K
        dq_p, dq_rs = _rows(dq, B, A)
        self.dll.attend_backward(
            threads=self.threads,
            B=B,
            S=S,
            A=A,
            K=K,
            dc=_dense(dc, B, K),
            enc=_dense(self.enc_out, B, S, K),
            dw_extra=_dense(dw_extra, B, S) if dw_extra is not None else None,
            w=_dense(w, B, S),
            sig=_dense(sig, B, S, A),
            v4=_dense(self.v4, A),
            dscore=_dense(dscore, B, S),
            d_keys=_dense(d_keys, B, S, A),
            den=_dense(den, B, S, A) if den is not None else None,
            dq=dq_p,
            dq_rs=dq_rs,
        )


def steps_for(like: torch.Tensor, allow_native: bool = True, **attention) -> TorchSteps | NativeSteps:
    """NativeSteps where native.kernels_for says the kernels run on tensors like this one,
    else TorchSteps; attention: see TorchSteps."""
    dll = native.kernels_for(like, allow=allow_native)
    return NativeSteps(dll, **attention) if dll is not None else TorchSteps(**attention)
