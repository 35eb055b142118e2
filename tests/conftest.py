"""Fixtures and helpers shared by the test files, imported one way: `from tests.conftest import ...`."""

import base64
import functools
import inspect
import json
import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.fast.decoder_loop import DecoderWeights, LoopArgs, LoopSpec  # noqa: E402
from engine.insight.evaluate import SentenceResult  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.data import PAD  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

# Small enough to train in a few seconds on 2 CPU cores, big enough to learn short sentences.
# Its training settings are pinned (not the defaults, which are tuned for 3-30 words).
TINY = dict(
    train_size=600,
    val_size=100,
    test_size=100,
    min_len=3,
    max_len=6,
    embed_dim=16,
    hidden_dim=32,
    epochs=2,
    batch_size=32,
    lr=3e-3,
    unk_rate=0.03,
    unk_spans=0.0,  # runs of <unk> belong to the 3-30-word recipe (tests/test_train.py tests them)
    device="cpu",
)


def cli_flags(**values) -> list[str]:
    """Config values as command-line flags: cli_flags(max_len=6) -> ["--max-len", "6"]."""
    return [a for k, v in values.items() for a in (f"--{k.replace('_', '-')}", str(v))]


# TINY as command-line flags, for the runs started through tui.cli.main or `python -m tui`
TINY_FLAGS = cli_flags(
    train_size=600,
    val_size=100,
    test_size=100,
    max_len=6,
    embed_dim=16,
    hidden_dim=32,
    epochs=2,
    batch_size=32,
    device="cpu",
)

# TINY with a fifth of its sentences: for the tests of a run's events, files and bookkeeping,
# which need a run, not a model that learned (4 batches an epoch)
QUICK = {**TINY, "train_size": 128, "val_size": 40, "test_size": 40}
# the fields TINY_FLAGS gives (its lr, unk_rate and min_len are the command line's defaults)
FLAGGED = (
    "train_size",
    "val_size",
    "test_size",
    "max_len",
    "embed_dim",
    "hidden_dim",
    "epochs",
    "batch_size",
    "device",
)
QUICK_FLAGS = cli_flags(**{k: QUICK[k] for k in FLAGGED})

PY = sys.executable
# `python -m tui` with its figures stood in, for the runs in a process of their own that check
# something else (tests/lean_run.py)
LEAN_TUI = [PY, "-m", "tests.lean_run"]


def sizes(first: tuple[int, int], *others: tuple[int, int]) -> list:
    """Terminal sizes for a screen's snapshot: the first in the quick suite, the others in the
    full one (each keeps its id, size0, size1, ..., and so its snapshot)."""
    return [pytest.param(first), *(pytest.param(o, marks=pytest.mark.slow) for o in others)]


# The C kernels (engine/fast/native): built where there is a compiler, unless turned off
HAVE_CC = shutil.which(os.environ.get("CC", "cc")) is not None
TURNED_OFF = os.environ.get("REVERSE_TUI_NATIVE", "1") == "0"  # this process runs the torch path
needs_kernels = pytest.mark.skipif(
    not HAVE_CC or TURNED_OFF, reason="no C compiler here, or REVERSE_TUI_NATIVE=0: the torch path runs instead"
)


@pytest.fixture(autouse=True)
def _app_trains_in_this_process(monkeypatch):
    """The app's runs train in a thread of the test's process, where the stand-ins below reach
    them; tests/test_job_process.py trains in a child process on purpose."""
    try:
        import tui.app
    except ImportError:  # no textual here: no app to run
        return
    monkeypatch.setattr(tui.app, "TRAIN_IN_PROCESS", False)


@pytest.fixture(autouse=True)
def _few_threads(monkeypatch):
    torch.set_num_threads(1)  # deterministic and fair on a 2-core CI box
    # and a headless run in a test's process stays on it: ThreadsByLoad, which follows the
    # machine's load, is tested on readings of its own and in runs of their own process
    # (tests/test_threads.py)
    import engine.train.threads as threads

    monkeypatch.setattr(threads, "cores_times", lambda cpus: None)
    yield


# 1x1 images, written in place of a run's figures (see `figures` below)
TINY_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
TINY_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


