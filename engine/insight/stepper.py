"""A decoding, step by step, for the step-through view: at each decoder step the attention
over the input, the five likeliest next words, the word chosen (and the input word an <unk>
copies); greedy, also the raw scores before the softmax and each input word's share of the
context vector; with a beam, the hypotheses the step ranked and what became of each.

Greedy decoding can be changed (engine/insight/interventions.py: knock-outs, pins, forced
words, a temperature): the decoding goes on from each change, and each step says what the
unchanged decoding chose there and how likely that word is now. Interventions are greedy
only: a beam's steps are shown as the search made them.

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
from .exact_match import copied_word, exact_match, output_words
from .interventions import Edits, Force

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
    chosen_id: int = -1  # the id emitted (an extended id: a copied unknown word)
    p: float | None = None  # the chosen word's probability
    # greedy only: the raw scores e_tj before the softmax (and the temperature), and each
    # token's share of the context vector (a_j h_j projected on it: the shares sum to 1)
    scores: np.ndarray | None = None  # (n + 1,)
    shares: np.ndarray | None = None  # (n + 1,)
    forced: bool = False  # the word was forced, not chosen
    # with edits: the word the unchanged decoding emitted at this step, and how likely it is now
    was: str | None = None
    p_was: float | None = None
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
    match: bool = False  # the answer is the reversal (engine/insight/exact_match.py's rule)
    edits: Edits = field(default_factory=Edits)  # the changes it was decoded with

    @property
    def attention(self) -> np.ndarray:
        """(steps, n + 1): a row per step, a column per input token and <eos>."""
        return np.stack([s.attention for s in self.steps])

    @property
    def copy(self) -> np.ndarray | None:
        """(steps,) p_copy per step, for a model with the copy mechanism; else None."""
        gates = [s.copy for s in self.steps]
        return None if not gates or gates[0] is None else np.asarray(gates, dtype=np.float32)

    @property
    def output_tokens(self) -> list[str]:
        """A label per step: the word it emitted as the output reads it (an <unk> as its copy)."""
        return [s.copied or s.chosen for s in self.steps]

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


def step_through(
    model: Seq2Seq,
    vocab: Vocab,
    text: str,
    device: torch.device,
    beam: int = 1,
    edits: Edits | None = None,
    against: Stepping | None = None,
) -> Stepping:
    """The decoding of a typed sentence (ValueError with a sentence for the user, as
    engine.insight.evaluate.probe), greedy or with a beam of `beam`. edits: changes to the
    greedy decoding (ValueError where one does not fit the sentence or the decoding);
    against: the unchanged decoding, whose word at each step the changed steps weigh."""
    words = probe_words(text)
    edits = edits or Edits()
    model.eval()
    ds = PairDataset([words], vocab, extended=model.copy)
    src = ds.src.to(device)
    src_ext = ds.src_ext.to(device) if model.copy else None  # unknown words at their extended ids
    n = len(words) + 1  # the input words and EOS
    reference = ds.references(0)
    if beam > 1:
        if edits:
            raise ValueError("interventions change greedy decoding only; decode without a beam to use them")
        return _beam(model, vocab, words, src, src_ext, ds.src_len, n, beam, reference)
    edits.check(words, vocab, model.copy)
    intervene = edits.tensors(words, vocab, model.copy, device) if edits else None
    trace: list = []
    out = model.greedy_reference(src, ds.src_len, trace=trace, src_ext=src_ext, intervene=intervene)
    length = int(out.length[0])
    edits.check_steps(length)
    ids = out.tokens[0, :length].tolist()
    attention = out.attention[0, :length, :n].float().cpu().numpy()  # (steps, n + 1)
    with torch.inference_mode():
        enc_out = model.encode(src, ds.src_len)[0][0].float()  # (S, K)
    forced = {c.step for c in edits.changes if isinstance(c, Force)}
    steps = []
    for t, record in enumerate(trace[:length]):
        word = ids[t]
        logp = torch.log_softmax(record.logits[0].float(), -1)  # (V,) (copy's: already log-probs)
        before = against.steps[t] if against is not None and t < len(against.steps) else None
        steps.append(
            Step(
                attention=attention[t],
                top=top_words(logp, vocab, words),
                chosen=word_of(word, words, vocab),
                copied=_copy(word, attention[t], words, vocab),
                output=output_words(ids[: t + 1], attention, words, vocab),
                copy=None if record.p_copy is None else float(record.p_copy[0]),
                p=float(logp[word].exp()),
                scores=record.scores[0, :n].float().cpu().numpy(),
                shares=context_shares(record.weights[0, :n].float(), enc_out[:n]),
                forced=t in forced,
                was=None if before is None else before.copied or before.chosen,
                p_was=None if before is None else float(logp[before.chosen_id].exp()),
                chosen_id=word,
            )
        )
    return Stepping(
        words,
        steps,
        output_words(ids, attention, words, vocab),
        match=exact_match(ids, attention, words, reference, vocab),
        edits=edits,
    )


def context_shares(weights: torch.Tensor, enc_out: torch.Tensor) -> np.ndarray:
    """How much of the context vector c = sum_j a_j h_j each token makes: a_j h_j projected
    on c, over |c|^2, so the shares sum to 1 (one can be negative: a state pointing away
    from the rest). weights (S,), enc_out (S, K) -> (S,); zeros where c is zero."""
    parts = weights[:, None] * enc_out  # (S, K)
    c = parts.sum(0)  # (K,)
    norm = float(c @ c)
    return (parts @ c / norm).cpu().numpy() if norm > 0 else np.zeros(len(weights), dtype=np.float32)


def hypothesis_words(ids: list[int], rows: list[np.ndarray], source: list[str], vocab: Vocab) -> list[str]:
    """A hypothesis's words as emitted, <eos> included, an <unk> shown as the input word it
    copies (the probe's rule, engine.insight.exact_match.copied_word); rows: its weights (n + 1,) per step."""
    return [copied_word(a, source, vocab) if i == UNK else word_of(i, source, vocab) for i, a in zip(ids, rows)]


def _copy(word: int, weights: np.ndarray, source: list[str], vocab: Vocab) -> str | None:
    return copied_word(weights, source, vocab) if word == UNK else None


def _beam(model, vocab, words, src, src_ext, src_len, n, k, reference) -> Stepping:
    trace: list = []
    out = model.beam(src, src_len, k, trace=trace, src_ext=src_ext)
    length = int(out.length[0])
    answer_ids, grid = out.tokens[0, :length].tolist(), out.attention[0, :length, :n].float().cpu().numpy()
    answer = output_words(answer_ids, grid, words, vocab)
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
                chosen_id=word,
                p=float(record.logp[b][word].float().exp()),
                live=live,
                candidates=candidates,
                best=best,
                stopped=record.stopped,
            )
        )
        rows = next_rows
    return Stepping(words, steps, answer, beam=k, match=exact_match(answer_ids, grid, words, reference, vocab))
