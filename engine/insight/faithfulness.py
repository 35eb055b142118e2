"""Attention tested as an explanation: does a step's word follow what the step attends to?

On a sample of test sentences at every length, word steps of the greedy decoding (up to
STEPS_EACH a sentence, at random) are run again three times from the same state, with one
change to its attention
(engine/model/intervene.py's StepEdit, the mechanics the step screen and the probe use):

    top      the input word it weights most knocked out (weight 0, the rest renormalised)
    random   a random other input word knocked out
    pin      all its weight pinned on another input word, one whose word differs from the
             step's own

and counted: how often the step's word changes (top, random), and how often it becomes the
pinned word (pin). Where attention explains the output, knocking out the top word changes it
far more often than a random one, and pinning moves it. Knock-outs compare words as the output
reads them (an emitted <unk> is the word its attention peaks on: engine/insight/exact_match.py);
a pin counts where the model emits the pinned word's own id (an <unk> only for a word outside
its vocabulary).

Where several words share the top weight (the no-attention control: every weight equal),
the top word is drawn at random among them, so that for the control `top` and `random`
measure the same thing and differ only by chance, as they should.

The whole sample is one batch: one greedy decoding, whose trace keeps every step's inputs
(engine/model/intervene.py's Traced), then one decoder step per kind over every step drawn at
once; the only host reads are the rows' positions and the counts at the end. On the default
model (308 sentences, 1,782 steps) it takes 0.35 s on one CPU thread, 0.23 s on two.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import torch

from ..model.copy import extended_size
from ..model.intervene import StepEdit
from ..model.seq2seq import Seq2Seq
from ..model.tokens import EOS, UNK
from ..train.data import PairDataset, Vocab

AT_LEAST = 300  # sentences, spread evenly over the lengths
# word steps of each sentence run again (at random, all of a shorter one): the re-runs' cost is
# a step over every row, so this bounds it; 300 sentences give 1,800 steps, ~65 a length of 3-30
STEPS_EACH = 6


def faithfulness_sample(sentences: Sequence[Sequence[str]], at_least: int = AT_LEAST) -> list[list[str]]:
    """At least `at_least` sentences (all there are, if fewer), taken a length at a time in
    turn, each length's in their order, so every length has its share."""
    by_length: dict[int, list[list[str]]] = {}
    for s in sentences:
        by_length.setdefault(len(s), []).append(list(s))
    queues = [by_length[n] for n in sorted(by_length)]
    out: list[list[str]] = []
    k = 0
    while len(out) < at_least and any(k < len(q) for q in queues):
        out += [q[k] for q in queues if k < len(q)]
        k += 1
    return out


