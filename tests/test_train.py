"""engine/train/trainer.py: the masked loss, <unk> masking of a batch, the same seed giving the same
losses, a non-finite loss stopping the run with its epoch and batch, and resuming a checkpoint
from before the vocabulary cap."""

import json

import pytest
import torch

import engine.train.trainer as train_mod
from engine.errors import NonFiniteLoss
from engine.train.checkpoint import load
from engine.train.config import Config
from engine.train.data import EOS, PAD, WORDS, PairDataset, Vocab
from engine.train.events import BatchDone, EpochDone
from engine.train.trainer import Trainer, masked_loss
from tests.conftest import TINY, write_corpus


def test_padded_targets_give_zero_loss_and_zero_gradient():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, requires_grad=True)
    tgt = torch.tensor([[4, 5, 2, PAD, PAD], [4, 6, 5, 5, 2]])
    loss = masked_loss(logits, tgt)
    loss.backward()
    assert torch.all(logits.grad[0, 3:] == 0)
    assert torch.all(logits.grad[0, :3].abs().sum(-1) > 0)
    # changing logits at padded positions changes nothing
    other = logits.detach().clone()
    other[0, 3:] = 100 * torch.randn(2, 7)
    torch.testing.assert_close(masked_loss(other, tgt), loss.detach())
    # and the mean is over the 8 real tokens only
    per_token = torch.nn.functional.cross_entropy(logits.detach().reshape(-1, 7), tgt.reshape(-1), reduction="none")
    torch.testing.assert_close(loss.detach(), per_token[tgt.reshape(-1) != PAD].mean())


def test_log_probabilities_give_the_cross_entropy_of_the_distribution_they_are():
    """A copy model's mixture is already a log-distribution: masked_loss(log_probs=True) is its
    masked negative log-likelihood, the same loss and gradient as the cross-entropy over it
    (whose softmax adds a term that is 0), PAD masked as before."""
    torch.manual_seed(1)
    raw = torch.randn(2, 5, 9, requires_grad=True)
    tgt = torch.tensor([[4, 5, 2, PAD, PAD], [4, 6, 8, 5, 2]])
    grads = []
    for log_probs in (False, True):
        raw.grad = None
        loss = masked_loss(torch.log_softmax(raw * 3, -1), tgt, log_probs=log_probs)
        loss.backward()
        grads.append((loss.detach(), raw.grad.clone()))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    torch.testing.assert_close(grads[0][1], grads[1][1], atol=1e-7, rtol=1e-5)
    assert torch.all(grads[1][1][0, 3:] == 0)
    # and on scores that are not normalised it is not the cross-entropy: the flag matters
    scores = torch.randn(2, 5, 9)
    assert not torch.allclose(masked_loss(scores, tgt, log_probs=True), masked_loss(scores, tgt))


def test_unknown_word_masking_mirrors_source_into_target():
    from engine.train.data import UNK
    from engine.train.trainer import with_unknown_words

    v = Vocab(WORDS)
    ds = PairDataset(["the cat sat on".split(), "big red car".split()], v)
    b = with_unknown_words(ds.batch(torch.arange(2)), 0.5, torch.Generator().manual_seed(3))
    for i, n in enumerate([4, 3]):
        src, tgt = b.src[i, :n].tolist(), b.tgt[i, :n].tolist()
        assert tgt == src[::-1]  # still the exact reversal, <unk>s included
        assert b.src[i, n] == EOS and b.tgt[i, n] == EOS
    assert (b.src == UNK).any()
    assert torch.equal(b.src_len, ds.src_len[:2])


def test_a_share_of_sentences_is_shown_with_every_word_unknown():
    from engine.train.data import UNK
    from engine.train.trainer import with_unknown_words

    v = Vocab(WORDS)
    sentences = [WORDS[k : k + 3 + k % 5] for k in range(40)]
    ds = PairDataset(sentences, v)
    batch = ds.batch(torch.arange(len(sentences)))
    words = batch.src_len - 1
    real = torch.arange(batch.src.size(1))[None, :] < words[:, None]  # (B, S) the words, not EOS or PAD

    def all_hidden(b):  # (B,) sentences whose every word is <unk>, in source and target
        return ((b.src == UNK) | ~real).all(1) & ((b.tgt == UNK) | ~real).all(1)

    # every sentence, every word: the share alone, with no word hidden one at a time
    whole = with_unknown_words(batch, 0.0, torch.Generator().manual_seed(1), whole=1.0)
    assert all_hidden(whole).all()
    assert torch.equal(whole.src[~real], batch.src[~real])  # EOS and padding untouched
    # half of them: some whole sentences hidden and some not, each still an exact reversal
    half = with_unknown_words(batch, 0.0, torch.Generator().manual_seed(1), whole=0.5)
    hidden = all_hidden(half)
    assert 0 < int(hidden.sum()) < len(sentences)
    assert torch.equal(half.src[~hidden], batch.src[~hidden])
    # none asked for: the words hidden one at a time are those drawn before the share existed
    a = with_unknown_words(batch, 0.3, torch.Generator().manual_seed(2))
    b = with_unknown_words(batch, 0.3, torch.Generator().manual_seed(2), whole=0.0)
    assert torch.equal(a.src, b.src) and not all_hidden(a).all()


