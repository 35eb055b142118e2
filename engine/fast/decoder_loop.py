"""The attention decoder's training loop over all target steps, with its backward pass
(backpropagation through time) written by hand.

Why: run step by step under autograd, the decoder costs ~40 small recorded ops per step
forward and as many backward, each a few microseconds of dispatch on a CPU, and every
weight's gradient is a small (B x in) matmul per step. Here the forward records nothing,
each step is a few matmuls plus one call per GRU layer and one for the attention
(engine/fast/step_kernels.py: fused C kernels on a CPU, torch ops elsewhere), and every weight
gradient is one large matmul over all steps at the end. Two exact rewrites save the CPU's
slow tanh:
  - v . tanh(e) ranks positions as (2v) . sigmoid(2e) does (tanh(e) = 2 sigmoid(2e) - 1,
    and the constant -sum(v) cancels in the softmax), and sigmoid is ~3x cheaper here;
  - the location term conv(prev weights) is computed by the steps (step_kernels.py) from the
    previous step's weights: tap by tap in the C kernels, else one matmul with the banded
    (S, S*A) matrix that the reference's attention uses (location_band).
The equations are those of engine/model/seq2seq.py (Decoder.step: the same steps, plainly, under
autograd); tests/test_decoder_loop.py holds the outputs and every gradient equal to autograd's,
and checks them against finite differences.

Its interface is by name: decoder_loop(spec, LoopArgs(...)); the tensors kept for the
backward pass are a Saved; gradients are returned by field name. Only _flatten and
_positions know that autograd.Function.apply takes them positionally.

Shapes: B batch, S source positions, T target steps, E embedding, H hidden, K encoder
output, A attention size, V vocabulary, L layers, k location kernel. Time-major inside.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields

import torch

from ..model.copy import copy_probs, extended_size
from ..model.tokens import PAD, UNK
from .step_kernels import steps_for


@dataclass(frozen=True)
class LoopSpec:
    """The loop's shape: the same for every batch but n_ext (teacher forcing is a tensor in LoopArgs)."""

    layers: int
    location_kernel: int  # 0: content-only attention
    native: bool = True  # the C kernels where they apply (engine/fast/native, kernels_for)
    # How a step's input word is chosen. On a CPU the loop reads LoopArgs.forcing as Python
    # bools (the tensor is on the host, so that is free) and runs only the branch taken. On
    # any other device it never reads it: every step past the first computes the model's
    # guess and picks with torch.where (no host sync, one graph for every pattern). select=True
    # asks for that device form on a CPU too (tests hold the two equal).
    select: bool = False
    # the copy mechanism (engine/model/copy.py): a step the model guesses reads the mixture's argmax
    # (an unknown word copied is read as <unk>, as Decoder.step reads it), and the attention
    # it returns is differentiable (the mixture, computed by the caller, reads it)
    copy: bool = False
    # copy: the width of this batch's mixture, the extended vocabulary's size, from the host
    # batch (Batch.extended_size); None: read from LoopArgs.src_ext (a wait off the CPU)
    n_ext: int | None = None


@dataclass
class DecoderWeights:
    """The decoder's weights as its step reads them, by name (Decoder.loop_weights() builds
    them; training and decoding take the same). W_out and b_out choose the next word where
    it is not teacher-forced: an argmax, no gradient through the loop (the caller computes
    the logits from the returned states and contexts)."""

    emb: torch.Tensor  # (V, E) the decoder's embedding
    W_ie: torch.Tensor  # (3H, E) first layer, embedding part
    b_i0: torch.Tensor  # (3H,)   its input bias
    W_ic: torch.Tensor  # (3H, K) first layer, context part
    W_top: torch.Tensor  # (3H + A, H) [W_hh; W_s] of the top layer
    b_top: torch.Tensor  # (3H + A,)
    v: torch.Tensor  # (1, A) the score vector
    W_out: torch.Tensor  # (V, H + K)
    b_out: torch.Tensor  # (V,)
    W_loc: torch.Tensor | None = None  # (A, k) the location term, or None
    W_gate: torch.Tensor | None = None  # (1, K + H + E) the copy gate, or None (guesses only)
    b_gate: torch.Tensor | None = None  # (1,)
    # per layer under the top one: its recurrent weights, and the input weights of the layer above
    lower_W_hh: Sequence[torch.Tensor] = ()  # (3H, H) each
    lower_b_hh: Sequence[torch.Tensor] = ()  # (3H,)
    lower_W_ih: Sequence[torch.Tensor] = ()  # (3H, H)
    lower_b_ih: Sequence[torch.Tensor] = ()  # (3H,)


