"""Greedy decoding of one sentence in NumPy: the probe's fast path.

Why: decoding a single sentence is ~30 tiny operations per step on vectors of a few hundred
numbers. Through PyTorch each one costs a few microseconds of dispatch, far more than its
arithmetic, so a probe at the default size took ~5 ms; NumPy's per-call cost is several
times lower. This is the same model and the same maths as Seq2Seq.greedy (engine/model.py),
on weights copied out once per model version; tests/test_sentence_decoder.py holds its
tokens equal and its attention within float rounding of greedy()'s.

Two exact shortcuts: the decoder's embedding half of the first layer's input projection is
a (V, 3H) table computed once, and the encoder runs both directions in one batched step.
"""

from __future__ import annotations

import weakref

import numpy as np
import torch

from ..data import EOS, SOS
from .decoder_loop import location_band


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().copy()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), in place."""
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


def _gru(gi: np.ndarray, gh: np.ndarray, h: np.ndarray, H: int) -> np.ndarray:
    """torch.nn.GRU's update on (3H,) projections: gates r, z, n in that order."""
    rz = _sigmoid(gi[: 2 * H] + gh[: 2 * H])
    n = np.tanh(gi[2 * H :] + rz[:H] * gh[2 * H :])
    return n + rz[H:] * (h - n)


def _gate_major(parts: list[np.ndarray], H: int) -> np.ndarray:
    """Per-direction (..., 3H) blocks -> (..., 3DH) laid out [r_1..r_D, z_1..z_D, n_1..n_D], so
    that D directions step together as one GRU of hidden size D*H."""
    return np.concatenate([p[..., g * H : (g + 1) * H] for g in range(3) for p in parts], -1)


