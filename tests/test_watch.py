"""Attention over training (engine/insight/watch.py): when snapshots are taken, that taking them
changes nothing of the training, that they survive a resume, and what the run writes."""

import json

import pytest
import torch
from PIL import Image

from engine.insight.watch import default_watch, first_epoch_batches, mirror_peak_rate, watch_sentences
from engine.job import Finished, Started, run_job
from engine.train.checkpoint import load
from engine.train.config import Config
from engine.train.events import EpochDone, Snapshot, Watched
from engine.train.trainer import Trainer
from tests.conftest import QUICK, TINY


def test_snapshots_are_taken_on_a_log_scale_of_the_first_epoch():
    assert first_epoch_batches(47) == {1, 2, 4, 8, 16, 32}
    assert first_epoch_batches(2) == {1} and first_epoch_batches(1) == set()


def test_the_watch_sentences_are_given_or_a_typical_test_sentence():
    test = [["a"] * 3, ["b"] * 5, ["c"] * 5, ["d"] * 9]
    assert default_watch(test) == [["b"] * 5] and default_watch([]) == []
    assert watch_sentences(["The cat, sat!"], test) == [["the", "cat", "sat"]]
    with pytest.raises(ValueError, match="at most 3"):
        watch_sentences(["a", "b", "c", "d"], test)
    with pytest.raises(ValueError, match="no words"):
        watch_sentences(["?!"], test)


def test_mirror_peak_rate_counts_steps_on_the_mirrored_word():
    perfect = Watched(["a", "b"], ["b", "a"], [[0, 1, 0], [1, 0, 0], [0, 0, 1]], True)
    assert mirror_peak_rate(perfect) == 1.0
    assert mirror_peak_rate(Watched(["a", "b"], ["a"], [[1, 0, 0], [1, 0, 0]], False)) == pytest.approx(1 / 3)


def run_trainer(tmp_path, name, watch, epochs=2) -> Trainer:
    trainer = Trainer(Config(**{**TINY, "epochs": epochs}), tmp_path / f"{name}.pt")
    trainer.watch = watch
    events = list(trainer.run())
    trainer.events = events
    return trainer


def test_watching_changes_nothing_of_the_training(tmp_path):
    plain = run_trainer(tmp_path, "plain", [])
    watched = run_trainer(tmp_path, "watched", [["the", "cat", "sat", "on", "the", "mat"]])
    assert [h["batch_losses"] for h in plain.history] == [h["batch_losses"] for h in watched.history]
    assert [h["val_loss"] for h in plain.history] == [h["val_loss"] for h in watched.history]
    assert plain.snapshots == [] and not any(isinstance(e, Snapshot) for e in plain.events)
    n = watched.train_set.num_batches(TINY["batch_size"])
    snaps = [e for e in watched.events if isinstance(e, Snapshot)]
    assert [(s.epoch, s.batch) for s in snaps] == [(1, b) for b in sorted(first_epoch_batches(n))] + [(1, n), (2, n)]
    assert snaps == watched.snapshots and [s.x for s in snaps] == sorted(s.x for s in snaps)
    for s in snaps:
        (w,) = s.sentences
        assert w.source == ["the", "cat", "sat", "on", "the", "mat"]
        assert len(w.weights) == min(len(w.output) + 1, 2 * 7 + 5) and len(w.weights[0]) == 7
        assert all(sum(row) == pytest.approx(1, abs=4e-3) for row in w.weights)  # 3 decimals each
    # the epoch's snapshot comes after its EpochDone, and the checkpoint keeps them all
    kinds = [type(e).__name__ for e in watched.events if isinstance(e, (EpochDone, Snapshot))]
    assert kinds[-2:] == ["EpochDone", "Snapshot"]
    assert len(load(tmp_path / "watched.last.pt")["snapshots"]) == len(snaps)


def test_a_resumed_run_goes_on_with_its_snapshots(tmp_path):
    first = run_trainer(tmp_path, "r", [["big", "red", "car"]], epochs=1)
    resumed = Trainer.resume(load(tmp_path / "r.last.pt"), tmp_path / "r.pt", epochs=2, device_name="cpu")
    assert resumed.watch == [["big", "red", "car"]] and resumed.snapshots == first.snapshots
    list(resumed.run())
    assert [s.epoch for s in resumed.snapshots][-2:] == [1, 2]
    assert resumed.snapshots[: len(first.snapshots)] == first.snapshots


