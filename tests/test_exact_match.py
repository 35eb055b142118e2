"""Exact match has one definition (engine.insight.exact_match.exact_match): crafted decodings against it,
its device twin held equal to it, and the figures that count by it."""

import json
import random

import numpy as np
import pytest
import torch

from engine.insight.exact_match import exact_match, exact_match_batch, output_words
from engine.train.data import EOS, PAD, SOS, UNK, PairDataset, Vocab, random_sentences

VOCAB = Vocab(["the", "cat", "sat", "on", "mat"])
V = len(VOCAB)
THE, CAT, SAT, ON, MAT = (VOCAB.stoi[w] for w in ("the", "cat", "sat", "on", "mat"))


def peaks(source, positions):
    """Attention (steps, n + 1) whose step t peaks on input position positions[t] (n: EOS)."""
    a = np.full((len(positions), len(source) + 1), 0.01)
    for t, p in enumerate(positions):
        a[t, p] = 0.9
    return a


def mirror(source, steps):
    n = len(source)
    return peaks(source, [n - 1 - t if t < n else n for t in range(steps)])


# (source, emitted ids, attention peaks per step or None for the mirror, replace_unk, right?)
CASES = {
    "the reversal, then EOS": ("the cat sat", [SAT, CAT, THE, EOS], None, True, True),
    "whatever follows EOS": ("the cat sat", [SAT, CAT, THE, EOS, PAD, SAT], None, True, True),
    "a <pad> in the middle": ("the cat sat", [SAT, PAD, CAT, THE, EOS], None, True, False),
    "a <sos> in the middle": ("the cat sat", [SAT, CAT, SOS, THE, EOS], None, True, False),
    "<pad> and <sos> between the right words": ("the cat sat", [SAT, PAD, CAT, SOS, THE, EOS], None, True, False),
    "no EOS": ("the cat sat", [SAT, CAT, THE], None, True, False),
    "no EOS, run on": ("the cat sat", [SAT, CAT, THE, THE, THE], None, True, False),
    "EOS too soon": ("the cat sat", [SAT, CAT, EOS], None, True, False),
    "a wrong word": ("the cat sat", [SAT, MAT, THE, EOS], None, True, False),
    "nothing but EOS": ("the cat sat", [EOS], None, True, False),
    # the model emits <unk> where the unknown word goes; its attention says which word
    "<unk> copied right": ("the zebra sat", [SAT, UNK, THE, EOS], None, True, True),
    "<unk> copied from the wrong word": ("the zebra sat", [SAT, UNK, THE, EOS], [2, 0, 0, 3], True, False),
    "<unk> looking at EOS": ("the zebra sat", [SAT, UNK, THE, EOS], [2, 3, 0, 3], True, False),
    "<unk> not replaced": ("the zebra sat", [SAT, UNK, THE, EOS], None, False, False),
    "<unk> for a known word": ("the cat sat", [SAT, UNK, THE, EOS], None, True, True),
    "a repeated unknown word, copied twice": ("zebra cat zebra", [UNK, CAT, UNK, EOS], None, True, True),
    # a copying model emits an unknown word's extended id (engine/model/copy.py)
    "extended id copied right": ("the zebra sat", [SAT, V, THE, EOS], None, True, True),
    "extended ids of two unknown words": ("lion zebra sat", [SAT, V + 1, V, EOS], None, True, True),
    "extended ids swapped": ("lion zebra sat", [SAT, V, V + 1, EOS], None, True, False),
    "extended id past the unknowns": ("the zebra sat", [SAT, V + 1, THE, EOS], None, True, False),
    "extended id, none unknown": ("the cat sat", [SAT, V, THE, EOS], None, True, False),
    "extended id of a repeated unknown word": ("zebra cat zebra", [V, CAT, V, EOS], None, True, True),
}


def crafted(name):
    text, ids, at, replace, right = CASES[name]
    source = text.split()
    attention = mirror(source, len(ids)) if at is None else peaks(source, at)
    return source, ids, attention, replace, right


