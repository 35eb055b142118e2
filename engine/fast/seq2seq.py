"""engine/model's Seq2Seq, trained and greedy-decoded through this package: the same weights,
the same answers (tests/test_parity.py), faster on a CPU (bench/README.md: 2.2x an epoch at
the defaults, and a probe a third of the reference's wait).

engine/impl.py attaches a FastPath to a model (Seq2Seq.fast) where `lacks` is empty; the model
then hands its training pass and its greedy decoding to it:

  forward  the encoder (through the GRU scan, in training on a CPU
           with the C kernels built), then every decoder step at once through decoder_loop.py,
           with its hand-written backward pass;
  greedy   the decoder step of that loop, one step at a time, without gradients.

A copying model trains and greedy-decodes here too. Beam search has one implementation, the
model's own (Seq2Seq.beam).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..model.seq2seq import Decoded, Decoder, Encoder, Seq2Seq, dropout_mask, dropped, host_lengths
from ..model.tokens import EOS, PAD, SOS, UNK
from ..model.transfer import StopCheck, upload
from .copy_mixture import copy_mixture_log_probs
from .decoder_loop import (
    DecoderWeights,
    LoopArgs,
    LoopSpec,
    StepOut,
    decoder_loop,
    decoder_step,
    fill_biases,
    next_words,
    next_words_copying,
)
from .gru_scan import GRUScan
from .native import kernels_for
from .step_kernels import steps_for


def lacks(cfg) -> list[str]:
    """What of cfg this package does not implement (empty: it runs this configuration). A
    change to engine/model's maths that this package does not have belongs here too, so that
    `--impl auto` trains the reference until it catches up. Today it implements every
    configuration Config.validate accepts, except coverage and the scores other than additive;
    a copy model it trains (its decoding goes through the reference's steps)."""
    lacks = ["coverage attention (--coverage)"] if cfg.coverage else []
    score = getattr(cfg, "score", "additive")
    if score != "additive":
        lacks.append(f"the {score} attention score (--score {score})")
    return lacks


class FastPath:
    """Seq2Seq.forward and Seq2Seq.greedy through this package (engine/model/seq2seq.py's
    FastPath protocol). It holds nothing: the weights are the model's."""

    def forward(
        self,
        model: Seq2Seq,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        teacher_forcing: torch.Tensor,
        src_ext: torch.Tensor | None,
        n_ext: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Seq2Seq.forward_reference's answer: logits (B, T, V), with copy log-probabilities
        (B, T, V + unknowns), and attention (B, T, S)."""
        src_ext, n_ext = model.extended(src, src_ext, n_ext)
        enc_out, hidden, keys, mask = model.encode(src, src_len, gru=encoder_gru)
        dec = model.decoder
        states, contexts, attn, emb = run_all_steps(
            dec, tgt_in, teacher_forcing, hidden, enc_out, keys, mask, src_ext, n_ext
        )
        logits = dec.logits(states, contexts)  # (B, T, V)
        if emb is None:
            return logits, attn
        # the copy mixture of every step at once, as Decoder.step mixes one
        (B, T, V), S = logits.shape, attn.size(2)
        gate = dec.copy_gate(torch.cat([contexts, states, emb], -1))  # (B, T, 1)
        logp = copy_mixture_log_probs(
            logits.reshape(B * T, V),
            gate.reshape(B * T, 1),
            attn.reshape(B * T, S),
            src_ext.repeat_interleave(T, 0),
            n_ext,
        )
        return logp.view(B, T, -1), attn

    @torch.inference_mode()
    def greedy(
        self,
        model: Seq2Seq,
        src: torch.Tensor,
        src_len: torch.Tensor,
        max_steps: int | torch.Tensor | None,
        attend: bool | None,
        src_ext: torch.Tensor | None,
        n_ext: int | None,
    ) -> Decoded:
        """Seq2Seq.greedy_reference's answer (see Seq2Seq.greedy), through the training loop's
        decoder step, its buffers written in place. With copy the words are extended ids
        chosen by the mixture's argmax, as the reference's are (an unknown word copied is read
        back as <unk>), and each step's p_copy is kept."""
        dec = model.decoder
        if model.copy:
            src_ext, n_ext = model.extended(src, src_ext, n_ext)
        src_len = host_lengths(src_len)
        enc_out, hidden, keys, mask = model.encode(src, src_len)
        W = decoding_weights(dec, attend)
        steps = steps_for(keys, enc_out=enc_out, v=W.v, mask=mask, keys=keys, W_loc=W.W_loc)
        hidden = list(hidden.unbind(0))  # per layer (B, H)
        B, V = src.size(0), W.emb.size(0)
        on_cpu = src.device.type == "cpu"
        budget = 2 * src_len + 5 if max_steps is None else torch.clamp(2 * src_len + 5, max=max_steps)
        max_len = int(budget.max())  # the host copy: no sync
        budget = upload(budget, src.device)
        y = torch.full((B,), SOS, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        length = budget.clone()
        tokens, copies = [], []
        # written in place: each step's weights into its row, the states into two alternating sets
        out = StepOut.empty(keys, enc_out, model.layers, dec.hidden_dim)
        attn = keys.new_empty(max_len, B, src.size(1))  # (T, B, S)
        spare = out.h
        w = None  # (B, S) the previous step's weights: none before the first step
        stop = StopCheck(src.device)
        for t in range(max_len):
            out.w, out.h = attn[t], spare
            read = y.masked_fill(y >= V, UNK) if model.copy else y  # a copied unknown word is read as <unk>
            x = W.emb[read]  # (B, E) the word this step reads, embedded
            decode_step(W, steps, x, hidden, w, out)
            spare, hidden, w = hidden, out.h, out.w
            if model.copy:  # the copy gate reads the embedded word too
                y, p_copy = next_words_copying(W, hidden[-1], out.c, w, x, src_ext, max(n_ext, V))
                copies.append(p_copy)
            else:
                y = next_words(W, hidden[-1], out.c)  # (B,)
            if B > 1 or not on_cpu:
                y = y.masked_fill(done, PAD)
                newly = (y == EOS) & ~done
                length = torch.where(newly, t + 1, length)
                done = done | newly | (budget <= t + 1)
            else:  # one sentence (a probe): fewer ops per step
                done = (y == EOS) | (budget <= t + 1)
                length = length if not bool(y[0] == EOS) else torch.full_like(length, t + 1)
            tokens.append(y)
            if stop(done):
                break
        copy = torch.stack(copies, 1) if model.copy else None
        return Decoded(torch.stack(tokens, 1), attn[: len(tokens)].transpose(0, 1).contiguous(), length, copy)


def encoder_gru(encoder: Encoder, x: torch.Tensor, src_len: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder.forward's `gru`: through scan in training on a CPU with the C kernels built,
    else torch.nn.GRU itself, packed where there is padding (written with torch ops alone,
    the scan measured no faster). x (B, S, E), src_len (B,) on the host
    -> (B, S, K), (layers * dirs, B, H)"""
    if torch.is_grad_enabled() and kernels_for(x) is not None:
        return scan(encoder, x, src_len)
    return encoder.torch_gru(x, src_len)


def scan(encoder: Encoder, x: torch.Tensor, src_len: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """encoder.gru(x) layer by layer through GRUScan (its backward pass is written by hand;
    the encoder's forward and backward measured ~1.2x faster than torch.nn.GRU's under
    autograd, in an A/B at the notebook's sizes; tests/test_gru_scan.py holds the two equal),
    with the same dropout between layers.

    A batch with padding (src_len (B,) on the host; None: none) gives what packed sequences
    give: each sentence's backward direction reads it from its own last word (its words
    reversed in place, the padding left after them), its final states are those at its own
    end, and its outputs past the end are zeros. The steps over padding that each direction
    runs after a sentence's end are never read, so they add exactly nothing to a gradient.
    (Packed batches through torch.nn.GRU's autograd cost ~3x the scan: at the defaults,
    more than half the batches mix two lengths.)
    x (B, S, E) -> (B, S, K), (layers * dirs, B, H)"""
    g = encoder.gru
    (B, S, _), H = x.shape, g.hidden_size
    x = x.transpose(0, 1)  # (S, B, E) time-major
    padded = src_len is not None and not bool((src_len == S).all())
    if padded:
        steps = torch.arange(S)[:, None]  # (S, 1)
        ends = src_len.to(torch.int64)[None, :]  # (1, B)
        # where each step of a sentence's backward direction reads: its words last to first,
        # then the padding in place (an involution: the same gather puts the outputs back)
        order = torch.where(steps < ends, ends - 1 - steps, steps).to(x.device)  # (S, B)
        last = (ends - 1).to(x.device)  # (1, B) each sentence's final step, in either direction
        real = (steps < ends).to(x.device, x.dtype).unsqueeze(2)  # (S, B, 1)

        def reverse(y: torch.Tensor) -> torch.Tensor:
            return y.gather(0, order.unsqueeze(2).expand_as(y))

        def final(states: torch.Tensor) -> torch.Tensor:
            return states.gather(0, last.unsqueeze(2).expand(1, B, H)).squeeze(0)  # (B, H)
    else:

        def reverse(y: torch.Tensor) -> torch.Tensor:
            return y.flip(0)

        def final(states: torch.Tensor) -> torch.Tensor:
            return states[-1]

    finals = []
    for layer in range(g.num_layers):
        outs = []
        for suffix in (f"_l{layer}", f"_l{layer}_reverse")[: 2 if g.bidirectional else 1]:
            W_ih, W_hh, b_ih, b_hh = (
                getattr(g, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
            )
            backward = suffix.endswith("reverse")
            gi = F.linear(reverse(x) if backward else x, W_ih, b_ih)  # (S, B, 3H): all steps at once
            states = GRUScan.apply(gi, x.new_zeros(B, H), W_hh, b_hh)  # (S, B, H)
            finals.append(final(states))
            outs.append(reverse(states) if backward else states)
        x = torch.cat(outs, 2) if len(outs) > 1 else outs[0]  # (S, B, K)
        if padded:
            x = x * real  # zeros past each sentence's end, as packed sequences give
        if layer < g.num_layers - 1:
            x = dropped(x, g.dropout, encoder.training)
    return x.transpose(0, 1), torch.stack(finals)


def run_all_steps(
    dec: Decoder,
    tgt_in: torch.Tensor,
    teacher_forcing: torch.Tensor,
    hidden: torch.Tensor,
    enc_out: torch.Tensor,
    keys: torch.Tensor,
    mask: torch.Tensor,
    src_ext: torch.Tensor | None = None,
    n_ext: int | None = None,
):
    """Every training step of the decoder at once through decoder_loop.py, with its
    hand-written backward pass (tests/test_decoder_loop.py and tests/test_parity.py hold it
    equal to Seq2Seq.forward_reference, the same steps under autograd). Dropout masks for all
    steps are drawn in one call each. src_ext (B, S): the source's extended ids and n_ext the
    extended vocabulary's size (copy only).
    -> top states (B, T, H), contexts (B, T, K), attention (B, T, S), and with copy the
    embedded words the steps read (B, T, E), dropout included (the gate reads them), else None"""
    B, T = tgt_in.shape
    L, H = dec.layers, dec.hidden_dim
    p = dec.dropout.p if dec.training else 0.0
    drop_emb = drop_between = None
    if p > 0:
        drop_emb = dropout_mask((B, T, dec.embedding.embedding_dim), p, tgt_in.device)
        if L > 1:
            drop_between = dropout_mask((L - 1, T, B, H), p, tgt_in.device)
    loc = dec.attention.location
    copy = dec.copy_gate is not None
    spec = LoopSpec(L, loc.kernel_size if loc is not None else 0, copy=copy, n_ext=n_ext if copy else None)
    # teacher_forcing (T,) bool: on a CPU the loop reads it as Python bools; elsewhere it
    # goes along to the device (an upload, never a read back) and the loop selects with it
    forcing = upload(teacher_forcing, tgt_in.device)
    states, contexts, attn, y_in = decoder_loop(
        spec,
        LoopArgs(
            tgt_in=tgt_in,
            forcing=forcing,
            h0=hidden,
            enc_out=enc_out,
            keys=keys,
            mask=mask,
            weights=loop_weights(dec),
            drop_emb=drop_emb,
            drop_between=drop_between,
            src_ext=src_ext,
        ),
    )
    if dec.copy_gate is None:
        return states, contexts, attn, None
    emb = dec.embedding(y_in)  # (B, T, E): the words read, <unk> for a copied unknown
    return states, contexts, attn, emb if drop_emb is None else emb * drop_emb


def loop_weights(dec: Decoder) -> DecoderWeights:
    """The decoder's weights by the names the decoder step reads them (decoder_loop.py), built
    once per batch or decoding call; the top layer's W_hh and the attention's W_s are stacked
    so that one matmul per step gives the recurrent projection and the query."""
    loc = dec.attention.location
    return DecoderWeights(
        emb=dec.embedding.weight,
        W_ie=dec.W_ie,
        b_i0=dec.b_ih[0],
        W_ic=dec.W_ic,
        W_top=torch.cat([dec.W_hh[-1], dec.attention.W_s.weight], 0),
        b_top=torch.cat([dec.b_hh[-1], dec.attention.W_s.bias], 0),
        v=dec.attention.v.weight,
        W_out=dec.out.weight,
        b_out=dec.out.bias,
        W_loc=loc.weight.flatten(1) if loc is not None else None,
        W_gate=dec.copy_gate.weight if dec.copy_gate is not None else None,
        b_gate=dec.copy_gate.bias if dec.copy_gate is not None else None,
        lower_W_hh=list(dec.W_hh[:-1]),
        lower_b_hh=list(dec.b_hh[:-1]),
        lower_W_ih=list(dec.W_ih),
        lower_b_ih=list(dec.b_ih[1:]),
    )


def decoding_weights(dec: Decoder, attend: bool | None = None) -> DecoderWeights:
    """The decoder's weights for a decoding call. attend=False: a zero score vector, i.e.
    uniform attention."""
    W = loop_weights(dec)
    if attend is False:
        W.v = torch.zeros_like(W.v)
    return W


def decode_step(
    W: DecoderWeights,
    steps,
    x: torch.Tensor,
    h: list[torch.Tensor],
    prev: torch.Tensor | None,
    out: StepOut,
) -> None:
    """One decoding step (no dropout, no gradients) through the training loop's own step,
    written into out (out.h the new states, out.w the weights (B, S), out.c the context):
    x (B, E) the embedded previous words; h per layer (B, H); prev (B, S) the previous step's
    weights (None at the first step), which the steps' location term reads."""
    gi = torch.addmm(W.b_i0, x, W.W_ie.t())  # (B, 3H)
    fill_biases(W, out.G, out.gh_lower)
    decoder_step(steps, W, gi, h, prev, out)
