"""Every hyperparameter in one dataclass.

`Config()` is reverse-tui's default: a small bidirectional encoder, location-aware
attention and a cosine-decayed learning rate, trained on 3-30 words with 30% of them shown
as <unk> (and a run of them in a tenth of the sentences), which reverses sentences of
3-60 words, known or unknown, after 9 epochs on a CPU (measured: bench/README.md,
bench/length_study.py). `Config.notebook()` is the user's notebook (its data: 8,000
sentences of 3-10 words; embed 128, hidden 256, 2 layers, lr 1e-3, batch 64, 30 epochs),
one flag away (`--preset notebook`) so that the two can be compared on the same footing.
`Config.long()` (`--preset long`) trains on 5-10 words with the shift score and reverses
to 100 words.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

# the attention scores engine/model/seq2seq.py implements (Attention.score)
SCORES = ("additive", "general", "dot", "scaled-dot", "shift")


def setting(default, text: str, *, auto=None, shown: str = ""):
    """A Config field with its help, `text`: the one text that `reverse-tui --help` and docs/flags.md
    give its flag. `auto`: the value that stands for "worked out from the rest of the
    configuration" (the flag takes the word auto too); `shown`: the default in words, where
    the value alone would not say it."""
    meta = {"help": text}
    if auto is not None:
        meta["auto"] = auto
    if shown:
        meta["shown"] = shown
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Config:
    # -- data: the notebook's built-in corpus sizes and lengths, or a user's text file
    corpus: str = setting(
        "", "train on your own text file, one sentence per line, read as a stream", shown="the built-in sentences"
    )
    # a word seen once in a text is a name or a typo: the model copies it through attention as
    # <unk>, measured better than learning it
    min_freq: int = setting(
        0, "words seen fewer times in training become <unk> (auto, or 0: 2 with --corpus, else 1)", auto=0
    )
    # the output layer's cost grows with the vocabulary (bench/vocab_scaling.py); a model that
    # copies gets a word past the cap back as itself, so a text's cap is lower: on three texts of
    # 1,500-2,200 words it kept test exact match and unknown words, and a run took 0.61-0.82 of
    # its time (bench/README.md, "Your own text under 30 s")
    max_vocab: int = setting(
        -1,
        "keep at most this many words, the most frequent; the rest become <unk> and are copied (auto, or -1: "
        "1,000 where the model copies, as on a --corpus text, else 10,000; 0: no cap)",
        auto=-1,
        shown="auto",
    )
    lowercase: bool = setting(True, "lower-case the text (--no-lowercase keeps its case)")
    train_size: int = setting(
        0,
        "training sentences (auto, or 0: 3,000 built-in, or all of a --corpus less its validation and test "
        "sentences; a number caps a corpus)",
        auto=0,
    )
    # a text of short sentences otherwise trains a model that fails long ones (bench/copy_study.py);
    # the built-in words already run to 30 words
    join: int = setting(
        -1,
        "with --corpus, also train on sentences made of 2-4 training sentences end to end, each at most "
        "--join-len words (auto, or -1: 1,000 or a quarter of the training sentences, whichever is fewer; "
        "none on the built-in words; 0: none)",
        auto=-1,
    )
    # sentences of unknown words come back to 60 words from 40 (from 50 with 30, on one text of three)
    join_len: int = setting(40, "a joined training sentence's most words (see --join)")
    # only position tells the copies of a word apart, so the model learns to stop at the first
    # word (bench/copy_study.py); measured worse with --no-copy and not needed on the built-in words
    repeat_rate: float = setting(
        -1.0,
        "share of training sentences of 6+ words rewritten as 2-3 of their own words, drawn at random for each "
        "position, so that the model keeps its place by position (auto, or -1: 0.1 with --corpus and copying; "
        "none with --no-copy or on the built-in words; 0: none)",
        auto=-1.0,
    )
    # picks the best epoch by its loss over ~4,400 target words on the built-in sentences, in
    # half the time of 500: seeds 1-10 chose the same epoch with either (bench/README.md). A
    # text keeps 500: its training sentences are what the others leave, so fewer validation
    # sentences would change its model
    val_size: int = setting(
        0,
        "validation sentences: they pick the best model and stop early (auto, or 0: 250 on the built-in "
        "sentences, 500 with --corpus; with --corpus at most a tenth of it)",
        auto=0,
        shown="auto",
    )
    test_size: int = setting(
        1000, "test sentences: exact match, examples, analysis (with --corpus, at most a tenth of it)"
    )
    min_len: int = setting(3, "shortest sentence, in words")
    # a model reaches about twice its longest sentence (bench/length_study.py)
    max_len: int = setting(30, "longest sentence, in words")
    # -- model
    embed_dim: int = setting(32, "word embedding size")
    hidden_dim: int = setting(64, "GRU hidden size (encoder and decoder)")
    layers: int = setting(1, "GRU layers in the encoder and the decoder")
    dropout: float = setting(0.0, "dropout on embeddings and between GRU layers")
    bidirectional: bool = setting(True, "bidirectional encoder (--no-bidirectional: one direction)")
    location_kernel: int = setting(
        5, "location-aware attention: width of a convolution over the previous step's weights (odd; 0: off)"
    )
    attention: bool = setting(
        True,
        "Bahdanau attention; --no-attention trains the control, whose context is the fixed mean of the encoder outputs",
    )
    # engine/model/seq2seq.py's Attention.score; docs/design.md has the four formulas
    score: str = setting(
        "additive",
        "attention score: additive (Bahdanau's v . tanh(W_h h + W_s s)), general (Luong's s . W h), dot (s . h, "
        "a bidirectional encoder's two directions summed), scaled-dot ((W_q s) . (W_k h) / sqrt(d)) or shift (where "
        "to look from position: the last step's weights moved by a soft offset, sharpened, with a gated share of "
        "additive); the location term and coverage join each one's keys; all but additive train the reference model "
        "(formulas: docs/design.md)",
    )
    # the coverage of Tu et al. 2016 and See et al. 2017 (bench/coverage_study.py)
    coverage: bool = setting(
        False,
        "coverage attention: the score also reads the weight each input word has had so far, so that a word "
        "looked at is not looked at again; trains the reference model, slower (measured better on repeated "
        "words on two seeds of three, worse on long sentences)",
    )
    # engine/model/copy.py; "on", "off" or "auto": on for a user's text, where it measured better (bench/copy_study.py)
    copy: str = setting(
        "auto",
        "copy mechanism: each output word generated or copied from the input, by a learned gate "
        "(--no-copy: generated only)",
        shown="on with --corpus, else off",
    )
    # -- training
    # a text of your own holds 5,000 sentences (4,000 and 1,000 joined) against the built-in
    # 3,000: 6 epochs give it more updates than 9 give the built-in sentences, and on three texts
    # x three seeds they kept every figure 9 epochs gave, a third sooner (4 lost unknown
    # words from 41 on one of them) (bench/README.md, "Where a run's time goes")
    epochs: int = setting(
        0,
        "training epochs, the most (see --patience) (auto, or 0: 9 on the built-in sentences, 6 on a --corpus text)",
        auto=0,
        shown="auto",
    )
    lr: float = setting(5e-3, "peak learning rate of the hand-written Adam")
    lr_schedule: str = setting(
        "cosine", "cosine: a warm-up over the first 5% of steps, then decay to lr/20; constant: as the notebook"
    )
    batch_size: int = setting(64, "sentences per batch (a batch holds sentences of one length)")
    teacher_forcing: float = setting(0.5, "probability that a decoder step reads the true previous word (0-1)")
    clip: float = setting(1.0, "max-norm gradient clipping threshold")
    unk_rate: float = setting(
        0.3,
        "share of training words shown as <unk>, in source and target, so that the model copies unseen words "
        "through its attention (0: never)",
    )
    # with words hidden one at a time a long run of <unk> never occurs in training; 5% of whole
    # sentences let seeds 1 and 10 hold unknown words past 120 words (from 32 and 34) but cost
    # seed 4 its unknown words at 60 and two seeds one test sentence (bench/README.md): off
    unk_sentences: float = setting(
        0.0,
        "share of training sentences shown with every word <unk>, so that the model meets long runs of "
        "unknown words (0: none)",
    )
    # words hidden one at a time seldom make a run of <unk>, across which only the location
    # term keeps the attention's place: without runs, on seed 1 its peak fades from 0.97 to 0.24
    # over a 32-word sentence of unknown words and the decoder stops early; on seed 10 the
    # source's EOS gets under half the weight once 34 <unk> share the softmax and it runs on.
    # With a run in 10% of sentences every seed 1-10 reverses unknown words at every length
    # 3-60 (without: seeds 1 and 10 failed from 32 and 34 words, four more from 65-91), test
    # 100%, typed English >= 97% at 41-60 words (without: 88% on seed 1), for 0.2% more
    # training time; known words' reach 60-180 words (without: 60-140) (bench/README.md,
    # bench/unknown_runs.py). Not measured on a --corpus text: none there.
    unk_spans: float = setting(
        -1.0,
        "share of training sentences with a run of consecutive words shown as <unk> (its length 1 to every "
        "word, its place at random), so that the model keeps its place across runs of unknown words; with "
        "--unk-rate above 0 (auto, or -1: 0.1 on the built-in words, none with --corpus; 0: none)",
        auto=-1.0,
    )
    beam: int = setting(
        1,
        "beam width: above 1 the evaluation also reports a length-normalised beam search beside greedy, and "
        "the app's probe and its step-through (f3) decode with it, with --checkpoint too (1: greedy)",
    )
    patience: int = setting(0, "stop after this many epochs without a better validation loss (0: never)")
    seed: int = setting(42, "random seed: the same seed gives the same data and losses on a CPU")
    device: str = setting("auto", "auto: CUDA when PyTorch sees it, else the CPU")
    # engine/impl.py's choose_impl decides
    impl: str = setting(
        "auto",
        "reference: engine/model/seq2seq.py in plain PyTorch under autograd (change it, train it); fast: engine/fast's "
        "hand-written loop and kernels, the same maths; auto: fast wherever it implements the configuration",
    )

    @classmethod
    def notebook(cls, **overrides) -> Config:
        """The seed notebook's hyperparameters."""
        base = cls(
            train_size=8000,
            val_size=1000,
            min_len=3,
            max_len=10,
            min_freq=1,
            embed_dim=128,
            hidden_dim=256,
            layers=2,
            dropout=0.1,
            bidirectional=False,
            location_kernel=0,
            epochs=30,
            lr=1e-3,
            lr_schedule="constant",
            batch_size=64,
            teacher_forcing=0.5,
            unk_rate=0.0,
        )
        return replace(base, **overrides)

    @classmethod
    def long(cls, **overrides) -> Config:
        """Trained on 5-10 words, reversing to 100 (the setup of Ray Chowdhury & Caragea 2023):
        the shift score, reverse-tui's defaults otherwise, without runs of <unk> (it was measured
        before them: bench/length_generalization.py)."""
        return replace(cls(min_len=5, max_len=10, score="shift", unk_spans=0.0), **overrides)

    BUILTIN_TRAIN_SIZE = 3000  # 3-30 words in 9 epochs: every goal on 6 of 6 seeds (bench/length_study.py)
    BUILTIN_EPOCHS, TEXT_EPOCHS = 9, 6  # epochs' auto (see epochs)
    BUILTIN_VAL, TEXT_VAL = 250, 500  # val_size's auto (see val_size)
    COPYING_VOCAB, VOCAB = 1000, 10000  # max_vocab's auto (see max_vocab)
    # the fields whose auto is worked out once, as the configuration is made, and kept as a
    # number (config.toml and a checkpoint repeat what the run did); the others stay auto
    RESOLVED = ("epochs", "max_vocab", "val_size")

    def __post_init__(self) -> None:
        if self.epochs == 0:
            object.__setattr__(self, "epochs", self.TEXT_EPOCHS if self.corpus else self.BUILTIN_EPOCHS)
        if self.val_size == 0:
            object.__setattr__(self, "val_size", self.TEXT_VAL if self.corpus else self.BUILTIN_VAL)
        if self.max_vocab == -1:
            object.__setattr__(self, "max_vocab", self.COPYING_VOCAB if self.copy_on else self.VOCAB)

    @property
    def training_sentences(self) -> int | None:
        """train_size with auto resolved: a number of built-in sentences, or None (all of the
        corpus) for a --corpus run."""
        if self.train_size:
            return self.train_size
        return None if self.corpus else self.BUILTIN_TRAIN_SIZE

    @property
    def on_notebook_data(self) -> bool:
        """Whether this run's data is the notebook's: the built-in corpus at its lengths and
        sizes, so that its own test set is the notebook's test set."""
        ref = Config.notebook()
        keys = ("min_len", "max_len", "training_sentences", "val_size", "test_size")
        return not self.corpus and all(getattr(self, k) == getattr(ref, k) for k in keys)

    def joined_count(self, training: int) -> int:
        """How many joined sentences to train on beside `training` sentences of the text."""
        if self.join >= 0:
            return self.join
        return min(1000, training // 4) if self.corpus else 0

    @property
    def repeated_share(self) -> float:
        """repeat_rate with auto resolved: 0.1 where a model copies a user's text; none for
        --no-copy (it fell on long sentences of unknown words with them) or the built-in words."""
        if self.repeat_rate >= 0:
            return self.repeat_rate
        return 0.1 if self.corpus and self.copy_on else 0.0

    @property
    def span_share(self) -> float:
        """unk_spans with auto resolved: 0.1 on the built-in words; none with --corpus, whose
        recipe (joined sentences, copying) was measured without it."""
        if self.unk_spans >= 0:
            return self.unk_spans
        return 0.0 if self.corpus else 0.1

    @property
    def copy_on(self) -> bool:
        """Whether the model copies: --copy / --no-copy as given, else on for a --corpus run."""
        return self.copy == "on" or (self.copy == "auto" and bool(self.corpus))

    @property
    def word_min_freq(self) -> int:
        """min_freq with auto resolved: 2 for a user's text, 1 for the built-in words."""
        return self.min_freq or (2 if self.corpus else 1)

    def to_dict(self) -> dict:
        return asdict(self)

    # What a configuration saved before a field meant by leaving it out, where that is not
    # today's default: max_vocab (a model saved before the cap had every word, and resuming it
    # must rebuild the same vocabulary), copy (a model saved before it has no copy gate), join
    # and repeat_rate (resuming one must train on the sentences it trained on), score (every
    # model before it scored additively, whatever the default becomes), unk_spans (hidden runs)
    PREDATES = {"max_vocab": 0, "copy": "off", "join": 0, "repeat_rate": 0.0, "score": "additive", "unk_spans": 0.0}

    @classmethod
    def from_dict(cls, d: dict) -> Config:
        """A checkpoint's configuration. A field it predates takes today's default, or its
        PREDATES value."""
        known = {f.name for f in fields(cls)}
        return cls(**{**cls.PREDATES, **{k: v for k, v in d.items() if k in known}})

    def to_toml(self, header: str = "") -> str:
        """Every field as `name = value`, which `read_toml` (tomllib) reads back to this Config."""
        lines = [f"# {line}" for line in header.splitlines()]
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool):
                text = "true" if v else "false"
            elif isinstance(v, str):
                text = json.dumps(v)  # a TOML basic string: JSON's escapes are TOML's
            elif isinstance(v, float):
                text = repr(v) if math.isfinite(v) else ("nan" if v != v else "inf" if v > 0 else "-inf")
            else:
                text = str(v)
            lines.append(f"{f.name} = {text}")
        return "\n".join(lines) + "\n"

    @classmethod
    def read_toml(cls, path: str | Path) -> dict:
        """The fields a TOML file sets, type-checked; ValueError with one line naming the
        file and the problem (unknown key, wrong type, not TOML)."""
        path = Path(path)
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            try:
                import tomli as tomllib
            except ModuleNotFoundError:
                raise ValueError("--config needs Python 3.11 or later (tomllib), or the tomli package") from None
        try:
            data = tomllib.loads(path.read_text())
        except OSError as e:
            raise ValueError(f"--config {path}: cannot read it ({e.strerror or e})") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"--config {path}: not valid TOML ({e})") from None
        types = {f.name: type(getattr(cls(), f.name)) for f in fields(cls)}
        unknown = sorted(set(data) - set(types))
        if unknown:
            raise ValueError(f"--config {path}: unknown setting(s) {', '.join(unknown)} (known: {', '.join(types)})")
        out = {}
        for key, value in data.items():
            want = types[key]
            if want is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not want:
                raise ValueError(
                    f"--config {path}: {key} must be {want.__name__}, got {type(value).__name__} {value!r}"
                )
            out[key] = value
        return out

    def validate(self) -> None:
        """Raise ValueError with one readable sentence for an impossible setting."""
        if self.train_size < 0:
            raise ValueError(f"--train-size must be 0 (auto) or more, got {self.train_size}")
        positive = [
            "val_size",
            "test_size",
            "min_len",
            "max_len",
            "embed_dim",
            "hidden_dim",
            "layers",
            "epochs",
            "batch_size",
        ]
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.min_len > self.max_len:
            raise ValueError(f"--min-len ({self.min_len}) is above --max-len ({self.max_len})")
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ValueError(f"--teacher-forcing must be between 0 and 1, got {self.teacher_forcing}")
        if not 0.0 <= self.unk_rate < 1.0:
            raise ValueError(f"--unk-rate must be in [0, 1), got {self.unk_rate}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not self.lr > 0:
            raise ValueError(f"--lr must be positive, got {self.lr}")
        if not self.clip > 0:
            raise ValueError(f"--clip must be positive, got {self.clip}")
        if self.beam < 1:
            raise ValueError(f"--beam must be at least 1, got {self.beam}")
        if self.min_freq < 0:
            raise ValueError(f"--min-freq must be 0 (auto) or more, got {self.min_freq}")
        if self.max_vocab < 0:
            raise ValueError(f"--max-vocab must be auto, 0 (no cap) or more, got {self.max_vocab}")
        if self.join_len < 2:
            raise ValueError(f"--join-len must be at least 2, got {self.join_len}")
        if not 0 <= self.unk_sentences <= 1:
            raise ValueError(f"--unk-sentences must be in [0, 1], got {self.unk_sentences}")
        if not (self.unk_spans == -1 or 0 <= self.unk_spans <= 1):
            raise ValueError(f"--unk-spans must be -1 (auto) or in [0, 1], got {self.unk_spans}")
        if not (self.repeat_rate == -1 or 0 <= self.repeat_rate <= 1):
            raise ValueError(f"--repeat-rate must be -1 (auto) or in [0, 1], got {self.repeat_rate}")
        if self.join < -1:
            raise ValueError(f"--join must be -1 (auto), 0 (none) or more, got {self.join}")
        if self.patience < 0:
            raise ValueError(f"--patience must be 0 or more, got {self.patience}")
        if self.impl not in ("auto", "reference", "fast"):
            raise ValueError(f"--impl must be auto, reference or fast, got {self.impl!r}")
        if self.location_kernel < 0 or (self.location_kernel and self.location_kernel % 2 == 0):
            raise ValueError(f"--location-kernel must be 0 (off) or an odd width, got {self.location_kernel}")
        if self.score not in SCORES:
            raise ValueError(f"--score must be one of {', '.join(SCORES)}, got {self.score!r}")
        if self.score != "additive" and not self.attention:
            raise ValueError(f"--no-attention trains uniform weights, which no score makes: drop --score {self.score}")
        if self.copy not in ("auto", "on", "off"):
            raise ValueError(f"--copy must be auto, on or off, got {self.copy!r}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"--lr-schedule must be cosine or constant, got {self.lr_schedule!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"--device must be auto, cpu or cuda, got {self.device!r}")
