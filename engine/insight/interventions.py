"""A user's changes to one sentence's decoding, in words and positions: knock an input word
out from a step on, pin a step's attention on a word, force a step's word, a temperature.
They stack in the order given; a pin or a forced word at a step replaces the one before it at
that step. Edits are immutable, so every state of them can be kept and gone back to (the step
screen's undo). The mechanics are the model's own (engine/model/intervene.py, through
Seq2Seq.greedy_reference); engine/insight/stepper.py decodes with them.

Positions and steps are 0-based here and 1-based wherever a person reads or types them
(`reverse-tui probe --knockout 2@3`, the step screen). Every mistake is a ValueError with one
sentence for the user."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..model.intervene import NEVER, Interventions
from ..model.tokens import EOS, UNK
from ..train.data import Vocab, tokenize


def _token(tokens: Sequence[str], position: int) -> str:
    word = f"“{tokens[position]}” " if 0 <= position < len(tokens) else ""
    return f"{word}(input {position + 1})"


@dataclass(frozen=True)
class Knockout:
    """Input token `position`'s weight 0 (the others renormalised) from step `step` on."""

    position: int
    step: int = 0

    def describe(self, tokens: Sequence[str]) -> str:
        return f"knock out {_token(tokens, self.position)} from step {self.step + 1}"


@dataclass(frozen=True)
class Pin:
    """Step `step`'s attention all on input token `position` (this step only)."""

    step: int
    position: int

    def describe(self, tokens: Sequence[str]) -> str:
        return f"pin step {self.step + 1} on {_token(tokens, self.position)}"


@dataclass(frozen=True)
class Force:
    """Step `step` emits `word` (a vocabulary word, <eos>, <unk>, or with copy a word of the
    sentence) whatever the model would."""

    step: int
    word: str

    def describe(self, tokens: Sequence[str]) -> str:
        return f"force step {self.step + 1} to “{self.word}”"


Change = Knockout | Pin | Force


def check_temperature(t: float) -> float:
    if not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
        raise ValueError(f"the temperature must be a number above 0, got {t}")
    return float(t)


