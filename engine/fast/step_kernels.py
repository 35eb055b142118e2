"""The decoder loop's per-step work, in two interchangeable implementations:

  - TorchSteps: torch ops; any device and dtype (the gradient checks run it in float64, a
    GPU runs it);
  - NativeSteps: the fused C kernels of engine/fast/native/fused.c, for float32 on a CPU, where
    each of the four calls below replaces five to eight torch kernels and their dispatch.

Both compute the same maths into the same buffers; tests/test_step_kernels.py holds them
equal. `steps_for` picks one for a batch (engine/fast/native's kernels_for decides).

Attention here is in the decoder loop's sigmoid form (engine/fast/decoder_loop.py explains it):
score_s = (2v) . sigmoid(2 (W_h h_s + q) [+ 2 loc_s]), softmax over real positions. The
location term loc_s = sum_j W_loc[:, j] prev[s + j - k/2] reads the previous step's weights
prev; the steps compute it and its gradients themselves, from prev and W_loc (A, k): the C
kernels tap by tap, in the attention's own pass (k multiply-adds a component, where the band
matrix's matmul spent S: at 30 words it was a sixth of an epoch), the torch ops with the band
matrix (one matmul each way) on training lengths and windows on longer sentences.
Shapes: B batch, S source positions, A attention size, K encoder output, H hidden, k taps.
"""

from __future__ import annotations

import torch

from ..model.seq2seq import band_taps, location_band
from . import native
from .gru_cell import gru_cell_backward, gru_cell_forward, sigmoid_backward

softmax_backward = torch.ops.aten._softmax_backward_data.out

# Up to this many source positions the torch ops build the location term with the band
# matrix (one matmul forward, one back, no copies); past it with windows of k neighbours,
# B*S*k*A work instead of the band's B*S*S*A (a 180-word sweep took 14 s with the band).
BAND_UP_TO = 64


def location_term(prev: torch.Tensor, W_loc: torch.Tensor) -> torch.Tensor:
    """prev (B, S) @ location_band(W_loc, S), computed as windows: each position reads only its
    k neighbours. W_loc (A, k) -> (B, S, A)"""
    B, S = prev.shape
    A, k = W_loc.shape
    # one plain (B*S, k) @ (k, A) matmul on a copy of the windows: a batched matmul on the
    # strided view measured ~6x slower
    return (windows_of(prev, k).reshape(B * S, k) @ W_loc.t()).view(B, S, A)