class StandInFigures:
    """engine/insight/plots.py's three figures of a run, each written as a 1x1 image of its format,
    with the arguments of every call, by name, kept in `drawn` (kind -> a list of them): what
    a test checks of the figures a run asks for. A call the real function's signature would
    refuse fails here too. The pictures themselves are drawn by the tests marked `figures`
    (the headless run end to end, the GIF's frames) and by the plot process's own tests
    (tests/test_plot_process.py)."""

    KINDS = {"attention_heatmap": TINY_PNG, "loss_curve": TINY_PNG, "attention_timeline_gif": TINY_GIF}

    def __init__(self) -> None:
        self.drawn: dict[str, list[dict]] = {kind: [] for kind in self.KINDS}

    def stand_in(self, kind: str, real):
        signature = inspect.signature(real)  # the real one's, also through another stand-in

        @functools.wraps(real)
        def draw(*args, **kwargs) -> Path:
            given = signature.bind(*args, **kwargs).arguments
            self.drawn[kind].append(given)
            path = Path(given["path"])
            path.write_bytes(self.KINDS[kind])
            return path

        return draw


class NoPlotProcess:
    """engine.insight.plot_process.PlotProcess as when its child cannot start: every figure is drawn
    in this process (the path a run takes when the child fails)."""

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}

    def submit(self, jobs, more: bool = False) -> bool:
        return False

    def draw(self, jobs, timeout: float = 120.0) -> None:
        return None

    def collect(self, timeout: float = 120.0) -> None:
        return None

    def close(self) -> None:
        pass


def stand_in_figures(monkeypatch) -> StandInFigures:
    from engine import job
    from engine.insight import plot_process, plots

    figures = StandInFigures()
    for kind in figures.KINDS:
        monkeypatch.setattr(plots, kind, figures.stand_in(kind, getattr(plots, kind)))
    monkeypatch.setattr(job, "PlotProcess", NoPlotProcess)
    monkeypatch.setattr(plot_process, "prestart", lambda: None)  # a headless run's, before its imports
    return figures


@pytest.fixture(autouse=True)
def figures(request, monkeypatch) -> StandInFigures | None:
    """A run's figures as 1x1 stand-ins, drawn in this process: matplotlib and seaborn's
    import, the plot process and the drawing cost seconds a run, and most tests that run one
    check something else. A test marked `figures` draws them for real (and gets None)."""
    if request.node.get_closest_marker("figures"):
        return None
    return stand_in_figures(monkeypatch)


# repeated-word sentences a length in a test's evaluation (the report's own: REPEATED_PER_LENGTH)
FEW_REPEATED = 2


@pytest.fixture(autouse=True)
def few_repeated_words(request, monkeypatch) -> None:
    """The evaluation's 400 sentences of repeated words (21-40 words long, which a test's small
    model never stops on) are a second of each test run's evaluation; a run in a test decodes 2
    a length. A test marked `evaluation` decodes the report's own number."""
    if request.node.get_closest_marker("evaluation"):
        return
    stand_in_repeated_words(monkeypatch)


def stand_in_repeated_words(monkeypatch) -> None:
    from engine.insight import lengths, report

    monkeypatch.setattr(
        report, "repeated_word_sentences", functools.partial(lengths.repeated_word_sentences, per_length=FEW_REPEATED)
    )


@pytest.fixture
def tiny_cfg() -> Config:
    return Config(**TINY)


def trained_once(tmp_path_factory, name: str, cfg: Config) -> Path:
    """A checkpoint trained once for the whole session, whichever pytest-xdist worker asks
    first: the others wait for it and read the same file (the same config and seed give the
    same weights anywhere, so it matters not which worker trains it)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the workers' common folder
    folder = base / "trained" / name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.pt"
    with FileLock(str(folder) + ".lock"):
        if not path.exists():
            torch.set_num_threads(1)
            for _ in Trainer(cfg, path).run():
                pass
    return path


@pytest.fixture(scope="session")
def trained_checkpoint(tmp_path_factory) -> Path:
    """A checkpoint from a short real training run, shared by the tests that only read it."""
    return trained_once(tmp_path_factory, "tiny", Config(**{**TINY, "epochs": 3}))


@pytest.fixture(scope="session")
def trained_results(trained_checkpoint, tmp_path_factory):
    """trained_checkpoint's evaluation (engine.job.evaluate_run, figures stood in): what a
    canned run in the app ends with (tests/canned.py)."""
    from engine.job import evaluate_run

    with pytest.MonkeyPatch.context() as mp:
        stand_in_figures(mp)
        results = evaluate_run(trained_checkpoint, tmp_path_factory.mktemp("results"), torch.device("cpu"))
    assert results.failed_parts == []
    return results


@pytest.fixture
def canned(monkeypatch, trained_checkpoint, trained_results):
    """The app's run_job replaced by a canned run of trained_checkpoint (tests/canned.py)."""
    from tests.canned import CannedRun

    return CannedRun(monkeypatch, trained_checkpoint, trained_results)


