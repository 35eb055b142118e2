"""A decoding, step by step, for the step-through view: at each decoder step the attention
over the input, the five likeliest next words, the word chosen (and the input word an <unk>
copies); with a beam, the hypotheses the step ranked and what became of each.

The steps are recorded by the model's own decoders (Seq2Seq.greedy_reference and Seq2Seq.beam,
through their trace lists), so they are the decoding itself, not a re-enactment;
tests/test_stepper.py holds them equal to the probe's answer and grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..model.seq2seq import Seq2Seq
from ..train.data import UNK, PairDataset, Vocab
from .evaluate import probe_words
from .exact_match import copied_word, output_words

TOP = 5  # next words shown per step


@dataclass
class Hypothesis:
    """One beam hypothesis: its words (an <unk> shown as the word it copies), its summed
    log-probability, and at a step's ranking its fate: survives, pruned or finished."""

    words: list[str]
    score: float
    fate: str = ""
    parent: int = -1  # the live hypothesis it continues (its row in Step.live)
    copies: list[bool] = field(default_factory=list)  # which of its words are an <unk>'s copy


@dataclass
class Step:
    attention: np.ndarray  # (n + 1,) the step's weights over the input words and <eos>
    top: list[tuple[str, float]]  # the TOP likeliest next words and their probabilities
    chosen: str  # the vocabulary's word emitted: "<unk>" and "<eos>" as such
    copied: str | None  # for an emitted <unk>: the input word it stands for
    output: list[str]  # the output so far, this step's word included (<eos> not)
    copy: float | None = None  # the copy mechanism's p_copy at this step; None without it
    # beam search only: the live hypotheses entering the step, the continuations it ranked,
    # the best finished so far, and whether the search ends here
    live: list[Hypothesis] = field(default_factory=list)
    candidates: list[Hypothesis] = field(default_factory=list)
    best: Hypothesis | None = None
    stopped: bool = False


@dataclass
class Stepping:
    source: list[str]  # the input words as the model saw them
    steps: list[Step]
    output: list[str]  # the answer (an <unk> copied, <eos> stripped), as the probe gives it
    beam: int = 1

    @property
    def source_tokens(self) -> list[str]:
        return self.source + ["<eos>"]


def word_of(i: int, source: list[str], vocab: Vocab) -> str:
    """An id as a word: past the vocabulary, the source's unknown word the copy mechanism's
    extended vocabulary gave it (Vocab.source_unknowns)."""
    if i < len(vocab):
        return vocab.itos[i]
    unknowns = vocab.source_unknowns(source)
    return unknowns[i - len(vocab)] if i - len(vocab) < len(unknowns) else vocab.itos[UNK]


def top_words(logp: torch.Tensor, vocab: Vocab, source: list[str] | None = None) -> list[tuple[str, float]]:
    """logp (V,) log-probabilities (V past the vocabulary with copy: the source's unknown
    words) -> the TOP likeliest words with their probabilities."""
    top = torch.topk(logp.float(), min(TOP, logp.numel()))
    return [
        (word_of(i, source or [], vocab), float(p)) for p, i in zip(top.values.exp().tolist(), top.indices.tolist())
    ]


def step_through(model: Seq2Seq, vocab: Vocab, text: str, device: torch.device, beam: int = 1) -> Stepping:
    """The decoding of a typed sentence (ValueError with a sentence for the user, as
    engine.insight.evaluate.probe), greedy or with a beam of `beam`."""
    words = probe_words(text)
    model.eval()
    ds = PairDataset([words], vocab, extended=model.copy)
    src = ds.src.to(device)
    src_ext = ds.src_ext.to(device) if model.copy else None  # unknown words at their extended ids
    n = len(words) + 1  # the input words and EOS
    if beam > 1:
        return _beam(model, vocab, words, src, src_ext, ds.src_len, n, beam)
    trace: list = []
    out = model.greedy_reference(src, ds.src_len, trace=trace, src_ext=src_ext)
    length = int(out.length[0])
    ids = out.tokens[0, :length].tolist()
    attention = out.attention[0, :length, :n].float().cpu().numpy()  # (steps, n + 1)
    steps = []
    for t, (logits, _, gate) in enumerate(trace[:length]):
        word = ids[t]
        steps.append(
            Step(
                attention=attention[t],
                top=top_words(torch.log_softmax(logits[0], -1), vocab, words),  # (copy's: already log-probs)
                chosen=word_of(word, words, vocab),
                copied=_copy(word, attention[t], words, vocab),
                output=output_words(ids[: t + 1], attention, words, vocab),
                copy=None if gate is None else float(gate[0]),
            )
        )
    return Stepping(words, steps, output_words(ids, attention, words, vocab))


def hypothesis_words(ids: list[int], rows: list[np.ndarray], source: list[str], vocab: Vocab) -> list[str]:
    """A hypothesis's words as emitted, <eos> included, an <unk> shown as the input word it
    copies (the probe's rule, engine.insight.exact_match.copied_word); rows: its weights (n + 1,) per step."""
    return [copied_word(a, source, vocab) if i == UNK else word_of(i, source, vocab) for i, a in zip(ids, rows)]


def _copy(word: int, weights: np.ndarray, source: list[str], vocab: Vocab) -> str | None:
    return copied_word(weights, source, vocab) if word == UNK else None


def _beam(model, vocab, words, src, src_ext, src_len, n, k) -> Stepping:
    trace: list = []
    out = model.beam(src, src_len, k, trace=trace, src_ext=src_ext)
    length = int(out.length[0])
    answer = output_words(
        out.tokens[0, :length].tolist(), out.attention[0, :length, :n].float().cpu().numpy(), words, vocab
    )
    steps = []
    rows: list[list[np.ndarray]] = [[]]  # each live hypothesis's attention so far, (n + 1,) per step
    for record in trace:
        weights = record.weights[:, :n].float().cpu().numpy()  # (live, n + 1)

        def said(ids, att, score, fate="", parent=-1) -> Hypothesis:
            copies = [i == UNK for i in ids]
            return Hypothesis(hypothesis_words(ids, att, words, vocab), score, fate, parent, copies)

        live = [said(ids, rows[i], s) for i, (ids, s) in enumerate(zip(record.live, record.scores))]
        candidates, next_rows = [], []
        for b, word, score, fate in record.candidates:
            ids, att = record.live[b] + [word], rows[b] + [weights[b]]
            candidates.append(said(ids, att, score, fate, b))
            if fate == "survives":
                next_rows.append(att)
        lead = record.candidates[0]  # the best continuation: its parent's view of the step
        b, word = lead[0], lead[1]
        ids, att = record.live[b] + [word], rows[b] + [weights[b]]
        best = None
        if record.best is not None:
            score, best_ids, best_att = record.best
            best = said(best_ids, [a[:n].float().cpu().numpy() for a in best_att], score, "finished")
        steps.append(
            Step(
                attention=weights[b],
                top=top_words(record.logp[b], vocab, words),
                chosen=word_of(word, words, vocab),
                copied=_copy(word, weights[b], words, vocab),
                output=output_words(ids, np.stack(att), words, vocab),
                live=live,
                candidates=candidates,
                best=best,
                stopped=record.stopped,
            )
        )
        rows = next_rows
    return Stepping(words, steps, answer, beam=k)
