"""Corpus, tokenisation, vocabulary and length-grouped batches.

How text becomes tokens (the same rule for training, probing and evaluation):
  1. Unicode NFKC normalisation, then lower case.
  2. A word is a run of letters or digits, optionally joined by apostrophes ("don't").
     Everything else (spaces, tabs, punctuation, emoji, control characters) only separates
     words and is dropped: "The cat, sat!" -> ["the", "cat", "sat"].
"""

from __future__ import annotations

import random
import re
import unicodedata
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from ..model.copy import extended_size
from ..model.tokens import EOS, PAD, SOS, SPECIALS, UNK
from ..model.transfer import upload

# The notebook's 34 words.
WORDS = [
    "the",
    "cat",
    "sat",
    "dog",
    "ran",
    "big",
    "small",
    "red",
    "blue",
    "on",
    "in",
    "mat",
    "hat",
    "house",
    "car",
    "tree",
    "bird",
    "fish",
    "quick",
    "lazy",
    "brown",
    "fox",
    "jumps",
    "over",
    "eats",
    "drinks",
    "happy",
    "sad",
    "fast",
    "slow",
    "old",
    "new",
    "hot",
    "cold",
]

# Words the built-in corpus never uses: stand-ins for a user's unseen words in evaluation.
UNSEEN_WORDS = [
    "zebra",
    "lion",
    "piano",
    "river",
    "cloud",
    "stone",
    "apple",
    "train",
    "lamp",
    "chair",
    "moon",
    "grass",
    "whale",
    "violin",
    "candle",
    "forest",
    "garden",
    "mouse",
    "window",
    "rocket",
    "tiger",
    "pencil",
    "bridge",
    "castle",
]

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str, lowercase: bool = True) -> list[str]:
    """Split text into words by the rule in this module's docstring (lower case unless
    lowercase=False, for a --corpus trained with --no-lowercase)."""
    text = unicodedata.normalize("NFKC", text)
    return _WORD.findall(text.lower() if lowercase else text)


def random_sentences(
    n: int, min_len: int, max_len: int, rng: random.Random, words: Sequence[str] = WORDS
) -> list[list[str]]:
    """n sentences of uniformly random length in [min_len, max_len], words drawn uniformly."""
    return [[rng.choice(words) for _ in range(rng.randint(min_len, max_len))] for _ in range(n)]


def with_unseen_words(sentences: Sequence[Sequence[str]], rng: random.Random, vocab: Vocab) -> list[list[str]]:
    """Each sentence with one to three of its words swapped for words outside the vocabulary."""
    unseen = [w for w in UNSEEN_WORDS if w not in vocab] or [f"unseen{i}" for i in range(20)]
    out = []
    for s in sentences:
        s = list(s)
        for i in rng.sample(range(len(s)), k=min(len(s), rng.randint(1, 3))):
            s[i] = rng.choice(unseen)
        out.append(s)
    return out


@dataclass
class Splits:
    train: list[list[str]]
    val: list[list[str]]
    test: list[list[str]]


def builtin_splits(train_size: int, val_size: int, test_size: int, min_len: int, max_len: int, seed: int) -> Splits:
    """The notebook's corpus: random sentences over its 34 words, seeded."""
    rng = random.Random(seed)
    return Splits(
        random_sentences(train_size, min_len, max_len, rng),
        random_sentences(val_size, min_len, max_len, rng),
        random_sentences(test_size, min_len, max_len, rng),
    )


@dataclass
class CorpusStats:
    path: str = ""
    lines: int = 0
    kept: int = 0
    empty: int = 0
    too_short: int = 0
    too_long: int = 0

    def summary(self, min_len: int, max_len: int) -> str:
        return (
            f"{self.path}: kept {self.kept:,} of {self.lines:,} lines; dropped {self.empty:,} without words, "
            f"{self.too_short:,} shorter than {min_len} words, {self.too_long:,} longer than {max_len}"
        )


