"""engine/train/config.py: config.toml round-trips every configuration; the notebook preset keeps the
notebook's data; with --corpus the vocabulary drops words seen once unless a flag says otherwise."""

import pytest

from engine.model.tokens import SPECIALS
from engine.train.config import Config
from engine.train.data import Vocab, read_corpus
from tests.conftest import write_corpus


@pytest.mark.parametrize(
    "cfg",
    [
        Config(),
        Config.notebook(),
        Config(
            corpus='my "odd" file\\name.txt',
            lr=1e-4,
            dropout=0.25,
            bidirectional=False,
            lr_schedule="constant",
            device="cpu",
        ),
    ],
)
def test_config_toml_round_trip(tmp_path, cfg):
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml("a comment\nof two lines"))
    assert Config(**Config.read_toml(path)) == cfg


def test_corpus_defaults_drop_words_seen_once_and_a_flag_overrides(tmp_path):
    """With --corpus and no --min-freq, a word seen once in training becomes <unk> (the model
    copies it through attention); the built-in corpus keeps every word; a flag wins."""
    from engine.train.config import Config
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


def test_epochs_are_auto_unless_given_six_on_your_own_text_nine_on_the_built_in(tmp_path):
    """Epochs that neither the preset, --config nor a flag gives are worked out with --corpus;
    whatever gives them wins, and a run's config.toml repeats the number it trained."""
    from tui.cli import config_from_args, main_parser

    def epochs(*flags: str) -> int:
        return config_from_args(main_parser().parse_args(list(flags))).epochs

    text = str(write_corpus(tmp_path / "c.txt", 40))
    assert (Config().epochs, Config(corpus=text).epochs, Config(corpus=text, epochs=9).epochs) == (9, 6, 9)
    assert epochs() == 9 and epochs("--corpus", text) == 6
    assert epochs("--corpus", text, "--epochs", "9") == 9 and epochs("--epochs", "auto", "--corpus", text) == 6
    assert epochs("--preset", "notebook", "--corpus", text) == 30  # the notebook's own
    assert epochs("--preset", "long", "--corpus", text) == 6
    repeat = tmp_path / "config.toml"
    repeat.write_text(Config(epochs=9).to_toml())
    assert epochs("--config", str(repeat), "--corpus", text) == 9  # the file gives them
    repeat.write_text(Config(corpus=text).to_toml())
    assert "epochs = 6" in repeat.read_text() and epochs("--config", str(repeat)) == 6
    with pytest.raises(ValueError, match="--epochs must be at least 1"):
        Config(epochs=-1).validate()


def test_validation_sentences_are_auto_unless_given_250_built_in_500_on_your_own_text(tmp_path):
    """A text's training sentences are what its test and validation sentences leave, so it
    keeps 500 (its model is the one 500 gave); the built-in sentences validate on 250, which
    leaves their training as it was. Whatever gives the count wins; config.toml repeats it."""
    from engine.train.data import splits_for
    from tui.cli import config_from_args, main_parser

    def val(*flags: str) -> int:
        return config_from_args(main_parser().parse_args(list(flags))).val_size

    text = str(write_corpus(tmp_path / "c.txt", 40))
    assert (Config().val_size, Config(corpus=text).val_size, Config(val_size=300).val_size) == (250, 500, 300)
    assert val() == 250 and val("--corpus", text) == 500 and val("--val-size", "auto") == 250
    assert val("--corpus", text, "--val-size", "300") == 300
    assert val("--preset", "notebook") == 1000  # the notebook's own
    built_in = splits_for(Config())[0]
    assert len(built_in.val) == 250 and built_in.train == splits_for(Config(val_size=500))[0].train
    repeat = tmp_path / "config.toml"
    repeat.write_text(Config(val_size=500).to_toml())
    assert val("--config", str(repeat)) == 500  # the file gives it
    with pytest.raises(ValueError, match="--val-size"):
        Config(val_size=-1).validate()


def test_the_vocabulary_cap_is_auto_unless_given_a_thousand_words_where_the_model_copies(tmp_path):
    """A copying model (a --corpus text's) keeps the 1,000 most frequent words and copies the
    rest; one that cannot copy keeps 10,000. Whatever gives a cap wins, and a run's config.toml
    repeats the cap it trained with."""
    from tui.cli import config_from_args, main_parser

    def cap(*flags: str) -> int:
        return config_from_args(main_parser().parse_args(list(flags))).max_vocab

    text = str(write_corpus(tmp_path / "c.txt", 40))
    assert (Config().max_vocab, Config(corpus=text).max_vocab, Config(corpus=text, copy="off").max_vocab) == (
        10000,
        1000,
        10000,
    )
    assert Config(copy="on").max_vocab == 1000 and Config(corpus=text, max_vocab=0).max_vocab == 0
    assert cap() == 10000 and cap("--corpus", text) == 1000 and cap("--corpus", text, "--no-copy") == 10000
    assert cap("--max-vocab", "auto", "--corpus", text) == 1000 and cap("--corpus", text, "--max-vocab", "0") == 0
    assert cap("--preset", "notebook", "--corpus", text) == 1000  # the notebook gives no cap of its own
    repeat = tmp_path / "config.toml"
    repeat.write_text(Config().to_toml())  # the built-in words' 10,000, given by the file
    assert cap("--config", str(repeat), "--corpus", text) == 10000
    repeat.write_text(Config(corpus=text).to_toml())
    assert "max_vocab = 1000" in repeat.read_text() and cap("--config", str(repeat), "--no-copy") == 1000
    with pytest.raises(ValueError, match="--max-vocab must be auto, 0"):
        Config(max_vocab=-2).validate()


def test_a_text_trains_on_its_most_frequent_words_up_to_the_cap(tmp_path):
    """The cap bites: a text of more words seen twice than the cap trains an output layer of
    the cap's most frequent words (and the specials), each of them seen at least as often as
    any word left out."""
    from engine.train.trainer import Trainer

    text = write_corpus(tmp_path / "c.txt", 3000, vocab_size=1500)
    cfg = Config(corpus=str(text), epochs=1, hidden_dim=8, embed_dim=4, device="cpu")
    trainer = Trainer(cfg, tmp_path / "m.pt")
    counts: dict[str, int] = {}
    for s in trainer.splits.train:
        for w in s:
            counts[w] = counts.get(w, 0) + 1
    kept = set(trainer.vocab.words())
    seen_twice = {w for w, c in counts.items() if c >= 2}
    assert len(seen_twice) > cfg.max_vocab == len(kept)
    assert trainer.model.decoder.out.out_features == len(trainer.vocab) == len(kept) + len(SPECIALS)
    assert min(counts[w] for w in kept) >= max(counts[w] for w in seen_twice - kept)


def test_the_notebook_preset_keeps_the_notebooks_data():
    """The defaults train on 3-30 words; --preset notebook is still the notebook's baseline."""
    from engine.train.config import Config

    nb = Config.notebook()
    assert (nb.train_size, nb.val_size, nb.test_size, nb.min_len, nb.max_len) == (8000, 1000, 1000, 3, 10)
    assert (nb.min_freq, nb.unk_rate, nb.epochs, nb.lr, nb.hidden_dim) == (1, 0.0, 30, 1e-3, 256)
