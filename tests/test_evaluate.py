"""engine/insight/evaluate.py: a probe tokenises by the documented rule, and whatever is typed it answers
or raises one clear line; a probe reads the weights as they are; the example block has the
notebook's exact form."""

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.impl import build_model
from engine.insight.evaluate import MAX_PROBE_WORDS, format_example, probe
from engine.train.checkpoint import load_model
from engine.train.config import Config
from engine.train.events import BatchDone
from engine.train.trainer import Trainer
from tests.conftest import HOSTILE_STRINGS, TINY, mirrored, sentence_result


@pytest.fixture(scope="module")
def loaded(trained_checkpoint):
    return load_model(trained_checkpoint)


@pytest.mark.parametrize(
    "text, expect",
    [
        ("the cat sat", ["the", "cat", "sat"]),
        ("The CAT  sat", ["the", "cat", "sat"]),
        ("the\tcat\nsat", ["the", "cat", "sat"]),
        ("the zebra sat", ["the", "zebra", "sat"]),
    ]
    + [(text, words) for text, words in HOSTILE_STRINGS.items() if 0 < len(words) <= MAX_PROBE_WORDS],
)
def test_probe_tokenises_by_the_documented_rule(loaded, text, expect):
    r = probe(loaded.model, loaded.vocab, text, torch.device("cpu"))
    assert r.source == expect and r.reference == expect[::-1]
    assert r.attention.shape[1] == len(expect) + 1


@pytest.mark.parametrize("text", [text for text, words in HOSTILE_STRINGS.items() if not words])
def test_probe_without_words_is_a_clear_error(loaded, text):
    with pytest.raises(ValueError, match="no words"):
        probe(loaded.model, loaded.vocab, text, torch.device("cpu"))


def test_probe_of_200_words_answers(loaded):
    text = " ".join(random.Random(0).choice(["the", "cat", "sat", "dog"]) for _ in range(200))
    r = probe(loaded.model, loaded.vocab, text, torch.device("cpu"))
    assert len(r.source) == 200 and r.steps <= 2 * 201 + 5


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_probe_never_raises_anything_but_a_clear_error(loaded_module_model, text):
    model, vocab = loaded_module_model
    try:
        r = probe(model, vocab, text, torch.device("cpu"))
    except ValueError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert r.source and r.attention.shape[0] == r.steps


@pytest.fixture(scope="module")
def loaded_module_model(loaded):
    return loaded.model, loaded.vocab


@pytest.mark.parametrize("use_native", [True, False], ids=["c-kernel", "foreach"])
def test_a_probe_after_a_training_step_answers_with_the_new_weights(tmp_path, use_native):
    """Adam's C kernel writes the weights through raw pointers: a probe after the step reads
    them as a model built afresh from them does, as after the foreach ops' in-place writes."""
    trainer = Trainer(Config(**{**TINY, "epochs": 1}), tmp_path / "best.pt")
    trainer.optimizer.use_native = use_native
    model, vocab, cpu = trainer.model, trainer.vocab, torch.device("cpu")
    text = "the cat sat on the mat"
    before = probe(model, vocab, text, cpu)
    steps = trainer.run()
    assert isinstance(next(steps), BatchDone)  # one optimiser step, in this process
    steps.close()
    after = probe(model, vocab, text, cpu)
    fresh = build_model(len(vocab), trainer.cfg)
    fresh.load_state_dict(model.state_dict())
    np.testing.assert_array_equal(after.attention, probe(fresh, vocab, text, cpu).attention)
    assert not np.array_equal(after.attention, before.attention)  # the step changed the answer


def test_example_block_has_the_notebooks_exact_form():
    r = sentence_result("the cat sat".split(), mirrored(3))
    assert format_example(r) == 'Input: "the cat sat"\nOutput: "sat cat the"\nReference: "sat cat the"\nmatch'
    bad = sentence_result("the cat sat".split(), mirrored(3), output="sat the".split())
    assert format_example(bad).splitlines() == [
        'Input: "the cat sat"',
        'Output: "sat the"',
        'Reference: "sat cat the"',
        "no match",
    ]
