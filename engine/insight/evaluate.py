"""Evaluation: batched greedy decoding, exact match overall and by length, the probe, examples.
Whether a decoding is right is engine/insight/exact_match.py's one rule (SentenceResult.match)."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..model.seq2seq import Seq2Seq
from ..model.transfer import download
from ..train.data import PairDataset, Vocab, tokenize
from .exact_match import exact_match, output_words


@dataclass
class SentenceResult:
    source: list[str]  # input words as the model saw them
    output: list[str]  # a word per decoder step before EOS (output_words: <pad>, <sos> shown as such)
    reference: list[str]  # the true reversal
    attention: np.ndarray  # (steps, n + 1): a row per decoder step up to EOS, a column per input word and EOS
    steps: int  # decoder steps taken (including the EOS step)
    copy: np.ndarray | None = None  # (steps,) p_copy per step, for a model with the copy mechanism
    ids: list[int] = field(default_factory=list)  # the ids emitted, one per step (the last: EOS when it stopped)
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

    def exact_match_without_replacement(self, vocab: Vocab) -> float:
        """Exact match of the same decodings with an emitted <unk> left as <unk> (replace_unk
        only reads the words, never changes what was decoded: no second decoding needed)."""
        right = (exact_match(r.ids, r.attention, r.source, r.reference, vocab, replace_unk=False) for r in self.results)
        return sum(right) / max(1, len(self.results))

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
    exact_match_only: bool = False,
) -> list[SentenceResult]:
    """Greedy-decode sentences in length-grouped batches (beam > 1: beam search, one
    sentence at a time); results in the input order. max_steps caps greedy decoding's
    steps (its own budget is 2n + 5 for n source tokens). exact_match_only: each sentence of
    n words stops at n + 2 steps (its words, EOS, and one more to see a run-on), enough to
    decide its exact match though not to show a run-on's whole output: an ablation that
    seldom stops otherwise ran its batches to 2n + 5."""
    model.eval()
    ds = PairDataset(sentences, vocab, extended=model.copy)
    results: list[SentenceResult | None] = [None] * len(ds)
    for batch in ds.batches(batch_size if beam == 1 else 1):
        b = batch.to(device)
        # lengths and the extended vocabulary's size: from the host copy
        src_ext, n_ext = (b.source_ext, batch.extended_size(len(vocab))) if model.copy else (None, None)
        budget = batch.src_len + 1 if exact_match_only else max_steps  # src_len: n words and EOS
        out = (
            model.greedy(b.src, batch.src_len, budget, attend=attend, src_ext=src_ext, n_ext=n_ext)
            if beam == 1
            else model.beam(b.src, batch.src_len, beam, src_ext=src_ext, n_ext=n_ext)
        )
        # the batch's results in one read
        gates = out.copy.float() if out.copy is not None else out.length.new_zeros(0)
        tokens, attn, length, gates = download(out.tokens, out.attention.float(), out.length, gates)
        # each sentence's part of them sliced in NumPy and Python, not as torch ops
        attn, gates = attn.numpy(), gates.numpy() if out.copy is not None else None
        for j, (row, n_src, steps, ids) in enumerate(
            zip(batch.index.tolist(), batch.src_len.tolist(), length.tolist(), tokens.tolist())
        ):
            src, ids = ds.sentences[row], ids[:steps]
            a, reference = attn[j, :steps, :n_src], ds.references(row)
            words = output_words(ids, a, src, vocab, replace_unk)  # read once: shown and matched
            results[row] = SentenceResult(
                source=list(src),
                output=words,
                reference=reference,
                attention=a,
                steps=steps,
                copy=gates[j, :steps] if gates is not None else None,
                ids=ids,
                match=exact_match(ids, a, src, reference, vocab, replace_unk, words=words),
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
    exact_match_only: bool = False,
) -> EvalResult:
    t0 = time.perf_counter()
    results = decode(
        model, vocab, sentences, device, batch_size, attend, replace_unk, beam, max_steps, exact_match_only
    )
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
    """One sentence, tokenised by the project's rule (engine.train.data.tokenize), decoded as the
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
