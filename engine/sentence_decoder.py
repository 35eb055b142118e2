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

from .data import EOS, SOS


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy().copy()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    np.negative(x, out=x)
    np.exp(x, out=x)
    x += 1.0
    return np.reciprocal(x, out=x)


def _gru(gi: np.ndarray, gh: np.ndarray, h: np.ndarray, H: int) -> np.ndarray:
    """torch.nn.GRU's update on (..., 3H) projections: gates r, z, n in that order."""
    rz = _sigmoid(gi[..., :2 * H] + gh[..., :2 * H])
    n = np.tanh(gi[..., 2 * H:] + rz[..., :H] * gh[..., 2 * H:])
    return n + rz[..., H:] * (h - n)


class SentenceDecoder:
    """Seq2Seq.greedy for one sentence, on a NumPy copy of the model's weights."""

    def __init__(self, model) -> None:
        enc, dec = model.encoder, model.decoder
        g = enc.gru
        self.H = H = g.hidden_size
        self.layers = g.num_layers
        dirs = ["", "_reverse"] if g.bidirectional else [""]
        self.enc_emb = _np(enc.embedding.weight)
        # per layer, the directions side by side: one matmul gives every direction's inputs
        self.enc_W_ih = [np.concatenate([_np(getattr(g, f"weight_ih_l{l}{d}")).T for d in dirs], 1)
                         for l in range(self.layers)]  # (in, D*3H)
        self.enc_b_ih = [np.concatenate([_np(getattr(g, f"bias_ih_l{l}{d}")) for d in dirs])
                         for l in range(self.layers)]
        self.enc_W_hh = [np.stack([_np(getattr(g, f"weight_hh_l{l}{d}")).T for d in dirs])
                         for l in range(self.layers)]  # (D, H, 3H)
        self.enc_b_hh = [np.stack([_np(getattr(g, f"bias_hh_l{l}{d}")) for d in dirs])[:, None, :]
                         for l in range(self.layers)]  # (D, 1, 3H)
        self.dirs = len(dirs)
        self.bridge = ((_np(model.bridge.weight).T, _np(model.bridge.bias))
                       if model.bridge is not None else None)
        att = dec.attention
        self.W_h = _np(att.W_h.weight).T  # (K, A)
        self.v = _np(att.v.weight)[0]  # (A,)
        self.W_loc = _np(att.location.weight)[:, 0, :] if att.location is not None else None  # (A, k)
        self.W_top = np.concatenate([_np(dec.W_hh[-1]), _np(att.W_s.weight)]).T  # (H, 3H + A)
        self.b_top = np.concatenate([_np(dec.b_hh[-1]), _np(att.W_s.bias)])
        # embedding half of the first layer's input projection, for every word at once
        self.gi_table = _np(dec.embedding.weight) @ _np(dec.W_ie).T + _np(dec.b_ih[0])  # (V, 3H)
        self.W_ic = _np(dec.W_ic).T  # (K, 3H)
        self.lower = [(_np(dec.W_hh[l]).T, _np(dec.b_hh[l]), _np(dec.W_ih[l]).T, _np(dec.b_ih[l + 1]))
                      for l in range(dec.layers - 1)]
        W_out = _np(dec.out.weight).T  # (H + K, V)
        self.W_out_h, self.W_out_c, self.b_out = W_out[:H], W_out[H:], _np(dec.out.bias)
        self._location: dict[int, np.ndarray] = {}

    def location_matrix(self, S: int) -> np.ndarray:
        """conv1d(prev, W_loc, padding=k//2) as prev (S,) @ M (S, S*A)."""
        if S not in self._location:
            A, k = self.W_loc.shape
            pos = np.arange(S)
            offset = pos[:, None] - pos[None, :] + k // 2  # (S', S)
            inside = (offset >= 0) & (offset < k)
            M = self.W_loc.T[np.clip(offset, 0, k - 1)] * inside[..., None]  # (S', S, A)
            self._location[S] = M.reshape(S, S * A)
        return self._location[S]

    def encode(self, ids: list[int]):
        H, S, D = self.H, len(ids), self.dirs
        x = self.enc_emb[ids]  # (S, E)
        last = []
        for l in range(self.layers):
            gi = (x @ self.enc_W_ih[l] + self.enc_b_ih[l]).reshape(S, D, 3 * H)
            if D == 2:  # the backward direction reads the sentence from its end
                gi[:, 1] = gi[::-1, 1].copy()
            h = np.zeros((D, 1, H), dtype=np.float32)
            out = np.empty((S, D, H), dtype=np.float32)
            for t in range(S):
                gh = np.matmul(h, self.enc_W_hh[l]) + self.enc_b_hh[l]  # (D, 1, 3H)
                h = _gru(gi[t][:, None, :], gh, h, H)
                out[t] = h[:, 0]
            if D == 2:
                out[:, 1] = out[::-1, 1].copy()
            last.append(h[:, 0])
            x = out.reshape(S, D * H)
        if self.bridge is not None:
            W, b = self.bridge
            hidden = [np.tanh(np.concatenate(h_l) @ W + b) for h_l in last]  # [fwd; bwd] per layer
        else:
            hidden = [h_l[0] for h_l in last]
        return x, hidden  # (S, K), per layer (H,)

    def greedy(self, ids: list[int]) -> tuple[list[int], np.ndarray]:
        """ids: the source words' ids followed by EOS. -> output ids (EOS included when the
        model emitted it) and the attention (steps, S)."""
        H = self.H
        S = len(ids)
        enc_out, h = self.encode(ids)
        keys = enc_out @ self.W_h  # (S, A)
        M = self.location_matrix(S) if self.W_loc is not None else None
        A = keys.shape[1]
        w = np.zeros(S, dtype=np.float32)
        y, out, rows = SOS, [], []
        for _ in range(2 * S + 5):  # greedy()'s step budget
            G = h[-1] @ self.W_top + self.b_top  # (3H + A,) top layer's gh and the query
            e = keys + G[3 * H:]
            if M is not None:
                e += (w @ M).reshape(S, A)
            score = np.tanh(e, out=e) @ self.v  # (S,)
            score -= score.max()
            w = np.exp(score)
            w /= w.sum()
            c = w @ enc_out  # (K,)
            x = self.gi_table[y] + c @ self.W_ic
            for l in range(len(h)):
                if l == len(h) - 1:
                    h[l] = _gru(x, G[:3 * H], h[l], H)
                else:
                    W_hh, b_hh, W_ih, b_ih = self.lower[l]
                    h[l] = _gru(x, h[l] @ W_hh + b_hh, h[l], H)
                    x = h[l] @ W_ih + b_ih
            y = int(np.argmax(h[-1] @ self.W_out_h + c @ self.W_out_c + self.b_out))
            out.append(y)
            rows.append(w)
            if y == EOS:
                break
        return out, np.stack(rows)


_decoders: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def sentence_decoder(model) -> SentenceDecoder:
    """The model's SentenceDecoder, rebuilt whenever a parameter has changed since (training,
    load_state_dict): every in-place change bumps a tensor's version counter."""
    version = tuple(p._version for p in model.parameters())
    cached = _decoders.get(model)
    if cached is None or cached[0] != version:
        cached = (version, SentenceDecoder(model))
        _decoders[model] = cached
    return cached[1]