def read_corpus(path: str, min_len: int, max_len: int, lowercase: bool = True) -> tuple[list[list[str]], CorpusStats]:
    """A user's text file, one sentence per line, tokenised by the project's rule. Lines
    outside the length range are dropped and counted.

    Streams the file line by line, and stores each distinct word once: a kept sentence is a
    list of references to those strings (8 bytes a word), so memory grows with the words
    kept and the vocabulary, never with the text. Measured (bench/corpus_stream.py, 1M
    lines of 1-40 words, 110 MiB): 849 MiB above Python and torch when every word was its
    own string, 159 MiB now, at ~95,000 lines/s."""
    stats = CorpusStats(path=str(path))
    kept: list[list[str]] = []
    once = {}.setdefault  # word -> the one string that stands for it
    empty = too_short = too_long = lines = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for lines, line in enumerate(f, 1):  # noqa: B007 (the count is read after the loop)
            words = tokenize(line, lowercase)
            if not words:
                empty += 1
            elif len(words) < min_len:
                too_short += 1
            elif len(words) > max_len:
                too_long += 1
            else:
                kept.append([once(w, w) for w in words])
    stats.lines, stats.empty, stats.too_short, stats.too_long = lines, empty, too_short, too_long
    stats.kept = len(kept)
    return kept, stats


def joined_sentences(sentences: Sequence[Sequence[str]], count: int, max_len: int, seed: int) -> list[list[str]]:
    """count sentences, each 2-4 of `sentences` end to end (drawn at random, seeded) within
    max_len words: reversing one is reversing a long sentence, so a model trained on a text
    of short sentences learns to keep its place through long ones. Fewer when the text's
    sentences are too long to join within max_len."""
    rng = random.Random(seed + 7_919)  # its own stream: the splits' shuffle stays as it was
    out: list[list[str]] = []
    for _ in range(10 * count if sentences else 0):  # bounded: long sentences join rarely
        if len(out) == count:
            break
        joined, parts = list(rng.choice(sentences)), 1
        for _ in range(rng.randint(2, 4) - 1):
            nxt = rng.choice(sentences)
            if len(joined) + len(nxt) > max_len:
                break
            joined, parts = joined + list(nxt), parts + 1
        if parts > 1:
            out.append(joined)
    return out


def repeated_word_rewrites(
    sentences: Sequence[Sequence[str]], rate: float, seed: int, min_words: int = 6
) -> tuple[list[list[str]], int]:
    """`sentences` with a share `rate` of those of min_words or more rewritten, each as 2-3 of
    its own words drawn per position, at its own length ("to be or not to be" -> "be to be be
    to to").
    Where words repeat, content cannot say which copy the attention is on: only position can,
    so the model learns to keep its place and to stop at the first word rather than at the
    first word that looks like one. Seeded, and the number rewritten."""
    if not rate:
        return list(sentences), 0
    rng = random.Random(seed + 104_729)  # its own stream: the splits and the joins stay as they were
    out, rewritten = list(sentences), 0  # a rewrite is a new list: the sentences given are not touched
    for i, sentence in enumerate(out):
        if len(sentence) >= min_words and rng.random() < rate:
            distinct = sorted(set(sentence))
            pool = rng.sample(distinct, min(len(distinct), rng.choice((2, 3))))
            out[i] = [rng.choice(pool) for _ in sentence]
            rewritten += 1
    return out, rewritten