@torch.inference_mode()
def measure_faithfulness(
    model: Seq2Seq,
    vocab: Vocab,
    sentences: Sequence[Sequence[str]],
    device: torch.device,
    seed: int = 0,
    at_least: int = AT_LEAST,
    steps_each: int = STEPS_EACH,
) -> dict:
    """The figures (report.json's `faithfulness`): shares of word steps overall and by
    sentence length. seed: the random steps and words drawn."""
    t0 = time.perf_counter()
    sample = faithfulness_sample(sentences, at_least)
    model.eval()
    ds = PairDataset(sample, vocab, extended=True)  # extended ids: equal ids are equal words
    src, words = ds.src.to(device), ds.src_len - 1  # (B, S); (B,) on the host
    ext = ds.src_ext.to(device)  # (B, S)
    src_ext = ext if model.copy else None
    n_ext = extended_size(len(vocab), ds.src_ext) if model.copy else None
    trace: list = []
    out = model.greedy_reference(src, ds.src_len, src_ext=src_ext, trace=trace, n_ext=n_ext)
    enc_out, _, keys, mask = model.encode(src, ds.src_len)
    B, S = src.shape
    T = len(trace)
    n = words.to(device)  # (B,)
    steps = torch.arange(T, device=device)[None, :]  # (1, T)
    pred = out.tokens[:, :T]  # (B, T)
    word_step = (steps < n[:, None]) & (steps < out.length[:, None]) & (pred != EOS)  # (B, T)
    gen = torch.Generator().manual_seed(seed)
    # steps_each of each sentence's word steps, at random: the first of a random order of them
    order = torch.rand((B, T), generator=gen).to(device).masked_fill(~word_step, 2.0).argsort(1).argsort(1)
    b, t = (word_step & (order < steps_each)).nonzero(as_tuple=True)  # (R,) each: the rows, one per word step
    R = len(b)

    def stacked(field: str) -> torch.Tensor:  # a trace field over the steps, at the rows
        return torch.stack([getattr(r, field) for r in trace])[t, b]  # (R, ...)

    y, prev, cov, weights = stacked("y"), stacked("prev"), stacked("cov"), stacked("weights")  # (R,), (R, S) x3
    h = [torch.stack([r.h[layer] for r in trace])[t, b] for layer in range(len(trace[0].h))]  # (R, H) per layer
    pos = torch.arange(S, device=device)[None, :]  # (1, S)
    is_word = pos < n[b][:, None]  # (R, S): the sentence's words, not <eos> nor padding
    row_ext = ext[b]  # (R, S)
    row_enc, row_keys, row_mask = enc_out[b], keys[b], mask[b]  # (R, S, K), (R, S, A), (R, S)
    row_src_ext = src_ext[b] if src_ext is not None else None

    def read(ids: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(R,) the words emitted, as ids where equal ids are equal words."""
        peak = w.argmax(-1)  # (R,)
        looked = torch.where(peak < n[b], row_ext.gather(1, peak[:, None]).squeeze(1), UNK)
        return torch.where(ids == UNK, looked, ids)

    def again(hook: StepEdit, raw: bool = False) -> torch.Tensor:
        """The rows' steps run again with an edit: the words they now emit (raw: the ids)."""
        logits, _, w, _ = model.decoder.step(
            y,
            h,
            row_enc,
            row_keys,
            row_mask,
            prev,
            src_ext=row_src_ext,
            n_ext=n_ext or 0,
            cov=cov,
            hook=hook,
        )
        return logits.argmax(-1) if raw else read(logits.argmax(-1), w)

    def draw(allowed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One allowed position per row at random, and whether the row had one."""
        key = torch.rand((R, S), generator=gen).to(device).masked_fill(~allowed, -1.0)
        best = key.max(-1)
        return best.indices, best.values >= 0

    before = read(pred[b, t], weights)  # (R,)
    top_weight = weights.masked_fill(~is_word, -1.0).amax(-1, keepdim=True)  # (R, 1)
    tied = is_word & (weights == top_weight)  # (R, S) several only where weights are equal
    top, _ = draw(tied)
    other, _ = draw(is_word & (pos != top[:, None]))
    pin_on, pinnable = draw(is_word & (pos != top[:, None]) & (row_ext != before[:, None]))

    def knocked(j: torch.Tensor) -> torch.Tensor:
        return again(StepEdit(drop=pos == j[:, None])) != before  # (R,)

    top_changed, other_changed = knocked(top), knocked(other)
    # emitting the pinned word: its own id, or <unk> where the word is not in the vocabulary (an
    # <unk> for a word it knows is read as the pinned word only by the replacement rule, not
    # said by the model: every emitted <unk> would count, whatever the model learned)
    pinned = again(StepEdit(pin=torch.where(pinnable, pin_on, -1)), raw=True)  # (R,)
    at = pin_on[:, None]
    unknown = src[b].gather(1, at).squeeze(1) == UNK  # (R,)
    pin_hit = pinnable & ((pinned == row_ext.gather(1, at).squeeze(1)) | ((pinned == UNK) & unknown))
    length = n[b]  # (R,)
    flags = [torch.ones_like(top_changed), top_changed, other_changed, pinnable, pin_hit, tied.sum(-1) > 1]
    # (6, S): per sentence length, how many word steps have each flag; the one read of the figures
    counts = torch.stack([torch.bincount(length, f.double(), minlength=S) for f in flags]).round().long().cpu()
    sentences_of = torch.bincount(words, minlength=S)
    by_length = {}
    for length_n in sorted(set(words.tolist())):
        steps_n, top_n, other_n, pin_steps, pin_n, _ = counts[:, length_n].tolist()
        by_length[str(length_n)] = _figures(int(sentences_of[length_n]), steps_n, top_n, other_n, pin_steps, pin_n)
    total = counts.sum(1).tolist()
    return {
        **_figures(len(sample), *total[:5]),
        "attention": bool(model.use_attention),
        "tied_top": total[5] / total[0] if total[0] else None,  # word steps whose top weight several words share
        "lengths": [min(len(s) for s in sample), max(len(s) for s in sample)] if sample else [],
        "by_length": by_length,
        "seconds": time.perf_counter() - t0,
    }


def _figures(sentences: int, steps: int, top: int, other: int, pin_steps: int, pin: int) -> dict:
    def share(k: int, of: int) -> float | None:
        return k / of if of else None

    return {
        "sentences": sentences,
        "word_steps": steps,
        "top_knockout_changes": share(top, steps),
        "random_knockout_changes": share(other, steps),
        "pin_steps": pin_steps,
        "pin_emits": share(pin, pin_steps),
    }


def gap_noise(f: dict) -> float:
    """Two standard errors of the difference between the top and random knock-out shares:
    a gap inside it is chance."""
    steps, a, r = f["word_steps"], f["top_knockout_changes"], f["random_knockout_changes"]
    if not steps or a is None or r is None:
        return float("nan")
    return 2 * math.sqrt((a * (1 - a) + r * (1 - r)) / steps)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _band(f: dict, lengths: list[str]) -> tuple[float | None, float | None, str]:
    """The top and random shares over some lengths together, and the lengths in words."""
    rows = [f["by_length"][n] for n in lengths]
    steps = sum(r["word_steps"] for r in rows)
    top = sum(r["top_knockout_changes"] * r["word_steps"] for r in rows if r["word_steps"])
    other = sum(r["random_knockout_changes"] * r["word_steps"] for r in rows if r["word_steps"])
    span = lengths[0] if len(lengths) == 1 else f"{lengths[0]}–{lengths[-1]}"
    return (top / steps if steps else None), (other / steps if steps else None), span


def faithfulness_text(f: dict) -> str:
    """A paragraph of analysis.md: the figures, what they say, and how they go with length."""
    a, r, p = f["top_knockout_changes"], f["random_knockout_changes"], f["pin_emits"]
    if a is None:
        return "Attention as an explanation: no word steps were decoded in the sample."
    lo, hi = f["lengths"]
    head = (
        f"Knocking out the input word a step attends to most (its weight set to 0, the rest renormalised) "
        f"changes that step's word in {_pct(a)} of {f['word_steps']} word steps ({f['sentences']} test "
        f"sentences of {lo}–{hi} words), against {_pct(r)} for a random other word; pinning a step's "
        f"attention on another word makes it emit that word in {_pct(p)} of {f['pin_steps']} steps."
    )
    noise = gap_noise(f)
    if not f["attention"]:
        verdict = (
            " This model has no attention: its weights are all equal, so the “most attended” word is drawn "
            f"among equals and the two knock-outs measure the same thing (a gap of {100 * (a - r):+.1f} points, "
            f"{'within' if abs(a - r) <= noise else 'outside'} chance, ±{100 * noise:.1f}): where it looks "
            "explains none of its words."
            + (
                " A pin still moves its word: its output layer reads the words out of the context, and a "
                "context made of one word is that word."
                if (p or 0) >= 0.5
                else ""
            )
        )
    elif a - r > max(noise, 0.5) and (p or 0) >= 0.5:
        verdict = " The words follow the attention: it is a faithful account of where each word comes from."
    elif a - r > noise:
        verdict = " The words follow the attention only in part: other paths carry some of each word."
    else:
        verdict = " The words do not follow the attention: it does not explain the output."
    lengths = list(f["by_length"])
    third = max(1, len(lengths) // 3)
    if len(lengths) >= 2:
        (sa, sr, s_span), (la, lr, l_span) = _band(f, lengths[:third]), _band(f, lengths[-third:])
        verdict += (
            f" By length: {_pct(sa)} against {_pct(sr)} at {s_span} words, {_pct(la)} against {_pct(lr)} at {l_span}."
        )
    return head + verdict
