"""GRU encoder-decoder with Bahdanau (additive) attention, the way a textbook writes it.

    encoder   embedding -> (bidirectional) GRU -> outputs h_j, final state -> bridge -> s_0
    attention e_tj = v . tanh(W_h h_j + W_s s_{t-1} [+ U f_tj]),  a_t = softmax_j(e_tj) over
              the real positions,  c_t = sum_j a_tj h_j        (BahdanauAttention.attend)
    decoder   s_t = GRU([embed(y_{t-1}); c_t], s_{t-1})         (Decoder.step)
    output    p(y_t) = softmax(W_o [s_t; c_t] + b_o)
    copy      (Config.copy, on for --corpus runs) p(y_t) mixes that with the attention weights
              scattered onto the source's words, by a gate from [c_t; s_t; embed(y_{t-1})],
              over an extended vocabulary holding the source's unknown words (engine/copy.py)

Seq2Seq.forward_reference, greedy_reference and beam run these in plain PyTorch under
autograd, one step at a time: `--impl reference` trains, evaluates and probes through them.
`--impl fast` (what `auto` picks for every configuration engine/fast implements: see
choose_impl) runs the same weights through engine/fast/, a hand-written decoder loop with
its own backward pass and C kernels, for training and greedy decoding; beam search has one
implementation, this file's; tests/test_parity.py holds the two equal.
To try another score, cell or output layer, change this file and train with
`--impl reference`; the parity tests then say what the fast layer lacks.

Shapes: B batch, S source length (words + EOS), T target steps, E embedding size,
H hidden size, K encoder output size (H, or 2H when bidirectional), A attention size, V vocab.

Padding never changes an answer: the encoder runs packed sequences when lengths differ (so
a sentence's states never see the padding after it), and attention masks every padded
position to exactly zero weight. A sentence decodes the same alone or in any batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .config import Config
from .copy import copy_mixture, extended_size
from .data import EOS, PAD, SOS, UNK
from .fast.decoder_loop import (
    DecoderWeights,
    LoopArgs,
    LoopSpec,
    StepOut,
    decoder_loop,
    decoder_step,
    location_band,
    location_term,
    next_words,
)
from .fast.gru_scan import GRUScan
from .fast.native import kernels_for
from .fast.step_kernels import steps_for
from .transfer import StopCheck, upload

IMPLS = ("auto", "reference", "fast")


def fast_lacks(cfg: Config) -> list[str]:
    """What of cfg engine/fast does not implement (empty: it runs this configuration). A
    change to this file's maths that the fast layer does not have belongs here too, so that
    `--impl auto` trains the reference until the fast layer catches up. Today it implements
    every configuration Config.validate accepts, except coverage; a copy model it trains
    (its decoding goes through the reference's steps: greedy and beam route it there)."""
    return ["coverage attention (--coverage)"] if cfg.coverage else []


def choose_impl(cfg: Config) -> str:
    """The one place that decides which implementation runs: --impl reference or fast as
    asked, and auto the fast layer wherever it implements the configuration."""
    if cfg.impl not in IMPLS:
        raise ValueError(f"--impl must be one of {', '.join(IMPLS)}, got {cfg.impl!r}")
    if cfg.impl == "fast" and fast_lacks(cfg):
        raise ValueError(f"--impl fast does not implement {', '.join(fast_lacks(cfg))}; use --impl reference")
    if cfg.impl != "auto":
        return cfg.impl
    return "reference" if fast_lacks(cfg) else "fast"


def describe_impl(impl: str) -> str:
    return (
        "model: reference (engine/model.py, plain PyTorch under autograd)"
        if impl == "reference"
        else "model: fast (engine/fast: hand-written loop and kernels, held equal to engine/model.py)"
    )


def gru_cell(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU update, torch.nn.GRU's equations (gates r, z, n in that order), from the input
    and recurrent projections gi, gh (B, 3H), biases included; h (B, H) -> (B, H)."""
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)  # reset gate
    z = torch.sigmoid(i_z + h_z)  # update gate
    n = torch.tanh(i_n + r * h_n)  # candidate state
    return (1 - z) * n + z * h


def host_lengths(src_len: torch.Tensor) -> torch.Tensor:
    """The lengths on the host, where packing, the step budget and the no-padding test read
    them. Callers pass the batch's CPU copy (engine/train.py, engine/evaluate.py), which is
    free; a device tensor is copied back here, one host sync per call."""
    return src_len if src_len.device.type == "cpu" else src_len.cpu()


def dropout_mask(shape: tuple[int, ...], p: float, device: torch.device) -> torch.Tensor:
    """An inverted-dropout mask: 1/(1-p) with probability 1-p, else 0. Drawn as uniform < 1-p,
    which a CPU makes ~30% faster than bernoulli_ (what F.dropout draws)."""
    return torch.rand(shape, device=device).lt_(1 - p).div_(1 - p)


def dropped(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    return x * dropout_mask(x.shape, p, x.device) if training and p > 0 else x


class Encoder(nn.Module):
    """Embedding, then a (bidirectional) multi-layer torch.nn.GRU. Batches are grouped by
    length, so most have no padding; where lengths differ, the GRU runs packed sequences, so
    a sentence's states never see the padding after it.

    Training on a CPU with the C kernels built, a batch without padding runs the same
    weights through engine/fast/gru_scan.py instead (its backward pass is written by hand; the
    encoder's forward and backward measured ~1.2x faster than torch.nn.GRU's under autograd,
    in an A/B at the notebook's sizes; tests/test_gru_scan.py holds the two equal).
    Written with torch ops alone, that scan measured no faster than torch.nn.GRU."""

    def __init__(
        self, vocab_size: int, embed_dim: int, hidden_dim: int, layers: int, dropout: float, bidirectional: bool
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(
            embed_dim,
            hidden_dim,
            layers,
            batch_first=True,
            dropout=dropout if layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.out_dim = hidden_dim * (2 if bidirectional else 1)

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, fast: bool = False):
        """src (B, S) on the model's device; src_len (B,) best the host copy: whether a batch
        has padding, and the packing, are decided from it (engine/model.py, host_lengths).
        fast: a training batch without padding may take engine/fast's GRU scan."""
        src_len = host_lengths(src_len)
        x = dropped(self.embedding(src), self.dropout.p, self.training)  # (B, S, E)
        if bool((src_len == src.size(1)).all()):  # no padding in this batch: no packing
            if fast and torch.is_grad_enabled() and kernels_for(x) is not None:
                return self.scan(x)
            out, hidden = self.gru(x)
        else:
            out, hidden = self.packed(x, src_len)
        return out, hidden  # (B, S, K), (layers * dirs, B, H)

    def packed(self, x: torch.Tensor, src_len: torch.Tensor):
        """self.gru over packed sequences, rows sorted longest first on the host. What
        pack_padded_sequence(enforce_sorted=False) does, the same sort and the same gathers
        (so the same numbers), except that its way back reads the order from the device
        (pad_packed_sequence: unsorted_indices.cpu()); here both orders are host tensors,
        uploaded. x (B, S, E), src_len (B,) on the host -> (B, S, K), (layers * dirs, B, H)"""
        lengths, order = torch.sort(src_len.to(torch.int64), descending=True)  # (B,) as torch sorts
        back = torch.empty_like(order)
        back[order] = torch.arange(len(order))  # (B,) the inverse permutation
        order, back = upload(order, x.device), upload(back, x.device)
        packed = pack_padded_sequence(x.index_select(0, order), lengths, batch_first=True)
        out, hidden = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.size(1))
        return out.index_select(0, back), hidden.index_select(1, back)

    def scan(self, x: torch.Tensor):
        """self.gru(x) for a batch without padding, layer by layer through GRUScan, with the
        same dropout between layers. x (B, S, E) -> (B, S, K), (layers * dirs, B, H)"""
        g = self.gru
        B, H = x.size(0), g.hidden_size
        x = x.transpose(0, 1)  # (S, B, E) time-major
        finals = []
        for layer in range(g.num_layers):
            outs = []
            for suffix in (f"_l{layer}", f"_l{layer}_reverse")[: 2 if g.bidirectional else 1]:
                W_ih, W_hh, b_ih, b_hh = (
                    getattr(g, name + suffix) for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                )
                reverse = suffix.endswith("reverse")
                gi = F.linear(x.flip(0) if reverse else x, W_ih, b_ih)  # (S, B, 3H): all steps at once
                states = GRUScan.apply(gi, x.new_zeros(B, H), W_hh, b_hh)  # (S, B, H)
                finals.append(states[-1])
                outs.append(states.flip(0) if reverse else states)
            x = torch.cat(outs, 2) if len(outs) > 1 else outs[0]  # (S, B, K)
            if layer < g.num_layers - 1:
                x = dropped(x, g.dropout, self.training)
        return x.transpose(0, 1), torch.stack(finals)


class LocationKernel(nn.Module):
    """The location term's weights, (A, 1, k): the shape, initialisation, place among the
    parameters and state-dict key (`location.weight`) of the nn.Conv1d it replaced, so old
    checkpoints and optimiser states load unchanged. It is never run as a convolution: the
    term is one matmul with its banded matrix (engine/fast/decoder_loop.py, location_band)."""

    def __init__(self, attn_dim: int, k: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(attn_dim, 1, k))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # nn.Conv1d's, to the bit

    @property
    def kernel_size(self) -> int:
        return self.weight.size(2)

    def band(self, S: int) -> torch.Tensor:  # (S, S*A)
        """f = conv1d(prev, weight, padding=k//2) is prev (B, S) @ band(S) (S, S*A)."""
        return location_band(self.weight.flatten(1), S)


class BahdanauAttention(nn.Module):
    """score(s, h_j) = v . tanh(W_h h_j + W_s s [+ U f_j]); weights = softmax over real
    positions; context = sum_j weights_j h_j.

    With location_kernel > 0 the score also reads f = conv(previous step's weights), the
    location-aware term of Chorowski et al. (2015): the model can learn "one to the left of
    where I looked last", which content alone cannot tell apart when a word repeats. The
    convolution is one matmul with a banded matrix in training (engine/fast/decoder_loop.py,
    location_band: its gradient is one matmul too) and a window of k neighbours in decoding
    (location_term: linear, not quadratic, in the sentence's length)."""

    def __init__(self, enc_dim: int, dec_dim: int, attn_dim: int, location_kernel: int = 0, coverage: bool = False):
        super().__init__()
        self.W_h = nn.Linear(enc_dim, attn_dim, bias=False)
        self.W_s = nn.Linear(dec_dim, attn_dim, bias=True)
        self.v = nn.Linear(attn_dim, 1, bias=False)
        self.location = LocationKernel(attn_dim, location_kernel) if location_kernel else None
        # w_c of e_tj = v . tanh(W_h h_j + W_s s + w_c cov_tj): absent without coverage, so a
        # checkpoint from before it has exactly the keys it needs
        self.coverage = nn.Parameter(torch.empty(attn_dim).uniform_(-0.1, 0.1)) if coverage else None

    def project_keys(self, enc_out: torch.Tensor) -> torch.Tensor:
        # W_h h_j does not depend on the decoder step: computed once per batch.
        return self.W_h(enc_out)  # (B, S, A)

    def attend(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        enc_out: torch.Tensor,
        mask: torch.Tensor,
        prev: torch.Tensor | None = None,
        uniform: bool = False,
        cov: torch.Tensor | None = None,
    ):
        """The attention's definition, plainly, under autograd (the reference model's; engine/fast
        runs the same maths in its decoder step).
        query = W_s s (B, A); keys = W_h h (B, S, A); enc_out (B, S, K); mask (B, S) True = real;
        prev (B, S): the previous step's weights (zeros before the first step). uniform: every
        real position the same weight (the ablation: the decoder without what it learned to look at).
        cov (B, S): the sum of every earlier step's weights (coverage only)"""
        energy = keys + query.unsqueeze(1)  # (B, S, A)
        if self.location is not None and prev is not None:
            energy = energy + (prev @ self.location.band(keys.size(1))).view_as(energy)
        if self.coverage is not None and cov is not None:
            energy = energy + cov.unsqueeze(-1) * self.coverage  # (B, S, A)
        scores = self.v(torch.tanh(energy)).squeeze(-1)  # (B, S)
        if uniform:
            scores = torch.zeros_like(scores)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = F.softmax(scores, dim=-1)  # (B, S), exactly 0 on padding
        context = torch.bmm(weights.unsqueeze(1), enc_out).squeeze(1)  # (B, K)
        return context, weights


class Decoder(nn.Module):
    """A GRU decoder that reads [word embedding; attention context] at every step.

    The GRU is written out (same equations and gate order as torch.nn.GRU) so that a step
    does only the work that depends on the step:
      - in training, the embedding half of the first layer's input projection is one matmul
        over all teacher-forced steps at once, not one per step;
      - the top layer's recurrent projection and the attention query W_s s share one matmul,
        since both read the previous top state s.
    One step function (engine/fast/decoder_loop.py, decoder_step) serves training (run_all_steps,
    with its hand-written backward pass) and decoding (decode_step, for greedy and beam).
    """

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int,
        hidden_dim: int,
        enc_dim: int,
        layers: int,
        dropout: float,
        location_kernel: int = 0,
        copy: bool = False,
        coverage: bool = False,
    ):
        super().__init__()
        H = hidden_dim
        self.hidden_dim, self.layers = H, layers
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.attention = BahdanauAttention(enc_dim, H, H, location_kernel, coverage)
        # first layer input = [embedding; context]; its input weights are split by part
        self.W_ie = nn.Parameter(torch.empty(3 * H, embed_dim))
        self.W_ic = nn.Parameter(torch.empty(3 * H, enc_dim))
        self.W_ih = nn.ParameterList([nn.Parameter(torch.empty(3 * H, H)) for _ in range(layers - 1)])
        self.W_hh = nn.ParameterList([nn.Parameter(torch.empty(3 * H, H)) for _ in range(layers)])
        self.b_ih = nn.ParameterList([nn.Parameter(torch.empty(3 * H)) for _ in range(layers)])
        self.b_hh = nn.ParameterList([nn.Parameter(torch.empty(3 * H)) for _ in range(layers)])
        bound = 1.0 / math.sqrt(H)  # torch.nn.GRU's initialisation
        for p in [self.W_ie, self.W_ic, *self.W_ih, *self.W_hh, *self.b_ih, *self.b_hh]:
            nn.init.uniform_(p, -bound, bound)
        # The output layer reads the new state and the context it attended to, so the word
        # just looked at reaches the prediction without squeezing through the GRU state.
        self.out = nn.Linear(H + enc_dim, vocab_size)
        # copy: p_gen from [context; new state; embedded input] (engine/copy.py); absent
        # without copy, so a checkpoint from before it has exactly the keys it needs
        self.copy_gate = nn.Linear(enc_dim + H + embed_dim, 1) if copy else None

    def step(
        self,
        y: torch.Tensor,
        h: list[torch.Tensor],
        enc_out: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
        prev: torch.Tensor,
        uniform: bool = False,
        src_ext: torch.Tensor | None = None,
        n_ext: int = 0,
        cov: torch.Tensor | None = None,
    ):
        """One decoder step, the reference: attend with the previous top state, feed
        [embedding; context] through the GRU layers, predict from [new state; context].
        y (B,) previous word ids (extended ids read as <unk>); h per layer (B, H); prev (B, S)
        the previous step's weights; src_ext (B, S) the source's extended ids and n_ext the
        extended vocabulary's size (copy only); cov (B, S) the earlier steps' weights summed
        (coverage only: the caller adds each step's weights)
        -> scores (B, V) logits, or with copy (B, n_ext) log-probabilities; new states per
        layer (B, H); weights (B, S); p_copy (B,) or None without copy"""
        s = h[-1]  # (B, H) previous top state
        query = self.attention.W_s(s)  # (B, A)
        context, weights = self.attention.attend(query, keys, enc_out, mask, prev, uniform, cov)  # (B, K), (B, S)
        V = self.embedding.num_embeddings
        emb = self.dropout(self.embedding(y.masked_fill(y >= V, UNK)))  # (B, E)
        x = F.linear(emb, self.W_ie, self.b_ih[0]) + F.linear(context, self.W_ic)  # (B, 3H)
        new = []
        for layer in range(self.layers):
            gh = F.linear(h[layer], self.W_hh[layer], self.b_hh[layer])  # (B, 3H)
            state = gru_cell(x, gh, h[layer])  # (B, H)
            new.append(state)
            if layer + 1 < self.layers:  # the next layer's input projection
                x = F.linear(self.dropout(state), self.W_ih[layer], self.b_ih[layer + 1])
        logits = self.logits(new[-1], context)  # (B, V)
        if self.copy_gate is None:
            return logits, new, weights, None
        gate = self.copy_gate(torch.cat([context, new[-1], emb], -1))  # (B, 1)
        logp, p_copy = copy_mixture(logits, gate, weights, src_ext, max(n_ext, V))
        return logp, new, weights, p_copy

    def run_all_steps(
        self,
        tgt_in: torch.Tensor,
        teacher_forcing: torch.Tensor,
        hidden: torch.Tensor,
        enc_out: torch.Tensor,
        keys: torch.Tensor,
        mask: torch.Tensor,
        src_ext: torch.Tensor | None = None,
        n_ext: int | None = None,
    ):
        """Every training step at once through engine/fast/decoder_loop.py, with its hand-written
        backward pass (tests/test_decoder_loop.py and tests/test_parity.py hold it equal to forward_reference,
        the same steps under autograd). Dropout masks for all steps are drawn in one call each.
        src_ext (B, S): the source's extended ids and n_ext the extended vocabulary's size (copy only).
        -> top states (B, T, H), contexts (B, T, K), attention (B, T, S), and with copy the
        embedded words the steps read (B, T, E), dropout included (the gate reads them), else None"""
        B, T = tgt_in.shape
        L, H = self.layers, self.hidden_dim
        p = self.dropout.p if self.training else 0.0
        drop_emb = drop_between = None
        if p > 0:
            drop_emb = dropout_mask((B, T, self.embedding.embedding_dim), p, tgt_in.device)
            if L > 1:
                drop_between = dropout_mask((L - 1, T, B, H), p, tgt_in.device)
        loc = self.attention.location
        copy = self.copy_gate is not None
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
                weights=self.loop_weights(),
                drop_emb=drop_emb,
                drop_between=drop_between,
                src_ext=src_ext,
            ),
        )
        if self.copy_gate is None:
            return states, contexts, attn, None
        emb = self.embedding(y_in)  # (B, T, E): the words read, <unk> for a copied unknown
        return states, contexts, attn, emb if drop_emb is None else emb * drop_emb

    def loop_weights(self) -> DecoderWeights:
        """The weights by the names the decoder step reads them (engine/fast/decoder_loop.py), built
        once per batch or decoding call; the top layer's W_hh and the attention's W_s are
        stacked so that one matmul per step gives the recurrent projection and the query."""
        loc = self.attention.location
        return DecoderWeights(
            emb=self.embedding.weight,
            W_ie=self.W_ie,
            b_i0=self.b_ih[0],
            W_ic=self.W_ic,
            W_top=torch.cat([self.W_hh[-1], self.attention.W_s.weight], 0),
            b_top=torch.cat([self.b_hh[-1], self.attention.W_s.bias], 0),
            v=self.attention.v.weight,
            W_out=self.out.weight,
            b_out=self.out.bias,
            W_loc=loc.weight.flatten(1) if loc is not None else None,
            W_gate=self.copy_gate.weight if self.copy_gate is not None else None,
            b_gate=self.copy_gate.bias if self.copy_gate is not None else None,
            lower_W_hh=list(self.W_hh[:-1]),
            lower_b_hh=list(self.b_hh[:-1]),
            lower_W_ih=list(self.W_ih),
            lower_b_ih=list(self.b_ih[1:]),
        )

    def decode_step(
        self,
        W: DecoderWeights,
        steps,
        y: torch.Tensor,
        h: list[torch.Tensor],
        prev: torch.Tensor | None,
        W_loc2: torch.Tensor | None,
        out: StepOut,
    ) -> None:
        """One decoding step (no dropout, no gradients) through the training loop's own step,
        written into out (out.h the new states, out.w the weights (B, S), out.c the context):
        y (B,) previous word ids; h per layer (B, H); prev (B, S) the previous step's weights
        (None at the first step); W_loc2 (A, k) twice the location weights, or None."""
        gi = torch.addmm(W.b_i0, W.emb[y], W.W_ie.t())  # (B, 3H)
        loc2 = location_term(prev, W_loc2) if W_loc2 is not None and prev is not None else None
        decoder_step(steps, W, gi, h, loc2, out)

    def logits(self, state: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        return self.out(torch.cat([state, context], dim=-1))  # (..., V)


@dataclass
class Decoded:
    tokens: torch.Tensor  # (B, T) predicted ids, EOS then PAD after it
    attention: torch.Tensor  # (B, T, S) the weights that produced each step
    length: torch.Tensor  # (B,) steps up to and including EOS (T if EOS never came)
    copy: torch.Tensor | None = None  # (B, T) p_copy per step (the copy mechanism's), else None


@dataclass
class BeamTrace:
    """One step of Seq2Seq.beam, as engine/stepper.py shows it."""

    live: list[list[int]]  # the hypotheses entering the step: their words
    scores: list[float]  # and their summed log-probabilities
    weights: torch.Tensor  # (n, S) each one's attention at this step
    logp: torch.Tensor  # (n, V) each one's next-word log-probabilities
    candidates: list[tuple[int, int, float, str]]  # the 2k best continuations: (hypothesis, word, sum, fate)
    best: tuple[float, list[int], list[torch.Tensor]] | None  # the best finished so far: (sum / length**alpha,
    # words, their weights (S,) per step)
    stopped: bool  # the search ends after this step


def beam_search(step, k: int, budget: int, alpha: float = 1.0, trace: list | None = None, device=None) -> Decoded:
    """Beam search, written plainly, over a step function: step(y (n,), parents (n,) or None)
    -> (log-probabilities (n, V), attention weights (n, S), p_copy (n,) or None without the
    copy mechanism) for the n live hypotheses, whose
    last words are y and whose states are the previous call's rows `parents` (None: the first
    call, from SOS, n = 1).

    Each step ranks the 2k best continuations by summed log-probability: one that ends (EOS,
    or any at the budget's last step) is set aside as finished, scored by its sum /
    length**alpha; the first k others live on, so k hypotheses live every step whatever ends;
    the rest are pruned. The search stops when no live hypothesis can beat the best finished
    one (log-probabilities only lower a sum s <= 0, so a live one ends at best at
    s / budget**alpha), when none lives, or at the budget. The answer is the best finished,
    the first of equals. trace: a list that gets a BeamTrace per step, for engine/stepper.py."""
    y = torch.full((1,), SOS, dtype=torch.long, device=device)
    parents = None
    scores = torch.zeros(1, device=device)
    seqs, rows, gates = [[]], [[]], [[]]  # each live hypothesis's words, weights, p_copy
    best, best_gates = None, []  # the best finished: (score, words, weights), and its p_copy
    for t in range(budget):
        logp, w, gate = step(y, parents)  # (n, V), (n, S), (n,) or None
        V = logp.size(1)
        total = (scores[:, None] + logp).view(-1)  # (n * V,)
        top = torch.topk(total, min(2 * k, total.numel()))
        keep, candidates = [], []
        for score, index in zip(top.values.tolist(), top.indices.tolist()):
            b, word = divmod(index, V)
            seq, att = seqs[b] + [word], rows[b] + [w[b]]
            g = gates[b] + [None if gate is None else gate[b]]
            if word == EOS or t + 1 == budget:
                fate = "finished"
                if best is None or score / len(seq) ** alpha > best[0]:
                    best, best_gates = (score / len(seq) ** alpha, seq, att), g
            elif len(keep) < k:
                fate = "survives"
                keep.append((score, b, word, seq, att, g))
            else:
                fate = "pruned"
            candidates.append((b, word, score, fate))
        stop = not keep or (best is not None and best[0] >= keep[0][0] / budget**alpha)
        if trace is not None:
            trace.append(BeamTrace(seqs, scores.tolist(), w, logp, candidates, best, stop))
        if stop:
            break
        parents = torch.tensor([b for _, b, *_ in keep], device=device)
        y = torch.tensor([word for _, _, word, *_ in keep], device=device)
        scores = torch.tensor([score for score, *_ in keep], device=device)
        seqs, rows, gates = [h[3] for h in keep], [h[4] for h in keep], [h[5] for h in keep]
    _, seq, att = best
    copy = None if best_gates[0] is None else torch.stack(best_gates)[None]  # (1, T)
    return Decoded(
        torch.tensor([seq], device=device), torch.stack(att)[None], torch.tensor([len(seq)], device=device), copy
    )


class Seq2Seq(nn.Module):
    def __init__(self, vocab_size: int, cfg: Config):
        super().__init__()
        # attention=False is the control experiment: the score vector v is zero and frozen, so
        # every score is equal and the masked softmax gives exactly uniform weights (the context
        # is the mean of the encoder outputs, whatever the decoder state); everything else,
        # the training loop included, is the same
        self.use_attention = cfg.attention
        self.encoder = Encoder(vocab_size, cfg.embed_dim, cfg.hidden_dim, cfg.layers, cfg.dropout, cfg.bidirectional)
        self.decoder = Decoder(
            vocab_size,
            cfg.embed_dim,
            cfg.hidden_dim,
            self.encoder.out_dim,
            cfg.layers,
            cfg.dropout,
            cfg.location_kernel,
            cfg.copy_on,
            cfg.coverage,
        )
        self.copy = cfg.copy_on
        # A bidirectional encoder has two final states per layer: a learned bridge joins them.
        self.bridge = nn.Linear(2 * cfg.hidden_dim, cfg.hidden_dim) if cfg.bidirectional else None
        self.layers = cfg.layers
        self.impl = choose_impl(cfg)  # "reference" or "fast": forward, greedy and beam follow it
        if not self.use_attention:
            self.decoder.attention.v.weight.requires_grad_(False)
            self.zero_scores()
            # checkpoints of the control from before v was frozen trained a v that was never used
            self.register_load_state_dict_post_hook(lambda model, _: model.zero_scores())

    @torch.no_grad()
    def zero_scores(self) -> None:
        if not self.use_attention:
            self.decoder.attention.v.weight.zero_()

    def encode(self, src: torch.Tensor, src_len: torch.Tensor):
        """src (B, S) on the model's device; src_len (B,) on the host (best: nothing is read
        back) or the device."""
        enc_out, hidden = self.encoder(src, src_len, fast=self.impl == "fast")
        src_len = upload(src_len, src.device)  # for the mask: an upload at most
        if self.bridge is not None:
            L, B, H = self.layers, hidden.size(1), hidden.size(2)
            both = hidden.view(L, 2, B, H).permute(0, 2, 1, 3).reshape(L, B, 2 * H)
            hidden = torch.tanh(self.bridge(both))  # (layers, B, H)
        mask = torch.arange(src.size(1), device=src.device)[None, :] < src_len[:, None]  # (B, S)
        keys = self.decoder.attention.project_keys(enc_out)
        return enc_out, hidden.contiguous(), keys, mask

    def forward(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        teacher_forcing: torch.Tensor | Sequence[bool],
        src_ext: torch.Tensor | None = None,
        n_ext: int | None = None,
    ):
        """Training pass. teacher_forcing (T,) bools (a tensor, best on the host, or a list):
        whether step t reads the true previous word (step 0 always reads SOS). src_len: best
        the batch's host copy (see encode). src_ext (B, S): the source's extended ids (copy;
        None: src's); n_ext: the extended vocabulary's size, best from the host batch
        (Batch.extended_size; None: read from src_ext, a wait off the CPU). Returns logits
        (B, T, V), with copy log-probabilities (B, T, V + unknowns), and attention (B, T, S)."""
        if not isinstance(teacher_forcing, torch.Tensor):
            teacher_forcing = torch.tensor(list(teacher_forcing), dtype=torch.bool)
        if self.impl == "reference":
            return self.forward_reference(src, src_len, tgt_in, teacher_forcing, src_ext, n_ext)
        src_ext, n_ext = self.extended(src, src_ext, n_ext)
        enc_out, hidden, keys, mask = self.encode(src, src_len)
        dec = self.decoder
        states, contexts, attn, emb = dec.run_all_steps(
            tgt_in, teacher_forcing, hidden, enc_out, keys, mask, src_ext, n_ext
        )
        logits = dec.logits(states, contexts)  # (B, T, V)
        if emb is None:
            return logits, attn
        # the copy mixture of every step at once, as Decoder.step mixes one
        (B, T, V), S = logits.shape, attn.size(2)
        gate = dec.copy_gate(torch.cat([contexts, states, emb], -1))  # (B, T, 1)
        logp, _ = copy_mixture(
            logits.reshape(B * T, V),
            gate.reshape(B * T, 1),
            attn.reshape(B * T, S),
            src_ext.repeat_interleave(T, 0),
            n_ext,
        )
        return logp.view(B, T, -1), attn

    def forward_reference(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        teacher_forcing: torch.Tensor,
        src_ext: torch.Tensor | None = None,
        n_ext: int | None = None,
    ):
        """forward, one Decoder.step at a time under autograd: the model as written above.
        A step that is not teacher-forced reads the previous step's argmax."""
        src_ext, n_ext = self.extended(src, src_ext, n_ext)
        enc_out, hidden, keys, mask = self.encode(src, src_len)
        h = list(hidden.unbind(0))  # per layer (B, H)
        w = torch.zeros(mask.shape, dtype=enc_out.dtype, device=src.device)  # (B, S) no previous attention
        forced = teacher_forcing.tolist()
        logits, attention = [], []
        cov = torch.zeros_like(w)  # (B, S) nothing attended yet
        y = tgt_in[:, 0]  # SOS
        for t in range(tgt_in.size(1)):
            if t > 0:
                y = tgt_in[:, t] if forced[t] else logits[-1].argmax(-1)
            step_logits, h, w, _ = self.decoder.step(
                y, h, enc_out, keys, mask, w, src_ext=src_ext, n_ext=n_ext, cov=cov
            )
            cov = cov + w
            logits.append(step_logits)
            attention.append(w)
        return torch.stack(logits, 1), torch.stack(attention, 1)  # (B, T, V), (B, T, S)

    def extended(
        self, src: torch.Tensor, src_ext: torch.Tensor | None, n_ext: int | None = None
    ) -> tuple[torch.Tensor | None, int]:
        """The source's extended ids (src's when none are given) and the extended vocabulary's
        size (n_ext when given, else read from them: a wait off the CPU), for the copy
        mechanism; (None, 0) without it."""
        if not self.copy:
            return None, 0
        src_ext = src if src_ext is None else src_ext
        return src_ext, extended_size(self.decoder.out.out_features, src_ext) if n_ext is None else n_ext

    @torch.inference_mode()
    def greedy_reference(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        max_steps: int | None = None,
        attend: bool | None = None,
        src_ext: torch.Tensor | None = None,
        trace: list | None = None,
        n_ext: int | None = None,
    ) -> Decoded:
        """greedy, one Decoder.step at a time: each sentence takes its argmax word until EOS
        or its budget of 2n + 5 steps (capped at max_steps); PAD after that. With copy the
        words are extended ids: an unknown word copied is its extended id. trace: a list that
        gets each step's (logits (B, V), weights (B, S), p_copy (B,) or None), for
        engine/stepper.py. n_ext: see forward. When to stop is asked of a StopCheck
        (engine/transfer.py): off the CPU the host never waits for it."""
        src_ext, n_ext = self.extended(src, src_ext, n_ext)
        src_len = host_lengths(src_len)
        enc_out, hidden, keys, mask = self.encode(src, src_len)
        budget = 2 * src_len + 5 if max_steps is None else torch.clamp(2 * src_len + 5, max=max_steps)
        max_len = int(budget.max())  # the host copy: no wait
        B, dev = src.size(0), src.device
        h = list(hidden.unbind(0))
        w = torch.zeros(mask.shape, dtype=enc_out.dtype, device=dev)
        y = torch.full((B,), SOS, dtype=torch.long, device=dev)
        done = torch.zeros(B, dtype=torch.bool, device=dev)
        budget = upload(budget, dev)
        length = budget.clone()
        cov = torch.zeros_like(w)
        tokens, attention, copies = [], [], []
        stop = StopCheck(dev)
        for t in range(max_len):
            logits, h, w, p_copy = self.decoder.step(
                y, h, enc_out, keys, mask, w, uniform=attend is False, src_ext=src_ext, n_ext=n_ext, cov=cov
            )
            cov = cov + w
            copies.append(p_copy)
            if trace is not None:
                trace.append((logits, w, p_copy))
            y = logits.argmax(-1).masked_fill(done, PAD)  # (B,)
            newly = (y == EOS) & ~done
            length = torch.where(newly, t + 1, length)
            done = done | newly | (budget <= t + 1)
            tokens.append(y)
            attention.append(w)
            if stop(done):
                break
        copy = torch.stack(copies, 1) if self.copy else None
        return Decoded(torch.stack(tokens, 1), torch.stack(attention, 1), length, copy)

    @torch.inference_mode()
    def beam(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        k: int,
        alpha: float = 1.0,
        src_ext: torch.Tensor | None = None,
        trace: list | None = None,
        n_ext: int | None = None,
    ) -> Decoded:
        """Beam search for one sentence (src (1, S)): beam_search over Decoder.step, its live
        hypotheses the batch, ranked by summed log-probability divided by length**alpha (so
        short ones do not win just for being short); the budget is 2n + 5 steps. Returns the
        best hypothesis in greedy()'s format. trace: see beam_search. It reads the scores
        back at every step (the search is Python lists), so on a GPU it waits at every word;
        one sentence at a time, it is the probe's and the evaluation's --beam, not
        training's. A fixed-width search kept on the device, through engine/fast's step,
        measured no faster on a CPU (bench/decoding.py), so this is the only one."""
        src_ext, n_ext = self.extended(src, src_ext, n_ext)
        src_len = host_lengths(src_len)
        enc_out, hidden, keys, mask = self.encode(src, src_len)
        h = list(hidden.unbind(0))  # per layer (n, H), n live hypotheses
        w = torch.zeros(mask.shape, dtype=enc_out.dtype, device=src.device)  # (n, S)
        cov = torch.zeros_like(w)  # (n, S) each hypothesis's own

        def step(y: torch.Tensor, parents: torch.Tensor | None):
            nonlocal h, w, cov
            if parents is not None:
                h, w, cov = [state[parents] for state in h], w[parents], cov[parents]
            n = y.size(0)
            ext = src_ext.expand(n, -1) if src_ext is not None else None
            logits, h, w, p_copy = self.decoder.step(
                y,
                h,
                enc_out.expand(n, -1, -1),
                keys.expand(n, -1, -1),
                mask.expand(n, -1),
                w,
                src_ext=ext,
                n_ext=n_ext,
                cov=cov,
            )
            cov = cov + w
            logp = logits if self.copy else torch.log_softmax(logits, -1)  # copy's are log-probabilities
            return logp, w, p_copy

        return beam_search(step, k, int(2 * src_len[0] + 5), alpha, trace, src.device)

    def decoding_weights(self, attend: bool | None = None):
        """The decoder's weights for a decoding call, and twice the location weights (the
        loop's sigmoid form) or None. attend=False: a zero score vector, i.e. uniform attention."""
        W = self.decoder.loop_weights()
        if attend is False:
            W.v = torch.zeros_like(W.v)
        return W, (W.W_loc * 2 if W.W_loc is not None else None)

    @torch.inference_mode()
    def greedy(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        max_steps: int | None = None,
        attend: bool | None = None,
        src_ext: torch.Tensor | None = None,
        n_ext: int | None = None,
    ) -> Decoded:
        """Batched greedy decoding; stops once every sentence has emitted EOS or used its
        step budget (2n + 5 for n source tokens, from its real length, so padding cannot
        change it). attend=False swaps the learned attention for uniform weights (an ablation):
        the control's own way, a zero score vector. src_ext, n_ext: see forward.

        src_len: best the host copy (the budget is read from it). Whether all are done is
        asked of a StopCheck (engine/transfer.py): read every step on a CPU (free); on CUDA
        it arrives asynchronously and the loop stops a step or a few later, the host never
        waiting; elsewhere the whole budget runs (finished sentences just emit PAD). Off the
        CPU, tokens and attention may so run past the last EOS; `length` says where each ends."""
        if self.impl == "reference" or self.copy:  # the fast layer trains copy; it decodes here
            return self.greedy_reference(src, src_len, max_steps, attend, src_ext, n_ext=n_ext)
        dec = self.decoder
        src_len = host_lengths(src_len)
        enc_out, hidden, keys, mask = self.encode(src, src_len)
        W, W_loc2 = self.decoding_weights(attend)
        steps = steps_for(keys, enc_out=enc_out, v=W.v, mask=mask, keys=keys)
        hidden = list(hidden.unbind(0))  # per layer (B, H)
        B = src.size(0)
        on_cpu = src.device.type == "cpu"
        budget = 2 * src_len + 5 if max_steps is None else torch.clamp(2 * src_len + 5, max=max_steps)
        max_len = int(budget.max())  # the host copy: no sync
        budget = upload(budget, src.device)
        y = torch.full((B,), SOS, dtype=torch.long, device=src.device)
        done = torch.zeros(B, dtype=torch.bool, device=src.device)
        length = budget.clone()
        tokens = []
        # written in place: each step's weights into its row, the states into two alternating sets
        out = StepOut.empty(keys, enc_out, self.layers, dec.hidden_dim)
        attn = keys.new_empty(max_len, B, src.size(1))  # (T, B, S)
        spare = out.h
        w = None  # (B, S) the previous step's weights: none before the first step
        stop = StopCheck(src.device)
        for t in range(max_len):
            out.w, out.h = attn[t], spare
            dec.decode_step(W, steps, y, hidden, w, W_loc2, out)
            spare, hidden, w = hidden, out.h, out.w
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
        return Decoded(torch.stack(tokens, 1), attn[: len(tokens)].transpose(0, 1).contiguous(), length)