@pytest.mark.parametrize("name", CASES)
def test_crafted_decodings(name):
    source, ids, attention, replace, right = crafted(name)
    assert exact_match(ids, attention, source, source[::-1], VOCAB, replace) is right


def test_pad_and_sos_show_in_the_output_never_silently_dropped():
    source, ids, attention, _, _ = crafted("<pad> and <sos> between the right words")
    words = output_words(ids, attention, source, VOCAB)
    assert words == ["sat", "<pad>", "cat", "<sos>", "the"]  # a word per step before EOS
    assert len(words) + 1 == ids.index(EOS) + 1


def device_verdicts(cases):
    """exact_match_batch over (source, ids, attention, replace) cases, one batch per replace_unk."""
    sentences = [c[0] for c in cases]
    ds = PairDataset(sentences, VOCAB, extended=True)
    batch = ds.batch(torch.arange(len(cases)))
    T = batch.tgt.size(1)
    verdicts = []
    for j, (source, ids, attention, replace) in enumerate(cases):
        pred = torch.full((1, T), PAD, dtype=torch.long)
        k = min(T, len(ids))
        pred[0, :k] = torch.tensor(ids[:k])
        att = torch.zeros(1, T, batch.src.size(1))
        att[0, :k, : len(source) + 1] = torch.tensor(attention[:k], dtype=torch.float32)
        words = batch.src_len[j : j + 1] - 1
        row = exact_match_batch(pred, att, batch.source_ext[j : j + 1], batch.target_ext[j : j + 1], words, replace)
        verdicts.append(bool(row[0]))
    return verdicts


def test_the_device_twin_agrees_on_the_crafted_decodings():
    cases = [crafted(name) for name in CASES]
    got = device_verdicts([(s, ids, a, r) for s, ids, a, r, _ in cases])
    assert got == [right for *_, right in cases]


@pytest.mark.parametrize("replace_unk", [True, False])
def test_the_device_twin_agrees_on_random_decodings(replace_unk):
    """Random batches: sentences with known, unknown and repeated words, decodings mostly
    right with random slips (a wrong word, PAD, SOS, an early or missing EOS, <unk>, an
    extended id in and out of range) and attention sharp, random or uniform (ties)."""
    rng = random.Random(7)
    gen = torch.Generator().manual_seed(7)
    pool = ["the", "cat", "sat", "on", "mat", "zebra", "lion", "moon"]
    agree = right = 0
    for _ in range(30):
        sentences = [[rng.choice(pool) for _ in range(rng.randint(1, 7))] for _ in range(16)]
        ds = PairDataset(sentences, VOCAB, extended=True)
        b = ds.batch(torch.arange(len(sentences)))
        B, T = b.tgt.shape
        S = b.src.size(1)
        words = b.src_len - 1
        pred = b.target_ext.clone()
        n_ext = V + 3
        slips = torch.rand(B, T, generator=gen) < 0.08
        pred = torch.where(slips, torch.randint(0, n_ext, (B, T), generator=gen), pred)
        # an unknown word (or a known one) emitted as <unk>, to be copied by the attention
        as_unk = (torch.rand(B, T, generator=gen) < 0.2) & (pred >= UNK + 1)
        pred = torch.where(as_unk, torch.full_like(pred, UNK), pred)
        scores = torch.randn(B, T, S, generator=gen)
        mirrored = (words[:, None] - 1 - torch.arange(T)[None, :]).clamp(min=0)  # (B, T)
        mirrored = torch.where(torch.arange(T)[None, :] < words[:, None], mirrored, words[:, None])
        sharp = torch.rand(B, T, generator=gen) < 0.7
        scores = scores + 8.0 * sharp[..., None] * torch.nn.functional.one_hot(mirrored, S)
        uniform = torch.rand(B, T, generator=gen) < 0.1
        scores = torch.where(uniform[..., None], torch.zeros_like(scores), scores)
        mask = torch.arange(S)[None, None, :] < b.src_len[:, None, None]
        attention = torch.softmax(scores.masked_fill(~mask, -torch.inf), -1)  # (B, T, S), 0 on padding
        device = exact_match_batch(pred, attention, b.source_ext, b.target_ext, words, replace_unk)
        for j in range(B):
            n = int(words[j])
            host = exact_match(
                pred[j].tolist(),
                attention[j, :, : n + 1].numpy(),
                sentences[j],
                sentences[j][::-1],
                VOCAB,
                replace_unk,
            )
            agree += host == bool(device[j])
            right += host
    assert agree == 30 * 16
    assert 0.2 * agree < right < 0.9 * agree  # both verdicts were tested, many times