@dataclass(frozen=True)
class Edits:
    changes: tuple[Change, ...] = ()
    temperature: float = 1.0  # divides every attention score; 1: the model's own

    def __post_init__(self) -> None:
        check_temperature(self.temperature)

    def __bool__(self) -> bool:
        return bool(self.changes) or self.temperature != 1.0

    def plus(self, change: Change) -> Edits:
        """These edits and one more. A knock-out of a word already knocked out at that step or
        before is a ValueError; one from an earlier step replaces the later one. A pin or a
        forced word replaces the one at its step."""
        kept = []
        for c in self.changes:
            if isinstance(change, Knockout) and isinstance(c, Knockout) and c.position == change.position:
                if c.step <= change.step:
                    raise ValueError(f"input {c.position + 1} is already knocked out from step {c.step + 1}")
                continue
            if type(c) is type(change) and not isinstance(c, Knockout) and c.step == change.step:
                continue
            kept.append(c)
        return Edits((*kept, change), self.temperature)

    def with_temperature(self, t: float) -> Edits:
        return Edits(self.changes, check_temperature(t))

    def lines(self, tokens: Sequence[str]) -> list[str]:
        """Each change in words, then the temperature where it is not 1."""
        out = [c.describe(tokens) for c in self.changes]
        if self.temperature != 1.0:
            out.append(f"temperature {self.temperature:g} (scores divided by it)")
        return out

    def check(self, words: Sequence[str], vocab: Vocab, copy: bool) -> None:
        """ValueError unless every position is a token of the sentence (its n words, then
        <eos> at n + 1), every forced word one the model can emit, and some token is left to
        attend to."""
        n = len(words)
        for c in self.changes:
            if not isinstance(c, Force) and not 0 <= c.position <= n:
                raise ValueError(
                    f"input {c.position + 1} is outside the sentence (inputs 1-{n} are its words, "
                    f"{n + 1} the end token <eos>)"
                )
            if c.step < 0:
                raise ValueError(f"steps count from 1, got {c.step + 1}")
            if isinstance(c, Force):
                word_id(c.word, words, vocab, copy)
        if {c.position for c in self.changes if isinstance(c, Knockout)} >= set(range(n + 1)):
            raise ValueError("every input token is knocked out: the attention would have nothing to look at")

    def check_steps(self, steps: int) -> None:
        """ValueError for a change at a step the decoding never reached (it has `steps`)."""
        for c in self.changes:
            if c.step >= steps:
                raise ValueError(f"step {c.step + 1} is past the decoding, which ends at step {steps}")

    def tensors(self, words: Sequence[str], vocab: Vocab, copy: bool, device: torch.device) -> Interventions:
        """The model's form for one sentence (a batch of 1, n + 1 source tokens)."""
        S = len(words) + 1
        knock = [c for c in self.changes if isinstance(c, Knockout)]
        pins = [c for c in self.changes if isinstance(c, Pin)]
        forces = [c for c in self.changes if isinstance(c, Force)]
        knockout_from = pin = force = None
        if knock:
            knockout_from = torch.full((1, S), NEVER, dtype=torch.long)
            for c in knock:
                knockout_from[0, c.position] = min(int(knockout_from[0, c.position]), c.step)
            knockout_from = knockout_from.to(device)
        if pins:
            pin = torch.full((1, max(c.step for c in pins) + 1), -1, dtype=torch.long)
            for c in pins:
                pin[0, c.step] = c.position
            pin = pin.to(device)
        if forces:
            force = torch.full((1, max(c.step for c in forces) + 1), -1, dtype=torch.long)
            for c in forces:
                force[0, c.step] = word_id(c.word, words, vocab, copy)
            force = force.to(device)
        return Interventions(knockout_from, pin, force, self.temperature)


def word_id(word: str, source: Sequence[str], vocab: Vocab, copy: bool) -> int:
    """The id a forced word is emitted as: <eos>, <unk>, a word of the vocabulary (read by the
    project's rule: `Cat` is `cat`), or with the copy mechanism a word of the sentence outside
    it (its extended id). ValueError for anything else."""
    text = word.strip()
    if text.lower() in ("<eos>", "<unk>"):
        return EOS if text.lower() == "<eos>" else UNK
    found = tokenize(text)
    if len(found) != 1:
        raise ValueError(f"“{text}” is not one word (a word is a run of letters or digits)")
    w = found[0]
    if w in vocab:
        return vocab.stoi[w]
    unknowns = vocab.source_unknowns(source)
    if copy and w in unknowns:
        return len(vocab) + unknowns.index(w)
    where = "nor in the sentence (the copy mechanism copies only those)" if copy else "(force <unk> to copy)"
    raise ValueError(f"“{w}” is not in the model's vocabulary of {len(vocab) - 4} words {where}")


def differing(before: Sequence[str], after: Sequence[str]) -> list[bool]:
    """For each word of `after`: whether it differs from the word at its place in `before`."""
    return [j >= len(before) or w != before[j] for j, w in enumerate(after)]


class EditHistory:
    """The edits now, and every earlier state of them: undo goes back one change at a time,
    and a clear is a change like the others (undone, it brings them all back)."""

    def __init__(self) -> None:
        self.edits = Edits()
        self._before: list[Edits] = []

    @property
    def can_undo(self) -> bool:
        return bool(self._before)

    @property
    def previous(self) -> Edits | None:
        """The state undo goes back to; None where there is none."""
        return self._before[-1] if self._before else None

    def push(self, edits: Edits) -> None:
        if edits != self.edits:
            self._before.append(self.edits)
            self.edits = edits

    def undo(self) -> bool:
        """Back one state; False where there is none."""
        if not self._before:
            return False
        self.edits = self._before.pop()
        return True

    def clear(self) -> None:
        self.push(Edits())