@pytest.fixture(scope="session")
def reversing_checkpoint(tmp_path_factory) -> Path:
    """A small default-shaped model trained until it reverses its test sentences (3-8 words,
    unknown words copied through <unk>): for the tests that need right answers to compare."""
    cfg = Config(train_size=2000, val_size=100, test_size=100, min_len=3, max_len=8, epochs=6, device="cpu")
    return trained_once(tmp_path_factory, "reversing", cfg)


# What a user might type or paste where a sentence goes, each with the words the tokenizer
# keeps (engine/train/data.py: runs of letters or digits); no words is a clear error, and so is
# more than engine.insight.evaluate.MAX_PROBE_WORDS. The engine, CLI and app tests all probe these.
HOSTILE_STRINGS: dict[str, list[str]] = {
    "": [],
    "   ": [],
    "\t\n": [],
    "?!...": [],
    "!!! ... ,,,": [],
    "🐱🐶": [],
    "\x00\x07": [],
    "[/]": [],  # Rich markup: a closing tag alone
    "\x1b[2J\x1b[H": ["2j", "h"],  # ANSI: clear the screen, go home
    "the cat, sat!": ["the", "cat", "sat"],
    "is it? here": ["is", "it", "here"],
    "the\x00cat\x1bsat": ["the", "cat", "sat"],  # NUL and ESC between words
    "\x1b[31mthe cat\x1b[0m sat": ["31mthe", "cat", "0m", "sat"],
    "[bold]the cat[/bold] sat": ["bold", "the", "cat", "bold", "sat"],
    "[link=https://x.y]cat[/link] [/]": ["link", "https", "x", "y", "cat", "link"],
    "the 🐱 cat sat ✨": ["the", "cat", "sat"],
    "café déjà vu": ["café", "déjà", "vu"],
    "The Zebra ate MY hat, today!": ["the", "zebra", "ate", "my", "hat", "today"],
    "שלום עולם the cat": ["שלום", "עולם", "the", "cat"],  # right to left
    "\u202ethe cat sat": ["the", "cat", "sat"],  # RTL override
    " ".join(["fast"] * 600): ["fast"] * 600,  # too many words to probe
    "x" * 2000: ["x" * 2000],  # one very long word
}