def test_a_share_of_sentences_has_one_run_of_consecutive_words_unknown():
    from engine.train.data import UNK
    from engine.train.trainer import with_unknown_words

    v = Vocab(WORDS)
    sentences = [WORDS[k % 20 : k % 20 + 3 + k % 28] for k in range(400)]  # 3-30 words, none <unk>
    ds = PairDataset(sentences, v)
    batch = ds.batch(torch.arange(len(sentences)))
    words = batch.src_len - 1
    real = torch.arange(batch.src.size(1))[None, :] < words[:, None]  # (B, S) the words, not EOS or PAD

    def runs(row: torch.Tensor) -> list[int]:  # the lengths of a row's runs of <unk>
        out, n = [], 0
        for hidden in row.tolist() + [False]:
            if hidden:
                n += 1
            elif n:
                out.append(n)
                n = 0
        return out

    every = with_unknown_words(batch, 0.0, torch.Generator().manual_seed(1), spans=1.0)
    hidden = every.src == UNK  # (B, S)
    lengths = []
    for i, n in enumerate(words.tolist()):
        (run,) = runs(hidden[i])  # exactly one run in every sentence
        lengths.append(run / n)
        assert every.tgt[i, :n].tolist() == every.src[i, :n].tolist()[::-1]  # still the exact reversal
    assert torch.equal(every.src[~real], batch.src[~real]) and torch.equal(every.src_len, batch.src_len)
    # runs of one word, of every word, and long ones between: the lengths spread over 1..n
    assert min(lengths) < 0.1 and max(lengths) == 1.0 and 0.35 < sum(lengths) / len(lengths) < 0.65
    assert sum(f >= 0.5 for f in lengths) > len(lengths) / 3
    # a share of them: some sentences keep every word
    half = with_unknown_words(batch, 0.0, torch.Generator().manual_seed(1), spans=0.5)
    untouched = ~(half.src == UNK).any(1)
    assert len(sentences) / 4 < int(untouched.sum()) < 3 * len(sentences) / 4
    # none asked for: the words hidden one at a time are those drawn before the share existed
    a = with_unknown_words(batch, 0.3, torch.Generator().manual_seed(2))
    b = with_unknown_words(batch, 0.3, torch.Generator().manual_seed(2), spans=0.0)
    assert torch.equal(a.src, b.src)


def test_whole_unknown_sentences_are_off_unless_asked_for():
    assert Config().unk_sentences == 0.0
    old = {k: v for k, v in Config(unk_sentences=0.2).to_dict().items() if k != "unk_sentences"}
    assert Config.from_dict(old).unk_sentences == 0.0  # a run saved before the flag trains as it did
    with pytest.raises(ValueError, match="--unk-sentences"):
        Config(unk_sentences=1.5).validate()


def test_runs_of_unknown_words_are_on_for_the_built_in_words_only():
    assert Config().span_share == 0.1
    assert Config(corpus="text.txt").span_share == 0.0  # a text's recipe was measured without them
    assert Config.long().span_share == 0.0  # the preset was measured without them
    assert Config(corpus="text.txt", unk_spans=0.2).span_share == 0.2
    old = {k: v for k, v in Config().to_dict().items() if k != "unk_spans"}
    assert Config.from_dict(old).span_share == 0.0  # a run saved before them trains as it did
    with pytest.raises(ValueError, match="--unk-spans"):
        Config(unk_spans=1.5).validate()


def test_the_trainer_hides_runs_of_words_at_the_configured_share(tmp_path, monkeypatch):
    seen = []
    real = train_mod.with_unknown_words

    def spy(batch, rate, rng, copy_from=0, whole=0.0, spans=0.0):
        seen.append(spans)
        return real(batch, rate, rng, copy_from, whole, spans)

    monkeypatch.setattr(train_mod, "with_unknown_words", spy)
    for _ in Trainer(Config(**{**TINY, "epochs": 1, "unk_spans": -1.0}), tmp_path / "a.pt").run():
        pass
    assert seen and set(seen) == {0.1}  # every batch, at the default's resolved share (auto)