@dataclass
class LoopArgs:
    """Everything the training loop reads, by name. Dropout masks are already scaled by 1/(1-p)."""

    tgt_in: torch.Tensor  # (B, T) the true previous words
    forcing: torch.Tensor  # (T,) bool: step t reads the true word (t = 0: SOS always)
    h0: torch.Tensor  # (L, B, H)
    enc_out: torch.Tensor  # (B, S, K)
    keys: torch.Tensor  # (B, S, A) W_h enc_out
    mask: torch.Tensor  # (B, S) True on real positions
    weights: DecoderWeights
    drop_emb: torch.Tensor | None = None  # (B, T, E) or None
    drop_between: torch.Tensor | None = None  # (L-1, T, B, H) or None
    src_ext: torch.Tensor | None = None  # (B, S) the source's extended ids (copy), or None


@dataclass
class StepOut:
    """Where one decoder step writes: the training loop hands in its per-step slots (which the
    backward pass reads), decoding fresh tensors (StepOut.empty)."""

    G: torch.Tensor  # (B, 3H + A) the top layer's gh and the query
    sig: torch.Tensor  # (B, S, A) the attention's sigmoids
    w: torch.Tensor  # (B, S) the attention weights
    c: torch.Tensor  # (B, K) the context
    h: Sequence[torch.Tensor]  # per layer (B, H) the new states
    rz: Sequence[torch.Tensor]  # per layer (B, 2H) the r and z gates
    n: Sequence[torch.Tensor]  # per layer (B, H) the candidates
    gh_lower: Sequence[torch.Tensor]  # per lower layer (B, 3H) its recurrent projection
    x_in: Sequence[torch.Tensor] | None  # per lower layer (B, H) with dropout: the input above

    @classmethod
    def empty(cls, keys: torch.Tensor, enc_out: torch.Tensor, L: int, H: int) -> StepOut:
        (B, S, A), K, new = keys.shape, enc_out.size(2), keys.new_empty
        return cls(
            new(B, 3 * H + A),
            new(B, S, A),
            new(B, S),
            new(B, K),
            [new(B, H) for _ in range(L)],
            [new(B, 2 * H) for _ in range(L)],
            [new(B, H) for _ in range(L)],
            [new(B, 3 * H) for _ in range(L - 1)],
            None,
        )


def decoder_step(
    steps,
    W: DecoderWeights,
    gi: torch.Tensor,
    h: Sequence[torch.Tensor],
    prev: torch.Tensor | None,
    out: StepOut,
    drop: torch.Tensor | None = None,
) -> None:
    """One decoder step, forward, for training and decoding alike: attend with the previous
    top state, then advance the GRU layers bottom to top. steps: engine/fast/step_kernels.py's
    TorchSteps or NativeSteps (holding the location weights, if any); gi (B, 3H) the embedding
    half of the first layer's input projection, overwritten with the whole of it; h per layer
    (B, H) the previous states; prev (B, S) the previous step's attention weights, which the
    location term reads (None at the first step); drop (L-1, B, H) dropout masks between
    layers, or None. out.G and out.gh_lower hold their biases on entry (fill_biases): each
    step's matmuls add into them in place, which spares a copy of the bias per matmul."""
    L, H = len(h), h[0].size(1)
    g = out.G.addmm_(h[-1], W.W_top.t())  # (B, 3H + A)
    steps.attend(g[:, 3 * H :], prev, out.sig, out.w, out.c)  # weights, context
    x = gi.addmm_(out.c, W.W_ic.t())  # (B, 3H)
    for l in range(L):
        gh = g[:, : 3 * H] if l == L - 1 else out.gh_lower[l].addmm_(h[l], W.lower_W_hh[l].t())
        steps.gru_forward(x, gh, h[l], out.h[l], out.rz[l], out.n[l])
        if l < L - 1:
            below = out.h[l] if drop is None else torch.mul(out.h[l], drop[l], out=out.x_in[l])
            x = torch.addmm(W.lower_b_ih[l], below, W.lower_W_ih[l].t())


