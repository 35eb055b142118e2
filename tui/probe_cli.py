"""`reverse-tui probe --checkpoint PATH "some words"`: one sentence, printed for scripts."""
from __future__ import annotations

import argparse
import sys

from engine.checkpoint import CheckpointError, load_model
from engine.evaluate import probe, probe_notes
from engine.train import resolve_device


def grid_text(result) -> str:
    """The attention weights as a plain table: a row per output step, a column per input token."""
    cols = result.source_tokens
    width = max(6, *(len(c) for c in cols)) + 1
    label = max(6, *(len(w) for w in result.output_tokens)) + 1
    lines = [" " * label + "".join(c.rjust(width) for c in cols)]
    for word, row in zip(result.output_tokens, result.attention):
        lines.append(word.ljust(label) + "".join(f"{x:.2f}".rjust(width) for x in row))
    return "\n".join(lines)


def run_probe(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    try:
        loaded = load_model(args.checkpoint, device)
    except CheckpointError as e:
        print(f"reverse-tui: {e}", file=sys.stderr)
        return 2
    if args.beam < 1:
        parser.error(f"--beam must be at least 1, got {args.beam}")
    text = " ".join(args.sentence)
    try:
        r = probe(loaded.model, loaded.vocab, text, device, beam=args.beam)
    except ValueError as e:
        print(f"reverse-tui: {e}", file=sys.stderr)
        return 2
    print(" ".join(r.output))
    for note in probe_notes(r, loaded.vocab, loaded.config.min_len, loaded.config.max_len):
        print(f"note: {note}", file=sys.stderr)
    if args.grid:
        print(grid_text(r))
    return 0