def test_same_seed_same_losses_on_cpu(tmp_path):
    def losses(seed):
        t = Trainer(Config(**{**TINY, "seed": seed}), tmp_path / f"s{seed}.pt")
        return [(e.train_loss, e.val_loss) for e in t.run() if isinstance(e, EpochDone)]

    a, b = losses(7), losses(7)
    assert a == b
    assert losses(8) != a


def test_nan_loss_stops_with_epoch_and_batch_and_keeps_the_best(tmp_path, monkeypatch):
    ckpt = tmp_path / "best.pt"
    trainer = Trainer(Config(**{**TINY, "epochs": 3}), ckpt)
    real = train_mod.masked_loss
    calls = {"n": 0}
    batches_per_epoch = trainer.train_set.num_batches(TINY["batch_size"])
    val_batches = trainer.val_set.num_batches(TINY["batch_size"])

    def poisoned(logits, tgt, **how):
        calls["n"] += 1
        loss = real(logits, tgt, **how)
        # epoch 2, batch 3 (epoch 1 = its batches + validation batches)
        return loss * float("nan") if calls["n"] == batches_per_epoch + val_batches + 3 else loss

    monkeypatch.setattr(train_mod, "masked_loss", poisoned)
    with pytest.raises(NonFiniteLoss) as e:
        for _ in trainer.run():
            pass
    assert (e.value.epoch, e.value.batch) == (2, 3)
    assert "epoch 2, batch 3" in str(e.value)
    saved = load(ckpt)
    assert saved["epoch"] == 1 and all(torch.isfinite(v).all() for v in saved["model"].values())


def test_a_checkpoint_from_before_the_vocabulary_cap_resumes_with_every_word(tmp_path):
    """Old checkpoints have no max_vocab: resuming one rebuilds its uncapped vocabulary (the
    resume refuses a vocabulary that differs from the checkpoint's)."""
    from engine.train.config import Config
    from engine.train.trainer import Trainer
    from tests.conftest import TINY

    text = str(write_corpus(tmp_path / "c.txt", 400, vocab_size=60))
    cfg = Config(**{**TINY, "corpus": text, "min_freq": 1, "max_vocab": 0, "epochs": 1})
    trainer = Trainer(cfg, tmp_path / "old.pt")
    for _ in trainer.run():
        pass
    payload = torch.load(tmp_path / "old.last.pt", weights_only=True)
    del payload["config"]["max_vocab"]  # as saved before the cap existed
    assert Config.from_dict(payload["config"]).max_vocab == 0
    assert len(trainer.vocab) > 30  # more words than the small cap below would keep
    resumed = Trainer.resume(payload, tmp_path / "old.pt", epochs=2)
    assert resumed.vocab.words() == trainer.vocab.words()
    capped = Config(**{**TINY, "corpus": text, "min_freq": 1, "max_vocab": 30})
    assert len(Trainer(capped, tmp_path / "new.pt").vocab) == 30 + 4  # the cap, plus PAD SOS EOS UNK


def test_validation_counts_by_length_add_up_to_its_exact_match(tmp_path):
    """The validation pass's matches by length: every validation sentence counted once under
    its length, the matches of a length the same as validating those sentences alone, and the
    sum the epoch's exact match; kept in the checkpoint (weights_only) and read back from JSON."""
    from collections import Counter

    # a short real run that gets some sentences right and some wrong, more of the short ones
    trainer = Trainer(Config(**{**TINY, "epochs": 4, "lr": 1e-2, "min_len": 2, "max_len": 5}), tmp_path / "best.pt")
    for _ in trainer.run():
        pass
    payload = load(trainer.last_path)  # weights_only=True
    v = trainer.validation()
    lengths = Counter(len(s) for s in trainer.splits.val)
    assert {n: t for n, (_, t) in v.by_length.items()} == dict(sorted(lengths.items()))
    assert sum(c for c, _ in v.by_length.values()) / len(trainer.splits.val) == v.exact_match
    assert (v.loss, v.exact_match) == trainer.validate()
    assert 0 < v.exact_match < 1, "a tiny run's model gets some sentences right, not all: the test can tell"
    whole = trainer.val_set
    for n, (correct, total) in v.by_length.items():
        trainer.val_set = PairDataset([s for s in trainer.splits.val if len(s) == n], trainer.vocab)
        assert trainer.validate()[1] * total == pytest.approx(correct)
    trainer.val_set = whole

    history = payload["history"]
    assert len(history) == 4
    for h in history:
        e = EpochDone.from_dict(h)
        assert sum(t for _, t in e.val_by_length.values()) == len(trainer.splits.val)
        assert sum(c for c, _ in e.val_by_length.values()) / len(trainer.splits.val) == h["val_exact_match"]
    last = EpochDone.from_dict(history[-1])
    as_json = json.loads(json.dumps(history[-1]))  # str keys
    assert EpochDone.from_dict(as_json).val_by_length == last.val_by_length
    old = {k: x for k, x in history[-1].items() if k != "val_by_length"}  # a history from before
    assert EpochDone.from_dict(old).val_by_length == {}
    assert EpochDone.from_dict({**old, "val_by_length": "garbage"}).val_by_length == {}