def test_validation_counts_by_the_one_rule(reversing_checkpoint, monkeypatch):
    """The validation pass's exact match is exact_match over its own decodings (the model
    feeding itself), read on the host sentence by sentence: on sentences with unseen words,
    its attention made uniform, an emitted <unk> copies the first word (the first of equal
    weights) and is right only where that is the word."""
    from engine.train.checkpoint import load
    from engine.train.data import with_unseen_words
    from engine.train.trainer import Trainer

    trainer = Trainer.resume(load(reversing_checkpoint), reversing_checkpoint.with_name("unused.pt"))
    sentences = trainer.splits.val + with_unseen_words(trainer.splits.val, random.Random(3), trainer.vocab)
    trainer.val_set = ds = PairDataset(sentences, trainer.vocab, extended=True)
    model = trainer.model
    real = model.forward

    def uniform_attention(*args):
        logits, attention = real(*args)
        looked = (attention > 0).float()  # (B, T, S) the real positions
        return logits, looked / looked.sum(-1, keepdim=True)

    monkeypatch.setattr(model, "forward", uniform_attention)
    val = trainer.validation()
    right = 0
    with torch.no_grad():
        for batch in ds.batches(trainer.cfg.batch_size):
            forcing = torch.zeros(batch.tgt.size(1), dtype=torch.bool)
            src_ext = batch.source_ext if model.copy else None
            logits, attention = model(batch.src, batch.src_len, batch.tgt_in, forcing, src_ext)
            for j, row in enumerate(batch.index.tolist()):
                n = int(batch.src_len[j]) - 1
                source = ds.sentences[row]
                ids = logits[j].argmax(-1).tolist()
                right += exact_match(ids, attention[j, :, : n + 1].numpy(), source, source[::-1], trainer.vocab)
    assert len(trainer.splits.val) // 2 < right < len(ds)  # the known words' sentences, not every one
    assert val.exact_match == right / len(ds)


def test_unseen_words_are_decoded_once_and_read_both_ways(reversing_checkpoint):
    """The unseen-words figures come from one decoding: read without <unk> replacement, it
    gives what a second decoding with replace_unk=False gives, sentence by sentence."""
    from engine.insight.evaluate import evaluate
    from engine.insight.report import UnseenWords
    from engine.train.checkpoint import load_model
    from engine.train.data import with_unseen_words

    loaded = load_model(reversing_checkpoint)
    model, vocab, cpu = loaded.model, loaded.vocab, torch.device("cpu")
    sentences = with_unseen_words(random_sentences(60, 3, 8, random.Random(4), vocab.words()), random.Random(5), vocab)
    both = evaluate(model, vocab, sentences, cpu)
    raw = evaluate(model, vocab, sentences, cpu, replace_unk=False)
    assert [r.ids for r in both.results] == [r.ids for r in raw.results]  # one decoding either way
    unseen = UnseenWords.of(both, vocab)
    assert unseen.with_replacement == both.exact_match
    assert unseen.without_replacement == raw.exact_match
    assert unseen.without_replacement < unseen.with_replacement  # the replacement was read: copies count
    assert UnseenWords.of(None, vocab) == UnseenWords(None, None)  # the part failed


