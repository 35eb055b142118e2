"""How far the model goes past its training lengths, on known and on unknown words
(engine/insight/lengths.py), and how finish_run reports it."""

import json
import random

import numpy as np
import pytest
import torch

from engine.insight import lengths
from engine.insight.evaluate import EvalResult, SentenceResult
from engine.insight.lengths import (
    FAR_SENTENCES_PER_LENGTH,
    REPEATED_PER_LENGTH,
    SENTENCES_PER_LENGTH,
    LengthCurve,
    describe_limit,
    failure_kind,
    held_lengths,
    made_up_words,
    repeated_word_sentences,
    sweep_lengths,
)
from engine.insight.report import finish_run
from engine.train.checkpoint import load_model
from engine.train.data import random_sentences


@pytest.mark.parametrize("min_len, max_len", [(3, 10), (3, 6), (1, 2), (3, 30), (5, 100)])
def test_sweep_reaches_six_times_the_training_length(min_len, max_len):
    beyond, every = sweep_lengths(min_len, max_len)
    assert beyond[:10] == list(range(max_len + 1, max_len + 11))  # the first ten one by one
    assert max(60, 6 * max_len) in beyond
    # then on to ten times, while the model holds (length_curve's held_from)
    assert beyond[-2:] == held_lengths(max_len) and beyond[-1] == max(100, 10 * max_len)
    assert beyond == sorted(set(beyond)) and len(beyond) <= 22
    assert every[0] == min_len and every[-len(beyond) :] == beyond
    assert set(every) - set(beyond) <= set(range(min_len, max_len + 1))


def result(source, output):
    n = len(source)
    steps = len(output) + 1  # the output, then EOS
    return SentenceResult(source, output, source[::-1], np.zeros((steps, n + 1)), steps, match=output == source[::-1])


def evaluating_at(accuracy: dict[int, float], decoded: list[int]):
    """A stand-in for lengths.evaluate: exact match set by length (accuracy), each length
    decoded recorded in decoded."""

    def fake_evaluate(model, vocab, sentences, device, max_steps):
        n = len(sentences[0])
        decoded.append(n)
        right = round(accuracy[n] * len(sentences))
        results = [result(s, s[::-1] if k < right else s) for k, s in enumerate(sentences)]
        return EvalResult(results, 0.0, {n: (right, len(sentences))})

    return fake_evaluate


def test_repeated_word_sentences_repeat_two_or_three_words():
    words = [f"w{k}" for k in range(50)]
    by_length = repeated_word_sentences(words, random.Random(3), (21, 24), per_length=30)
    assert sorted(by_length) == [21, 22, 23, 24]
    distinct = set()
    for n, sents in by_length.items():
        assert len(sents) == 30 and all(len(s) == n and set(s) <= set(words) for s in sents)
        distinct |= {len(set(s)) for s in sents}
    assert distinct == {2, 3}  # a word per position from a pool of 2 or 3: at 21+ words both are used
    assert repeated_word_sentences(words, random.Random(3), (21, 24), 30) == by_length  # seeded


def test_failure_kinds():
    assert failure_kind(result(["a", "b", "c"], ["c", "b", "a"])) is None
    assert failure_kind(result(["a", "b", "c"], ["c", "b"])) == "stopped_early"
    assert failure_kind(result(["a", "b", "c"], ["c", "b", "a", "a"])) == "ran_on"
    assert failure_kind(result(["a", "b", "c"], ["c", "a", "a"])) == "wrong_word"


def curve(spec):
    """spec: {length: (right, stopped_early, ran_on, wrong_word)} -> LengthCurve"""
    results, counts = [], {}
    for n, (ok, short, long_, wrong) in spec.items():
        src = [f"w{i}" for i in range(n)]
        rev = src[::-1]
        results += [result(src, rev)] * ok + [result(src, rev[:-1])] * short
        results += [result(src, rev + ["x"])] * long_ + [result(src, ["x"] + rev[1:])] * wrong
        counts[n] = (ok, ok + short + long_ + wrong)
    return LengthCurve.of(EvalResult(results, 0.0, counts))


