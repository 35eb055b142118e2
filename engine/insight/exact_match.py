"""Exact match, the one rule every figure that counts right answers comes from.

`exact_match`: the emitted ids up to the first EOS, read as words the way the probe shows them
(output_words), equal word for word to the reference; a PAD, SOS or an extended id past the
sentence's unknown words before EOS is wrong, and so is a decoding that never emits EOS. The
test set and every other evaluation (engine/insight/evaluate.py, SentenceResult.match), the
length sweeps (engine/insight/lengths.py), the watch snapshots (engine/insight/watch.py),
report.json and so the runs table, and the probe count by it. Validation decides the same rule
on the device, batch by batch (exact_match_batch, held equal to exact_match by
tests/test_exact_match.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..model.tokens import EOS, PAD, SOS, UNK
from ..train.data import Vocab


def copied_word(weights: np.ndarray, source: Sequence[str], vocab: Vocab) -> str:
    """The word an emitted <unk> stands for: the source word the step's attention weights
    (n + 1,) weighted most, or <unk> when that is the EOS position."""
    p = int(weights.argmax())
    return source[p] if p < len(source) else vocab.itos[UNK]


def output_words(
    ids: Sequence[int], attention: np.ndarray | None, source: Sequence[str], vocab: Vocab, replace_unk: bool = True
) -> list[str]:
    """Ids to words up to EOS, one word per decoder step, so that a step's attention row and
    its word always line up. An id past the vocabulary is the source's unknown word the
    copy mechanism copied (Vocab.source_unknowns); one past those unknowns reads <unk>.
    With replace_unk, an <unk> the model emits becomes the source word its attention
    weighted most at that step (when that is a word, not EOS): the model learned *where*
    the word is, so an unseen word can still be copied across. PAD and SOS, which a model
    can emit before it has learned not to, show as <pad> and <sos>."""
    words = []
    unknowns = vocab.source_unknowns(source)
    for t, i in enumerate(ids):
        if i == EOS:
            break
        if i >= len(vocab):
            k = i - len(vocab)
            words.append(unknowns[k] if k < len(unknowns) else vocab.itos[UNK])
        elif i == UNK and replace_unk:
            words.append(copied_word(attention[t], source, vocab))
        else:
            words.append(vocab.itos[i])
    return words


def exact_match(
    ids: Sequence[int],
    attention: np.ndarray | None,
    source: Sequence[str],
    reference: Sequence[str],
    vocab: Vocab,
    replace_unk: bool = True,
    words: Sequence[str] | None = None,
) -> bool:
    """Whether a decoding is right, the one rule every figure counts by: the ids up to the
    first EOS, as output_words reads them, equal the reference word for word, and EOS was
    emitted. A PAD, SOS or an extended id past the source's unknown words before EOS is
    wrong, whatever word it would be shown as. attention: (steps, n + 1), read for an
    emitted <unk> when replace_unk. words: output_words of these ids, where the caller has
    read them already (a decoding shown and counted reads them once)."""
    end = next((t for t, i in enumerate(ids) if i == EOS), None)
    if end is None:
        return False
    top = len(vocab) + len(vocab.source_unknowns(source))  # one past the last id that is a word
    if any(i in (PAD, SOS) or i >= top for i in ids[:end]):
        return False
    if words is None:
        words = output_words(ids[:end], attention, source, vocab, replace_unk)
    return list(words) == list(reference)


def exact_match_batch(
    pred: torch.Tensor,
    attention: torch.Tensor,
    src_ext: torch.Tensor,
    tgt_ext: torch.Tensor,
    words: torch.Tensor,
    replace_unk: bool = True,
) -> torch.Tensor:
    """exact_match for a batch decoded on the device, without reading anything back: the
    same rule, by position. pred (B, T) the ids emitted at each step, attention (B, T, S)
    the weights of that step, src_ext (B, S) and tgt_ext (B, T) the source and the reference
    with every word at its own id (an unknown word at its extended id, Vocab.encode_extended,
    so that two ids are equal exactly when their words are), words (B,) the sentences'
    words, each < T. Returns (B,) bool: step t < n emits the reference's word t, step n EOS.

    A step emits word t when it emits its id (no PAD, SOS or EOS), or, with replace_unk, when
    it emits <unk> and its attention peaks on a source word with that id (on the source's
    EOS: the word <unk>, as copied_word reads it)."""
    T = pred.size(1)
    n = words[:, None]  # (B, 1)
    steps = torch.arange(T, device=pred.device)[None, :]  # (1, T)
    same = (pred == tgt_ext) & (pred != PAD) & (pred != SOS) & (pred != EOS)  # (B, T)
    if replace_unk:
        same &= pred != UNK
        peak = attention.argmax(-1)  # (B, T) the first of equal weights, as NumPy's argmax
        looked_at = torch.where(peak < n, src_ext.gather(1, peak), UNK)  # (B, T) the word copied
        same |= (pred == UNK) & (looked_at == tgt_ext)
    words_right = (same | (steps >= n)).all(1)  # (B,)
    ends = pred.gather(1, n).squeeze(1) == EOS  # (B,) step n emits EOS
    return words_right & ends