def test_a_decoding_stopped_at_n_plus_two_steps_has_the_same_exact_match(reversing_checkpoint):
    """exact_match_only (the uniform-attention ablation's decoding) stops each sentence of n
    words at n + 2 steps: every verdict is the full decoding's, in fewer steps."""
    from engine.insight.evaluate import evaluate
    from engine.train.checkpoint import load_model

    loaded = load_model(reversing_checkpoint)
    model, vocab, cpu = loaded.model, loaded.vocab, torch.device("cpu")
    sentences = random_sentences(80, 3, 9, random.Random(6), vocab.words())

    def both_ways(attend):
        full = evaluate(model, vocab, sentences, cpu, attend=attend)
        capped = evaluate(model, vocab, sentences, cpu, attend=attend, exact_match_only=True)
        assert [r.match for r in capped.results] == [r.match for r in full.results]
        assert all(r.steps <= len(r.source) + 2 for r in capped.results)
        return full, capped

    full, _ = both_ways(None)  # learned attention: right
    assert full.exact_match > 0.9
    both_ways(False)  # uniform: wrong, stopping early
    with torch.no_grad():
        model.decoder.out.bias[EOS] = -1e4  # a model that never stops: every sentence runs on
    full, capped = both_ways(None)
    assert all(r.steps == 2 * (len(r.source) + 1) + 5 for r in full.results)
    assert all(r.steps == len(r.source) + 2 and not r.match for r in capped.results)


def test_every_figure_follows_the_one_function(trained_checkpoint, tmp_path, monkeypatch):
    """With exact_match swapped for a rule of its own (right: the sentences of an even number
    of words), the test set, its lengths, the sweeps, report.json, the runs table, the watch
    snapshots and the probe all say what that rule says."""
    from engine.insight import evaluate as evaluate_module
    from engine.insight.evaluate import probe
    from engine.insight.report import finish_run
    from engine.insight.watch import take
    from engine.runs.index import list_runs
    from engine.train.checkpoint import load_model
    from engine.train.data import random_sentences

    def even(ids, attention, source, reference, vocab, replace_unk=True, words=None):
        return len(source) % 2 == 0

    monkeypatch.setattr(evaluate_module, "exact_match", even)
    loaded = load_model(trained_checkpoint)
    sentences = random_sentences(40, 3, 6, random.Random(1), loaded.vocab.words())
    out = tmp_path / "runs" / "one"
    res = finish_run(trained_checkpoint, sentences, out, torch.device("cpu"))
    share = sum(len(s) % 2 == 0 for s in sentences) / len(sentences)
    assert res.evaluation.exact_match == share
    assert res.evaluation.per_length == {3: 0.0, 4: 1.0, 5: 0.0, 6: 1.0}
    for curve in (res.known, res.unknown):  # the sweeps: odd lengths lost, even ones right
        assert all(acc == (n % 2 == 0) for n, acc in curve.per_length.items())
    assert res.unknown.first_below(0.99) == min(res.unknown.per_length)  # its shortest length, 3, is odd
    report = json.loads((out / "report.json").read_text())
    assert report["test_exact_match"] == share
    assert report["unseen_words_exact_match"]["with_replacement"] == share
    (run,) = list_runs(tmp_path / "runs", tmp_path / "no-checkpoints")
    assert run.test_exact_match == share and run.unknown.below_99 == min(res.unknown.per_length)
    snap = take(loaded.model, loaded.vocab, [["the", "cat"], ["the", "cat", "sat"]], torch.device("cpu"), 1, 1, 1)
    assert [w.match for w in snap.sentences] == [True, False]
    words = loaded.vocab.words()
    assert probe(loaded.model, loaded.vocab, " ".join(words[:2]), torch.device("cpu")).match
    assert not probe(loaded.model, loaded.vocab, " ".join(words[:3]), torch.device("cpu")).match
    assert probe(loaded.model, loaded.vocab, " ".join(words[:4]), torch.device("cpu"), beam=2).match