# -- resuming: the learning rate goes on where it was --------------------------------------
SCHEDULED = {**TINY, "train_size": 200}  # 7 batches an epoch: a few seconds a run


def rates(trainer: Trainer, stop_after: int | None = None) -> list[float]:
    """The learning rate of every optimiser step the trainer takes (of its epochs up to
    `stop_after`, as a run stopped there), each epoch's last checked against its figure."""
    out = []
    for ev in trainer.run():
        if isinstance(ev, BatchDone):
            out.append(trainer.optimizer.lr)  # yielded after the step: the rate it used
        elif isinstance(ev, EpochDone):
            assert ev.lr == out[-1]  # metrics.csv's lr column: the epoch's last step
            if ev.epoch == stop_after:
                break
    return out


def test_resuming_with_the_same_epochs_gives_the_uninterrupted_runs_rates(tmp_path):
    cfg = Config(**{**SCHEDULED, "epochs": 3})
    whole = rates(Trainer(cfg, tmp_path / "whole.pt"))
    stopped = Trainer(cfg, tmp_path / "part.pt")
    before = rates(stopped, stop_after=1)
    after = rates(Trainer.resume(load(stopped.last_path), tmp_path / "part.pt"))
    assert len(before) == len(whole) // 3
    assert before + after == whole  # the same floats, step for step
    assert len(set(whole)) > len(whole) // 2  # the rates do change from step to step


@pytest.mark.parametrize("planned, stop_after, epochs", [(4, 1, 6), (2, 2, 3)])
def test_resuming_with_more_epochs_never_raises_the_rate_and_ends_at_the_floor(tmp_path, planned, stop_after, epochs):
    """Stopped mid-run, or finished (the rate already near its floor), then resumed with more
    epochs than planned: no step's rate above the last one before, decaying to lr / 20."""
    first = Trainer(Config(**{**SCHEDULED, "epochs": planned}), tmp_path / "best.pt")
    before = rates(first, stop_after=stop_after)
    resumed = Trainer.resume(load(first.last_path), tmp_path / "best.pt", epochs=epochs)
    after = rates(resumed)
    floor = SCHEDULED["lr"] / 20
    assert len(after) == len(before) * (epochs - stop_after) // stop_after
    assert all(b <= a for a, b in zip([before[-1]] + after, after))  # never up, from the last rate on
    # the last step ends the cosine as a fresh run's does: a few % of its range above the floor
    assert floor <= after[-1] <= floor + 0.05 * (before[-1] - floor)
    # the checkpoint records the plan, in plain values, with the step reached and its rate
    record = load(resumed.last_path)["lr_plan"]
    assert record["step"] == len(before) + len(after) and record["lr"] == after[-1]
    assert (record["total_steps"], record["min_lr"]) == (len(before) + len(after), floor)


@pytest.mark.slow
def test_a_checkpoint_without_a_plan_resumes_on_the_plan_it_followed(tmp_path):
    """Checkpoints from before the plan was recorded: the plan they followed is inferred from
    their configuration, so they resume as a checkpoint with its plan does."""
    cfg = Config(**{**SCHEDULED, "epochs": 3})
    stopped = Trainer(cfg, tmp_path / "best.pt")
    rates(stopped, stop_after=1)
    payload = load(stopped.last_path)
    old = {k: v for k, v in payload.items() if k != "lr_plan"}
    for epochs in (None, 5):
        with_plan = rates(Trainer.resume(payload, tmp_path / "a.pt", epochs=epochs))
        without = rates(Trainer.resume(old, tmp_path / "b.pt", epochs=epochs))
        assert without == with_plan


def test_an_unreadable_plan_is_refused_in_one_line(tmp_path):
    stopped = Trainer(Config(**{**SCHEDULED, "epochs": 2}), tmp_path / "best.pt")
    rates(stopped, stop_after=1)
    payload = load(stopped.last_path)
    payload["lr_plan"] = {"schedule": "cosine"}
    with pytest.raises(ValueError, match="learning-rate plan is unreadable"):
        Trainer.resume(payload, tmp_path / "best.pt")