def fill_biases(W: DecoderWeights, G: torch.Tensor, gh_lower: Sequence[torch.Tensor]) -> None:
    """Writes the biases decoder_step's matmuls add to: b_top into G (..., B, 3H + A), each
    lower layer's recurrent bias into gh_lower (..., B, 3H), for one step or every step at once."""
    G.copy_(W.b_top.expand_as(G))
    for g, b in zip(gh_lower, W.lower_b_hh):
        g.copy_(b.expand_as(g))


def next_words(W: DecoderWeights, state: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The greedy choice of the output layer: state (B, H), context (B, K) -> ids (B,)"""
    return torch.addmm(W.b_out, torch.cat([state, context], 1), W.W_out.t()).argmax(1)


def next_words_copying(
    W: DecoderWeights,
    state: torch.Tensor,
    context: torch.Tensor,
    weights: torch.Tensor,
    emb: torch.Tensor,
    src_ext: torch.Tensor,
    n_ext: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The greedy choice of the copy mixture (engine/model/copy.py, Decoder.step's), for training
    and decoding alike: state (B, H), context (B, K), weights (B, S), emb (B, E) the embedded
    word this step read, src_ext (B, S) and the extended vocabulary's size n_ext -> extended
    ids (B,), p_copy (B,)"""
    logits = torch.addmm(W.b_out, torch.cat([state, context], 1), W.W_out.t())  # (B, V)
    gate = torch.addmm(W.b_gate, torch.cat([context, state, emb], 1), W.W_gate.t())  # (B, 1)
    p, p_copy = copy_probs(logits, gate, weights, src_ext, n_ext)  # its argmax is log p's: no log
    return p.argmax(1), p_copy


@dataclass
class Saved:
    """What the forward pass keeps for the backward pass (through ctx.save_for_backward)."""

    y_in: torch.Tensor  # (B, T) the words read: true or the model's own guesses
    G: torch.Tensor  # (T, B, 3H + A) the top layer's gh and the query
    sig: torch.Tensor  # (T, B, S, A) the attention's sigmoids
    w_all: torch.Tensor  # (T, B, S) the weights
    c_all: torch.Tensor  # (T, B, K) the contexts
    hs: Sequence[torch.Tensor]  # per layer (T + 1, B, H): h0, then each step's state
    rz: Sequence[torch.Tensor]  # per layer (T, B, 2H) the r and z gates
    n: Sequence[torch.Tensor]  # per layer (T, B, H) the candidates
    gh_lower: Sequence[torch.Tensor]  # per lower layer (T, B, 3H) its recurrent projection
    x_in: Sequence[torch.Tensor]  # per lower layer (T, B, H) the input of the layer above
    args: LoopArgs  # the loop's inputs (the weights and masks)


def _flatten(obj) -> tuple[tuple, list]:
    """A dataclass of tensors, Nones, lists of tensors and nested dataclasses -> (layout,
    flat list): the layout names every position, so that nothing is found by index arithmetic."""
    layout, flat = [], []
    for f in fields(obj):
        value = getattr(obj, f.name)
        if hasattr(value, "__dataclass_fields__"):
            inner, values = _flatten(value)
            layout.append((f.name, (type(value), inner)))
            flat += values
        elif isinstance(value, (list, tuple)):
            layout.append((f.name, len(value)))
            flat += value
        else:
            layout.append((f.name, None))
            flat.append(value)
    return tuple(layout), flat


def _unflatten(cls, layout: tuple, flat: Iterator):
    """_flatten's inverse: cls(**fields), taking the values from the iterator flat."""
    named = {}
    for name, kind in layout:
        if isinstance(kind, tuple):  # a nested dataclass
            named[name] = _unflatten(*kind, flat)
        elif kind is None:
            named[name] = next(flat)
        else:
            named[name] = [next(flat) for _ in range(kind)]
    return cls(**named)


def _positions(layout: tuple, grads: dict) -> tuple:
    """Gradients by field name (a tensor; a list for a list field; a dict for a nested
    dataclass; absent: none) -> one per flat position, in the order _flatten laid them out."""
    out = []
    for name, kind in layout:
        g = grads.get(name)
        if isinstance(kind, tuple):  # a nested dataclass
            out += _positions(kind[1], g or {})
        elif kind is None:
            out.append(g)
        else:
            out += list(g) if g is not None else [None] * kind
    return tuple(out)


def decoder_loop(spec: LoopSpec, args: LoopArgs):
    """states (B, T, H), contexts (B, T, K), attention (B, T, S) (differentiable with copy),
    and the words each step read (B, T): the loop over all target steps, differentiable with
    respect to every tensor in args."""
    layout, flat = _flatten(args)
    return DecoderLoop.apply(spec, layout, *flat)


class DecoderLoop(torch.autograd.Function):
    """Called through decoder_loop(spec, LoopArgs): apply() takes tensors positionally (that is
    how autograd tracks them), so LoopArgs is flattened there with a layout that names each
    position, and forward and backward speak in names."""

    @staticmethod
    def forward(ctx, spec: LoopSpec, layout: tuple, *flat):
        a = _unflatten(LoopArgs, layout, iter(flat))
        W = a.weights
        L, T = spec.layers, a.tgt_in.size(1)
        B, S, A = a.keys.shape
        H = a.h0.size(2)
        new = a.keys.new_empty
        W_loc = W.W_loc if spec.location_kernel else None
        steps = steps_for(a.keys, spec.native, enc_out=a.enc_out, v=W.v, mask=a.mask, keys=a.keys, W_loc=W_loc)
        drop_emb, drop_between = a.drop_emb, a.drop_between

        # the embedding half of the first layer's input, for every teacher-forced step at once
        x_emb = W.emb[a.tgt_in.t()]  # (T, B, E)
        if drop_emb is not None:
            x_emb = x_emb * drop_emb.transpose(0, 1)
        gi_forced = torch.addmm(W.b_i0, x_emb.reshape(T * B, -1), W.W_ie.t()).view(T, B, -1)  # (T, B, 3H)
        y_in = a.tgt_in.clone()  # the words actually read: true or the model's own guesses
        # on a CPU, the forcing pattern as Python bools (a host tensor: no sync); elsewhere None
        select = spec.select or a.tgt_in.device.type != "cpu"
        forced = None if select else a.forcing.tolist()

        # everything the backward pass reads is written straight into per-step slots
        hs = [new(T + 1, B, H) for _ in range(L)]  # per layer: h0, then the state after each step
        for l in range(L):
            hs[l][0] = a.h0[l]
        rz = [new(T, B, 2 * H) for _ in range(L)]
        n = [new(T, B, H) for _ in range(L)]
        gh_lower = [new(T, B, 3 * H) for _ in range(L - 1)]
        x_in = [new(T, B, H) for _ in range(L - 1)] if drop_between is not None else [hs[l][1:] for l in range(L - 1)]
        G = new(T, B, 3 * H + A)  # the top layer's recurrent projection and the query
        fill_biases(W, G, gh_lower)
        sig = new(T, B, S, A)
        w_all = new(T, B, S)
        c_all = new(T, B, a.enc_out.size(2))
        V = W.emb.size(0)
        n_ext = (extended_size(V, a.src_ext) if spec.n_ext is None else spec.n_ext) if spec.copy else 0
        x_prev = None  # copy: the embedded word the previous step read (B, E)
        # every step's views of the slots, made at once: unbind costs half of indexing a step
        # at a time (~1,000 views a batch)
        gi_f, x_e = gi_forced.unbind(0), x_emb.unbind(0)
        G_, sig_, w_, c_ = G.unbind(0), sig.unbind(0), w_all.unbind(0), c_all.unbind(0)
        hs_, rz_, n_ = [h.unbind(0) for h in hs], [r.unbind(0) for r in rz], [x.unbind(0) for x in n]
        gh_lower_ = [g.unbind(0) for g in gh_lower]
        x_in_ = [x.unbind(0) for x in x_in] if drop_between is not None else None
        drop_ = drop_between.unbind(1) if drop_between is not None else None
        for t in range(T):
            if t == 0 or (forced is not None and forced[t]):
                gi = gi_f[t]
                x = x_e[t]
            else:  # the model's own previous guess (or, selecting, the true word where forced)
                if spec.copy:
                    y, _ = next_words_copying(W, hs_[-1][t], c_[t - 1], w_[t - 1], x_prev, a.src_ext, n_ext)
                    y = y.masked_fill(y >= V, UNK)  # an unknown word copied is read as <unk>
                else:
                    y = next_words(W, hs_[-1][t], c_[t - 1])  # (B,)
                if select:
                    y = torch.where(a.forcing[t], a.tgt_in[:, t], y)
                y_in[:, t] = y
                x = W.emb[y] if drop_emb is None else W.emb[y] * drop_emb[:, t]
                gi = torch.addmm(W.b_i0, x, W.W_ie.t())
            x_prev = x
            out = StepOut(
                G_[t],
                sig_[t],
                w_[t],
                c_[t],
                [h[t + 1] for h in hs_],
                [r[t] for r in rz_],
                [x[t] for x in n_],
                [g[t] for g in gh_lower_],
                [x[t] for x in x_in_] if x_in_ is not None else None,
            )
            # the location term reads the previous step's weights (none before the first step)
            prev = w_[t - 1] if t > 0 else None
            decoder_step(steps, W, gi, [h[t] for h in hs_], prev, out, drop_[t] if drop_ is not None else None)

        ctx.spec, ctx.arg_layout = spec, layout
        saved = Saved(y_in, G, sig, w_all, c_all, hs, rz, n, gh_lower, x_in, a)
        ctx.saved_layout, tensors = _flatten(saved)
        ctx.save_for_backward(*tensors)
        attn = w_all.transpose(0, 1)  # (B, T, S)
        if not spec.copy:
            ctx.mark_non_differentiable(attn)
        ctx.mark_non_differentiable(y_in)
        return hs[-1][1:].transpose(0, 1), c_all.transpose(0, 1), attn, y_in

    @staticmethod
    def backward(ctx, d_states, d_contexts, d_attn, _d_y_in):
        spec = ctx.spec
        L = spec.layers
        saved = _unflatten(Saved, ctx.saved_layout, iter(ctx.saved_tensors))
        a = saved.args
        W = a.weights
        hs, rz, n, gh_lower, x_in = saved.hs, saved.rz, saved.n, saved.gh_lower, saved.x_in
        G, sig, w_all, c_all, y_in = saved.G, saved.sig, saved.w_all, saved.c_all, saved.y_in
        drop_emb, drop_between = a.drop_emb, a.drop_between
        T, B, S, A = sig.shape
        H = hs[0].size(2)
        loc = spec.location_kernel
        steps = steps_for(sig, spec.native, enc_out=a.enc_out, v=W.v, W_loc=W.W_loc if loc else None)
        new = sig.new_empty
        # (B, T, H), rows of unit stride for the kernels (autograd may hand in any strides)
        d_states = sig.new_zeros(B, T, H) if d_states is None else d_states.contiguous()
        # copy: dL/dw_t from the mixture, (T, B, S) rows of unit stride
        d_w_out = d_attn.transpose(0, 1).contiguous() if d_attn is not None else None

        dh = [sig.new_zeros(B, H) for _ in range(L)]
        dw_next = None  # dL/dw_t through step t+1's location term
        d_keys = sig.new_zeros(B, S, A)
        # per-step slots: d_x[l] is dL/d(layer l's input projection); d_x[0] the first layer's
        d_x = [new(T, B, 3 * H) for _ in range(L)]
        d_gh = [new(T, B, 3 * H) for _ in range(L - 1)]
        dG = new(T, B, 3 * H + A)
        # dL/dc per step: the output's share now, each step's matmul adds the GRU's in place
        # (a buffer of its own: the incoming gradient is autograd's, never written)
        d_c = torch.zeros_like(c_all) if d_contexts is None else new(c_all.shape).copy_(d_contexts.transpose(0, 1))
        d_score = new(T, B, S)
        # every step's views at once, as in forward
        d_states_ = d_states.unbind(1)
        hs_, rz_, n_ = [h.unbind(0) for h in hs], [r.unbind(0) for r in rz], [x.unbind(0) for x in n]
        gh_n = [g[:, :, 2 * H :].unbind(0) for g in gh_lower] + [G[:, :, 2 * H : 3 * H].unbind(0)]  # per layer
        d_x_, d_gh_ = [d.unbind(0) for d in d_x], [d.unbind(0) for d in d_gh] + [dG[:, :, : 3 * H].unbind(0)]
        dG_, dG_query, d_c_ = dG.unbind(0), dG[:, :, 3 * H :].unbind(0), d_c.unbind(0)
        w_, sig_, d_score_ = w_all.unbind(0), sig.unbind(0), d_score.unbind(0)
        d_w_out_ = d_w_out.unbind(0) if d_w_out is not None else None
        for t in range(T - 1, -1, -1):
            # the GRU layers, top to bottom; the top one also gets this step's output gradient
            for l in range(L - 1, -1, -1):
                top = l == L - 1
                direct = steps.gru_backward(
                    dh[l],
                    d_states_[t] if top else None,
                    hs_[l][t],
                    rz_[l][t],
                    n_[l][t],
                    gh_n[l][t],
                    d_x_[l][t],
                    d_gh_[l][t],
                )
                if top:
                    direct_top = direct
                else:
                    dh[l] = direct.addmm_(d_gh_[l][t], W.lower_W_hh[l])
                if l > 0:  # dh[l - 1] is this loop's own tensor: added to in place
                    if drop_between is None:
                        dh[l - 1].addmm_(d_x_[l][t], W.lower_W_ih[l - 1])
                    else:
                        dh[l - 1].add_((d_x_[l][t] @ W.lower_W_ih[l - 1]).mul_(drop_between[l - 1, t]))
            # attention
            dc = d_c_[t].addmm_(d_x_[0][t], W.W_ic)  # (B, K), onto the output's own dL/dc
            # dL/dscore, dL/denergy (into d_keys), dL/dquery, and through the location term
            # dL/d(the previous step's weights) (None at the first step or without it)
            dw_extra = dw_next
            if d_w_out_ is not None:
                dw_extra = d_w_out_[t] if dw_extra is None else dw_extra + d_w_out_[t]
            prev = w_[t - 1] if t > 0 else None
            dw_next = steps.attend_backward(dc, dw_extra, w_[t], prev, sig_[t], d_score_[t], d_keys, dG_query[t])
            dh[L - 1] = direct_top.addmm_(dG_[t], W.W_top)

        # every weight's gradient: one matmul over all steps
        TB = T * B
        d_gi, dG, d_c = d_x[0].view(TB, -1), dG.view(TB, -1), d_c.view(TB, -1)
        dW = {
            "W_top": dG.t() @ hs[-1][:-1].reshape(TB, H),
            "b_top": dG.sum(0),  # by DecoderWeights' names
            "W_ic": d_gi.t() @ c_all.view(TB, -1),
            "b_i0": d_gi.sum(0),
        }
        x_emb = W.emb[y_in.t()]  # (T, B, E)
        if drop_emb is not None:
            x_emb = x_emb * drop_emb.transpose(0, 1)
        dW["W_ie"] = d_gi.t() @ x_emb.reshape(TB, -1)
        d_x_emb = d_gi @ W.W_ie  # (T * B, E)
        if drop_emb is not None:
            d_x_emb = d_x_emb * drop_emb.transpose(0, 1).reshape(TB, -1)
        d_emb = torch.zeros_like(W.emb).index_add_(0, y_in.t().reshape(-1), d_x_emb)
        d_emb[PAD] = 0  # nn.Embedding(padding_idx=PAD): the padding row never learns
        dW["emb"] = d_emb
        # context c_t = sum_s w_ts h_s, for every step at once
        d_enc = torch.bmm(w_all.permute(1, 2, 0), d_c.view(T, B, -1).transpose(0, 1))  # (B, S, K)
        # v . tanh(e) = 2 v . sigmoid(2e) - const
        dW["v"] = ((d_score.view(1, -1) @ sig.view(-1, A)) * 2).view_as(W.v)
        if loc:
            dW["W_loc"] = steps.location_grad()
        d_gh_rows = [d.view(TB, -1) for d in d_gh]
        d_x_rows = [d.view(TB, -1) for d in d_x[1:]]
        dW["lower_W_hh"] = [d.t() @ h[:-1].reshape(TB, H) for d, h in zip(d_gh_rows, hs)]
        dW["lower_b_hh"] = [d.sum(0) for d in d_gh_rows]
        dW["lower_W_ih"] = [d.t() @ x.reshape(TB, H) for d, x in zip(d_x_rows, x_in)]
        dW["lower_b_ih"] = [d.sum(0) for d in d_x_rows]
        grads = {"h0": torch.stack(dh), "enc_out": d_enc, "keys": d_keys, "weights": dW}
        return (None, None, *_positions(ctx.arg_layout, grads))
