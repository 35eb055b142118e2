"""Changing what a decoding attends to, and watching the decoding follow: the hook that
Attention.attend takes, and a batch's interventions over a greedy decoding
(Seq2Seq.greedy_reference's `intervene`).

    knock out   position j from step t on: e_tj = -inf before the softmax, so its weight is
                0 and the others are renormalised (exactly a_tj / (1 - a_tj's) share, without
                dividing by a sum that may underflow); with copy, nothing is copied from j
    pin         step t on position j: a_t = one-hot(j), this step only
    temperature every score divided by T before the softmax (T = 1: the model itself)
    force       step t emits word w whatever its argmax; the decoding goes on from w

The hook sees the scores as the score function made them (recorded: the step-through shows
them) and the weights after the softmax; an edit is applied there and nowhere else, so the
context, the copy mixture, the location term's next input and the coverage all read the
edited weights. engine/fast never sees a hook: interventions decode through the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

NEVER = torch.iinfo(torch.long).max  # a knock-out's first step where there is none


class AttentionHook:
    """Leaves the attention as it is and records the step's raw scores e_tj (B, S) (padding
    -inf), for a reader of the decoding (engine/insight/stepper.py)."""

    def __init__(self) -> None:
        self.raw: torch.Tensor | None = None

    def scores(self, scores: torch.Tensor) -> torch.Tensor:  # (B, S) -> (B, S)
        self.raw = scores
        return scores

    def weights(self, weights: torch.Tensor) -> torch.Tensor:  # (B, S) -> (B, S)
        return weights


class StepEdit(AttentionHook):
    """One step's edits for a batch. drop (B, S) bool: positions knocked out; pin (B,) long:
    the position each row's weights are pinned on, -1 none; temperature: divides the scores."""

    def __init__(self, drop: torch.Tensor | None = None, pin: torch.Tensor | None = None, temperature: float = 1.0):
        super().__init__()
        self.drop, self.pin, self.temperature = drop, pin, temperature

    def scores(self, scores: torch.Tensor) -> torch.Tensor:
        self.raw = scores
        if self.temperature != 1.0:  # T = 1 leaves the scores bit for bit
            scores = scores / self.temperature
        if self.drop is not None:
            scores = scores.masked_fill(self.drop, float("-inf"))
        return scores

    def weights(self, weights: torch.Tensor) -> torch.Tensor:
        if self.drop is not None:  # a row with every position knocked out attends to nothing
            weights = weights.nan_to_num(0.0)
        if self.pin is None:
            return weights
        one = F.one_hot(self.pin.clamp_min(0), weights.size(1)).to(weights.dtype)  # (B, S)
        return torch.where(self.pin[:, None] >= 0, one, weights)


@dataclass
class Interventions:
    """A batch's interventions over a greedy decoding; any part may be None (none of it).
    knockout_from (B, S) long: the first step at which each position's weight is 0 (NEVER:
    none); pin (B, T) long: the position step t is pinned on, -1 none; force (B, T) long:
    the word id step t emits, -1 none (steps past T: none); temperature divides every score."""

    knockout_from: torch.Tensor | None = None
    pin: torch.Tensor | None = None
    force: torch.Tensor | None = None
    temperature: float = 1.0

    def at(self, t: int) -> StepEdit:
        """Step t's hook."""
        drop = self.knockout_from <= t if self.knockout_from is not None else None  # (B, S)
        pin = self.pin[:, t] if self.pin is not None and t < self.pin.size(1) else None  # (B,)
        return StepEdit(drop, pin, self.temperature)

    def forced(self, t: int, y: torch.Tensor) -> torch.Tensor:
        """Step t's words y (B,), with the forced ones in their place."""
        if self.force is None or t >= self.force.size(1):
            return y
        word = self.force[:, t]  # (B,)
        return torch.where(word >= 0, word, y)


class Traced(NamedTuple):
    """One step of Seq2Seq.greedy_reference, as its `trace` list gets it: what the step made,
    and what it read (so that the step can be run again with an edit: engine/insight/faithfulness.py)."""

    logits: torch.Tensor  # (B, V) logits, with copy (B, n_ext) log-probabilities
    weights: torch.Tensor  # (B, S) the attention that made the step (edited, where it was)
    p_copy: torch.Tensor | None  # (B,) the copy gate's, None without copy
    scores: torch.Tensor  # (B, S) the raw scores e_tj, before any edit; padding -inf
    y: torch.Tensor  # (B,) the word the step read
    h: list[torch.Tensor]  # the states it read, per layer (B, H)
    prev: torch.Tensor  # (B, S) the previous step's weights
    cov: torch.Tensor  # (B, S) the earlier steps' weights summed
