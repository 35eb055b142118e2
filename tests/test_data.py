"""Tokenisation rule, the built-in corpus and length-grouped batches."""
import torch

from engine.data import EOS, PAD, SOS, PairDataset, Vocab, WORDS, builtin_splits, tokenize


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
    from engine.evaluate import output_words
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


def test_unknown_word_masking_mirrors_source_into_target():
    from engine.train import with_unknown_words
    from engine.data import UNK
    v = Vocab(WORDS)
    ds = PairDataset(["the cat sat on".split(), "big red car".split()], v)
    b = with_unknown_words(ds.batch(torch.arange(2)), 0.5, torch.Generator().manual_seed(3))
    for i, n in enumerate([4, 3]):
        src, tgt = b.src[i, :n].tolist(), b.tgt[i, :n].tolist()
        assert tgt == src[::-1]  # still the exact reversal, <unk>s included
        assert b.src[i, n] == EOS and b.tgt[i, n] == EOS
    assert (b.src == UNK).any()
    assert torch.equal(b.src_len, ds.src_len[:2])


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
    from engine.data import read_corpus
    path = tmp_path / "c.txt"
    path.write_text("The cat sat.\n\nthe dog\ncat, the CAT sat on it\none\n")
    kept, stats = read_corpus(str(path), 2, 5)
    assert kept == [["the", "cat", "sat"], ["the", "dog"]]
    assert (stats.lines, stats.kept, stats.empty, stats.too_short, stats.too_long) == (5, 2, 1, 1, 1)
    assert kept[0][0] is kept[1][0]  # one string for "the", however often it occurs
