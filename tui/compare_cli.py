"""`reverse-tui compare RUN RUN ... --sentence "words"`: one sentence decoded by each run (a seed
group: its first seed), printed a run at a time, its output and whether it is the exact reversal,
and one PNG with each run's attention heatmap side by side on one colour scale: --png FILE (an
existing file is refused), else compare-N.png in the current folder, the first N free."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.errors import CheckpointError, RunError, RunIndexError
from engine.runs.folders import CHECKPOINTS, RUNS, find_checkpoint
from engine.runs.index import find_group, list_runs

from .common import free_numbered_path
from .flag_words import CHOICES, helped

MAX_RUNS = 8  # as many as the runs screen compares; more make heatmaps too narrow to read


def compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reverse-tui compare",
        description="Decode one sentence with each run given: print its output and whether it is the "
        "exact reversal, and write one PNG with each run's attention heatmap side by side on one "
        "colour scale, titled with the configuration values that differ between the runs.",
    )
    p.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help=f"2-{MAX_RUNS} models: a run's name, its folder, a checkpoint file, latest, or a seed group's "
        "name (its first seed)",
    )
    p.add_argument("--sentence", required=True, metavar="WORDS", help="the sentence every run decodes")
    p.add_argument(
        "--png",
        type=Path,
        default=None,
        metavar="FILE",
        help=helped("where the heatmaps go; a file that exists is refused", "compare-N.png here, the first N free"),
    )
    p.add_argument("--grid", action="store_true", help="also print each run's attention weights as a table")
    p.add_argument("--device", choices=CHOICES["device"], default="cpu", help=helped("where to decode", "cpu"))
    return p


def _fail(text: str) -> int:
    print(f"reverse-tui: {text}", file=sys.stderr)
    return 2


def resolve(spec: str) -> tuple[str, Path]:
    """(the name shown, the checkpoint) of a RUN as given: a model find_checkpoint finds, else
    a seed group's first seed. RunError: one line."""
    try:
        return spec, find_checkpoint(spec)
    except RunError as e:
        try:
            group = find_group(list_runs(RUNS, CHECKPOINTS), spec)
        except RunIndexError:
            group = None
        if group is None:
            raise e from None
        if group.checkpoint is None:
            raise RunError(f"{spec}: a seed group whose runs have no model yet") from None
        return group.members[0].name, group.checkpoint


def run_compare(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    if not 2 <= len(args.runs) <= MAX_RUNS:
        return _fail(f"compare takes 2-{MAX_RUNS} runs, got {len(args.runs)}")
    png = args.png
    if png is not None and (png.exists() or png.is_symlink()):
        return _fail(f"--png {png}: exists; nothing is overwritten (give another name, or leave --png out)")
    if png is not None and not png.parent.is_dir():
        return _fail(f"--png {png}: no such folder {png.parent}")
    from engine.insight.evaluate import probe_notes, probe_words
    from engine.insight.side_by_side import decode_each, draw
    from engine.train.checkpoint import load_model
    from engine.train.trainer import resolve_device

    try:
        probe_words(args.sentence)
        device = resolve_device(args.device)
    except ValueError as e:
        return _fail(str(e))
    models = []
    for spec in args.runs:
        try:
            name, checkpoint = resolve(spec)
            models.append((name, load_model(checkpoint, device)))
        except (RunError, CheckpointError) as e:
            return _fail(str(e))
    decoded = decode_each(models, args.sentence, device)
    first = decoded[0].result
    print(f"sentence:  {' '.join(first.source)}")
    print(f"reversal:  {' '.join(first.reference)}")
    for d, (_, loaded) in zip(decoded, models):
        print(f"\n{d.title()}: {d.verdict()}")
        print(f"  {' '.join(d.result.output) or '(nothing)'}")
        for note in probe_notes(d.result, loaded.vocab, loaded.config.min_len, loaded.config.max_len):
            print(f"  note: {note}")
        if args.grid:
            from .probe_cli import grid_text

            print("\n".join("  " + line for line in grid_text(d.result).splitlines()))
    try:  # the name taken at once (an empty file the PNG then replaces): never another's file
        path = png if png is not None else free_numbered_path(Path("."), "compare")
        if png is not None:
            os.close(os.open(png, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return _fail(f"--png {png}: exists; nothing is overwritten (give another name, or leave --png out)")
    except OSError as e:
        where = e.filename or png or Path(".").resolve()
        return _fail(f"cannot write the PNG: {e.strerror or e} ({where})")
    try:
        draw(decoded, path)
    except (OSError, ValueError) as e:
        path.unlink(missing_ok=True)  # the empty file this command made
        return _fail(f"cannot write {path}: {getattr(e, 'strerror', None) or e}")
    print(f"\nwrote {path}")
    return 0