def corpus_splits(
    sentences: list[list[str]], train_size: int | None, val_size: int, test_size: int, seed: int
) -> Splits:
    """Seeded shuffle, then test and validation (each at most a tenth of the corpus), then
    training (at most train_size; None: all) from the rest."""
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    n = len(order)
    n_test = min(test_size, max(1, n // 10))
    n_val = min(val_size, max(1, n // 10))
    test = [sentences[i] for i in order[:n_test]]
    val = [sentences[i] for i in order[n_test : n_test + n_val]]
    train = [sentences[i] for i in order[n_test + n_val :][:train_size]]
    return Splits(train, val, test)


class Vocab:
    """Word <-> index. Index 0..3 are PAD, SOS, EOS, UNK."""

    def __init__(self, words: Sequence[str] = ()):
        self.itos: list[str] = list(SPECIALS)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        for w in words:
            self.add(w)

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]], min_freq: int = 1, max_size: int = 0) -> Vocab:
        """Words seen at least min_freq times, at most max_size of them (the most frequent;
        0 = all), in order of first appearance (the same corpus gives the same indices);
        the others will read as <unk>."""
        counts: dict[str, int] = {}
        for s in sentences:
            for w in s:
                counts[w] = counts.get(w, 0) + 1
        words = [w for w, c in counts.items() if c >= min_freq]
        if max_size and len(words) > max_size:
            # the most frequent; among equals the earliest seen (sorted() is stable)
            keep = set(sorted(words, key=lambda w: -counts[w])[:max_size])
            words = [w for w in words if w in keep]
        return cls(words)

    def add(self, word: str) -> None:
        if word not in self.stoi:
            self.stoi[word] = len(self.itos)
            self.itos.append(word)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, word: str) -> bool:
        return word in self.stoi

    def encode(self, words: Sequence[str]) -> list[int]:
        return [self.stoi.get(w, UNK) for w in words]

    def words(self) -> list[str]:
        """The non-special words, as stored in a checkpoint."""
        return self.itos[len(SPECIALS) :]

    def source_unknowns(self, words: Sequence[str]) -> list[str]:
        """A sentence's words outside the vocabulary, each once, in order of first appearance:
        the copy mechanism's extended vocabulary for it, where unknown word k has id len(self) + k."""
        return list(dict.fromkeys(w for w in words if w not in self.stoi))

    def encode_extended(self, words: Sequence[str]) -> list[int]:
        """encode, except that an unknown word gets its extended id (source_unknowns) instead
        of <unk>; a word repeated in the sentence gets the same id each time."""
        extra = {w: len(self) + k for k, w in enumerate(self.source_unknowns(words))}
        return [self.stoi.get(w) if w in self.stoi else extra[w] for w in words]


@dataclass
class Batch:
    src: torch.Tensor  # (B, S) word ids then EOS, PAD after
    src_len: torch.Tensor  # (B,) real length including EOS
    tgt: torch.Tensor  # (B, T) reversed word ids then EOS, PAD after
    index: torch.Tensor  # (B,) rows of the dataset, to map results back
    # the same with each sentence's unknown words at their extended ids (Vocab.encode_extended),
    # which the copy mechanism predicts; None: as src and tgt
    src_ext: torch.Tensor | None = None  # (B, S)
    tgt_ext: torch.Tensor | None = None  # (B, T)

    def to(self, device: torch.device) -> Batch:
        """The batch on the device, uploaded without the host waiting (engine/model/transfer.py);
        index stays on the host, where results are mapped back."""

        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else upload(t, device)

        return Batch(
            move(self.src), move(self.src_len), move(self.tgt), self.index, move(self.src_ext), move(self.tgt_ext)
        )

    def extended_size(self, vocab_size: int) -> int:
        """The copy mechanism's extended vocabulary size for this batch (engine/model/copy.py). Ask
        the host batch, not its device copy: on the host it is read without a wait."""
        return extended_size(vocab_size, self.source_ext)

    @property
    def source_ext(self) -> torch.Tensor:
        return self.src if self.src_ext is None else self.src_ext

    @property
    def target_ext(self) -> torch.Tensor:
        return self.tgt if self.tgt_ext is None else self.tgt_ext

    @property
    def tgt_in(self) -> torch.Tensor:
        """Decoder inputs for teacher forcing: SOS then the target shifted right. (B, T)"""
        sos = torch.full_like(self.tgt[:, :1], SOS)
        return torch.cat([sos, self.tgt[:, :-1]], dim=1)