def test_first_drops_and_why():
    c = curve({11: (100, 0, 0, 0), 12: (98, 2, 0, 0), 13: (70, 10, 15, 5), 14: (40, 0, 60, 0)})
    assert c.first_below(0.99) == 12 and c.first_below(0.5) == 14
    d = c.as_dict()
    assert d["first_below_99"] == {
        "length": 12,
        "exact_match": 0.98,
        "failures": {"stopped_early": 2, "ran_on": 0, "wrong_word": 0},
    }
    assert d["first_below_50"]["length"] == 14 and d["first_below_50"]["failures"]["ran_on"] == 60
    text = describe_limit(c, "Known words")
    assert "below 99% at 12 words" in text and "mostly stopped early" in text
    assert "below 50% at 14 words" in text and "mostly ran on" in text
    assert "at once" in describe_limit(curve({9: (100, 0, 0, 0), 10: (0, 0, 100, 0)}), "x")
    assert "from the shortest length measured" in describe_limit(curve({3: (0, 0, 100, 0)}), "x")
    assert "stays at or above 99% up to 12 words" in describe_limit(curve({11: (100, 0, 0, 0), 12: (99, 1, 0, 0)}), "x")
    assert "stays at or above 50%" in describe_limit(curve({11: (100, 0, 0, 0), 12: (60, 40, 0, 0)}), "x")


def test_made_up_words_are_unknown(trained_checkpoint):
    vocab = load_model(trained_checkpoint).vocab
    words = made_up_words(vocab, random.Random(0))
    assert len(words) == 400 and not any(w in vocab for w in words)


def test_one_sentence_of_unknown_words_answers_for_every_one_of_its_length(reversing_checkpoint):
    """What sweep_sentences decodes one of: every sentence of n distinct made-up words is the
    same input, n <unk>, so 20 of them at each length come back all right or all wrong, as
    the one does; on a model that holds some lengths and loses others (3-12 and 13-24 here)."""
    loaded = load_model(reversing_checkpoint)
    sweep = lengths.sweep_sentences(loaded.vocab, 3, 6, random.Random(3))
    assert all(len(s) == 1 and len(set(s[0])) == n for n, s in sweep.unknown.items())  # distinct words
    pool = made_up_words(loaded.vocab, random.Random(4))
    rng = random.Random(5)
    twenty = {n: [rng.sample(pool, n) for _ in range(20)] for n in range(3, 25)}
    one = {n: s[:1] for n, s in twenty.items()}
    cpu = torch.device("cpu")
    many = lengths.length_curve(loaded.model, loaded.vocab, twenty, cpu, stop_when_lost=False)
    single = lengths.length_curve(loaded.model, loaded.vocab, one, cpu, stop_when_lost=False)
    assert set(many.per_length.values()) == {0.0, 1.0}  # all of a length alike, and both kinds
    assert many.per_length == single.per_length
    assert {n: max(f, key=f.get) for n, f in many.failures.items() if many.per_length[n] < 1} == {
        n: max(f, key=f.get) for n, f in single.failures.items() if single.per_length[n] < 1
    }