def test_the_run_writes_the_timeline(tmp_path, figures):
    events = list(run_job(Config(**QUICK), tmp_path / "ck" / "best.pt", tmp_path / "out", watch=["the cat sat"]))
    started = next(e for e in events if isinstance(e, Started))
    assert started.watch == [["the", "cat", "sat"]]
    snaps = [e for e in events if isinstance(e, Snapshot)]
    assert isinstance(events[-1], Finished)
    data = json.loads((tmp_path / "out" / "attention_timeline.json").read_text())
    assert [(d["epoch"], d["batch"]) for d in data] == [(s.epoch, s.batch) for s in snaps]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert [r["batch"] for r in report["attention_timeline"]] == [s.batch for s in snaps]
    # the GIF is drawn from every snapshot (its frames: test_a_snapshot_labels_every_step_it_decoded)
    (drawn,) = figures.drawn["attention_timeline_gif"]
    assert drawn["snapshots"] == [s.as_dict() for s in snaps]
    assert events[-1].results.files["attention_timeline"] == tmp_path / "out" / "attention_timeline.gif"
    assert torch.load(tmp_path / "ck" / "best.last.pt", weights_only=True)["watch"] == [["the", "cat", "sat"]]


def emitting(word_id: int):
    """A model and its vocabulary that emit one id at every step (an untrained model's <pad>,
    say): it never emits EOS and runs to its step budget."""
    from engine.impl import build_model
    from engine.train.data import Vocab

    torch.manual_seed(0)
    vocab = Vocab(["the", "cat", "sat"])
    model = build_model(len(vocab), Config(**{**TINY, "copy": "off"}))
    with torch.no_grad():
        model.decoder.out.bias[word_id] = 1e4
    return model, vocab


@pytest.mark.figures
@pytest.mark.parametrize("word_id", [0, 1])  # PAD, SOS
def test_a_snapshot_labels_every_step_it_decoded(word_id, tmp_path):
    """The seed-11 crash: an early snapshot's decoding held <pad> (or <sos>) ids, its output
    words left them out, and the timeline had 19 rows of weights but 2 labels. Every step
    now has its word, and the GIF draws it."""
    from engine.insight.plots import attention_timeline_gif
    from engine.insight.watch import take

    model, vocab = emitting(word_id)
    snap = take(model, vocab, [["the", "cat", "sat"]], torch.device("cpu"), 1, 1, 10)
    w = snap.sentences[0]
    name = vocab.itos[word_id]
    assert len(w.weights) == 2 * 4 + 5  # no EOS: the whole budget of 2n + 5 steps for n + 1 tokens
    assert w.output == [name] * len(w.weights) and w.labels == w.output
    assert not w.match
    # a later frame that learned: fewer rows than the first
    good = Watched(["the", "cat", "sat"], ["sat", "cat", "the"], [[0.0, 0.0, 1.0, 0.0]] * 4, True)
    frames = [snap.as_dict(), Snapshot(1, 10, 10, [good]).as_dict()]
    gif = Image.open(attention_timeline_gif(frames, tmp_path / "t.gif"))
    assert gif.n_frames == 2


@pytest.mark.figures
def test_an_older_snapshot_with_fewer_words_than_steps_still_draws(tmp_path):
    """Snapshots saved while output words left out <pad>: their rows past the words they
    hold are drawn unlabelled."""
    from engine.insight.plots import attention_timeline_gif
    from engine.train.events import step_labels

    old = Watched(["the", "cat", "sat"], ["cat"], [[0.25] * 4] * 13, False)
    assert old.labels == ["cat", "<eos>"] + [""] * 11
    assert step_labels(["sat", "cat", "the"], 3) == ["sat", "cat", "the"]  # no EOS within its steps
    gif = Image.open(attention_timeline_gif([Snapshot(1, 1, 10, [old]).as_dict()], tmp_path / "t.gif"))
    assert gif.n_frames == 1
