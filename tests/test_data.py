"""engine/train/data.py: the tokenisation rule, the built-in corpus, length-grouped batches, and a
user's --corpus text file (tokenised by the project's rule, split with a seed); the vocabulary."""

import tracemalloc

import pytest
import torch

from engine.train.data import (
    EOS,
    PAD,
    SOS,
    WORDS,
    PairDataset,
    Vocab,
    builtin_splits,
    corpus_splits,
    joined_sentences,
    read_corpus,
    repeated_word_rewrites,
    tokenize,
)
from tests.conftest import write_corpus


def test_tokenize_rule():
    assert tokenize("The cat, sat!") == ["the", "cat", "sat"]
    assert tokenize("  the\tcat \n\n sat  ") == ["the", "cat", "sat"]
    assert tokenize("don't STOP") == ["don't", "stop"]
    assert tokenize("") == [] and tokenize("?!... ,") == []
    assert tokenize("cat🐱dog") == ["cat", "dog"]
    assert tokenize("ｃａｔ") == ["cat"]  # NFKC folds full-width letters


def test_builtin_corpus_is_the_notebooks_and_seeded():
    s = builtin_splits(8000, 1000, 1000, 3, 10, seed=42)
    assert (len(s.train), len(s.val), len(s.test)) == (8000, 1000, 1000)
    assert {w for x in s.train for w in x} == set(WORDS) and len(WORDS) == 34
    assert {len(x) for x in s.train} == set(range(3, 11))
    assert builtin_splits(100, 10, 10, 3, 10, seed=1).train == builtin_splits(100, 10, 10, 3, 10, seed=1).train
    assert builtin_splits(100, 10, 10, 3, 10, seed=1).train != builtin_splits(100, 10, 10, 3, 10, seed=2).train


def test_vocab_and_targets():
    v = Vocab.build([["the", "cat"], ["cat", "sat"]])
    assert v.itos[:4] == ["<pad>", "<sos>", "<eos>", "<unk>"] and len(v) == 7
    assert v.encode(["zebra"]) == [3]
    ds = PairDataset([["the", "cat", "sat"]], v)
    assert ds.src[0].tolist() == v.encode(["the", "cat", "sat"]) + [EOS]
    assert ds.tgt[0].tolist() == v.encode(["sat", "cat", "the"]) + [EOS]
    b = ds.batch(torch.tensor([0]))
    assert b.tgt_in[0].tolist() == [SOS] + v.encode(["sat", "cat", "the"])
    from engine.insight.exact_match import output_words

    ids = ds.tgt[0].tolist() + [PAD]
    assert output_words(ids, None, [], v, replace_unk=False) == ["sat", "cat", "the"]


def test_batches_group_lengths_and_cover_every_sentence_once():
    s = builtin_splits(2000, 10, 10, 3, 10, seed=0)
    v = Vocab.build(s.train)
    ds = PairDataset(s.train, v)
    seen, padded, total = [], 0, 0
    for b in ds.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0)):
        seen += b.index.tolist()
        padded += int((b.src == PAD).sum())
        total += b.src.numel()
    assert sorted(seen) == list(range(2000))
    assert padded / total < 0.02  # the notebook's random batches pad ~30% of positions


