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
from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

# The notebook's 34 words.
WORDS = ["the", "cat", "sat", "dog", "ran", "big", "small", "red", "blue", "on", "in", "mat",
         "hat", "house", "car", "tree", "bird", "fish", "quick", "lazy", "brown", "fox", "jumps",
         "over", "eats", "drinks", "happy", "sad", "fast", "slow", "old", "new", "hot", "cold"]

# Words the built-in corpus never uses: stand-ins for a user's unseen words in evaluation.
UNSEEN_WORDS = ["zebra", "lion", "piano", "river", "cloud", "stone", "apple", "train", "lamp",
                "chair", "moon", "grass", "whale", "violin", "candle", "forest", "garden", "mouse",
                "window", "rocket", "tiger", "pencil", "bridge", "castle"]

PAD, SOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["<pad>", "<sos>", "<eos>", "<unk>"]

_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def tokenize(text: str) -> list[str]:
    """Split text into lower-case words by the rule in this module's docstring."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).lower())


def random_sentences(n: int, min_len: int, max_len: int, rng: random.Random,
                     words: Sequence[str] = WORDS) -> list[list[str]]:
    """n sentences of uniformly random length in [min_len, max_len], words drawn uniformly."""
    return [[rng.choice(words) for _ in range(rng.randint(min_len, max_len))] for _ in range(n)]


def with_unseen_words(sentences: Sequence[Sequence[str]], rng: random.Random,
                      unseen: Sequence[str] = UNSEEN_WORDS) -> list[list[str]]:
    """Each sentence with one to three of its words swapped for words outside the vocabulary."""
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


def builtin_splits(train_size: int, val_size: int, test_size: int, min_len: int, max_len: int,
                   seed: int) -> Splits:
    """The notebook's corpus: random sentences over its 34 words, seeded."""
    rng = random.Random(seed)
    return Splits(random_sentences(train_size, min_len, max_len, rng),
                  random_sentences(val_size, min_len, max_len, rng),
                  random_sentences(test_size, min_len, max_len, rng))


class Vocab:
    """Word <-> index. Index 0..3 are PAD, SOS, EOS, UNK."""

    def __init__(self, words: Sequence[str] = ()):
        self.itos: list[str] = list(SPECIALS)
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        for w in words:
            self.add(w)

    @classmethod
    def build(cls, sentences: Sequence[Sequence[str]]) -> "Vocab":
        """Words in order of first appearance, so the same corpus gives the same indices."""
        v = cls()
        for s in sentences:
            for w in s:
                v.add(w)
        return v

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

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Indices to words, stopping at EOS and skipping PAD/SOS."""
        out = []
        for i in ids:
            if i == EOS:
                break
            if i in (PAD, SOS):
                continue
            out.append(self.itos[i])
        return out

    def words(self) -> list[str]:
        """The non-special words, as stored in a checkpoint."""
        return self.itos[len(SPECIALS):]


@dataclass
class Batch:
    src: torch.Tensor      # (B, S) word ids then EOS, PAD after
    src_len: torch.Tensor  # (B,) real length including EOS
    tgt: torch.Tensor      # (B, T) reversed word ids then EOS, PAD after
    index: torch.Tensor    # (B,) rows of the dataset, to map results back

    def to(self, device: torch.device) -> "Batch":
        nb = device.type == "cuda"
        return Batch(self.src.to(device, non_blocking=nb), self.src_len.to(device, non_blocking=nb),
                     self.tgt.to(device, non_blocking=nb), self.index)

    @property
    def tgt_in(self) -> torch.Tensor:
        """Decoder inputs for teacher forcing: SOS then the target shifted right. (B, T)"""
        sos = torch.full_like(self.tgt[:, :1], SOS)
        return torch.cat([sos, self.tgt[:, :-1]], dim=1)


class PairDataset:
    """Sentences and their reversals as padded tensors, built once."""

    def __init__(self, sentences: Sequence[Sequence[str]], vocab: Vocab):
        self.sentences = [list(s) for s in sentences]
        n = len(self.sentences)
        width = max((len(s) for s in self.sentences), default=0) + 1
        self.src = torch.full((n, width), PAD, dtype=torch.long)
        self.tgt = torch.full((n, width), PAD, dtype=torch.long)
        for i, s in enumerate(self.sentences):
            ids = vocab.encode(s)
            self.src[i, :len(ids) + 1] = torch.tensor(ids + [EOS])
            self.tgt[i, :len(ids) + 1] = torch.tensor(ids[::-1] + [EOS])
        self.src_len = torch.tensor([len(s) + 1 for s in self.sentences], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.sentences)

    def references(self, i: int) -> list[str]:
        return self.sentences[i][::-1]

    def batch(self, rows: torch.Tensor) -> Batch:
        """Rows gathered and trimmed to their longest sentence."""
        s = int(self.src_len[rows].max())
        return Batch(self.src[rows, :s], self.src_len[rows], self.tgt[rows, :s], rows)

    def batches(self, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Batch]:
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
