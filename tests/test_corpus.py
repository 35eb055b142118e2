"""--corpus: a user's text file, tokenised by the project's rule, split with a seed."""
import json
import random
import tracemalloc

import torch

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
    code = main(["--no-ui", "--corpus", str(path), "--max-len", "10", "--train-size", "1500",
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


def test_corpus_defaults_drop_words_seen_once_and_a_flag_overrides(tmp_path):
    """With --corpus and no --min-freq, a word seen once in training becomes <unk> (the model
    copies it through attention); the built-in corpus keeps every word; a flag wins."""
    from engine.config import Config
    from tui.cli import config_from_args, main_parser
    text = str(write_corpus(tmp_path / "c.txt", 400))
    auto = config_from_args(main_parser().parse_args(["--corpus", text]))
    assert auto.min_freq == 0 and auto.word_min_freq == 2
    assert config_from_args(main_parser().parse_args(["--corpus", text, "--min-freq", "1"])).word_min_freq == 1
    assert Config().word_min_freq == 1 and Config.notebook().word_min_freq == 1
    sentences, _ = read_corpus(text, 3, 30)
    counts = {}
    for s in sentences:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    vocab = Vocab.build(sentences, auto.word_min_freq)
    assert set(vocab.words()) == {w for w, c in counts.items() if c >= 2}
    assert any(c == 1 for c in counts.values())  # the rule had something to drop


def test_vocabulary_cap_keeps_the_most_frequent_in_first_seen_order():
    sentences = [["a", "b", "c"], ["c", "d", "b"], ["c", "e", "d"], ["f", "g", "h"]]
    # counts: c 3, b 2, d 2, the rest 1; the cap of 3 keeps c, b, d, in order of first appearance
    assert Vocab.build(sentences, 1, 3).words() == ["b", "c", "d"]
    assert Vocab.build(sentences, 1, 4).words() == ["a", "b", "c", "d"]  # a ties e..h, seen first
    assert Vocab.build(sentences, 1, 0).words() == ["a", "b", "c", "d", "e", "f", "g", "h"]
    assert Vocab.build(sentences, 2, 0).words() == ["b", "c", "d"]


def test_the_notebook_preset_keeps_the_notebooks_data():
    """The defaults train on 3-30 words; --preset notebook is still the notebook's baseline."""
    from engine.config import Config
    nb = Config.notebook()
    assert (nb.train_size, nb.val_size, nb.test_size, nb.min_len, nb.max_len) == (8000, 1000, 1000, 3, 10)
    assert (nb.min_freq, nb.unk_rate, nb.epochs, nb.lr, nb.hidden_dim) == (1, 0.0, 30, 1e-3, 256)


def test_a_checkpoint_from_before_the_vocabulary_cap_resumes_with_every_word(tmp_path):
    """Old checkpoints have no max_vocab: resuming one rebuilds its uncapped vocabulary (the
    resume refuses a vocabulary that differs from the checkpoint's)."""
    from engine.config import Config
    from engine.train import Trainer
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