def test_pair_dataset_tensors_match_a_sentence_by_sentence_build():
    """The dataset is built with a few scatters per block of sentences; each row must be
    what encoding that sentence alone gives (ids then EOS, reversed ids then EOS, PAD)."""
    import random

    rng = random.Random(3)
    for n in (0, 1, 7, 300):
        sentences = [[rng.choice(["a", "b", "c", "rare"]) for _ in range(rng.randint(1, 12))] for _ in range(n)]
        vocab = Vocab.build(sentences[: n // 2])  # some words unknown: <unk> ids
        ds = PairDataset(sentences, vocab)
        width = max((len(s) for s in sentences), default=0) + 1
        assert ds.src.shape == ds.tgt.shape == (n, width) and ds.src.dtype == torch.long
        for i, s in enumerate(sentences):
            ids = vocab.encode(s)
            pad = [PAD] * (width - len(ids) - 1)
            assert ds.src[i].tolist() == ids + [EOS] + pad
            assert ds.tgt[i].tolist() == ids[::-1] + [EOS] + pad
        assert ds.src_len.tolist() == [len(s) + 1 for s in sentences]


def test_a_corpus_file_stores_each_distinct_word_once(tmp_path):
    from engine.train.data import read_corpus

    path = tmp_path / "c.txt"
    path.write_text("The cat sat.\n\nthe dog\ncat, the CAT sat on it\none\n")
    kept, stats = read_corpus(str(path), 2, 5)
    assert kept == [["the", "cat", "sat"], ["the", "dog"]]
    assert (stats.lines, stats.kept, stats.empty, stats.too_short, stats.too_long) == (5, 2, 1, 1, 1)
    assert kept[0][0] is kept[1][0]  # one string for "the", however often it occurs


# -- a user's text file (--corpus) ------------------------------------------------------------


def test_read_corpus_counts_what_it_drops(tmp_path):
    path = write_corpus(tmp_path / "c.txt", 1000)
    sentences, stats = read_corpus(str(path), 3, 10)
    assert (stats.lines, stats.empty, stats.too_short, stats.too_long) == (1000, 20, 20, 20)
    assert stats.kept == len(sentences) == 940
    assert all(w == w.lower() and "," not in w for s in sentences for w in s)
    assert "kept 940 of 1,000 lines" in stats.summary(3, 10)
    kept_case, _ = read_corpus(str(path), 3, 10, lowercase=False)
    assert kept_case[0][0].startswith("W")


@pytest.mark.slow
def test_fifty_thousand_lines_and_thousands_of_words(tmp_path):
    big = write_corpus(tmp_path / "big.txt", 50_000)
    small = write_corpus(tmp_path / "small.txt", 10_000)

    def build(path):
        tracemalloc.start()
        sentences, stats = read_corpus(str(path), 3, 10)
        splits = corpus_splits(sentences, 10**9, 1000, 1000, seed=1)
        vocab = Vocab.build(splits.train, min_freq=2)
        ds = PairDataset(splits.train, vocab)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return stats, splits, vocab, ds, peak

    stats, splits, vocab, ds, peak_big = build(big)
    *_, peak_small = build(small)
    assert stats.kept == 47_000
    assert (len(splits.test), len(splits.val), len(splits.train)) == (1000, 1000, 45_000)
    assert 2500 < len(vocab) < 3005  # thousands of words; a few rare ones fall under min_freq
    assert len(ds) == 45_000
    assert peak_big < 6 * peak_small  # 5x the lines, no worse than linear in memory
    # the same seed gives the same split
    again = corpus_splits(read_corpus(str(big), 3, 10)[0], 10**9, 1000, 1000, seed=1)
    assert again.test == splits.test


def test_vocabulary_cap_keeps_the_most_frequent_in_first_seen_order():
    sentences = [["a", "b", "c"], ["c", "d", "b"], ["c", "e", "d"], ["f", "g", "h"]]
    # counts: c 3, b 2, d 2, the rest 1; the cap of 3 keeps c, b, d, in order of first appearance
    assert Vocab.build(sentences, 1, 3).words() == ["b", "c", "d"]
    assert Vocab.build(sentences, 1, 4).words() == ["a", "b", "c", "d"]  # a ties e..h, seen first
    assert Vocab.build(sentences, 1, 0).words() == ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert Vocab.build(sentences, 2, 0).words() == ["b", "c", "d"]


def numbered(n: int, length) -> list[list[str]]:
    """n sentences whose words say which sentence and place they are: s3w0 s3w1 ..."""
    return [[f"s{i}w{j}" for j in range(length(i))] for i in range(n)]


def parts_of(joined: list[str], length) -> list[int]:
    """The sentences a joined one is made of, in order: each must be whole and start at w0."""
    parts, k = [], 0
    while k < len(joined):
        i = int(joined[k].split("w")[0][1:])
        assert joined[k : k + length(i)] == [f"s{i}w{j}" for j in range(length(i))], joined
        parts.append(i)
        k += length(i)
    return parts


def test_joined_sentences_are_two_to_four_whole_sentences_within_the_length():
    length = lambda i: 3 + i % 8  # noqa: E731 (3-10 words)
    text = numbered(200, length)
    joined = joined_sentences(text, 300, 30, seed=1)
    assert len(joined) == 300
    counts = [len(parts_of(j, length)) for j in joined]
    assert min(counts) == 2 and max(counts) == 4  # every size is drawn
    assert max(len(j) for j in joined) <= 30 and max(len(j) for j in joined) > 20
    assert joined == joined_sentences(text, 300, 30, seed=1)  # seeded
    assert joined != joined_sentences(text, 300, 30, seed=2)
    # sentences too long to join within the length: fewer, none when no two fit
    assert joined_sentences(numbered(50, lambda i: 16), 100, 30, seed=1) == []
    assert joined_sentences([], 10, 30, seed=1) == []


def test_the_joined_count_and_configurations_from_before_it():
    from engine.train.config import Config

    assert Config().joined_count(3000) == 0  # the built-in words already run to 30 words
    assert Config(corpus="x.txt").joined_count(4000) == 1000
    assert Config(corpus="x.txt").joined_count(400) == 100  # a quarter of a small text
    assert Config(corpus="x.txt", join=0).joined_count(4000) == 0
    assert Config(join=50).joined_count(3000) == 50
    old = {k: v for k, v in Config(corpus="x.txt").to_dict().items() if k != "join"}
    assert Config.from_dict(old).joined_count(4000) == 0  # resumed, it trains on what it trained on
    import pytest

    with pytest.raises(ValueError, match="--join must"):
        Config(join=-2).validate()
    with pytest.raises(ValueError, match="--join-len"):
        Config(join_len=1).validate()


def test_repeated_word_rewrites_keep_each_sentences_length_and_draw_from_its_own_words():
    text = numbered(400, lambda i: 3 + i % 10)  # 3-12 words, every word distinct
    out, rewritten = repeated_word_rewrites(text, 0.25, seed=1)
    assert len(out) == len(text) and [len(s) for s in out] == [len(s) for s in text]
    changed = [(a, b) for a, b in zip(text, out) if a != b]
    assert rewritten == len(changed) and 0.15 < rewritten / sum(len(s) >= 6 for s in text) < 0.35
    for before, after in changed:
        assert len(before) >= 6 and set(after) <= set(before)  # its own words, at its length
    assert {len(set(after)) for _, after in changed} >= {2, 3} and max(len(set(a)) for _, a in changed) == 3
    assert all(a == b for a, b in zip(text, out) if len(a) < 6)  # short sentences are kept
    assert repeated_word_rewrites(text, 0.25, seed=1) == (out, rewritten)  # seeded
    assert repeated_word_rewrites(text, 0.25, seed=2)[0] != out
    assert repeated_word_rewrites(text, 0.0, seed=1) == (text, 0)
    assert repeated_word_rewrites(text, 1.0, seed=1)[1] == sum(len(s) >= 6 for s in text)
    assert text[0] == ["s0w0", "s0w1", "s0w2"]  # the input is not touched


def test_the_repeat_rate_is_on_for_a_copying_text_only_and_off_for_configurations_from_before_it():
    import pytest

    from engine.train.config import Config

    assert Config().repeated_share == 0.0 and Config(corpus="x.txt").repeated_share == 0.1
    assert Config(corpus="x.txt", repeat_rate=0).repeated_share == 0.0
    assert Config(corpus="x.txt", copy="off").repeated_share == 0.0  # --no-copy keeps its model
    assert Config(repeat_rate=0.5).repeated_share == 0.5
    old = {k: v for k, v in Config(corpus="x.txt").to_dict().items() if k != "repeat_rate"}
    assert Config.from_dict(old).repeated_share == 0.0  # resumed, it trains on what it trained on
    for bad in (-0.5, 1.5):
        with pytest.raises(ValueError, match="--repeat-rate must"):
            Config(repeat_rate=bad).validate()


def test_a_corpus_run_trains_on_its_joined_sentences_with_the_texts_own_vocabulary(tmp_path):
    from engine.train.config import Config
    from engine.train.trainer import Trainer

    lines = [" ".join(f"w{(i * 7 + j) % 40}" for j in range(3 + i % 5)) for i in range(400)]
    lines.append("once only here")  # words seen once: <unk> at min-freq 2, joined or not
    (tmp_path / "text.txt").write_text("\n".join(lines) + "\n")
    cfg = Config(corpus=str(tmp_path / "text.txt"), val_size=20, test_size=20, join_len=12, epochs=1)
    trainer = Trainer(cfg, tmp_path / "ck.pt")
    text = trainer.splits.train
    assert len(trainer.joined) == len(text) // 4 and len(trainer.train_set) == len(text) + len(trainer.joined)
    assert all(len(j) <= 12 for j in trainer.joined)
    plain = Trainer(Config(**{**cfg.to_dict(), "join": 0}), tmp_path / "plain.pt")
    assert plain.joined == [] and trainer.vocab.itos == plain.vocab.itos
    assert "once" not in trainer.vocab
    # a tenth of the sentences of 6+ words, the text's and the joined, come as repeated words
    long = [s for s in text + trainer.joined if len(s) >= 6]
    assert 0.05 * len(long) < trainer.rewritten < 0.15 * len(long)
    kept = Trainer(Config(**{**cfg.to_dict(), "repeat_rate": 0}), tmp_path / "kept.pt")
    assert kept.rewritten == 0 and len(kept.train_set) == len(trainer.train_set)
    assert kept.joined == trainer.joined  # the rewrites draw from their own stream
