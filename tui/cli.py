"""Command line: `reverse-tui [flags]` (app), `reverse-tui --no-ui [flags]` (headless),
`reverse-tui probe --checkpoint PATH "some words"` (one-shot probe), `reverse-tui runs`
(the runs, side by side), `reverse-tui watch RUN` (a run in progress, followed from its files),
`reverse-tui compare RUN RUN ... --sentence "words"` (one sentence, each run's attention)."""

from __future__ import annotations

import argparse
import gc
import os
import sys
from dataclasses import Field, fields, replace
from pathlib import Path

from engine.train.config import Config

from .common import RunOptions, isatty
from .flag_words import CHOICES, helped


def version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        return installed("reverse-tui")
    except PackageNotFoundError:
        return "unknown (not installed)"


def config_default(f: Field) -> str:
    """A Config flag's default in words: on/off for a switch, auto where the value stands for
    auto, else the value."""
    value = getattr(Config(), f.name)
    if "shown" in f.metadata:
        return f.metadata["shown"]
    if "auto" in f.metadata and value == f.metadata["auto"]:
        return "auto"
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def _number_or_auto(typ: type, auto: float):
    def parse(text: str):
        return auto if text.strip().lower() == "auto" else typ(text)

    parse.__name__ = typ.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


def _type_name(t) -> str:
    return {"int": "N", "float": "X", "str": "NAME"}.get(getattr(t, "__name__", str(t)), "V")


# --preset's configurations, each before --config and the flags given
PRESETS = {"default": Config, "notebook": Config.notebook, "long": Config.long}
PRESET_GIVES = {"notebook": ("epochs", "val_size")}  # what of Config.RESOLVED a preset gives as its own


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """A flag for every Config field, its help the field's own (engine/train/config.py). Their default
    is None, "not given": the preset's value, or --config's, stands."""
    g = p.add_argument_group("model and training (defaults: reverse-tui's; --preset notebook for the notebook's)")
    g.add_argument(
        "--preset",
        choices=list(PRESETS),
        default="default",
        help=helped(
            "start from reverse-tui's defaults, or the seed notebook's hyperparameters and data (notebook: 8,000 "
            "sentences of 3-10 words, embed 128, hidden 256, 2 layers, dropout 0.1, constant lr 1e-3, 30 epochs, "
            "content-only attention, a one-direction encoder, no <unk> training), or long: 5-10 words with "
            "--score shift, which reverses sentences of 100; flags given override it",
            "default",
        ),
    )
    for f in fields(Config):
        flag = "--" + f.name.replace("_", "-")
        text = helped(f.metadata["help"], config_default(f))
        if f.type in (bool, "bool") or f.name == "copy":  # copy: a switch whose default depends on --corpus
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        if f.name == "corpus":
            g.add_argument(flag, default=None, metavar="FILE", help=text)
            continue
        typ = {"int": int, "float": float, "str": str}[f.type if isinstance(f.type, str) else f.type.__name__]
        metavar = _type_name(typ) if f.name not in CHOICES else None
        if "auto" in f.metadata:  # the flag takes the word auto as well as the number for it
            metavar = f"{_type_name(typ)}|auto"
            typ = _number_or_auto(typ, f.metadata["auto"])
        g.add_argument(flag, type=typ, default=None, metavar=metavar, choices=CHOICES.get(f.name), help=text)


def config_from_args(args: argparse.Namespace) -> Config:
    """The preset, then --config FILE, then the flags given on the command line. Of the fields
    worked out as a Config is made (Config.RESOLVED: the epochs, the vocabulary's cap, the
    validation sentences), those that none of them gives are auto, worked out with --corpus
    and --copy."""
    base = PRESETS[args.preset]()
    given = set(PRESET_GIVES.get(args.preset, ()))
    if getattr(args, "config", None) is not None:
        from_file = Config.read_toml(args.config)  # ValueError: one line
        base, given = replace(base, **from_file), given | set(from_file)
    overrides = {f.name: getattr(args, f.name) for f in fields(Config) if getattr(args, f.name) is not None}
    autos = {f.name: f.metadata["auto"] for f in fields(Config) if f.name in Config.RESOLVED}
    for name, auto in autos.items():
        if name not in given | set(overrides):
            overrides[name] = auto
    if isinstance(overrides.get("copy"), bool):  # --copy / --no-copy
        overrides["copy"] = "on" if overrides["copy"] else "off"
    return replace(base, **overrides)


