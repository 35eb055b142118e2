"""How far a model goes beyond what it was trained on: exact match by sentence length, far
past the training lengths, on sentences of words it knows and on sentences of words it has
never seen (what people type: every word reaches the model as <unk> and has to be copied
back through attention). For each, where exact match first drops below 99% and 50%, and why
the wrong answers are wrong: the decoder stopped early, ran on, or had the right length
with a wrong word.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from ..train.data import Vocab
from .evaluate import EvalResult, SentenceResult, evaluate

SENTENCES_PER_LENGTH = 100  # enough to tell 99% from 100%
FAR_SENTENCES_PER_LENGTH = 20  # past twice the training length (at least 60 words), where the
# model is not asked to be right and one sentence costs up to 30x a short one: one error in
# 20 still reads below 99% (95%), and 50 a length made these lengths 70% of the sweep's time


def sweep_lengths(min_len: int, max_len: int) -> tuple[list[int], list[int]]:
    """(beyond, every): the lengths measured past training, the first ten one by one and then
    about eight evenly spaced (multiples of 5) up to six times the longest training sentence,
    at least 60, then held_lengths; and the same with the training lengths in front (at most
    ten of them), for the unknown-word sweep."""
    top = held_from(max_len)
    beyond = list(range(max_len + 1, min(max_len + 10, top) + 1))
    step = max(5, round((top - beyond[-1]) / 40) * 5)
    beyond += list(range((beyond[-1] // step + 1) * step, top + 1, step))
    beyond += held_lengths(max_len)
    inside = list(range(min_len, max_len + 1))
    if len(inside) > 10:  # a long training range: ten of its lengths, evenly spread
        inside = sorted({inside[round(i * (len(inside) - 1) / 9)] for i in range(10)})
    return beyond, inside + beyond


def held_from(max_len: int) -> int:
    """The longest length the sweep always decodes: six times the longest training sentence,
    at least 60. Past it, held_lengths."""
    return max(60, 6 * max_len)


def held_lengths(max_len: int) -> list[int]:
    """Two lengths past held_from, up to ten times the longest training sentence (at least 100
    words): decoded only while the model still holds there (length_curve's held_from), so a
    model that reverses far is measured as far, and one that does not costs nothing more."""
    top, far = held_from(max_len), max(100, 10 * max_len)
    return [round((top + far) / 10) * 5, far]


def made_up_words(vocab: Vocab, rng: random.Random, n: int = 400) -> list[str]:
    """Pronounceable words that are not in the vocabulary (so each reaches the model as <unk>)."""
    onsets, vowels, codas = "bdfgklmnprstvz", "aeiou", ["", "n", "r", "l", "s", "k"]
    words: set[str] = set()
    while len(words) < n:
        w = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.randint(2, 3))) + rng.choice(codas)
        if w not in vocab:
            words.add(w)
    return sorted(words)


def failure_kind(r: SentenceResult) -> str | None:
    """None for a match; else why: the output ended too soon, went on too long, or had the
    right length with a wrong word."""
    if r.match:
        return None
    if len(r.output) < len(r.reference):
        return "stopped_early"
    return "ran_on" if len(r.output) > len(r.reference) else "wrong_word"


@dataclass
class LengthCurve:
    """Exact match and failure kinds per length, for one kind of sentence."""

    evaluation: EvalResult
    failures: dict[int, dict[str, int]] = field(default_factory=dict)
    not_measured: list[int] = field(default_factory=list)  # the lengths left out (why_stopped says why)
    # not_measured because the lengths past held_from are decoded only while the model holds
    held_stop: bool = False
    # not_measured because exact match had fallen below this (length_curve's stop_below)
    stopped_below: float | None = None

    @classmethod
    def of(cls, ev: EvalResult) -> LengthCurve:
        failures: dict[int, dict[str, int]] = {}
        for r in ev.results:
            kind = failure_kind(r)
            counts = failures.setdefault(len(r.source), {"stopped_early": 0, "ran_on": 0, "wrong_word": 0})
            if kind:
                counts[kind] += 1
        return cls(ev, dict(sorted(failures.items())))

    @property
    def per_length(self) -> dict[int, float]:
        return self.evaluation.per_length

    @property
    def why_stopped(self) -> str:
        """Why the longer lengths were not decoded, in a few words ("" when every one was)."""
        if not self.not_measured:
            return ""
        if self.held_stop:
            return "below 99%"  # past held_from, the longer lengths only follow one at 99% or more
        if self.stopped_below is not None:
            return f"below {self.stopped_below:.0%}"
        return "lost"

    def first_below(self, level: float) -> int | None:
        """The shortest measured length whose exact match is below level (None: none is)."""
        return next((n for n, acc in self.per_length.items() if acc < level), None)

    def as_dict(self) -> dict:
        def limit(level: float) -> dict | None:
            n = self.first_below(level)
            return None if n is None else {"length": n, "exact_match": self.per_length[n], "failures": self.failures[n]}

        return {
            "per_length": {str(n): a for n, a in self.per_length.items()},
            "sentences": {str(n): t for n, (_, t) in self.evaluation.counts.items()},
            "failures": {str(n): f for n, f in self.failures.items()},
            "first_below_99": limit(0.99),
            "first_below_50": limit(0.5),
            "not_measured": list(self.not_measured),
        }


@dataclass
class SweepSentences:
    """The sentences a length sweep decodes, by length: of known words past the training
    lengths, and of made-up (unknown) words at every measured length."""

    known: dict[int, list[list[str]]]
    unknown: dict[int, list[list[str]]]
    held_from: int | None = None  # past it, lengths decoded only while the model holds (held_lengths)


def sweep_sentences(
    vocab: Vocab, min_len: int, max_len: int, rng: random.Random, per_length: int = SENTENCES_PER_LENGTH
) -> SweepSentences:
    """per_length sentences of known words a length (FAR_SENTENCES_PER_LENGTH past twice the
    training length), and one of unknown words: every sentence of n made-up words reaches the
    model as the same n <unk> and EOS, so it is decoded the same way; with distinct words, one
    that the attention copies from the wrong place cannot come out right by chance, and the
    one answers for every such sentence (tests/test_lengths.py holds 20 to the one)."""
    beyond, every = sweep_lengths(min_len, max_len)
    known_words, pool = vocab.words(), made_up_words(vocab, rng, max(400, every[-1]))
    far = max(60, 2 * max_len)

    def of_length(n: int) -> list[list[str]]:  # known words drawn uniformly
        count = per_length if n <= far else min(per_length, FAR_SENTENCES_PER_LENGTH)
        return [rng.choices(known_words, k=n) for _ in range(count)]

    return SweepSentences(
        known={n: of_length(n) for n in beyond},
        unknown={n: [rng.sample(pool, n)] for n in every},
        held_from=held_from(max_len),
    )


# sentences of 2-3 distinct words repeated, of 21-40 words: only where a word sits tells its
# copies apart, so content-based attention alone cannot keep its place
REPEATED_LENGTHS = (21, 40)
REPEATED_PER_LENGTH = 20  # 400 sentences: one wrong answer moves the pooled figure by 0.25%


def repeated_word_sentences(
    words: list[str],
    rng: random.Random,
    lengths: tuple[int, int] = REPEATED_LENGTHS,
    per_length: int = REPEATED_PER_LENGTH,
) -> dict[int, list[list[str]]]:
    """By length: sentences each made of 2 or 3 distinct words of `words`, one drawn at random
    for every position."""
    out = {}
    for n in range(lengths[0], lengths[1] + 1):
        sents = []
        for _ in range(per_length):
            pool = rng.sample(words, min(len(words), rng.choice((2, 3))))
            sents.append([rng.choice(pool) for _ in range(n)])
        out[n] = sents
    return out


LOST = 0.01  # exact match under this at LOST_RUN lengths in a row: the kind is lost
LOST_RUN = 2  # and the longer lengths, which cost the most, are not decoded


def length_curve(
    model: torch.nn.Module,
    vocab: Vocab,
    by_length: dict[int, list[list[str]]],
    device: torch.device,
    stop_when_lost: bool = True,
    held_from: int | None = None,
    stop_below: float | None = None,
) -> LengthCurve:
    """Greedy exact match, one length at a time, shortest first: a batch never pads a short
    sentence to a long one, and decoding stops at n + 2 steps for n words (n words, EOS, and
    one more to see a run-on) instead of the 2n + 5 a sentence of unknown length gets.
    stop_when_lost: once LOST_RUN lengths in a row are under LOST, the longer ones are left
    out (LengthCurve.not_measured); where exact match first falls below 99% and 50% is
    found by then, since a length under 1% is under both. held_from: the lengths above it are
    decoded only while the length before held at 99% or more; the rest are not_measured.
    stop_below: the sweep also stops after the first length under it (where exact match first
    falls below 50%, say: that figure and the 99% one are found by then), leaving out the
    longest lengths, which cost the most, once the model is mostly wrong there."""
    done: list[EvalResult] = []
    lost = 0
    lengths = sorted(by_length)

    def measured(not_measured: list[int], held_stop: bool = False, below: float | None = None) -> LengthCurve:
        curve = LengthCurve.of(EvalResult.merged(done))
        curve.not_measured, curve.held_stop, curve.stopped_below = not_measured, held_stop, below
        return curve

    for k, n in enumerate(lengths):
        if held_from is not None and n > held_from and done and done[-1].exact_match < 0.99:
            return measured(lengths[k:], held_stop=True)
        ev = evaluate(model, vocab, by_length[n], device, max_steps=n + 2)
        done.append(ev)
        if stop_below is not None and ev.exact_match < stop_below and k + 1 < len(lengths):
            return measured(lengths[k + 1 :], below=stop_below)
        lost = lost + 1 if ev.exact_match < LOST else 0
        if stop_when_lost and lost >= LOST_RUN:
            return measured(lengths[k + 1 :])
    return measured([])


def describe_limit(curve: LengthCurve, what: str) -> str:
    """One sentence: where exact match first drops below 99% and below 50%, and why."""

    def at(n: int) -> str:
        f = curve.failures[n]
        why = max(f, key=f.get).replace("_", " ")
        return (
            f"{n} words ({curve.per_length[n]:.0%}; of {sum(f.values())} wrong answers "
            f"{f['stopped_early']} stopped early, {f['ran_on']} ran on, {f['wrong_word']} had a "
            f"wrong word: mostly {why})"
        )

    below99, below50 = curve.first_below(0.99), curve.first_below(0.5)
    longest = max(curve.per_length)
    if curve.held_stop:
        why = "the sweep goes past 6x the training length only while exact match stays at 99% or more"
    elif curve.stopped_below is not None:
        why = f"the sweep stops once exact match is below {curve.stopped_below:.0%}"
    else:
        why = f"under {LOST:.0%} at {LOST_RUN} lengths in a row"
    skipped = (
        f" Longer sentences ({curve.not_measured[0]}-{curve.not_measured[-1]} words) were not decoded: {why}."
        if curve.not_measured
        else ""
    )
    return _limit_sentence(curve, what, at, below99, below50, longest) + skipped


def _limit_sentence(curve: LengthCurve, what: str, at, below99: int | None, below50: int | None, longest: int) -> str:
    if below99 is None:
        return f"{what}: exact match stays at or above 99% up to {longest} words."
    if below99 == min(curve.per_length):
        if below50 == below99:
            return f"{what}: exact match is below 50% from the shortest length measured, {at(below99)}."
        return f"{what}: exact match is below 99% from the shortest length measured, {at(below99)}" + (
            f", and below 50% at {at(below50)}." if below50 is not None else "."
        )
    if below50 == below99:
        return f"{what}: exact match falls from at least 99% to below 50% at once, at {at(below99)}."
    text = f"{what}: exact match first drops below 99% at {at(below99)}"
    return text + (
        f", and below 50% at {at(below50)}."
        if below50 is not None
        else f", and stays at or above 50% up to {longest} words."
    )


__all__ = [
    "LengthCurve",
    "SweepSentences",
    "describe_limit",
    "failure_kind",
    "held_from",
    "held_lengths",
    "length_curve",
    "made_up_words",
    "repeated_word_sentences",
    "sweep_lengths",
    "sweep_sentences",
]
