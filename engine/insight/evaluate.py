"""Evaluation: batched greedy decoding, exact match overall and by length, examples.

Exact match has one definition, `exact_match`: the emitted ids up to the first EOS, read as
words the way the probe shows them (output_words), equal word for word to the reference; a
PAD, SOS or an extended id past the sentence's unknown words before EOS is wrong, and so is
a decoding that never emits EOS. Every figure that counts right answers comes from it: the
test set and every other evaluation here (SentenceResult.match), the length sweeps
(engine/lengths.py), the watch snapshots (engine/watch.py), report.json and so the runs
table, and the probe. Validation decides the same rule on the device, batch by batch
(exact_match_batch, held equal to exact_match by tests/test_exact_match.py).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from .data import EOS, PAD, SOS, UNK, PairDataset, Vocab, tokenize
from .model import Seq2Seq
from .transfer import download


@dataclass
class SentenceResult:
    source: list[str]  # input words as the model saw them
    output: list[str]  # a word per decoder step before EOS (output_words: <pad>, <sos> shown as such)
    reference: list[str]  # the true reversal
    attention: np.ndarray  # (steps, n + 1): a row per decoder step up to EOS, a column per input word and EOS
    steps: int  # decoder steps taken (including the EOS step)
    copy: np.ndarray | None = None  # (steps,) p_copy per step, for a model with the copy mechanism
    # whether the decoding is right: exact_match of its ids, decided where they were decoded
    match: bool = field(kw_only=True)

    @property
    def source_tokens(self) -> list[str]:
        return self.source + ["<eos>"]

    @property
    def output_tokens(self) -> list[str]:
        """Row labels: one per decoder step (the last one is <eos> when the model stopped)."""
        return (self.output + ["<eos>"])[: self.steps]


@dataclass
class EvalResult:
    results: list[SentenceResult]
    seconds: float
    counts: dict[int, tuple[int, int]] = field(default_factory=dict)  # length -> (correct, total)

    @property
    def exact_match(self) -> float:
        return sum(r.match for r in self.results) / max(1, len(self.results))

    @property
    def per_length(self) -> dict[int, float]:
        return {n: c / t for n, (c, t) in sorted(self.counts.items())}

    @classmethod
    def merged(cls, parts: Sequence[EvalResult]) -> EvalResult:
        """One result of several evaluations of different sentences (e.g. one per length)."""
        counts: dict[int, tuple[int, int]] = {}
        for p in parts:
            for n, (c, t) in p.counts.items():
                c0, t0 = counts.get(n, (0, 0))
                counts[n] = (c0 + c, t0 + t)
        return cls([r for p in parts for r in p.results], sum(p.seconds for p in parts), dict(sorted(counts.items())))


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
) -> bool:
    """Whether a decoding is right, the one rule every figure counts by: the ids up to the
    first EOS, as output_words reads them, equal the reference word for word, and EOS was
    emitted. A PAD, SOS or an extended id past the source's unknown words before EOS is
    wrong, whatever word it would be shown as. attention: (steps, n + 1), read for an
    emitted <unk> when replace_unk."""
    end = next((t for t, i in enumerate(ids) if i == EOS), None)
    if end is None:
        return False
    top = len(vocab) + len(vocab.source_unknowns(source))  # one past the last id that is a word
    if any(i in (PAD, SOS) or i >= top for i in ids[:end]):
        return False
    return output_words(ids[:end], attention, source, vocab, replace_unk) == list(reference)


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


def decode(
    model: Seq2Seq,
    vocab: Vocab,
    sentences: Sequence[Sequence[str]],
    device: torch.device,
    batch_size: int = 500,
    attend: bool | None = None,
    replace_unk: bool = True,
    beam: int = 1,
    max_steps: int | None = None,
) -> list[SentenceResult]:
    """Greedy-decode sentences in length-grouped batches (beam > 1: beam search, one
    sentence at a time); results in the input order. max_steps caps greedy decoding's
    steps (its own budget is 2n + 5 for n source tokens)."""
    model.eval()
    ds = PairDataset(sentences, vocab, extended=model.copy)
    results: list[SentenceResult | None] = [None] * len(ds)
    for batch in ds.batches(batch_size if beam == 1 else 1):
        b = batch.to(device)
        # lengths and the extended vocabulary's size: from the host copy
        src_ext, n_ext = (b.source_ext, batch.extended_size(len(vocab))) if model.copy else (None, None)
        out = (
            model.greedy(b.src, batch.src_len, max_steps, attend=attend, src_ext=src_ext, n_ext=n_ext)
            if beam == 1
            else model.beam(b.src, batch.src_len, beam, src_ext=src_ext, n_ext=n_ext)
        )
        # the batch's results in one read
        gates = out.copy.float() if out.copy is not None else out.length.new_zeros(0)
        tokens, attn, length, gates = download(out.tokens, out.attention.float(), out.length, gates)
        gates = gates if out.copy is not None else None
        for j, row in enumerate(batch.index.tolist()):
            n_src, steps = int(batch.src_len[j]), int(length[j])
            src = ds.sentences[row]
            a = attn[j, :steps, :n_src].numpy()
            ids, reference = tokens[j, :steps].tolist(), ds.references(row)
            results[row] = SentenceResult(
                source=list(src),
                output=output_words(ids, a, src, vocab, replace_unk),
                reference=reference,
                attention=a,
                steps=steps,
                copy=gates[j, :steps].numpy() if gates is not None else None,
                match=exact_match(ids, a, src, reference, vocab, replace_unk),
            )
    return results  # type: ignore[return-value]


def evaluate(
    model: Seq2Seq,
    vocab: Vocab,
    sentences: Sequence[Sequence[str]],
    device: torch.device,
    batch_size: int = 500,
    attend: bool | None = None,
    replace_unk: bool = True,
    beam: int = 1,
    max_steps: int | None = None,
) -> EvalResult:
    t0 = time.perf_counter()
    results = decode(model, vocab, sentences, device, batch_size, attend, replace_unk, beam, max_steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for r in results:
        counts[len(r.source)][0] += r.match
        counts[len(r.source)][1] += 1
    return EvalResult(results, seconds, {n: (c, t) for n, (c, t) in sorted(counts.items())})


MAX_PROBE_WORDS = 500


def probe_words(text: str) -> list[str]:
    """Words of a typed sentence, or ValueError with a sentence for the user."""
    if not isinstance(text, str):
        raise ValueError("the input is not text")
    words = tokenize(text)
    if not words:
        raise ValueError(
            "no words in the input (a word is a run of letters or digits; "
            "punctuation, symbols and emoji only separate words)"
        )
    if len(words) > MAX_PROBE_WORDS:
        raise ValueError(f"the input has {len(words)} words; at most {MAX_PROBE_WORDS} can be probed")
    return words


def probe(model: Seq2Seq, vocab: Vocab, text: str, device: torch.device, beam: int = 1) -> SentenceResult:
    """One sentence, tokenised by the project's rule (engine.data.tokenize), decoded as the
    test set is (decode: greedy, or beam search for beam > 1)."""
    return decode(model, vocab, [probe_words(text)], device, batch_size=1, beam=beam)[0]


def probe_notes(result: SentenceResult, vocab: Vocab, min_len: int, max_len: int) -> list[str]:
    """Why an answer may be unreliable: words the model never saw, lengths it never trained on."""
    notes = []
    unknown = sorted({w for w in result.source if w not in vocab})
    if unknown:
        notes.append(
            f"not in the vocabulary ({len(vocab) - 4} words): {', '.join(unknown[:8])}"
            + (" ..." if len(unknown) > 8 else "")
        )
    n = len(result.source)
    if not min_len <= n <= max_len:
        notes.append(f"{n} words: outside the training lengths {min_len}-{max_len}")
    return notes


def format_example(r: SentenceResult) -> str:
    """The notebook's example block."""
    return (
        f'Input: "{" ".join(r.source)}"\n'
        f'Output: "{" ".join(r.output)}"\n'
        f'Reference: "{" ".join(r.reference)}"\n'
        f"{'match' if r.match else 'no match'}"
    )