@pytest.mark.evaluation
def test_finish_run_reports_lengths_to_sixty_known_and_unknown(trained_checkpoint, tmp_path):
    loaded = load_model(trained_checkpoint)
    cfg = loaded.config
    test = random_sentences(50, cfg.min_len, cfg.max_len, random.Random(5), loaded.vocab.words())
    res = finish_run(trained_checkpoint, test, tmp_path, torch.device("cpu"))
    report = json.loads((tmp_path / "report.json").read_text())
    beyond, every = sweep_lengths(cfg.min_len, cfg.max_len)
    # each sweep is measured from its shortest length up, and stops where it is lost
    for key, kind, lengths_ in (
        ("beyond_training_lengths", "known_words", beyond),
        ("unknown_words_by_length", "unknown_words", every),
    ):
        measured = [int(n) for n in report[key]]
        assert measured + report["length_limits"][kind]["not_measured"] == lengths_
    assert every[-1] >= 60
    for kind, curve_ in (("known_words", res.known), ("unknown_words", res.unknown)):
        limits = report["length_limits"][kind]
        per = {int(n): a for n, a in limits["per_length"].items()}
        first = next((n for n, a in per.items() if a < 0.99), None)
        assert (limits["first_below_99"] or {}).get("length") == first
        for n, f in limits["failures"].items():  # every wrong answer is classified once
            assert sum(f.values()) == round((1 - per[int(n)]) * limits["sentences"][n])
        far = max(60, 2 * cfg.max_len)  # fewer sentences past it, where each costs the most
        per_length = {
            n: 1 if kind == "unknown_words" else SENTENCES_PER_LENGTH if n <= far else FAR_SENTENCES_PER_LENGTH
            for n in curve_.per_length
        }  # one sentence of unknown words a length: each is the same input (sweep_sentences)
        assert {int(n): t for n, t in limits["sentences"].items()} == per_length
    # sentences of 2-3 distinct words repeated, 21-40 words, pooled
    repeated = report["repeated_words"]
    counts = {int(n): t for n, t in repeated["sentences"].items()}
    assert counts == {n: REPEATED_PER_LENGTH for n in range(21, 41)} and repeated["lengths"] == [21, 40]
    right = sum(a * counts[int(n)] for n, a in repeated["per_length"].items())
    assert repeated["exact_match"] == pytest.approx(right / sum(counts.values()))
    assert repeated["exact_match"] == res.repeated.evaluation.exact_match
    analysis = (tmp_path / "analysis.md").read_text()
    assert "| length | known words | every word unknown |" in analysis
    assert describe_limit(res.unknown, "Every word unknown") in analysis


@pytest.fixture(scope="module")
def unk_models(tmp_path_factory):
    """Two tiny models, the same but for the <unk> training rate."""
    from engine.train.config import Config
    from tests.conftest import TINY, trained_once

    return {
        rate: trained_once(
            tmp_path_factory, f"unk{rate}", Config(**{**TINY, "epochs": 10, "lr": 5e-3, "unk_rate": rate})
        )
        for rate in (0.0, 0.3)
    }


@pytest.mark.slow
def test_unknown_word_figures_follow_the_unk_training(unk_models):
    """The sweep's figures are measured, not assumed: a model trained with 30% of its words
    shown as <unk> copies sentences of made-up words within its training lengths; the same
    model trained without <unk> cannot."""
    from engine.insight.lengths import length_curve, sweep_sentences

    curves = {}
    for rate, path in unk_models.items():
        loaded = load_model(path)
        s = sweep_sentences(loaded.vocab, 3, 6, random.Random(7))
        curves[rate] = length_curve(
            loaded.model, loaded.vocab, s.unknown, torch.device("cpu"), stop_when_lost=False
        )  # the whole curve, lost or not

    def inside(c) -> float:
        return float(np.mean([c.per_length[n] for n in range(3, 7)]))

    assert inside(curves[0.3]) >= 0.9
    assert inside(curves[0.0]) <= 0.5
    assert curves[0.0].first_below(0.99) == 3  # and the report says so, from the shortest length


def test_a_sweep_stops_after_two_lengths_under_one_percent(monkeypatch):
    """The rule alone, on set accuracies: a length under 1% then one above starts the count
    again; two in a row stop it, and the longer lengths are listed as not measured."""
    accuracy = {3: 1.0, 4: 0.995, 5: 0.6, 6: 0.005, 7: 0.3, 8: 0.0, 9: 0.0, 10: 0.0, 11: 1.0}
    decoded = []
    monkeypatch.setattr(lengths, "evaluate", evaluating_at(accuracy, decoded))
    by_length = {n: [[f"w{k}-{i}" for i in range(n)] for k in range(200)] for n in accuracy}
    curve = lengths.length_curve(None, None, by_length, torch.device("cpu"))
    assert decoded == [3, 4, 5, 6, 7, 8, 9]
    assert curve.not_measured == [10, 11]
    assert curve.first_below(0.99) == 5 and curve.first_below(0.5) == 6
    assert curve.as_dict()["not_measured"] == [10, 11]
    assert "Longer sentences (10-11 words) were not decoded" in describe_limit(curve, "x")
    full = lengths.length_curve(None, None, by_length, torch.device("cpu"), stop_when_lost=False)
    assert full.not_measured == [] and list(full.per_length) == list(accuracy)


