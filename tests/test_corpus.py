"""--corpus: a user's text file, tokenised by the project's rule, split with a seed."""
import json
import random
import tracemalloc

from engine.data import PairDataset, Vocab, corpus_splits, read_corpus
from tui.cli import main


def write_corpus(path, lines, vocab_size=3000, seed=0):
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab_size)]
    with open(path, "w") as f:
        for i in range(lines):
            if i % 50 == 0:
                f.write("   \n")  # blank
            elif i % 50 == 1:
                f.write("Hi!\n")  # too short
            elif i % 50 == 2:
                f.write(" ".join(rng.choice(words) for _ in range(25)) + "\n")  # too long
            else:
                n = rng.randint(3, 10)
                f.write(", ".join(rng.choice(words) for _ in range(n)).upper() + ".\n")
    return path


def test_read_corpus_counts_what_it_drops(tmp_path):
    path = write_corpus(tmp_path / "c.txt", 1000)
    sentences, stats = read_corpus(str(path), 3, 10)
    assert (stats.lines, stats.empty, stats.too_short, stats.too_long) == (1000, 20, 20, 20)
    assert stats.kept == len(sentences) == 940
    assert all(w == w.lower() and "," not in w for s in sentences for w in s)
    assert "kept 940 of 1,000 lines" in stats.summary(3, 10)
    kept_case, _ = read_corpus(str(path), 3, 10, lowercase=False)
    assert kept_case[0][0].startswith("W")


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


def test_headless_run_on_a_corpus(tmp_path, capsys):
    path = write_corpus(tmp_path / "c.txt", 3000, vocab_size=40)
    out = tmp_path / "out"
    code = main(["--no-ui", "--corpus", str(path), "--min-freq", "2", "--train-size", "1500",
                 "--epochs", "1", "--embed-dim", "16", "--hidden-dim", "32", "--device", "cpu",
                 "--out", str(out), "--checkpoint", str(tmp_path / "c.pt")])
    assert code == 0
    text = capsys.readouterr().out
    assert "kept 2,820 of 3,000 lines" in text
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["corpus"] == str(path) and report["test_sentences"] == 282


def test_missing_corpus_is_refused(capsys):
    import pytest
    with pytest.raises(SystemExit) as e:
        main(["--no-ui", "--corpus", "/nonexistent/file.txt"])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err
