"""`reverse-tui probe --checkpoint PATH "some words"`: one sentence, printed for scripts.
`reverse-tui probe --checkpoint PATH < file` (or `-`): every line of standard input, one
output line per input line, decoded in batches."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterable
from typing import TextIO

from engine.errors import CheckpointError, RunError
from engine.insight.evaluate import decode, probe, probe_notes, probe_words
from engine.runs.folders import find_checkpoint
from engine.train.checkpoint import Loaded, load_model
from engine.train.trainer import resolve_device

CHUNK = 4096  # lines read, decoded and printed at a time: output flows, memory stays flat


def grid_text(result) -> str:
    """The attention weights as a plain table: a row per output step, a column per input token,
    and for a model with the copy mechanism a last column "copy": p_copy at that step."""
    copy = result.copy
    cols = result.source_tokens + (["copy"] if copy is not None else [])
    width = max(6, *(len(c) for c in cols)) + 1
    label = max(6, *(len(w) for w in result.output_tokens)) + 1
    lines = [" " * label + "".join(c.rjust(width) for c in cols)]
    for t, (word, row) in enumerate(zip(result.output_tokens, result.attention)):
        cells = [*row, *([copy[t]] if copy is not None else [])]
        lines.append(word.ljust(label) + "".join(f"{x:.2f}".rjust(width) for x in cells))
    return "\n".join(lines)


def run_probe(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    try:
        loaded = load_model(find_checkpoint(args.checkpoint), device)
    except (CheckpointError, RunError) as e:
        print(f"reverse-tui: {e}", file=sys.stderr)
        return 2
    if args.beam < 1:
        parser.error(f"--beam must be at least 1, got {args.beam}")
    if args.sentence in ([], ["-"]):
        if args.grid:
            parser.error("--grid shows one sentence; give it as an argument")
        if sys.stdin.isatty():
            print("reverse-tui: reading sentences from standard input, one per line (ctrl+d ends)", file=sys.stderr)
        probe_lines(loaded, sys.stdin, sys.stdout, sys.stderr, device, args.beam)
        return 0
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


def probe_lines(loaded: Loaded, lines: Iterable[str], out: TextIO, err: TextIO, device, beam: int = 1) -> None:
    """One output line per input line, in order: the reversal's words joined by single spaces,
    or an empty line where the input has no words (or too many). Notes, prefixed with the line
    number, go to err. Lines are decoded in length-grouped batches, CHUNK lines at a time."""
    cfg = loaded.config
    numbered = enumerate(lines, 1)
    while chunk := list(itertools.islice(numbered, CHUNK)):
        words: list[list[str] | None] = []
        for number, line in chunk:
            try:
                words.append(probe_words(line))
            except ValueError as e:
                words.append(None)
                if line.strip():  # a blank line needs no note: it gets a blank line back
                    print(f"line {number}: {e}", file=err)
        todo = [w for w in words if w is not None]
        results = iter(decode(loaded.model, loaded.vocab, todo, device, beam=beam) if todo else [])
        for (number, _), w in zip(chunk, words):
            if w is None:
                out.write("\n")
                continue
            r = next(results)
            out.write(" ".join(r.output) + "\n")
            for note in probe_notes(r, loaded.vocab, cfg.min_len, cfg.max_len):
                print(f"line {number}: note: {note}", file=err)
        out.flush()