class SentenceDecoder:
    """Seq2Seq.greedy for one sentence, on a NumPy copy of the model's weights."""

    def __init__(self, model) -> None:
        enc, dec = model.encoder, model.decoder
        g = enc.gru
        self.H = H = g.hidden_size
        dirs = ["", "_reverse"] if g.bidirectional else [""]
        self.dirs = D = len(dirs)
        self.enc_emb = _np(enc.embedding.weight)
        # A bidirectional layer runs as one GRU of hidden size 2H: the recurrent weights are
        # block-diagonal, and the backward direction's inputs are fed in reversed order.
        self.enc_layers = []
        for l in range(g.num_layers):
            w = {
                name: [_np(getattr(g, f"{name}_l{l}{d}")) for d in dirs]
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            }
            W_hh = np.zeros((D * H, 3 * D * H), dtype=np.float32)
            for i, W in enumerate(w["weight_hh"]):
                block = np.zeros((D * H, 3 * H), dtype=np.float32)
                block[i * H : (i + 1) * H] = W.T
                W_hh += _gate_major([block if j == i else np.zeros_like(block) for j in range(D)], H)
            self.enc_layers.append(([W.T for W in w["weight_ih"]], w["bias_ih"], W_hh, _gate_major(w["bias_hh"], H)))
        self.bridge = (_np(model.bridge.weight).T, _np(model.bridge.bias)) if model.bridge is not None else None
        att = dec.attention
        self.W_h = _np(att.W_h.weight).T  # (K, A)
        self.v = _np(att.v.weight)[0]  # (A,)
        # the location term's weights (A, k); its band, per sentence length, is cached below
        self.W_loc = att.location.weight.detach().flatten(1).clone() if att.location is not None else None
        self.W_top = np.concatenate([_np(dec.W_hh[-1]), _np(att.W_s.weight)]).T  # (H, 3H + A)
        self.b_top = np.concatenate([_np(dec.b_hh[-1]), _np(att.W_s.bias)])
        # embedding half of the first layer's input projection, for every word at once
        self.gi_table = _np(dec.embedding.weight) @ _np(dec.W_ie).T + _np(dec.b_ih[0])  # (V, 3H)
        W_out = _np(dec.out.weight).T  # (H + K, V)
        # The context feeds the first layer and the output layer: one matmul for both. The
        # attention weights sum to 1, so a column of ones under the encoder outputs carries
        # the output layer's bias through the same matmul.
        W_c = np.concatenate([_np(dec.W_ic).T, W_out[H:]], 1)  # (K, 3H + V)
        bias = np.concatenate([np.zeros(3 * H, dtype=np.float32), _np(dec.out.bias)])
        self.W_c = np.concatenate([W_c, bias[None]])  # (K + 1, 3H + V)
        self.W_out_h = W_out[:H]
        # |score| <= sum|v|: below ~80, exp cannot overflow and softmax needs no max shift
        self.shift_scores = float(np.abs(self.v).sum()) > 80
        self.lower = [
            (_np(dec.W_hh[l]).T, _np(dec.b_hh[l]), _np(dec.W_ih[l]).T, _np(dec.b_ih[l + 1]))
            for l in range(dec.layers - 1)
        ]
        self._location: dict[int, np.ndarray] = {}

    def location_matrix(self, S: int) -> np.ndarray:
        """The location term's band (engine/fast/decoder_loop.py, location_band): prev (S,) @ M (S, S*A)."""
        if S not in self._location:
            self._location[S] = _np(location_band(self.W_loc, S))
        return self._location[S]

    def encode(self, ids: list[int]):
        H, S, D = self.H, len(ids), self.dirs
        dot = np.dot
        x = self.enc_emb[ids]  # (S, E)
        last = []
        for W_ih, b_ih, W_hh, b_hh in self.enc_layers:
            gi = [x @ W + b for W, b in zip(W_ih, b_ih)]  # per direction (S, 3H)
            if D == 2:
                gi[1] = gi[1][::-1]  # the backward direction reads the sentence from its end
            gi = _gate_major(gi, H)  # (S, 3DH)
            DH = D * H
            # b_hh's r and z parts are added to the inputs once; its n part is scaled by r
            gi_rz = gi[:, : 2 * DH] + b_hh[: 2 * DH]
            gi_n, b_hn = gi[:, 2 * DH :].copy(), b_hh[2 * DH :]
            h = np.zeros(DH, dtype=np.float32)
            out = np.empty((S, DH), dtype=np.float32)
            for t in range(S):
                gh = dot(h, W_hh)
                rz = _sigmoid(gi_rz[t] + gh[: 2 * DH])
                n = np.tanh(gi_n[t] + rz[:DH] * (gh[2 * DH :] + b_hn))
                h = n + rz[DH:] * (h - n)
                out[t] = h
            if D == 2:
                out[:, H:] = out[::-1, H:].copy()
            last.append(h)
            x = out
        if self.bridge is not None:
            W, b = self.bridge
            hidden = [np.tanh(dot(h_l, W) + b) for h_l in last]  # h_l = [fwd; bwd]
        else:
            hidden = last
        return x, hidden  # (S, K), per layer (H,)

    def greedy(self, ids: list[int]) -> tuple[list[int], np.ndarray]:
        """ids: the source words' ids followed by EOS. -> output ids (EOS included when the
        model emitted it) and the attention (steps, S)."""
        H, H3 = self.H, 3 * self.H
        S = len(ids)
        enc_out, h = self.encode(ids)
        keys = enc_out @ self.W_h  # (S, A)
        values = np.concatenate([enc_out, np.ones((S, 1), dtype=np.float32)], 1)  # (S, K + 1)
        A = keys.shape[1]
        M = self.location_matrix(S) if self.W_loc is not None else None
        dot, tanh, exp = np.dot, np.tanh, np.exp
        W_top, b_top, v, W_c, gi_table = self.W_top, self.b_top, self.v, self.W_c, self.gi_table
        W_out_h, lower, shift = self.W_out_h, self.lower, self.shift_scores
        top = len(h) - 1
        w = np.zeros(S, dtype=np.float32)
        y, out, rows = SOS, [], []
        for _ in range(2 * S + 5):  # greedy()'s step budget
            G = dot(h[top], W_top)
            G += b_top  # (3H + A,): the top layer's gh and the attention query
            e = keys + G[H3:]  # (S, A)
            if M is not None:
                e += dot(w, M).reshape(S, A)
            score = dot(tanh(e, out=e), v)  # (S,)
            w = exp(score - score.max()) if shift else exp(score)
            w /= w.sum()
            cw = dot(dot(w, values), W_c)  # (3H + V,): context through W_ic and the output layer

            x = gi_table[y] + cw[:H3]
            for l in range(top):
                W_hh, b_hh, W_ih, b_ih = lower[l]
                h[l] = _gru(x, dot(h[l], W_hh) + b_hh, h[l], H)
                x = dot(h[l], W_ih) + b_ih
            h[top] = _gru(x, G[:H3], h[top], H)
            y = int((dot(h[top], W_out_h) + cw[H3:]).argmax())
            out.append(y)
            rows.append(w)
            if y == EOS:
                break
        return out, np.stack(rows)


_decoders: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def sentence_decoder(model) -> SentenceDecoder:
    """The model's SentenceDecoder, rebuilt whenever a parameter has changed since (training,
    load_state_dict): every in-place change bumps a tensor's version counter, and a replaced
    tensor has a new address. Writes that PyTorch does not see bump the counter themselves:
    Adam's C kernel (engine/optim.py) and the data-parallel broadcast (engine/train.py)."""
    cached = _decoders.get(model)
    params = cached[0] if cached is not None else list(model.parameters())
    state = tuple((p._version, p.data_ptr()) for p in params)
    if cached is None or cached[1] != state:
        params = list(model.parameters())
        cached = (params, tuple((p._version, p.data_ptr()) for p in params), SentenceDecoder(model))
        _decoders[model] = cached
    return cached[2]
