"""engine/insight/stepper.py: a decoding step by step is the decoding the probe shows, greedy and beam."""

import numpy as np
import pytest
import torch

from engine.insight.evaluate import probe
from engine.insight.stepper import TOP, step_through
from engine.train.checkpoint import load_model

CPU = torch.device("cpu")
SENTENCES = [
    "the cat sat on the mat",
    "the zebra ate my xylophone today",  # unknown words: copied through <unk>
    "big red dog",
]


@pytest.fixture(scope="module")
def loaded(reversing_checkpoint):
    return load_model(reversing_checkpoint)


@pytest.mark.parametrize("text", SENTENCES)
def test_greedy_steps_are_the_probe_answer_and_its_grid_rows(loaded, text):
    r = probe(loaded.model, loaded.vocab, text, CPU)
    s = step_through(loaded.model, loaded.vocab, text, CPU)
    assert s.output == r.output and s.source == r.source
    assert len(s.steps) == r.steps
    np.testing.assert_allclose(np.stack([step.attention for step in s.steps]), r.attention, atol=1e-5)
    assert s.steps[-1].output == r.output
    for step in s.steps:
        assert step.output == r.output[: len(step.output)]
        assert len(step.top) == TOP and step.top[0][0] == step.chosen  # greedy takes the likeliest
        probs = [p for _, p in step.top]
        assert probs == sorted(probs, reverse=True) and sum(probs) <= 1 + 1e-6
        assert abs(step.attention.sum() - 1) < 1e-5


def test_an_emitted_unk_names_the_input_word_it_copies(loaded):
    text = "the zebra ate my xylophone today"
    s = step_through(loaded.model, loaded.vocab, text, CPU)
    unknown = sorted(w for w in text.split() if w not in loaded.vocab)
    assert "zebra" in unknown and "xylophone" in unknown
    unks = [step for step in s.steps if step.chosen == "<unk>"]
    assert sorted(step.copied for step in unks) == unknown
    for step in unks:
        assert step.output[-1] == step.copied
        assert s.source_tokens[int(step.attention.argmax())] == step.copied
    assert all(step.copied is None for step in s.steps if step.chosen != "<unk>")


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("text", SENTENCES)
def test_beam_steps_end_in_the_beam_answer(loaded, text, k):
    r = probe(loaded.model, loaded.vocab, text, CPU, beam=k)  # model.beam
    s = step_through(loaded.model, loaded.vocab, text, CPU, beam=k)
    assert s.output == r.output and s.beam == k
    assert s.steps[-1].stopped and not any(step.stopped for step in s.steps[:-1])
    assert s.steps[-1].best.words == r.output + ["<eos>"]
    for t, step in enumerate(s.steps):
        assert len(step.live) == (1 if t == 0 else k)
        assert len(step.candidates) == 2 * k
        fates = [h.fate for h in step.candidates]
        assert fates.count("survives") == k or step.stopped
        lead = step.candidates[0]  # the step is drawn from the best continuation's view
        assert step.output == [w for w in lead.words if w != "<eos>"] and step.chosen in (lead.words[-1], "<unk>")
        scores = [h.score for h in step.candidates]
        assert scores == sorted(scores, reverse=True)
        for h in step.candidates:  # a continuation is its parent's words and one more
            assert h.words[:-1] == step.live[h.parent].words
            assert (h.words[-1] == "<eos>") == (h.fate == "finished")
    for before, after in zip(s.steps, s.steps[1:]):  # the survivors are the next step's live ones
        survivors = [(h.words, h.score) for h in before.candidates if h.fate == "survives"]
        assert survivors == [(h.words, pytest.approx(h.score)) for h in after.live]


def test_bad_input_is_a_sentence_for_the_user(loaded):
    with pytest.raises(ValueError, match="no words"):
        step_through(loaded.model, loaded.vocab, "?!", CPU)