class PairDataset:
    """Sentences and their reversals as padded tensors, built once."""

    def __init__(self, sentences: Sequence[Sequence[str]], vocab: Vocab, extended: bool = True):
        """extended: also the extended ids of the sentences with unknown words (the copy
        mechanism's; a Python loop over those sentences, which a model without it skips)."""
        # a list is kept as it is, not copied (a --corpus split's sentences are not held twice)
        self.sentences = [s if isinstance(s, list) else list(s) for s in sentences]
        n = len(self.sentences)
        words = torch.tensor([len(s) for s in self.sentences], dtype=torch.long)  # (n,)
        width = int(words.max()) + 1 if n else 1
        self.src = torch.full((n, width), PAD, dtype=torch.long)
        self.tgt = torch.full((n, width), PAD, dtype=torch.long)
        # a block of sentences at a time: every word's row and position, then one scatter per
        # tensor, instead of two small tensors per sentence (1M-line corpus: 26 s -> 7 s,
        # bench/corpus_stream.py); the ids gather in an int64 array, not a list of ints
        for a in range(0, n, 1 << 16):
            b = min(n, a + (1 << 16))
            ids = array("q")
            for s in self.sentences[a:b]:
                ids.extend(vocab.encode(s))
            ids = torch.frombuffer(ids, dtype=torch.long) if len(ids) else torch.zeros(0, dtype=torch.long)  # (W,)
            w = words[a:b]  # (b-a,)
            row = torch.repeat_interleave(torch.arange(a, b), w)  # (W,)
            pos = torch.arange(len(ids)) - (torch.cumsum(w, 0) - w).repeat_interleave(w)  # (W,) 0..len-1
            self.src[row, pos] = ids
            self.tgt[row, words[row] - 1 - pos] = ids  # reversed
        self.src[torch.arange(n), words] = EOS
        self.tgt[torch.arange(n), words] = EOS
        self.src_len = words + 1
        # extended ids only where a sentence has an unknown word (a view of src elsewhere)
        unknown_rows = (self.src == UNK).any(1).nonzero().flatten().tolist() if extended else []
        self.src_ext, self.tgt_ext = self.src, self.tgt
        if unknown_rows:
            self.src_ext, self.tgt_ext = self.src.clone(), self.tgt.clone()
            for r in unknown_rows:
                ext = torch.tensor(vocab.encode_extended(self.sentences[r]), dtype=torch.long)
                k = len(ext)
                self.src_ext[r, :k] = ext
                self.tgt_ext[r, :k] = ext.flip(0)

    def __len__(self) -> int:
        return len(self.sentences)

    def references(self, i: int) -> list[str]:
        return self.sentences[i][::-1]

    def batch(self, rows: torch.Tensor) -> Batch:
        """Rows gathered and trimmed to their longest sentence."""
        s = int(self.src_len[rows].max())
        return Batch(
            self.src[rows, :s],
            self.src_len[rows],
            self.tgt[rows, :s],
            rows,
            self.src_ext[rows, :s],
            self.tgt_ext[rows, :s],
        )

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None
    ) -> Iterator[Batch]:
        """Batches of sentences of equal (or near-equal) length, so almost no compute is
        spent on padding. With shuffle, the order within a length and the order of the
        batches are random; without it, the order is fixed."""
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        # stable sort by length keeps the random order within each length
        order = order[torch.sort(self.src_len[order], stable=True).indices]
        chunks = list(torch.split(order, batch_size))
        if shuffle:
            chunks = [chunks[i] for i in torch.randperm(len(chunks), generator=generator).tolist()]
        for rows in chunks:
            yield self.batch(rows)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)


def splits_for(cfg) -> tuple[Splits, CorpusStats | None]:
    """The train/val/test sentences a configuration trains on: the user's --corpus or the
    built-in corpus, both seeded, so a checkpoint's config rebuilds its own test set."""
    if cfg.corpus:
        sentences, stats = read_corpus(cfg.corpus, cfg.min_len, cfg.max_len, cfg.lowercase)
        if len(sentences) < 3:
            raise ValueError(
                f"{cfg.corpus}: only {len(sentences)} usable lines ({cfg.min_len}-{cfg.max_len} words); need at least 3"
            )
        return corpus_splits(sentences, cfg.training_sentences, cfg.val_size, cfg.test_size, cfg.seed), stats
    return builtin_splits(cfg.training_sentences, cfg.val_size, cfg.test_size, cfg.min_len, cfg.max_len, cfg.seed), None
