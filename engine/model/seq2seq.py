"""GRU encoder-decoder with Bahdanau (additive) attention, the way a textbook writes it.

    encoder   embedding -> (bidirectional) GRU -> outputs h_j, final state -> bridge -> s_0
    attention e_tj = v . tanh(W_h h_j + W_s s_{t-1} [+ U f_tj]),  a_t = softmax_j(e_tj) over
              the real positions,  c_t = sum_j a_tj h_j        (Attention.attend)
              (Config.score: or Luong's general s . W h_j, dot s . h_j, or the scaled dot
              product (W_q s) . (W_k h_j) / sqrt(A), beside it in Attention.score; or
              shift: the previous step's weights moved by a soft offset, Attention.shift_scores)
    decoder   s_t = GRU([embed(y_{t-1}); c_t], s_{t-1})         (Decoder.step)
    output    p(y_t) = softmax(W_o [s_t; c_t] + b_o)
    copy      (Config.copy, on for --corpus runs) p(y_t) mixes that with the attention weights
              scattered onto the source's words, by a gate from [c_t; s_t; embed(y_{t-1})],
              over an extended vocabulary holding the source's unknown words (engine/model/copy.py)

Seq2Seq.forward_reference, greedy_reference and beam run these in plain PyTorch under
autograd, one step at a time: `--impl reference` trains, evaluates and probes through them.
Nothing here imports engine/fast: where it implements the configuration, engine/impl.py
attaches it to the model (Seq2Seq.fast), and training and greedy decoding then run the same
weights through its hand-written decoder loop with its own backward pass and C kernels;
beam search has one implementation, this file's. tests/test_parity.py holds the two equal.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .copy import copy_mixture, extended_size
from .intervene import AttentionHook, Interventions, Traced
from .tokens import EOS, PAD, SOS, UNK
from .transfer import StopCheck, upload


class Architecture(Protocol):
    """What the model reads of a configuration (engine/train/config.py's Config has it all)."""

    embed_dim: int
    hidden_dim: int
    layers: int
    dropout: float
    bidirectional: bool
    location_kernel: int  # 0: content-only attention
    attention: bool  # False: the control, uniform weights
    coverage: bool
    score: str  # engine/train/config.py's SCORES: additive, general, dot, scaled-dot, shift

    @property
    def copy_on(self) -> bool: ...


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
    them. Callers pass the batch's CPU copy (engine/train/trainer.py, engine/insight/evaluate.py),
    which is free; a device tensor is copied back here, one host sync per call."""
    return src_len if src_len.device.type == "cpu" else src_len.cpu()


def dropout_mask(shape: tuple[int, ...], p: float, device: torch.device) -> torch.Tensor:
    """An inverted-dropout mask: 1/(1-p) with probability 1-p, else 0. Drawn as uniform < 1-p,
    which a CPU makes ~30% faster than bernoulli_ (what F.dropout draws)."""
    return torch.rand(shape, device=device).lt_(1 - p).div_(1 - p)


def dropped(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    return x * dropout_mask(x.shape, p, x.device) if training and p > 0 else x


# runs an encoder's GRU over a batch: (encoder, x (B, S, E), src_len (B,) on the host) ->
# (B, S, K) with zeros past each sentence's end, (layers * dirs, B, H), as
# encoder.gru(x) does without padding and Encoder.packed does with it
EncoderGRU = Callable[["Encoder", torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class Encoder(nn.Module):
    """Embedding, then a (bidirectional) multi-layer torch.nn.GRU. Batches are grouped by
    length, so most have no padding; where lengths differ, the GRU runs packed sequences, so
    a sentence's states never see the padding after it.

    A batch may run the same weights through another GRU (forward's `gru`): engine/fast's
    scan, in training on a CPU with the C kernels built."""

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

    def forward(self, src: torch.Tensor, src_len: torch.Tensor, gru: EncoderGRU | None = None):
        """src (B, S) on the model's device; src_len (B,) best the host copy: whether a batch
        has padding, and the packing, are decided from it (host_lengths). gru: runs
        self.gru's weights over the batch in its place (engine/fast's encoder_gru); None:
        self.gru itself, packed where there is padding."""
        src_len = host_lengths(src_len)
        x = dropped(self.embedding(src), self.dropout.p, self.training)  # (B, S, E)
        if gru is not None:
            return gru(self, x, src_len)
        return self.torch_gru(x, src_len)  # (B, S, K), (layers * dirs, B, H)

    def torch_gru(self, x: torch.Tensor, src_len: torch.Tensor):
        """self.gru over x (B, S, E), packed where src_len (B,) (on the host) has padding.
        -> (B, S, K), (layers * dirs, B, H)"""
        if bool((src_len == x.size(1)).all()):  # no padding in this batch: no packing
            return self.gru(x)
        return self.packed(x, src_len)

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


def band_taps(S: int, k: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """For every (s', s): which kernel tap links prev[s'] to f[s] (s' - s + k//2), and
    whether that tap exists. -> offset (S', S) long, inside (S', S) bool"""
    pos = torch.arange(S, device=device)
    offset = pos[:, None] - pos[None, :] + k // 2
    return offset, (offset >= 0) & (offset < k)


def location_band(W_loc: torch.Tensor, S: int) -> torch.Tensor:
    """The location term as a matrix, the one place it is built (the attention here, and
    engine/fast's training loop, forward and backward): f = conv1d(prev, W_loc, padding=k//2),
    the Conv1d of Chorowski et al., is prev (B, S) @ M = f (B, S*A), with
    M[s', s, a] = W_loc[a, s' - s + k//2] where that index exists. One matmul, and its
    gradient is one matmul too. W_loc (A, k) -> (S, S*A)"""
    A, k = W_loc.shape
    offset, inside = band_taps(S, k, W_loc.device)
    M = W_loc.t()[offset.clamp(0, k - 1)] * inside[..., None]  # (S', S, A)
    return M.reshape(S, S * A)


class LocationKernel(nn.Module):
    """The location term's weights, (A, 1, k): the shape, initialisation, place among the
    parameters and state-dict key (`location.weight`) of the nn.Conv1d it replaced, so old
    checkpoints and optimiser states load unchanged. It is never run as a convolution: the
    term is one matmul with its banded matrix (location_band)."""

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


SHIFTS = (-2, -1, 0, 1, 2)  # the shift score's offsets, in positions: -1 is one to the left
TINY = 1e-30  # a weight's floor under the shift score's log: 0 would give -inf times gamma


@dataclass
class PlaceQuery:
    """The shift score's reading of the decoder state, per sentence: offsets (B, D) a
    distribution over SHIFTS; gamma (B, 1) >= 1; gate (B, 1) the content's share in (0, 1);
    first (B, 1) the first real position's share of the start (the rest: the last's)."""

    offsets: torch.Tensor
    gamma: torch.Tensor
    gate: torch.Tensor
    first: torch.Tensor

    @classmethod
    def of(cls, raw: torch.Tensor) -> PlaceQuery:
        """raw (B, len(SHIFTS) + 3): Attention.locate's output."""
        D = len(SHIFTS)
        return cls(
            F.softmax(raw[:, :D], -1),
            1 + F.softplus(raw[:, D : D + 1]),
            torch.sigmoid(raw[:, D + 1 : D + 2]),
            torch.sigmoid(raw[:, D + 2 : D + 3]),
        )


def first_or_last(mask: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
    """Weights `first` on the first real position and 1 - first on the last (the source's
    EOS), measured from each sentence's own ends. mask (B, S), first (B, 1) -> (B, S)"""
    B, S = mask.shape
    last = F.one_hot(mask.sum(-1) - 1, S).to(first.dtype)  # (B, S)
    at_first = F.one_hot(torch.zeros(B, dtype=torch.long, device=mask.device), S).to(first.dtype)
    return first * at_first + (1 - first) * last


def shifted(w: torch.Tensor, mask: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """w moved by each offset in SHIFTS, wrapping round each sentence's n real positions,
    and mixed by the offsets' weights: out_j = sum_d offsets_d w[(j - d) mod n].
    w (B, S), mask (B, S), offsets (B, D) -> (B, S), 0 on padding"""
    B, S = w.shape
    n = mask.sum(-1)  # (B,) real positions
    d = torch.tensor(SHIFTS, device=w.device)  # (D,)
    pos = torch.arange(S, device=w.device)
    source = (pos[None, :, None] - d[None, None, :]) % n[:, None, None]  # (B, S, D)
    moved = torch.gather(w, 1, source.view(B, -1)).view(B, S, len(SHIFTS))  # (B, S, D)
    return (moved * offsets[:, None, :]).sum(-1) * mask  # (B, S)


class Attention(nn.Module):
    """weights = softmax over real positions of score(s, h_j); context = sum_j weights_j h_j.
    The score (Config.score), from the previous top state s and each encoder output h_j:

        additive    v . tanh(W_h h_j + W_s s [+ U f_j] [+ w_c cov_j])   Bahdanau et al. 2015
        general     s . (W_h h_j [+ U f_j] [+ w_c cov_j])               Luong et al. 2015
        dot         s . (h_j [+ U f_j] [+ w_c cov_j])                   Luong et al. 2015
        scaled-dot  (W_s s) . (W_h h_j [+ U f_j] [+ w_c cov_j]) / sqrt(A)   Vaswani et al. 2017
        shift       the previous weights moved by a soft offset (below)  Graves et al. 2014

    Each splits into keys, from the h_j alone (project_keys: once per batch), and a query,
    from s (project_query: once per step). dot has no weights of its own, so it needs s and
    h_j of one size: a bidirectional encoder's h_j (2H) is read as the sum of its two
    directions' states, [I I] h_j (H); a learned projection there would make it the general
    score.

    With location_kernel > 0 the score also reads f = conv(previous step's weights), the
    location-aware term of Chorowski et al. (2015): the model can learn "one to the left of
    where I looked last", which content alone cannot tell apart when a word repeats. The
    convolution is one matmul with a banded matrix (location_band: its gradient is one matmul
    too); engine/fast's decoding reads a window of k neighbours instead (location_term:
    linear, not quadratic, in the sentence's length). Coverage adds w_c cov_j, the weight each
    position has had so far. Both are A-wide and join the keys, in every score: the additive
    score reads them inside its tanh, a product meets them with the query, so that the decoder
    state decides how much where it looked last counts. (A number added to a product's score
    instead, a k-tap filter over the previous weights, learned far slower: docs/design.md.)

    The shift score decides where to look from position, not content (shift_scores): the
    location addressing of a Neural Turing Machine (Graves et al. 2014), the relative,
    monotonic attention of Ray Chowdhury & Caragea (2023). From what the last step read,
    c_{t-1} = sum_j w_{t-1,j} h_j (not the decoder state, a sum over every step so far that
    drifts past the trained lengths), it reads a gate g, a distribution p over the offsets
    SHIFTS and a sharpening gamma >= 1, and

        w_g = g softmax(additive score) + (1 - g) w_{t-1}      the content's share, or none
        w~_j = sum_d p_d w_g[(j - d) mod n]                     moved by a soft offset
        w_j = w~_j^gamma / sum_i w~_i^gamma                     sharpened (a softmax of gamma log w~)

    over the n real positions (words and EOS). Before the first step w_{t-1} is a learned mix
    of the first and the last real position. The shift wraps round: weight moved left of
    the first word lands on the source's EOS, whose encoder output (its backward state has
    read EOS alone) tells the decoder to stop, whatever the sentence's length."""

    def __init__(
        self,
        enc_dim: int,
        dec_dim: int,
        attn_dim: int,
        location_kernel: int = 0,
        coverage: bool = False,
        score: str = "additive",
    ):
        super().__init__()
        self.kind = score
        additive = score in ("additive", "shift")  # shift's content part is the additive score
        self.scale = 1.0 / math.sqrt(attn_dim) if score == "scaled-dot" else 1.0
        # the keys' width: A, or H where the query is s itself (general, dot)
        key_dim = dec_dim if score in ("general", "dot") else attn_dim
        self.W_h = nn.Linear(enc_dim, key_dim, bias=False) if score != "dot" else None
        self.W_s = nn.Linear(dec_dim, attn_dim, bias=additive) if score not in ("general", "dot") else None
        self.v = nn.Linear(attn_dim, 1, bias=False) if additive else None
        self.fold = enc_dim // dec_dim  # dot: how many directions' states make one h_j
        self.location = LocationKernel(key_dim, location_kernel) if location_kernel else None
        # w_c of the key's w_c cov_tj: absent without coverage, so a checkpoint from before it
        # has exactly the keys it needs
        self.coverage = nn.Parameter(torch.empty(key_dim).uniform_(-0.1, 0.1)) if coverage else None
        # shift: from what the last step read, the offsets' logits, then the sharpening, the
        # content's gate and the first position's share of the start (PlaceQuery); absent for
        # the other scores
        self.locate = nn.Linear(enc_dim, len(SHIFTS) + 3) if score == "shift" else None

    def project_keys(self, enc_out: torch.Tensor) -> torch.Tensor:
        """The keys do not depend on the decoder step: computed once per batch.
        enc_out (B, S, K) -> (B, S, A): W_h h_j, or dot's h_j with its directions summed (B, S, H)"""
        if self.W_h is None:
            return enc_out.unflatten(-1, (self.fold, -1)).sum(-2)  # (B, S, H)
        return self.W_h(enc_out)  # (B, S, A)

    def project_query(self, s: torch.Tensor) -> torch.Tensor:
        """s (B, H) the previous top state -> (B, A): W_s s, or s itself (general, dot)."""
        return s if self.W_s is None else self.W_s(s)

    def shift_scores(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        enc_out: torch.Tensor,
        mask: torch.Tensor,
        prev: torch.Tensor,
        cov: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The shift score (see the class): gamma log w~_j, whose masked softmax is the
        sharpened w~^gamma. query (B, A) project_query's; keys (B, S, A); enc_out (B, S, K);
        mask (B, S); prev (B, S) the previous weights, a row of zeros before the first step
        -> (B, S)"""
        read = torch.bmm(prev.unsqueeze(1), enc_out).squeeze(1)  # (B, K) the last step's context
        place = PlaceQuery.of(self.locate(read))
        content = self.score(query, keys, prev, cov)  # (B, S) additive
        content = F.softmax(content.masked_fill(~mask, float("-inf")), -1)  # (B, S)
        start = first_or_last(mask, place.first)  # (B, S)
        prev = torch.where(prev.sum(-1, keepdim=True) > 0, prev, start)  # (B, S)
        w = place.gate * content + (1 - place.gate) * prev  # (B, S)
        w = shifted(w, mask, place.offsets)  # (B, S), 0 on padding
        return place.gamma * torch.log(w.clamp_min(TINY))  # (B, S)

    def score(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        prev: torch.Tensor | None = None,
        cov: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """e_tj at every position j, padding included (attend masks it).
        query (B, A), keys (B, S, A), prev (B, S), cov (B, S) -> (B, S)"""
        S = keys.size(1)
        if self.v is not None:  # additive
            energy = keys + query.unsqueeze(1)  # (B, S, A)
            if self.location is not None and prev is not None:
                energy = energy + (prev @ self.location.band(S)).view_as(energy)
            if self.coverage is not None and cov is not None:
                energy = energy + cov.unsqueeze(-1) * self.coverage  # (B, S, A)
            return self.v(torch.tanh(energy)).squeeze(-1)  # (B, S)
        # general, dot, scaled-dot: the query's product with each key, the key k_j + U f_j + w_c cov_j
        if self.location is not None and prev is not None:
            keys = keys + (prev @ self.location.band(S)).view_as(keys)  # (B, S, A)
        if self.coverage is not None and cov is not None:
            keys = keys + cov.unsqueeze(-1) * self.coverage  # (B, S, A)
        return torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1) * self.scale  # (B, S)

    def attend(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        enc_out: torch.Tensor,
        mask: torch.Tensor,
        prev: torch.Tensor | None = None,
        uniform: bool = False,
        cov: torch.Tensor | None = None,
        hook: AttentionHook | None = None,
    ):
        """The attention's definition, plainly, under autograd (the reference model's; engine/fast
        runs the same maths, the additive score's, in its decoder step).
        query (B, A) project_query's; keys (B, S, A) project_keys's; enc_out (B, S, K); mask (B, S) True = real;
        prev (B, S): the previous step's weights (zeros before the first step). uniform: every
        real position the same weight (the ablation: the decoder without what it learned to look at).
        cov (B, S): the sum of every earlier step's weights (coverage only). hook: sees the
        scores and then the weights, and may edit them (engine/model/intervene.py)"""
        if self.locate is not None:
            scores = self.shift_scores(query, keys, enc_out, mask, prev, cov)  # (B, S)
        else:
            scores = self.score(query, keys, prev, cov)  # (B, S)
        if uniform:
            scores = torch.zeros_like(scores)
        scores = scores.masked_fill(~mask, float("-inf"))
        if hook is not None:
            scores = hook.scores(scores)
        weights = F.softmax(scores, dim=-1)  # (B, S), exactly 0 on padding
        if hook is not None:
            weights = hook.weights(weights)
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
    engine/fast runs the same steps with its own step function (decoder_loop.py, decoder_step)
    for training, with a hand-written backward pass, and for greedy decoding.
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
        score: str = "additive",
    ):
        super().__init__()
        H = hidden_dim
        self.hidden_dim, self.layers = H, layers
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.dropout = nn.Dropout(dropout)
        self.attention = Attention(enc_dim, H, H, location_kernel, coverage, score)
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
        # copy: p_gen from [context; new state; embedded input] (engine/model/copy.py); absent
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
        hook: AttentionHook | None = None,
    ):
        """One decoder step, the reference: attend with the previous top state, feed
        [embedding; context] through the GRU layers, predict from [new state; context].
        y (B,) previous word ids (extended ids read as <unk>); h per layer (B, H); prev (B, S)
        the previous step's weights; src_ext (B, S) the source's extended ids and n_ext the
        extended vocabulary's size (copy only); cov (B, S) the earlier steps' weights summed
        (coverage only: the caller adds each step's weights); hook: see Attention.attend
        -> scores (B, V) logits, or with copy (B, n_ext) log-probabilities; new states per
        layer (B, H); weights (B, S); p_copy (B,) or None without copy"""
        s = h[-1]  # (B, H) previous top state
        query = self.attention.project_query(s)  # (B, A)
        context, weights = self.attention.attend(query, keys, enc_out, mask, prev, uniform, cov, hook)  # (B, K), (B, S)
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
    """One step of Seq2Seq.beam, as engine/insight/stepper.py shows it."""

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
    the first of equals. trace: a list that gets a BeamTrace per step, for engine/insight/stepper.py."""
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
    def __init__(self, vocab_size: int, cfg: Architecture):
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
            cfg.score,
        )
        self.copy = cfg.copy_on
        # A bidirectional encoder has two final states per layer: a learned bridge joins them.
        self.bridge = nn.Linear(2 * cfg.hidden_dim, cfg.hidden_dim) if cfg.bidirectional else None
        self.layers = cfg.layers
        # the same weights through a faster path for training and greedy decoding: engine/fast's,
        # attached by engine/impl.py's build_model where it implements cfg; None: this file's
        self.fast: FastPath | None = None
        if not self.use_attention:
            self.decoder.attention.v.weight.requires_grad_(False)
            self.zero_scores()
            # checkpoints of the control from before v was frozen trained a v that was never used
            self.register_load_state_dict_post_hook(lambda model, _: model.zero_scores())

    @property
    def impl(self) -> str:
        """Which implementation trains and decodes greedily: "reference" or "fast"."""
        return "reference" if self.fast is None else "fast"

    @torch.no_grad()
    def zero_scores(self) -> None:
        if not self.use_attention:
            self.decoder.attention.v.weight.zero_()

    def encode(self, src: torch.Tensor, src_len: torch.Tensor, gru: EncoderGRU | None = None):
        """src (B, S) on the model's device; src_len (B,) on the host (best: nothing is read
        back) or the device. gru: see Encoder.forward."""
        enc_out, hidden = self.encoder(src, src_len, gru)
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
        if self.fast is not None:
            return self.fast.forward(self, src, src_len, tgt_in, teacher_forcing, src_ext, n_ext)
        return self.forward_reference(src, src_len, tgt_in, teacher_forcing, src_ext, n_ext)

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
        max_steps: int | torch.Tensor | None = None,
        attend: bool | None = None,
        src_ext: torch.Tensor | None = None,
        trace: list | None = None,
        n_ext: int | None = None,
        intervene: Interventions | None = None,
    ) -> Decoded:
        """greedy, one Decoder.step at a time: each sentence takes its argmax word until EOS
        or its budget of 2n + 5 steps (capped at max_steps: one cap, or one a sentence, (B,) on the
        host); PAD after that. With copy the
        words are extended ids: an unknown word copied is its extended id. trace: a list that
        gets each step's Traced record (engine/model/intervene.py), for engine/insight.
        intervene: knock-outs, pins, a temperature and forced words, the decoding going on
        from each change (engine/model/intervene.py). n_ext: see forward. When to stop is asked of a StopCheck
        (engine/model/transfer.py): off the CPU the host never waits for it."""
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
            hook = intervene.at(t) if intervene is not None else AttentionHook() if trace is not None else None
            y_in, h_in, w_in, cov_in = y, h, w, cov
            logits, h, w, p_copy = self.decoder.step(
                y, h, enc_out, keys, mask, w, uniform=attend is False, src_ext=src_ext, n_ext=n_ext, cov=cov, hook=hook
            )
            cov = cov + w
            copies.append(p_copy)
            if trace is not None:
                trace.append(Traced(logits, w, p_copy, hook.raw, y_in, h_in, w_in, cov_in))
            y = logits.argmax(-1)  # (B,)
            if intervene is not None:
                y = intervene.forced(t, y)
            y = y.masked_fill(done, PAD)
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
        measured only 1.2x faster over the test set on a CPU (bench/README.md): too little
        for a second search, so this is the only one."""
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

    @torch.inference_mode()
    def greedy(
        self,
        src: torch.Tensor,
        src_len: torch.Tensor,
        max_steps: int | torch.Tensor | None = None,
        attend: bool | None = None,
        src_ext: torch.Tensor | None = None,
        n_ext: int | None = None,
    ) -> Decoded:
        """Batched greedy decoding; stops once every sentence has emitted EOS or used its
        step budget (2n + 5 for n source tokens, from its real length, so padding cannot
        change it). attend=False swaps the learned attention for uniform weights (an ablation):
        the control's own way, a zero score vector. src_ext, n_ext: see forward.

        src_len: best the host copy (the budget is read from it). Whether all are done is
        asked of a StopCheck (engine/model/transfer.py): read every step on a CPU (free); on CUDA
        it arrives asynchronously and the loop stops a step or a few later, the host never
        waiting; elsewhere the whole budget runs (finished sentences just emit PAD). Off the
        CPU, tokens and attention may so run past the last EOS; `length` says where each ends.
        The fast layer, where attached, decodes with the same answers (greedy_reference's)."""
        if self.fast is not None:
            return self.fast.greedy(self, src, src_len, max_steps, attend, src_ext, n_ext)
        return self.greedy_reference(src, src_len, max_steps, attend, src_ext, n_ext=n_ext)


class FastPath(Protocol):
    """A faster path for Seq2Seq's training pass and greedy decoding, with the same weights and
    answers (engine/fast/seq2seq.py's; tests/test_parity.py holds them equal)."""

    def forward(
        self,
        model: Seq2Seq,
        src: torch.Tensor,
        src_len: torch.Tensor,
        tgt_in: torch.Tensor,
        teacher_forcing: torch.Tensor,
        src_ext: torch.Tensor | None,
        n_ext: int | None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def greedy(
        self,
        model: Seq2Seq,
        src: torch.Tensor,
        src_len: torch.Tensor,
        max_steps: int | torch.Tensor | None,
        attend: bool | None,
        src_ext: torch.Tensor | None,
        n_ext: int | None,
    ) -> Decoded: ...