def run_cli(*args, timeout=300):
    """`python -m tui ARGS` in a child process, its output captured."""
    return subprocess.run([PY, "-m", "tui", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout)


def bad_checkpoints(tmp: Path, good: Path) -> dict[str, Path]:
    """Files that are not a checkpoint of this version, by what is wrong with them."""
    data = good.read_bytes()
    cases = {
        "missing": tmp / "nope.pt",
        "empty": tmp / "empty.pt",
        "truncated": tmp / "trunc.pt",
        "random": tmp / "random.pt",
        "directory": tmp / "adir",
        "other version": tmp / "other.pt",
        "other vocabulary": tmp / "vocab.pt",
        "other configuration": tmp / "config.pt",
        "not a dict": tmp / "list.pt",
    }
    cases["empty"].write_bytes(b"")
    cases["truncated"].write_bytes(data[: len(data) // 2])
    cases["random"].write_bytes(os.urandom(4096))
    cases["directory"].mkdir()
    raw = torch.load(good, weights_only=True)
    torch.save({**raw, "format": "reverse-tui checkpoint v0"}, cases["other version"])
    torch.save({**raw, "vocab": raw["vocab"] + ["zebra", "lion"]}, cases["other vocabulary"])
    torch.save({**raw, "config": {**raw["config"], "hidden_dim": 48}}, cases["other configuration"])
    torch.save([1, 2, 3], cases["not a dict"])
    return cases


def write_corpus(path, lines, vocab_size=3000, seed=0):
    """A --corpus text file: every 50 lines one blank, one too short and one too long."""
    rng = random.Random(seed)
    words = [f"w{i}" for i in range(vocab_size)]
    with open(path, "w") as f:
        for i in range(lines):
            if i % 50 == 0:
                f.write("   \n")  # blank
            elif i % 50 == 1:
                f.write("Hi!\n")  # too short
            elif i % 50 == 2:
                f.write(" ".join(rng.choice(words) for _ in range(25)) + "\n")  # too long
            else:
                n = rng.randint(3, 10)
                f.write(", ".join(rng.choice(words) for _ in range(n)).upper() + ".\n")
    return path


def sentence_result(words, attention, output=None):
    """A SentenceResult for words with the given attention; the output is the reversal unless given."""
    ref = words[::-1]
    out = ref if output is None else output
    return SentenceResult(
        list(words), list(out), ref, np.asarray(attention, dtype=float), len(out) + 1, match=list(out) == ref
    )


def mirrored(n, sharp=1.0):
    """Perfect reversal attention for n words (+ the EOS step), with `sharp` on the mirror."""
    A = np.full((n + 1, n + 1), (1 - sharp) / n)
    for t in range(n):
        A[t, n - 1 - t] = sharp
    A[n] = 0
    A[n, n] = 1.0
    return A / A.sum(1, keepdims=True)


def decoder_inputs(L=2, loc=3, drop=True, seed=0):
    """Small float64 inputs of engine/fast/decoder_loop.py's loop, every weight a leaf."""
    torch.manual_seed(seed)
    d = dict(dtype=torch.double)
    B, S, T, E, H, K, A, V = 3, 4, 5, 2, 3, 4, 3, 7
    mask = torch.arange(S)[None, :] < torch.tensor([4, 2, 3])[:, None]
    tgt_in = torch.randint(1, V, (B, T))
    tgt_in[1, 4] = PAD
    spec = LoopSpec(L, loc)
    drop_emb = (torch.rand(B, T, E) > 0.3).double() / 0.7 if drop else None
    drop_between = (torch.rand(L - 1, T, B, H) > 0.3).double() / 0.7 if drop and L > 1 else None
    grads = [
        torch.randn(L, B, H, **d),
        torch.randn(B, S, K, **d),
        torch.randn(B, S, A, **d),
        torch.randn(V - 1, E, **d),
        torch.randn(3 * H, E, **d),
        torch.randn(3 * H, **d),
        torch.randn(3 * H, K, **d),
        torch.randn(3 * H + A, H, **d),
        torch.randn(3 * H + A, **d),
        torch.randn(1, A, **d),
        torch.randn(A, loc, **d) if loc else None,
    ]
    out = (torch.randn(V, H + K, **d), torch.randn(V, **d))
    lower = [torch.randn(*shape, **d) for _ in range(L - 1) for shape in ((3 * H, H), (3 * H,), (3 * H, H), (3 * H,))]
    leaves = [g.requires_grad_() for g in grads + lower if g is not None]
    return spec, tgt_in, drop_emb, drop_between, mask, grads, out, lower, leaves


FORCING = torch.tensor([True, False, True, False, False])


def loop_args(tgt_in, drop_emb, drop_between, mask, g, out, low, forcing=FORCING) -> LoopArgs:
    """LoopArgs from decoder_inputs()'s lists: g = h0, enc_out, keys, emb, W_ie, b_i0, W_ic,
    W_top, b_top, v, W_loc; out = W_out, b_out; low = (W_hh, b_hh, W_ih, b_ih) per lower layer."""
    h0, enc_out, keys, emb, W_ie, b_i0, W_ic, W_top, b_top, v, W_loc = g
    W = DecoderWeights(
        emb=emb,
        W_ie=W_ie,
        b_i0=b_i0,
        W_ic=W_ic,
        W_top=W_top,
        b_top=b_top,
        v=v,
        W_out=out[0],
        b_out=out[1],
        W_loc=W_loc,
        lower_W_hh=low[0::4],
        lower_b_hh=low[1::4],
        lower_W_ih=low[2::4],
        lower_b_ih=low[3::4],
    )
    return LoopArgs(
        tgt_in=tgt_in,
        forcing=forcing,
        h0=h0,
        enc_out=enc_out,
        keys=keys,
        mask=mask,
        weights=W,
        drop_emb=drop_emb,
        drop_between=drop_between,
    )


def write_fake_run(
    runs_dir: Path,
    name: str,
    *,
    config: dict | None = None,
    val_losses: tuple[float, ...] = (0.9, 0.3, 0.05),
    state: str | None = "finished",
    report: bool = True,
    started: float = 1_700_000_000.0,
    test_exact_match: float = 0.99,
    known_below: tuple[int | None, int | None] = (40, 55),
    unknown_below: tuple[int | None, int | None] = (36, 50),
    batches: int = 47,
    checkpoint: bool = True,
    group: str | None = None,
    repeated: float | None = None,
) -> Path:
    """A run folder as a real run writes it (config.toml, metrics.csv, status.json and
    report.json in their own formats, through the engine's writers where it has them), with
    made-up figures and no model: checkpoints/NAME/best.pt beside runs_dir holds bytes that
    are no checkpoint, so anything that loaded it would fail. state None: no status.json
    (a run of an earlier version); "running": this test process runs it. group: the seed group
    it is one run of; repeated: its exact match on repeated words (None: no such figure)."""
    from engine.insight.report import write_metrics_csv
    from engine.runs.status import write_status
    from engine.train.machine import process_start

    folder = Path(runs_dir) / name
    folder.mkdir(parents=True)
    cfg = Config(**{**TINY, "epochs": max(1, len(val_losses)), **(config or {})})
    (folder / "config.toml").write_text(cfg.to_toml("made by tests.conftest.write_fake_run"))
    best = min(range(len(val_losses)), key=val_losses.__getitem__) + 1 if val_losses else None
    history = [
        {
            "epoch": e,
            "train_loss": 1.2 * v,
            "val_loss": v,
            "val_exact_match": max(0.0, 1 - v),
            "seconds": 2.0 + 0.1 * e,
            "grad_norm": 0.5,
            "grad_norm_max": 1.0,
            "tokens": 20000,
            "best": v == min(val_losses[:e]),
            "batch_losses": [1.2 * v * (1 + 0.01 * (k % 7)) for k in range(batches)],
        }
        for e, v in enumerate(val_losses, start=1)
    ]
    write_metrics_csv(history, folder / "metrics.csv", best)
    ckpt = Path(runs_dir).parent / "checkpoints" / name / "best.pt"
    if checkpoint:
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_bytes(b"not a checkpoint")
    if state is not None:
        status = {
            "name": name,
            "group": group,
            "checkpoint": str(ckpt),
            "state": state,
            "phase": "training" if state == "running" else "ended",
            "started": started,
            "resumed": None,
            "ended": None if state == "running" else started + 60,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "process_start": process_start(os.getpid()),
            "training": None if state == "running" else state,
            "epochs": len(val_losses),
            "evaluated": None if state == "running" else report,
            "error": "the training loss became NaN" if state == "failed" else None,
        }
        write_status(folder, status)
    if report and val_losses:
        lengths = range(cfg.min_len, cfg.max_len + 1)
        beyond = list(range(cfg.max_len + 1, cfg.max_len + 11)) + list(range(40, 181, 5))

        def curve(below: tuple[int | None, int | None], lengths) -> dict:
            def acc(n: int) -> float:
                return 1.0 if below[0] is None or n < below[0] else 0.6 if below[1] is None or n < below[1] else 0.1

            at = {"failures": {"stopped_early": 3, "ran_on": 0, "wrong_word": 1}}
            return {
                "per_length": {str(n): acc(n) for n in lengths},
                "sentences": {str(n): 100 for n in lengths},
                "failures": {str(n): at["failures"] for n in lengths},
                "first_below_99": None if below[0] is None else {"length": below[0], "exact_match": 0.6, **at},
                "first_below_50": None if below[1] is None else {"length": below[1], "exact_match": 0.1, **at},
                "not_measured": [],
            }

        body = {
            "test_exact_match": test_exact_match,
            "per_length": {str(n): test_exact_match for n in lengths},
            "epochs": [
                {k: h[k] for k in ("epoch", "train_loss", "val_loss", "val_exact_match", "seconds")} for h in history
            ],
            "epoch_details": history,
            "best_epoch": best,
            "best_val_loss": val_losses[best - 1],
            "checkpoint": str(ckpt),
            "config": cfg.to_dict(),
            "notebook_test": None if cfg.on_notebook_data else {"exact_match": 0.97, "sentences": 1000, "correct": 970},
            "length_limits": {
                "known_words": curve(known_below, beyond),
                "unknown_words": curve(unknown_below, [*lengths, *beyond]),
            },
            "interrupted": state == "stopped",
            "failure": "the training loss became NaN" if state == "failed" else None,
            "train_seconds": sum(h["seconds"] for h in history),
            "group": group,
            "repeated_words": None if repeated is None else {"exact_match": repeated, "lengths": [21, 40]},
        }
        (folder / "report.json").write_text(json.dumps(body, indent=1))
    return folder
