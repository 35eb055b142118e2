"""engine/model/intervene.py and engine/insight/interventions.py: knock-outs, pins, forced
words and a temperature change a greedy decoding as they say, from the step they name on; a
copy model cannot copy a word knocked out; T = 1 is the model bit for bit; edits stack,
replace, undo and clear; every mistake is a sentence for the user. The step-through's
changed decodings (engine/insight/stepper.py) weigh the original's words."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.impl import build_model
from engine.insight.interventions import EditHistory, Edits, Force, Knockout, Pin, differing, word_id
from engine.insight.stepper import step_through
from engine.model.intervene import NEVER, Interventions, StepEdit
from engine.train.checkpoint import load_model
from engine.train.config import Config
from engine.train.data import EOS, UNK, PairDataset, Vocab

CPU = torch.device("cpu")
KNOWN = ["the", "cat", "sat", "on", "mat"]


def hand_set(copy: bool, seed: int = 0, **arch):
    """A small untrained model; with copy, its gate shut on generating (p_copy = 1 - 2e-9), so
    every word it emits is copied from where its attention looks."""
    torch.manual_seed(seed)
    cfg = Config(embed_dim=12, hidden_dim=16, copy="on" if copy else "off", **arch)
    vocab = Vocab(KNOWN)
    model = build_model(len(vocab), cfg).eval()
    if copy:
        with torch.no_grad():
            model.decoder.copy_gate.weight.zero_()
            model.decoder.copy_gate.bias.fill_(-20.0)
    return model, vocab


def decode(model, vocab, words, intervene=None, trace=None):
    ds = PairDataset([words], vocab, extended=True)
    ext = ds.src_ext if model.copy else None
    return model.greedy_reference(ds.src, ds.src_len, src_ext=ext, intervene=intervene, trace=trace), ds


UNKNOWN = ["zebra", "lion", "piano", "moon", "kite"]  # none in KNOWN: only copying can say them


def no_end(S: int) -> torch.Tensor:
    """A knock-out of the source's <eos> from step 1 (knockout_from (1, S)): the hand-set copy
    model cannot copy the end, so it decodes to its budget."""
    knock = torch.full((1, S), NEVER)
    knock[0, S - 1] = 0
    return knock


def test_a_copy_model_cannot_copy_a_word_knocked_out():
    model, vocab = hand_set(copy=True)
    knock = no_end(len(UNKNOWN) + 1)
    out, ds = decode(model, vocab, UNKNOWN, Interventions(knockout_from=knock))
    emitted = out.tokens[0, : int(out.length[0])].tolist()
    first = emitted[0]  # the extended id copied at step 1
    assert first >= len(vocab) and first in ds.src_ext[0].tolist()  # copied, by extended id
    j = ds.src_ext[0].tolist().index(first)
    knock = knock.clone()
    knock[0, j] = 0
    changed, _ = decode(model, vocab, UNKNOWN, Interventions(knockout_from=knock))
    ids = changed.tokens[0, : int(changed.length[0])].tolist()
    assert first not in ids  # never copied again, at any step
    assert (changed.attention[0, : len(ids), j] == 0).all()  # its weight is exactly 0 throughout


def test_knockout_renormalises_the_rest_from_its_step_on_and_leaves_earlier_steps():
    model, vocab = hand_set(copy=False)
    words = KNOWN + ["cat", "the"]
    trace: list = []
    out, _ = decode(model, vocab, words, trace=trace)
    length = int(out.length[0])
    assert length >= 3
    j, t = 2, 1
    knock = torch.full((1, len(words) + 1), NEVER)
    knock[0, j] = t
    changed, _ = decode(model, vocab, words, Interventions(knockout_from=knock))
    # steps before t: the same decoding, bit for bit
    assert torch.equal(changed.tokens[0, :t], out.tokens[0, :t])
    assert torch.equal(changed.attention[0, :t], out.attention[0, :t])
    # step t reads the same state: its weights are the old ones with j at 0, renormalised
    old = out.attention[0, t]
    expected = old.clone()
    expected[j] = 0
    torch.testing.assert_close(changed.attention[0, t], expected / expected.sum())
    assert (changed.attention[0, t:, j] == 0).all()  # and 0 at every step after


def test_pin_is_one_step_and_a_copy_model_then_copies_the_pinned_word():
    model, vocab = hand_set(copy=True)
    t, j = 2, 0
    pin = torch.full((1, t + 1), -1)
    pin[0, t] = j
    out, ds = decode(model, vocab, UNKNOWN, Interventions(knockout_from=no_end(len(UNKNOWN) + 1), pin=pin))
    weights = out.attention[0]
    assert torch.equal(weights[t], torch.nn.functional.one_hot(torch.tensor(j), len(UNKNOWN) + 1).float())
    assert out.tokens[0, t] == ds.src_ext[0, j]  # all the weight on "zebra": it copies "zebra"
    assert weights[t + 1].max() < 1  # the next step attends by itself again


def test_a_forced_word_is_emitted_and_the_decoding_goes_on_from_it():
    model, vocab = hand_set(copy=True)
    words = UNKNOWN
    knock = no_end(len(words) + 1)
    plain, _ = decode(model, vocab, words, Interventions(knockout_from=knock))
    force = torch.tensor([[-1, vocab.stoi["mat"]]])
    out, _ = decode(model, vocab, words, Interventions(knockout_from=knock, force=force))
    assert out.tokens[0, 1] == vocab.stoi["mat"] != plain.tokens[0, 1]
    assert torch.equal(out.tokens[0, :1], plain.tokens[0, :1]) and torch.equal(
        out.attention[0, :3], plain.attention[0, :3]
    )
    # step 3 read "mat" and so did the state that step 4 attends from: it went on from the forced word
    assert not torch.equal(out.attention[0, 3], plain.attention[0, 3])
    eos = torch.tensor([[EOS]])
    ended, _ = decode(model, vocab, words, Interventions(force=eos))
    assert int(ended.length[0]) == 1  # forcing <eos> ends it


@pytest.mark.parametrize(
    "arch",
    [{}, {"location_kernel": 0}, {"coverage": True}, {"attention": False}, {"score": "dot"}, {"score": "general"}],
)
def test_temperature_one_is_the_model_and_others_divide_the_scores(arch):
    model, vocab = hand_set(copy=False, **arch)
    words = KNOWN + ["the"]
    trace: list = []
    plain, _ = decode(model, vocab, words, trace=trace)
    same, _ = decode(model, vocab, words, Interventions(temperature=1.0))
    assert torch.equal(same.tokens, plain.tokens) and torch.equal(same.attention, plain.attention)
    hot, _ = decode(model, vocab, words, Interventions(temperature=4.0))
    raw = trace[0].scores[0]  # step 1 reads the same state at any temperature
    torch.testing.assert_close(hot.attention[0, 0], torch.softmax(raw / 4.0, -1))
    if arch.get("attention") is False:  # equal scores: no temperature changes them
        assert torch.equal(hot.attention[0, 0], plain.attention[0, 0])
    else:
        assert hot.attention[0, 0].max() < plain.attention[0, 0].max()  # flatter


def test_an_empty_edit_is_no_edit():
    model, vocab = hand_set(copy=True)
    ds = PairDataset([UNKNOWN], vocab)
    enc_out, hidden, keys, mask = model.encode(ds.src, ds.src_len)
    y = torch.tensor([1])
    w = torch.zeros(mask.shape)
    a = model.decoder.step(y, list(hidden.unbind(0)), enc_out, keys, mask, w, src_ext=ds.src_ext, n_ext=len(vocab) + 5)
    b = model.decoder.step(
        y, list(hidden.unbind(0)), enc_out, keys, mask, w, src_ext=ds.src_ext, n_ext=len(vocab) + 5, hook=StepEdit()
    )
    assert torch.equal(a[0], b[0]) and torch.equal(a[2], b[2])


# -- edits in words: stacking, replacing, undo, mistakes -----------------------------------------
def test_edits_stack_and_replace_at_a_step():
    e = Edits().plus(Knockout(2, 3)).plus(Pin(1, 0)).plus(Force(4, "cat"))
    assert e.changes == (Knockout(2, 3), Pin(1, 0), Force(4, "cat"))
    e = e.plus(Pin(1, 5))  # a second pin at step 2 replaces the first
    assert [c for c in e.changes if isinstance(c, Pin)] == [Pin(1, 5)]
    e = e.plus(Knockout(2, 0))  # earlier: replaces the later knock-out of the same word
    assert [c for c in e.changes if isinstance(c, Knockout)] == [Knockout(2, 0)]
    with pytest.raises(ValueError, match="already knocked out from step 1"):
        e.plus(Knockout(2, 4))
    assert e.with_temperature(0.5).temperature == 0.5 and e.temperature == 1.0  # a new value, the old kept
    assert not Edits() and Edits(temperature=2.0) and Edits((Pin(0, 0),))
    tokens = ["the", "cat", "sat", "on", "mat", "big", "<eos>"]
    assert e.lines(tokens)[0] == "force step 5 to “cat”"
    assert "knock out “sat” (input 3) from step 1" in e.lines(tokens)


def test_history_undoes_one_at_a_time_and_clear_is_undone_too():
    h = EditHistory()
    h.push(h.edits.plus(Knockout(1)))
    h.push(h.edits.plus(Pin(2, 0)))
    h.push(h.edits.with_temperature(2.0))
    assert h.edits == Edits((Knockout(1), Pin(2, 0)), 2.0)
    h.clear()
    assert not h.edits
    assert h.undo() and h.edits == Edits((Knockout(1), Pin(2, 0)), 2.0)  # the clear, undone
    assert h.undo() and h.edits == Edits((Knockout(1), Pin(2, 0)))
    assert h.undo() and h.edits == Edits((Knockout(1),))
    assert h.undo() and h.edits == Edits()
    assert not h.undo()  # nothing left to undo
    h.clear()
    assert not h.can_undo  # clearing nothing is no step


@pytest.mark.parametrize(
    ("edits", "message"),
    [
        (Edits((Knockout(4),)), "input 5 is outside the sentence"),
        (Edits((Pin(0, 9),)), "input 10 is outside the sentence"),
        (Edits((Knockout(-1),)), "outside the sentence"),
        (Edits((Knockout(0), Knockout(1), Knockout(2), Knockout(3))), "every input token is knocked out"),
        (Edits((Force(0, "xylophone"),)), "not in the model's vocabulary"),
        (Edits((Force(0, "two words"),)), "not one word"),
    ],
)
def test_mistakes_are_a_sentence(edits, message):
    vocab = Vocab(KNOWN)
    with pytest.raises(ValueError, match=message):
        edits.check(["the", "cat", "sat"], vocab, copy=False)


@pytest.mark.parametrize("t", [0, -1.5, float("nan"), float("inf")])
def test_a_temperature_of_zero_or_less_is_refused(t):
    with pytest.raises(ValueError, match="above 0"):
        Edits(temperature=t)


def test_a_forced_word_reads_by_the_projects_rule():
    vocab = Vocab(KNOWN)
    source = ["the", "zebra"]
    assert word_id("Cat", source, vocab, copy=False) == vocab.stoi["cat"]
    assert word_id("<eos>", source, vocab, copy=False) == EOS and word_id("<unk>", source, vocab, False) == UNK
    assert word_id("zebra", source, vocab, copy=True) == len(vocab)  # copied: its extended id
    with pytest.raises(ValueError, match="force <unk>"):
        word_id("zebra", source, vocab, copy=False)


def test_differing_marks_the_changed_words():
    assert differing(["a", "b", "c"], ["a", "x", "c", "d"]) == [False, True, False, True]


# -- the step-through with edits, on a model that reverses ----------------------------------------
@pytest.fixture(scope="module")
def loaded(reversing_checkpoint):
    return load_model(reversing_checkpoint)


def test_step_through_with_a_knockout_weighs_the_original_words(loaded):
    text = "the cat sat on the mat"
    original = step_through(loaded.model, loaded.vocab, text, CPU)
    assert original.match and original.output == text.split()[::-1]
    edits = Edits((Knockout(5),))  # "mat", the first word of the reversal
    changed = step_through(loaded.model, loaded.vocab, text, CPU, edits=edits, against=original)
    first = changed.steps[0]
    assert first.attention[5] == 0 and first.was == "mat"
    assert first.p_was < 0.5 < original.steps[0].p  # the word it emitted became unlikely
    assert changed.output[0] != "mat" and not changed.match
    assert changed.edits == edits
    for after in changed.steps:  # the raw scores are the model's own
        assert after.scores is not None and np.isfinite(after.scores).all()
        assert abs(float(after.shares.sum()) - 1) < 1e-4  # the context's shares add up
    np.testing.assert_allclose(original.steps[0].scores, changed.steps[0].scores, atol=1e-6)  # same state


def test_step_through_refuses_edits_past_the_decoding_and_with_a_beam(loaded):
    text = "the cat sat"
    with pytest.raises(ValueError, match="step 9 is past the decoding, which ends at step 4"):
        step_through(loaded.model, loaded.vocab, text, CPU, edits=Edits((Pin(8, 0),)))
    with pytest.raises(ValueError, match="greedy decoding only"):
        step_through(loaded.model, loaded.vocab, text, CPU, beam=2, edits=Edits((Pin(0, 0),)))
    forced = step_through(loaded.model, loaded.vocab, text, CPU, edits=Edits((Force(1, "mat"),)))
    assert forced.steps[1].forced and forced.steps[1].chosen == "mat" and forced.output[1] == "mat"