def test_stopping_a_lost_sweep_leaves_a_trained_models_curve_as_it_was(trained_checkpoint):
    loaded = load_model(trained_checkpoint)
    sweep = lengths.sweep_sentences(loaded.vocab, 3, 6, random.Random(5), per_length=20)
    for by_length in (sweep.known, sweep.unknown):
        full = lengths.length_curve(loaded.model, loaded.vocab, by_length, torch.device("cpu"), stop_when_lost=False)
        cut = lengths.length_curve(loaded.model, loaded.vocab, by_length, torch.device("cpu"))
        measured = list(cut.per_length)
        assert measured == list(full.per_length)[: len(measured)]  # the shortest lengths, in order
        assert cut.per_length == {n: full.per_length[n] for n in measured}
        assert cut.failures == {n: full.failures[n] for n in measured}
        assert cut.first_below(0.99) == full.first_below(0.99)
        assert cut.first_below(0.5) == full.first_below(0.5)
        assert cut.not_measured == list(full.per_length)[len(measured) :]
        if cut.not_measured:  # it stopped after two lengths under 1% in a row
            assert all(full.per_length[n] < lengths.LOST for n in measured[-lengths.LOST_RUN :])
    # the tiny model (3-6 words) is lost well before 60 known words: the stop was exercised
    assert lengths.length_curve(loaded.model, loaded.vocab, sweep.known, torch.device("cpu")).not_measured


@pytest.mark.parametrize(
    "accuracy, decoded",
    [
        ({50: 1.0, 60: 1.0, 80: 1.0, 100: 1.0}, [50, 60, 80, 100]),  # it holds: measured to 100
        ({50: 1.0, 60: 0.98, 80: 1.0, 100: 1.0}, [50, 60]),  # below 99% at 6x: no further
        ({50: 1.0, 60: 1.0, 80: 0.5, 100: 1.0}, [50, 60, 80]),
    ],
)
def test_past_six_times_the_sweep_goes_on_only_while_the_model_holds(monkeypatch, accuracy, decoded):
    seen = []
    monkeypatch.setattr(lengths, "evaluate", evaluating_at(accuracy, seen))
    rng = random.Random(0)
    by_length = {n: [[f"w{rng.randrange(99)}" for _ in range(n)] for _ in range(100)] for n in accuracy}
    curve = lengths.length_curve(None, None, by_length, torch.device("cpu"), held_from=60)
    assert seen == decoded and curve.not_measured == [n for n in accuracy if n not in decoded]
    if curve.not_measured:
        assert curve.held_stop and "only while exact match stays at 99%" in lengths.describe_limit(curve, "x")


def test_a_sweep_given_a_floor_stops_after_the_first_length_under_it(monkeypatch):
    """The known-word sweep's stop (stop_below=0.5): both limits the report names are found
    by then, the longer lengths are listed as not measured, and the report says why."""
    accuracy = {3: 1.0, 4: 0.95, 5: 0.6, 6: 0.45, 7: 0.7, 8: 0.0}
    decoded = []
    monkeypatch.setattr(lengths, "evaluate", evaluating_at(accuracy, decoded))
    by_length = {n: [[f"w{k}-{i}" for i in range(n)] for k in range(20)] for n in accuracy}
    curve = lengths.length_curve(None, None, by_length, torch.device("cpu"), stop_below=0.5)
    assert decoded == [3, 4, 5, 6] and curve.not_measured == [7, 8]
    assert curve.first_below(0.99) == 4 and curve.first_below(0.5) == 6 and curve.stopped_below == 0.5
    assert curve.why_stopped == "below 50%"
    assert "were not decoded: the sweep stops once exact match is below 50%" in describe_limit(curve, "x")
    decoded.clear()  # without the floor it goes on to the lengths under 1%
    full = lengths.length_curve(None, None, by_length, torch.device("cpu"))
    assert decoded == [3, 4, 5, 6, 7, 8] and full.stopped_below is None and full.why_stopped == ""
