"""One typed sentence decoded by several models, for comparing their attention side by side
(`reverse-tui compare`, and the runs screen's side-by-side view): each model's output, whether
it is the exact reversal, and its attention, decoded as the probe decodes (evaluate.probe),
with each model's configuration values that differ from the others' (its attention score,
its seed, whatever differs), read generically from the configurations."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..runs.index import differing_config_keys
from ..train.checkpoint import Loaded
from .evaluate import SentenceResult, probe, probe_words
from .plots import attention_side_by_side

TITLE_WIDTH = 60  # a panel title's configuration, in characters, before it is cut


@dataclass
class Decoded:
    """One model's decoding of the sentence."""

    name: str  # the run's name, or what the user called the model
    result: SentenceResult
    differs: dict[str, object] = field(default_factory=dict)  # its values of the keys that differ

    def differs_text(self) -> str:
        return " ".join(f"{k}={_value(v)}" for k, v in self.differs.items())

    def title(self) -> str:
        text = self.differs_text()
        return f"{self.name} ({text})" if text else self.name

    def verdict(self) -> str:
        return "match" if self.result.match else "no match"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v) if v != "" else "-"


def decode_each(models: Sequence[tuple[str, Loaded]], text: str, device: torch.device) -> list[Decoded]:
    """The sentence decoded by each (name, model), in their order. ValueError (one line): the
    text has no words, or too many."""
    probe_words(text)  # the one check of the words, before any model decodes
    configs = [loaded.config.to_dict() for _, loaded in models]
    keys = differing_config_keys(configs)
    return [
        Decoded(name, probe(loaded.model, loaded.vocab, text, device), {k: config.get(k) for k in keys})
        for (name, loaded), config in zip(models, configs)
    ]


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def draw(decoded: Sequence[Decoded], path: str | os.PathLike) -> Path:
    """One PNG: a heatmap per model, side by side on one colour scale, each titled with its
    name, its configuration that differs and its verdict."""
    panels = [
        (
            d.result.attention,
            d.result.source_tokens,
            d.result.output_tokens,
            "\n".join(filter(None, [d.name, _cut(d.differs_text(), TITLE_WIDTH), d.verdict()])),
        )
        for d in decoded
    ]
    words = " ".join(decoded[0].result.source) if decoded else ""
    return attention_side_by_side(panels, path, title=f'"{_cut(words, 100)}"')
