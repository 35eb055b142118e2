"""Command line: `reverse-tui [flags]` (app), `reverse-tui --no-ui [flags]` (headless),
`reverse-tui probe --checkpoint PATH "some words"` (one-shot probe), `reverse-tui runs`
(the runs, side by side), `reverse-tui watch RUN` (a run in progress, followed from its files)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path

from engine.config import Config

from .common import RunOptions, isatty

# flag -> help; every Config field gets one, named as in the baseline script
HELP = {
    "corpus": "train on your own text file, one sentence per line (sizes below cap the splits)",
    "min_freq": "words seen fewer times in training become <unk> (auto, or 0: 2 with --corpus, else 1)",
    "max_vocab": "keep at most this many words, the most frequent; the rest become <unk> (0 = no cap)",
    "lowercase": "lower-case the text (--no-lowercase keeps case)",
    "epochs": "training epochs (most; see --patience)",
    "train_size": "training sentences (auto, or 0: 3,000 built-in, or all of a --corpus less validation and test)",
    "join": "also train on sentences of 2-4 training sentences end to end, up to --join-len words, so that a text "
    "of short sentences trains for long ones (auto, or -1: with --corpus 1,000 or a quarter of its training "
    "sentences, whichever is fewer; none on the built-in words; 0 = none)",
    "join_len": "a joined training sentence's most words (see --join)",
    "repeat_rate": "share of training sentences of 6+ words rewritten as 2-3 of their own words in random order, "
    "so that the model learns to keep its place by position (auto, or -1: 0.1 with --corpus and copy; none with "
    "--no-copy or on the built-in words; 0 = none)",
    "val_size": "validation sentences (pick the best model, early stopping)",
    "test_size": "test sentences (exact match, examples, analysis)",
    "min_len": "shortest sentence, in words",
    "max_len": "longest sentence, in words",
    "embed_dim": "word embedding size",
    "hidden_dim": "GRU hidden size (encoder and decoder)",
    "layers": "GRU layers in encoder and decoder",
    "dropout": "dropout on embeddings and between GRU layers",
    "bidirectional": "bidirectional encoder (--no-bidirectional for one direction)",
    "location_kernel": "location-aware attention: width of a conv over the previous step's weights (odd; 0 = off)",
    "attention": "Bahdanau attention; --no-attention trains the control model whose context is the fixed mean "
    "of the encoder outputs",
    "coverage": "coverage attention: the score also reads the weight each input word has had so far, "
    "so that a word looked at is not looked at again (trains the reference model, slower than the default)",
    "copy": "copy mechanism: each output word generated or copied from the input by a learned gate "
    "(--no-copy: generate only; default: on with --corpus, off on the built-in words)",
    "lr": "peak learning rate of the hand-written Adam",
    "lr_schedule": "cosine (warm-up, then decay to lr/20) or constant",
    "batch_size": "sentences per batch (batches group sentences of equal length)",
    "teacher_forcing": "probability that a decoder step reads the true previous word (0-1)",
    "unk_rate": "share of training words replaced by <unk> in source and target, so unseen words are passed through",
    "clip": "max-norm gradient clipping threshold",
    "beam": "beam width for decoding; above 1 the evaluation reports greedy and beam side by side",
    "patience": "stop after this many epochs without a better validation loss (0: never)",
    "seed": "random seed: the same seed gives the same data and losses on CPU",
    "device": "auto (CUDA when available), cpu or cuda",
    "impl": "reference: engine/model.py in plain PyTorch under autograd (change it, train it); "
    "fast: engine/fast's hand-written loop and kernels, the same maths; auto: fast wherever it "
    "implements the configuration",
}


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        return installed("reverse-tui")
    except PackageNotFoundError:
        return "unknown (not installed)"


# Config's numbers whose value `auto` is a sentinel (0 or -1): the flag takes the word too
AUTO = {"min_freq": 0, "train_size": 0, "join": -1, "repeat_rate": -1.0}


def _number_or_auto(typ: type, auto: float):
    def parse(text: str):
        return auto if text.strip().lower() == "auto" else typ(text)

    parse.__name__ = typ.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


def _type_name(t) -> str:
    return {"int": "N", "float": "X", "str": "NAME"}.get(getattr(t, "__name__", str(t)), "V")


def add_config_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and training (defaults: reverse-tui's; --preset notebook for the notebook's)")
    g.add_argument(
        "--preset",
        choices=["default", "notebook"],
        default="default",
        help="start from reverse-tui's defaults or the seed notebook's hyperparameters "
        "(embed 128, hidden 256, 2 layers, dropout 0.1, lr 1e-3 constant, 30 epochs)",
    )
    defaults = Config()
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        if f.type in (bool, "bool"):
            g.add_argument(
                flag,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{HELP[f.name]} (default: {getattr(defaults, f.name)})",
            )
            continue
        if f.name == "corpus":
            g.add_argument(flag, default=None, metavar="FILE", help=HELP[f.name])
            continue
        if f.name == "copy":  # a switch whose default depends on --corpus: Config.copy_on
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=HELP[f.name])
            continue
        typ = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
        extra = {"choices": ["auto", "cpu", "cuda"]} if f.name == "device" else {}
        if f.name == "impl":
            extra = {"choices": ["auto", "reference", "fast"]}
        if f.name == "lr_schedule":
            extra = {"choices": ["cosine", "constant"]}
        default = getattr(defaults, f.name)
        if f.name in AUTO:
            default = "auto" if default == AUTO[f.name] else default
            metavar = f"{_type_name(typ)}|auto"
            typ = _number_or_auto(typ, AUTO[f.name])
        else:
            metavar = _type_name(typ) if not extra else None
        g.add_argument(
            flag, type=typ, default=None, metavar=metavar, help=f"{HELP[f.name]} (default: {default})", **extra
        )


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset, then --config FILE, then the flags given on the command line."""
    base = Config.notebook() if args.preset == "notebook" else Config()
    if getattr(args, "config", None) is not None:
        base = replace(base, **Config.read_toml(args.config))  # ValueError: one line
    overrides = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name) is not None}
    if isinstance(overrides.get("copy"), bool):  # --copy / --no-copy
        overrides["copy"] = "on" if overrides["copy"] else "off"
    return replace(base, **overrides)


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default, except where it is None: those say theirs in their own words
    (a Config flag's None means "not given, the preset's value stands")."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        return action.help if action.default is None else super()._get_help_string(action)


def main_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reverse-tui",
        description="Train, watch and probe a GRU encoder-decoder with Bahdanau attention that "
        "reverses the word order of sentences. Opens the terminal app; --no-ui runs "
        'the whole job headless. One-shot probe: reverse-tui probe --checkpoint PATH "words". '
        "The runs so far: reverse-tui runs [--json]. A run in progress: reverse-tui watch RUN.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"reverse-tui {version()}")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="read the configuration from a TOML file (every run writes its own to "
        "runs/NAME/config.toml); flags given as well override it",
    )
    p.add_argument(
        "--no-ui",
        action="store_true",
        help="run headless: per-epoch log lines, then test exact match, examples and artefacts in --out",
    )
    p.add_argument(
        "--name",
        default=None,
        metavar="NAME",
        help="the run's name: its models go to checkpoints/NAME/, its files to runs/NAME/ "
        "(default: the start time, e.g. 20261203-094507; an existing name is refused)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="where the best model is saved (default checkpoints/NAME/best.pt); with the app, "
        "an existing model given here (a file, a run's name or folder, latest) opens "
        "straight on the probe screen",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="directory for config.toml, attention_heatmap.png, loss_curve.png, metrics.csv, "
        "analysis.md, report.json (default runs/NAME)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let this run replace the model and files of an existing run (--name, "
        "--checkpoint, --out); without it such a run is refused before anything is written",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN",
        help="continue an interrupted run (its name, its folder, or its best.last.pt) in its "
        "own folders; its configuration is used, --epochs can extend it",
    )
    p.add_argument(
        "--watch",
        action="append",
        default=None,
        metavar="SENTENCE",
        help="a sentence to decode as the model learns (up to 3; default: a test sentence of "
        "typical length): its attention at 1, 2, 4, 8, ... batches of the first epoch and "
        "after every epoch, in runs/NAME/attention_timeline.gif and .json",
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log every epoch's losses, exact match, learning rate, gradient norm, throughput "
        "and memory, and the watch sentence's attention, for TensorBoard in OUT/tensorboard/ "
        "(needs the tensorboard extra: pip install 'reverse-tui[tensorboard]')",
    )
    p.add_argument(
        "--compare-no-attention",
        action="store_true",
        help="after training, also train the same model without attention and compare accuracy by length "
        "in analysis.md",
    )
    p.add_argument(
        "--dist-timeout",
        type=float,
        default=None,
        metavar="S",
        help="under torchrun: seconds a process waits for a stuck peer before the run ends with an error (default 300)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help="CPU threads for PyTorch and the C kernels (default: 1 for a model with --hidden-dim "
        "under 128, which a second thread does not speed up; else all usable cores)",
    )
    add_config_flags(p)
    return p


def probe_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reverse-tui probe",
        description="Print a trained model's reversal of one sentence, or of "
        "every line of standard input (no sentence, or -).",
    )
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="RUN",
        help="trained model: a run's name, its folder, a checkpoint file, or latest (default: the newest run)",
    )
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu")
    p.add_argument("--grid", action="store_true", help="also print the attention weights as a table")
    p.add_argument("--beam", type=int, default=1, help="beam width (1 = greedy)")
    p.add_argument(
        "sentence",
        nargs="*",
        help="the words to reverse (quote them or not); none or - reads standard input, "
        "one sentence per line, and prints one line per input line",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["probe"]:
        from .probe_cli import run_probe

        return run_probe(probe_parser(), argv[1:])
    if argv[:1] == ["watch"]:  # a run another process trains, followed from its files
        from .watch_cli import run_watch, watch_parser

        return run_watch(watch_parser(), argv[1:])
    if argv[:1] == ["runs"]:  # no torch: the runs' small files only
        from .runs_cli import run_runs, runs_parser

        return run_runs(runs_parser(), argv[1:])
    parser = main_parser()
    args = parser.parse_args(argv)
    from engine import distributed  # imports torch: after --help and --version

    if not args.no_ui and distributed.launched():
        return refuse_app_under_torchrun()
    if args.config is not None:
        try:
            Config.read_toml(args.config)
        except ValueError as e:  # a bad file: one line, not the usage
            print(f"reverse-tui: {e}", file=sys.stderr)
            return 2
    try:
        cfg = config_from_args(args)
        cfg.validate()
        from engine.train import resolve_device

        resolve_device(cfg.device)
        if cfg.corpus and not Path(cfg.corpus).is_file():
            raise ValueError(f"--corpus {cfg.corpus}: no such file")
    except ValueError as e:
        parser.error(str(e))  # usage + one line, exit 2
    if args.watch:
        from engine.watch import watch_sentences

        try:
            watch_sentences(args.watch, [])
        except ValueError as e:
            parser.error(str(e))
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.dist_timeout is not None and not args.dist_timeout > 0:
        parser.error(f"--dist-timeout must be positive, got {args.dist_timeout}")
    if args.tensorboard:
        from engine.tensorboard_log import missing

        if problem := missing():  # before anything is trained, for both faces
            print(f"reverse-tui: {problem}", file=sys.stderr)
            return 2
    if args.no_ui:
        from .headless import run_headless

        return run_headless(cfg, RunOptions.from_args(args))
    no_tty = [name for name, f in (("stdin", sys.stdin), ("stdout", sys.stdout)) if not isatty(f)]
    if no_tty:  # nohup, a pipe, cron: the same job, headless
        if args.checkpoint is not None and args.checkpoint.exists() and args.resume is None and not args.overwrite:
            print(
                f"reverse-tui: no terminal ({' and '.join(no_tty)} not a tty), and {args.checkpoint} "
                "exists: the app would open it, and a headless run would train over it; "
                "use `reverse-tui probe` or --no-ui",
                file=sys.stderr,
            )
            return 2
        from .headless import run_headless

        return run_headless(
            cfg,
            RunOptions.from_args(args),
            first_line=(f"reverse-tui: no terminal ({' and '.join(no_tty)} not a tty), running headless as --no-ui"),
        )
    try:
        from .app import CannotStart, ReverseApp
    except ImportError as e:
        print(f"reverse-tui: the terminal app needs textual ({e}); use --no-ui", file=sys.stderr)
        return 2
    try:
        app = ReverseApp(cfg, RunOptions.from_args(args))  # opens --checkpoint when it names a model
    except CannotStart as e:  # a bad checkpoint or folder: one line, before the screen changes
        print(f"reverse-tui: {e}", file=sys.stderr)
        return 2
    return app.run() or 0


def refuse_app_under_torchrun() -> int:
    """torchrun starts one process per rank: one terminal app each would fight over the
    screen. Rank 0 says so in one line and exits 2; the others leave quietly with 0, so that
    torchrun waits for rank 0's line instead of killing it when the first process fails."""
    from engine import distributed

    if distributed.env_rank() != 0:
        return 0
    print(
        f"reverse-tui: started by torchrun ({distributed.env_world()} processes), where the terminal "
        "app cannot run; add --no-ui to train data-parallel "
        "(torchrun --nproc-per-node N -m tui --no-ui [flags]), or start the app without torchrun",
        file=sys.stderr,
    )
    return 2


def entry() -> None:
    sys.exit(main())
