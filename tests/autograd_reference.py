"""The decoder written plainly, one step at a time under autograd: the reference that the
hand-written training loop (engine/decoder_loop.py) and the decoding step (Decoder.infer_step)
are tested against. Not used by the engine.

torch.nn.GRU's equations (gates r, z, n in that order) and the model's attention module,
with the model's own weights. Shapes as in engine/model.py.
"""
import torch
import torch.nn.functional as F


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