def windows_of(prev: torch.Tensor, k: int) -> torch.Tensor:
    """(B, S) -> (B, S, k): at [b, s, j] prev[b, s + j - k//2], 0 outside the sentence (a view)."""
    return torch.nn.functional.pad(prev, (k // 2, k // 2)).unfold(1, k, 1)


def location_band_grad(dM: torch.Tensor, A: int, k: int) -> torch.Tensor:
    """The gradient of W_loc (A, k) from that of its band dM (S, S*A): sum along each band."""
    S = dM.size(0)
    offset, inside = band_taps(S, k, dM.device)
    # dense: taps outside the band add zeros at a clamped index (a boolean index would be a
    # nonzero, i.e. a host sync, on a GPU); adding 0.0 leaves every sum exactly as it was
    dM = dM.view(S, S, A) * inside[..., None]
    return (
        torch.zeros(k, A, dtype=dM.dtype, device=dM.device)
        .index_add_(0, offset.clamp(0, k - 1).reshape(-1), dM.reshape(S * S, A))
        .t()
    )


class TorchSteps:
    """For the attention: enc_out (B, S, K); v (1, A) the score vector; mask (B, S) True on
    real positions and keys (B, S, A) = W_h enc_out, needed forward only; W_loc (A, k) the
    location weights, or None (no location term). The GRU steps need none of them (the
    encoder's scan passes none)."""

    def __init__(
        self,
        enc_out: torch.Tensor | None = None,
        v: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        keys: torch.Tensor | None = None,
        W_loc: torch.Tensor | None = None,
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
        self.W_loc = W_loc
        self.band = None  # (S, S*A) the location band, on training lengths
        self.d_loc = None  # the location weights' gradient so far: the band's (S, S*A) or (A, k)
        if W_loc is not None:
            if S <= BAND_UP_TO:
                self.band = location_band(W_loc, S)
                self.band2 = self.band * 2
            else:
                self.W_loc2 = W_loc * 2

    def gru_forward(self, gi, gh, h, out, rz, n) -> None:
        """One GRU update into out (B, H); keeps rz (B, 2H) and n (B, H) for the backward."""
        gru_cell_forward(gi, gh, h, out, rz, n)

    def gru_backward(self, dh, dh_extra, h, rz, n, gh_n, dgi, dgh) -> torch.Tensor:
        """dL/dgi, dL/dgh into dgi, dgh (B, 3H) from dL/dh' = dh + dh_extra (or None);
        returns the part of dL/dh that flows straight through the update gate."""
        if dh_extra is not None:
            dh = dh + dh_extra
        return gru_cell_backward(dh, h, rz, n, gh_n, dgi, dgh)

    def attend(self, q, prev, sig, w, ctx) -> None:
        """q (B, A) the query W_s s; prev (B, S) the previous step's weights, or None (the
        first step). Writes sig (B, S, A), the weights w (B, S) and the context ctx (B, K)."""
        energy2 = self.keys2 + (q * 2).unsqueeze(1)  # (B, S, A)
        if prev is not None and self.W_loc is not None:
            B, S, A = energy2.shape
            if self.band is not None:
                energy2 += (prev @ self.band2).view(B, S, A)
            else:
                energy2 += location_term(prev, self.W_loc2)
        torch.sigmoid(energy2, out=sig)
        w.copy_(torch.softmax(torch.baddbmm(self.no_score, sig, self.v2).squeeze(2), 1))
        torch.bmm(w.unsqueeze(1), self.enc_out, out=ctx.unsqueeze(1))

    def attend_backward(self, dc, dw_extra, w, prev, sig, dscore, d_keys, dq) -> torch.Tensor | None:
        """From dL/dctx dc (B, K) (+ dw_extra (B, S), more dL/dw, or None): dL/dscore into
        dscore (B, S); dL/denergy added to d_keys (B, S, A); dL/dq into dq (B, A). With the
        location term and prev (B, S) the weights this step read: returns dL/dprev (B, S) and
        adds to the location weights' gradient (location_grad); else returns None."""
        dw = torch.bmm(self.enc_out, dc.unsqueeze(2)).squeeze(2)  # (B, S)
        if dw_extra is not None:
            dw += dw_extra
        softmax_backward(dw, w, 1, dw.dtype, grad_input=dscore)
        if self.scratch is None:
            self.scratch = torch.empty_like(sig)
        den = self.scratch  # dL/denergy (B, S, A)
        sigmoid_backward(dscore.unsqueeze(2) * self.v4, sig, grad_input=den)
        d_keys += den
        torch.sum(den, 1, out=dq)
        if prev is None or self.W_loc is None:
            return None
        B, S, A = den.shape
        if self.band is not None:
            den = den.view(B, S * A)
            self.d_loc = prev.t() @ den if self.d_loc is None else self.d_loc.addmm_(prev.t(), den)
            return den @ self.band.t()
        k = self.W_loc.size(1)
        windows = windows_of(prev, k).reshape(B * S, k)
        d_win = den.reshape(B * S, A) @ self.W_loc  # (B*S, k): dL/dwindows
        d_W = den.reshape(B * S, A).t() @ windows  # (A, k)
        self.d_loc = d_W if self.d_loc is None else self.d_loc.add_(d_W)
        d_prev = prev.new_zeros(B, S + k - 1)  # padded as the windows read it
        d_win = d_win.view(B, S, k)
        for j in range(k):
            d_prev[:, j : j + S] += d_win[:, :, j]
        return d_prev[:, k // 2 : k // 2 + S]

    def location_grad(self) -> torch.Tensor:
        """dL/dW_loc (A, k) over every attend_backward so far."""
        A, k = self.W_loc.shape
        if self.d_loc is None:
            return torch.zeros_like(self.W_loc)
        return location_band_grad(self.d_loc, A, k) if self.band is not None else self.d_loc


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
        W_loc: torch.Tensor | None = None,
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
        self.k = W_loc.size(1) if W_loc is not None else 0
        if W_loc is not None:  # (k, A): each tap's weights in a row, as the kernels read them
            self.wloc = W_loc.t().contiguous()
            self.wloc2 = self.wloc * 2
            self.d_loc = None  # (B, k, A) each sentence's share of dL/dW_loc, once a backward ran
        # the pointers of the tensors held here, checked once (a step makes a few calls)
        B, S, A, K, k = self.B, self.S, self.A, self.K, self.k
        self.p_enc = _dense(self.enc_out, B, S, K)
        self.p_keys2 = _dense(self.keys2, B, S, A) if self.keys2 is not None else None
        self.p_v2, self.p_v4 = _dense(self.v2, A), _dense(self.v4, A)
        self.p_mask = _dense(self.mask, B, S, dtype=torch.uint8) if self.mask is not None else None
        self.p_wloc = _dense(self.wloc, k, A) if k else None
        self.p_wloc2 = _dense(self.wloc2, k, A) if k else None

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

    def attend(self, q, prev, sig, w, ctx) -> None:
        B, S, A, K = self.B, self.S, self.A, self.K
        if self.p_keys2 is None or self.p_mask is None:  # a null pointer would crash the kernel
            raise ValueError("the attention's forward kernel needs the keys and the mask")
        q_p, q_rs = _rows(q, B, A)
        located = prev is not None and self.k > 0
        self.dll.attend_forward(
            threads=self.threads,
            B=B,
            S=S,
            A=A,
            K=K,
            keys2=self.p_keys2,
            q=q_p,
            q_rs=q_rs,
            prev=_dense(prev, B, S) if located else None,
            wloc2=self.p_wloc2 if located else None,
            k=self.k,
            v2=self.p_v2,
            mask=self.p_mask,
            enc=self.p_enc,
            sig=_dense(sig, B, S, A),
            w=_dense(w, B, S),
            ctx=_dense(ctx, B, K),
        )

    def attend_backward(self, dc, dw_extra, w, prev, sig, dscore, d_keys, dq) -> torch.Tensor | None:
        B, S, A, K = self.B, self.S, self.A, self.K
        dq_p, dq_rs = _rows(dq, B, A)
        located = prev is not None and self.k > 0
        d_prev = None
        if located:
            d_prev = torch.empty_like(w)
            if self.d_loc is None:
                self.d_loc = w.new_zeros(B, self.k, A)
        self.dll.attend_backward(
            threads=self.threads,
            B=B,
            S=S,
            A=A,
            K=K,
            dc=_dense(dc, B, K),
            enc=self.p_enc,
            dw_extra=_dense(dw_extra, B, S) if dw_extra is not None else None,
            w=_dense(w, B, S),
            sig=_dense(sig, B, S, A),
            v4=self.p_v4,
            prev=_dense(prev, B, S) if located else None,
            wloc=self.p_wloc if located else None,
            k=self.k,
            dscore=_dense(dscore, B, S),
            d_keys=_dense(d_keys, B, S, A),
            dq=dq_p,
            dq_rs=dq_rs,
            dprev=_dense(d_prev, B, S) if located else None,
            dwloc=_dense(self.d_loc, B, self.k, A) if located else None,
        )
        return d_prev

    def location_grad(self) -> torch.Tensor:
        if self.d_loc is None:
            return self.wloc.new_zeros(self.A, self.k)
        return self.d_loc.sum(0).t()  # (A, k)


def steps_for(like: torch.Tensor, allow_native: bool = True, **attention) -> TorchSteps | NativeSteps:
    """NativeSteps where native.kernels_for says the kernels run on tensors like this one,
    else TorchSteps; attention: see TorchSteps."""
    dll = native.kernels_for(like, allow=allow_native)
    return NativeSteps(dll, **attention) if dll is not None else TorchSteps(**attention)
