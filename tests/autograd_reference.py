"""The decoder written plainly, one step at a time under autograd: the reference that the
hand-written training loop (engine/fast/decoder_loop.py) and decoding (Decoder.decode_step)
are tested against. Not used by the engine.

torch.nn.GRU's equations (gates r, z, n in that order) and the model's attention module,
with the model's own weights. Shapes as in engine/model.py.
"""
import torch
import torch.nn.functional as F

from engine.data import EOS, SOS
from engine.fast.decoder_loop import StepOut
from engine.fast.step_kernels import steps_for


def gru(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU update from the input and recurrent projections gi, gh (B, 3H), biases included."""
    i_r, i_z, i_n = gi.chunk(3, dim=-1)
    h_r, h_z, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return n + z * (h - n)


def embed_inputs(dec, y: torch.Tensor) -> torch.Tensor:
    """Embedding half of the first layer's input projection. y (B, T) or (B,) -> (..., 3H)"""
    return F.linear(dec.dropout(dec.embedding(y)), dec.W_ie, dec.b_ih[0])


def step(dec, gi_emb, hidden, keys, enc_out, mask, top, prev):
    """One decoder step: attend with the previous top state, then advance the GRU.
    gi_emb (B, 3H) from embed_inputs; hidden (layers, B, H); top = (W_top, b_top) of dec.loop_weights();
    prev (B, S) the previous step's attention weights
    -> top state (B, H), context (B, K), new hidden (layers, B, H), weights (B, S)"""
    gh_top, query = F.linear(hidden[-1], *top).split([3 * dec.hidden_dim, dec.hidden_dim], -1)
    context, weights = dec.attention.attend(query, keys, enc_out, mask, prev)
    x = gi_emb + F.linear(context, dec.W_ic)  # (B, 3H)
    new = []
    for l in range(dec.layers):
        h = hidden[l]
        gh = gh_top if l == dec.layers - 1 else F.linear(h, dec.W_hh[l], dec.b_hh[l])
        h = gru(x, gh, h)
        new.append(h)
        if l + 1 < dec.layers:
            x = F.linear(dec.dropout(h), dec.W_ih[l], dec.b_ih[l + 1])
    return h, context, torch.stack(new), weights


def forward_step_by_step(model, src, src_len, tgt_in, teacher_forcing):
    """Seq2Seq.forward one step() at a time under autograd -> logits (B, T, V), attention (B, T, S)"""
    dec = model.decoder
    enc_out, hidden, keys, mask = model.encode(src, src_len)
    T = tgt_in.size(1)
    W = dec.loop_weights()
    top = (W.W_top, W.b_top)  # [W_hh of the top layer; W_s]: one matmul gives gh and the query
    forced = embed_inputs(dec, tgt_in)  # (B, T, 3H)
    gi = forced[:, 0]
    states, contexts, attn = [], [], []
    w = torch.zeros_like(mask, dtype=enc_out.dtype)  # (B, S) no previous attention yet
    for t in range(T):
        s, c, hidden, w = step(dec, gi, hidden, keys, enc_out, mask, top, w)
        states.append(s)
        contexts.append(c)
        attn.append(w)
        if t + 1 < T:
            gi = (forced[:, t + 1] if teacher_forcing[t + 1]
                  else embed_inputs(dec, dec.logits(s, c).argmax(-1)))
    logits = dec.logits(torch.stack(states, 1), torch.stack(contexts, 1))  # (B, T, V)
    return logits, torch.stack(attn, 1)


@torch.inference_mode()
def beam_reference(model, src, src_len, k: int, alpha: float = 1.0):
    """Seq2Seq.beam as it was written before it moved onto the device (Python lists of
    hypotheses, read back every step): tests/test_device.py holds the two equal."""
    dec = model.decoder
    enc_out, hidden, keys, mask = model.encode(src, src_len)
    W, W_loc2 = model.decoding_weights()
    budget = int(2 * src_len[0] + 5)
    V = dec.out.out_features
    # the K live hypotheses form the batch; state tensors are reindexed as beams reorder
    hidden = list(hidden.unbind(0))  # per layer (1, H)
    y = torch.full((1,), SOS, dtype=torch.long, device=src.device)
    scores = torch.zeros(1, device=src.device)
    w = None  # the previous step's weights, per hypothesis
    by_count: dict = {}  # the step kernels' per-batch state, by number of live hypotheses
    seqs: list[list[int]] = [[]]
    rows: list[list[torch.Tensor]] = [[]]
    finished: list[tuple[float, list[int], list[torch.Tensor]]] = []
    for t in range(budget):
        n = y.size(0)
        if n not in by_count:  # the same sentence for every hypothesis
            K_, E_, M_ = keys.expand(n, -1, -1), enc_out.expand(n, -1, -1), mask.expand(n, -1)
            by_count[n] = (steps_for(K_, enc_out=E_, v=W.v, mask=M_, keys=K_), K_, E_)
        steps, K_, E_ = by_count[n]
        out = StepOut.empty(K_, E_, model.layers, dec.hidden_dim)  # fresh: rows of w are kept
        dec.decode_step(W, steps, y, hidden, w, W_loc2, out)
        hidden, w = out.h, out.w
        logp = torch.log_softmax(dec.logits(hidden[-1], out.c), -1)  # (n, V)
        total = (scores[:, None] + logp).view(-1)
        top = torch.topk(total, min(k, total.numel()))
        beams, words = top.indices // V, top.indices % V
        keep = []
        for score, b, word in zip(top.values.tolist(), beams.tolist(), words.tolist()):
            seq, att = seqs[b] + [word], rows[b] + [w[b]]
            if word == EOS or t + 1 == budget:
                finished.append((score / len(seq) ** alpha, seq, att))
            else:
                keep.append((score, b, word, seq, att))
        if len(finished) >= k or not keep:
            break
        idx = torch.tensor([b for _, b, *_ in keep], device=src.device)
        hidden = [h[idx] for h in hidden]
        w = w[idx]
        y = torch.tensor([word for _, _, word, *_ in keep], device=src.device)
        scores = torch.tensor([sc for sc, *_ in keep], device=src.device)
        seqs = [seq for *_, seq, _ in keep]
        rows = [att for *_, att in keep]
    _, seq, att = max(finished, key=lambda f: f[0])
    return (torch.tensor([seq], device=src.device), torch.stack(att)[None],
            torch.tensor([len(seq)], device=src.device))