def main_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="reverse-tui",
        description="Train, watch and probe a GRU encoder-decoder with Bahdanau attention that "
        "reverses the word order of sentences. Opens the terminal app; --no-ui runs "
        'the whole job headless. One-shot probe: reverse-tui probe --checkpoint PATH "words". '
        "The runs so far: reverse-tui runs [--json]. A run in progress: reverse-tui watch RUN.",
    )
    p.add_argument("--version", action="version", version=f"reverse-tui {version()}")
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="FILE",
        help="read the configuration from a TOML file, such as a run's runs/NAME/config.toml (which "
        "repeats that run as a new one): the preset, then the file, then the flags given",
    )
    p.add_argument(
        "--no-ui",
        action="store_true",
        help="run headless: per-epoch log lines, then test exact match, examples and the run's files in "
        "runs/NAME/; for SSH, nohup and scripts",
    )
    p.add_argument(
        "--name",
        default=None,
        metavar="NAME",
        help=helped(
            "the run's name: its models go to checkpoints/NAME/, its files to runs/NAME/; a name taken is "
            "refused, and two runs started in one second get ...-2",
            "the start time, e.g. 20261203-094507",
        ),
    )
    p.add_argument(
        "--seeds",
        type=int,
        default=None,
        metavar="N",
        help="with --no-ui: train the configuration on N seeds (--seed and the next N-1), one after "
        "another, each a run of its own in runs/NAME-seedS/, grouped under --name: `reverse-tui runs` "
        "shows the group as one row with each figure's mean and range over its runs",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        metavar="PATH",
        help=helped(
            "where the best model is saved (best.last.pt, for --resume, beside it); an existing file is refused "
            "unless --overwrite. With the app, an existing model given here (a file, a run's name or folder, "
            "latest) opens straight on the probe screen",
            "checkpoints/NAME/best.pt",
        ),
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help=helped(
            "the folder for the run's files (config.toml, metrics.csv, report.json, analysis.md, the PNGs); "
            "one holding another run's files is refused unless --overwrite",
            "runs/NAME",
        ),
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
        help="continue a run (its name, its folder, latest, or its best.last.pt) in its own folders with "
        "its configuration. --epochs can extend it: the learning rate goes on from the last step's, never "
        "higher, and decays to lr/20 over the new epochs; with the same epochs it follows the "
        "uninterrupted run's rates exactly",
    )
    p.add_argument(
        "--watch",
        action="append",
        default=None,
        metavar="SENTENCE",
        help=helped(
            "a sentence to decode as the model learns (up to 3, a flag each): its attention after batches "
            "1, 2, 4, 8, ... of the first epoch and after every epoch, in the app and in "
            "runs/NAME/attention_timeline.gif and .json",
            "a test sentence of typical length",
        ),
    )
    p.add_argument(
        "--tensorboard",
        action="store_true",
        help="also log every epoch's losses, exact match, learning rate, gradient norm, throughput "
        "and memory, and the watch sentence's attention, for TensorBoard, in tensorboard/ in the run's folder "
        "(runs/NAME/ or --out) "
        "(needs the tensorboard extra, pip install 'reverse-tui[tensorboard]'; without it, one line and exit 2)",
    )
    p.add_argument(
        "--compare-no-attention",
        action="store_true",
        help="after training, also train the same model without attention and compare exact match by length "
        "in analysis.md",
    )
    p.add_argument(
        "--dist-timeout",
        type=float,
        default=None,
        metavar="S",
        help=helped("under torchrun: seconds a process waits for a stuck peer before the run ends with an error", 300),
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="N",
        help=helped(
            "CPU threads for PyTorch and the C kernels; for two jobs on one box give each its share",
            "every usable core while other work leaves them free, one thread while it shares them, looked at as "
            "it trains (where the cores cannot be read: 1 for a model with --hidden-dim under 128, else all)",
        ),
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
    p.add_argument("--device", choices=CHOICES["device"], default="cpu", help=helped("where to decode", "cpu"))
    p.add_argument("--grid", action="store_true", help="also print the attention weights as a table")
    p.add_argument("--beam", type=int, default=1, metavar="K", help=helped("beam width (1: greedy)", 1))
    g = p.add_argument_group(
        "interventions (greedy decoding; input positions I and output steps T count from 1, the input's "
        "last position n + 1 being its end token <eos>): print the original and the changed output"
    )
    g.add_argument(
        "--knockout",
        action="append",
        default=[],
        metavar="I[@T]",
        help="set input I's attention weight to 0, the others renormalised, from step T on (default 1); repeatable",
    )
    g.add_argument(
        "--pin", action="append", default=[], metavar="T:I", help="put all of step T's attention on input I; repeatable"
    )
    g.add_argument(
        "--force",
        action="append",
        default=[],
        metavar="T:WORD",
        help="make step T emit WORD (a word the model knows, <eos>, <unk>, or with copying a word of the "
        "sentence); the decoding goes on from it; repeatable",
    )
    g.add_argument(
        "--temperature",
        default=None,
        metavar="X",
        help=helped("divide every attention score by X before the softmax (below 1 sharper, above flatter)", 1),
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print the decoding (and the changed one) as JSON: the output, whether it is the reversal, "
        "and every step's word, probability and attention weights",
    )
    p.add_argument(
        "--export",
        default=None,
        metavar="FILE",
        help="write the attention matrix (a row per output step, a column per input token and <eos>) to "
        "FILE as .csv, .json or .npy, by its extension; the changed decoding's with interventions",
    )
    p.add_argument(
        "sentence",
        nargs="*",
        help="the words to reverse (quote them or not); none or - reads standard input, "
        "one sentence per line, and prints one line per input line",
    )
    return p


def prestart_figures(args: argparse.Namespace) -> None:
    """A run that follows the load (no --threads), headless or in the app, starts its figures'
    process here, before the import of torch that the run's own start is mostly made of
    (engine/insight/plot_process.py's prestart), on a core that start leaves idle; one on a
    fixed count starts it as before (a run on every core: when training ends). Under torchrun
    rank 0 starts its own as it trains. A run refused below, or an app that opens a model
    without training, leaves it unused: it is stopped as this process exits."""
    from engine.train.machine import launched, usable_cpus  # no torch

    # the load is read from /proc/stat (engine/train/threads.py's load_is_readable, which imports torch)
    if args.threads is None and not launched() and len(usable_cpus()) > 1 and os.path.exists("/proc/stat"):
        from engine.insight import plot_process

        plot_process.prestart()


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
    if argv[:1] == ["compare"]:
        from .compare_cli import compare_parser, run_compare

        return run_compare(compare_parser(), argv[1:])
    parser = main_parser()
    args = parser.parse_args(argv)
    if args.seeds is None:
        prestart_figures(args)  # before torch's import below
    from engine.train import distributed  # imports torch: after --help and --version

    # what the imports made (torch's modules, ~170k objects) lives as long as the process: out
    # of the collector's sight, each full collection a run triggers traverses that much less
    gc.freeze()

    if not args.no_ui and distributed.launched():
        return refuse_app_under_torchrun()
    if args.seeds is not None:
        from .seeds import seeds_problem

        headless = args.no_ui or not (isatty(sys.stdin) and isatty(sys.stdout))
        problem = seeds_problem(args, headless)
        if problem is None and distributed.launched():
            problem = "--seeds trains its runs one after another in one process; start it without torchrun"
        if problem:
            print(f"reverse-tui: {problem}", file=sys.stderr)
            return 2
    if args.config is not None:
        try:
            Config.read_toml(args.config)
        except ValueError as e:  # a bad file: one line, not the usage
            print(f"reverse-tui: {e}", file=sys.stderr)
            return 2
    try:
        cfg = config_from_args(args)
        cfg.validate()
        from engine.train.trainer import resolve_device

        resolve_device(cfg.device)
        if cfg.corpus and not Path(cfg.corpus).is_file():
            raise ValueError(f"--corpus {cfg.corpus}: no such file")
    except ValueError as e:
        parser.error(str(e))  # usage + one line, exit 2
    if args.watch:
        from engine.insight.watch import watch_sentences

        try:
            watch_sentences(args.watch, [])
        except ValueError as e:
            parser.error(str(e))
    if args.threads is not None and args.threads < 1:
        parser.error(f"--threads must be at least 1, got {args.threads}")
    if args.dist_timeout is not None and not args.dist_timeout > 0:
        parser.error(f"--dist-timeout must be positive, got {args.dist_timeout}")
    if args.tensorboard:
        from engine.insight.tensorboard_log import missing

        if problem := missing():  # before anything is trained, for both faces
            print(f"reverse-tui: {problem}", file=sys.stderr)
            return 2
    if args.no_ui and args.seeds is not None:
        from .seeds import run_seeds

        return run_seeds(cfg, RunOptions.from_args(args), args.seeds)
    if args.no_ui:
        from .headless import run_headless

        return run_headless(cfg, RunOptions.from_args(args))
    no_tty = [name for name, f in (("stdin", sys.stdin), ("stdout", sys.stdout)) if not isatty(f)]
    if no_tty and args.seeds is not None:
        from .seeds import run_seeds

        why = f"reverse-tui: no terminal ({' and '.join(no_tty)} not a tty), running headless as --no-ui"
        return run_seeds(cfg, RunOptions.from_args(args), args.seeds, first_line=why)
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
    from engine.train import distributed

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
