"""`reverse-tui probe --checkpoint PATH "some words"`: one sentence, printed for scripts.
`reverse-tui probe --checkpoint PATH < file` (or `-`): every line of standard input, one
output line per input line, decoded in batches. One sentence with interventions (--knockout,
--pin, --force, --temperature), --json or --export: tui/probe_changes.py."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Iterable
from typing import TextIO

from engine.errors import CheckpointError, RunError
from engine.insight.evaluate import decode, probe, probe_notes, probe_words
from engine.insight.interventions import Edits
from engine.insight.stepper import step_through
from engine.runs.folders import find_checkpoint
from engine.train.checkpoint import Loaded, load_model
from engine.train.trainer import resolve_device

from . import probe_changes

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


def refuse(text: str) -> int:
    print(f"reverse-tui: {text}", file=sys.stderr)
    return 2


def run_probe(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except ValueError as e:
        parser.error(str(e))
    changing = probe_changes.given(args)
    one = args.sentence not in ([], ["-"])
    try:  # the flags first: a mistake in one costs no wait for the model
        edits = probe_changes.edits_from(args)
        probe_changes.check_export(args)
    except ValueError as e:
        return refuse(str(e))
    if (changing or args.json or args.export) and not one:
        return refuse("interventions, --json and --export work on one sentence; give it as an argument")
    if changing and args.beam > 1:
        return refuse("interventions change greedy decoding only; drop --beam")
    if args.json and args.grid:
        return refuse("--json already holds every step's weights; drop --grid")
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
    if changing or (args.json and args.beam == 1):
        return probe_stepped(args, loaded, text, device, edits if changing else None)
    try:
        r = probe(loaded.model, loaded.vocab, text, device, beam=args.beam)
        if args.export is not None:
            probe_changes.write_attention(args.export, r.attention, r.source_tokens, r.output_tokens)
    except ValueError as e:
        return refuse(str(e))
    except OSError as e:
        return refuse(f"could not write {args.export}: {e.strerror or e}")
    if args.json:  # a beam's answer: its words and rows (its steps' probabilities are the search's)
        print(probe_changes.json_text_of_result(r, args.beam))
    else:
        print(" ".join(r.output))
    for note in probe_notes(r, loaded.vocab, loaded.config.min_len, loaded.config.max_len):
        print(f"note: {note}", file=sys.stderr)
    if args.grid:
        print(grid_text(r))
    return 0


def probe_stepped(args: argparse.Namespace, loaded: Loaded, text: str, device, edits: Edits | None) -> int:
    """One sentence decoded step by step (greedy): with edits (None: no intervention flag),
    the original and the changed decoding; printed as text or JSON, its attention exported
    where asked."""
    model, vocab = loaded.model, loaded.vocab
    try:
        original = step_through(model, vocab, text, device)
        changed = step_through(model, vocab, text, device, edits=edits, against=original) if edits is not None else None
        if args.export is not None:
            probe_changes.export(args.export, changed or original)
    except ValueError as e:
        return refuse(str(e))
    except OSError as e:
        return refuse(f"could not write {args.export}: {e.strerror or e}")
    if args.json:
        print(probe_changes.json_text(original, changed, edits or Edits()))
    elif changed is None:
        print(" ".join(original.output))
    else:
        print(probe_changes.compared_text(original, changed))
    for note in probe_notes(original, vocab, loaded.config.min_len, loaded.config.max_len):
        print(f"note: {note}", file=sys.stderr)
    if args.grid:
        for title, s in (("original", original), ("changed", changed)) if changed else (("", original),):
            print(f"{title}:\n{grid_text(s)}" if title else grid_text(s))
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
