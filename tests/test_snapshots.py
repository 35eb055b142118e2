"""Snapshots of every screen on fixed data (pytest-textual-snapshot): no training, no model
inside a snapshot, so they depend only on the app's drawing. Regenerate after a deliberate
change with `pytest tests/test_snapshots.py --snapshot-update`, and look at the SVGs.

Across modules by design: the pictures of tui/app.py's screens and widgets, not one module's
test_<module>.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.insight.evaluate import EvalResult, SentenceResult
from engine.insight.lengths import LengthCurve
from engine.train.config import Config
from engine.train.events import BatchDone, EpochDone
from tests.conftest import sizes
from tui.app import ReverseApp
from tui.common import RunOptions
from tui.messages import BatchProgress, EpochFinished
from tui.widgets.loss_chart import LossChart
from tui.widgets.title_bar import TitleBar

# every field pinned, so that a change of the engine's defaults does not move the pictures
CFG = dict(
    train_size=2000,
    val_size=200,
    test_size=200,
    min_len=3,
    max_len=10,
    embed_dim=32,
    hidden_dim=64,
    layers=1,
    dropout=0.0,
    bidirectional=True,
    location_kernel=5,
    epochs=6,
    lr=3e-3,
    lr_schedule="cosine",
    batch_size=64,
    teacher_forcing=0.5,
    clip=1.0,
    patience=0,
    seed=42,
    device="cpu",
)

EPOCHS = [  # epoch, train loss, val loss, val exact match, seconds, best
    (1, 3.2417, 2.8043, 0.0, 1.6, True),
    (2, 2.2041, 1.4200, 0.035, 1.4, True),
    (3, 0.7979, 0.4646, 0.56, 1.5, True),
    (4, 0.2270, 0.0995, 0.94, 1.5, True),
    (5, 0.0740, 0.0451, 1.0, 1.1, True),
]


BATCHES = 32


def batch_losses(e: int, mean: float) -> list[float]:
    """Fixed per-batch losses for epoch e: falling through the epoch around its mean, with a
    deterministic wobble, so the chart has a curve to draw."""
    prev = EPOCHS[e - 2][1] if e > 1 else 2 * mean
    return [
        (prev ** (1 - (k + 1) / BATCHES) * mean ** ((k + 1) / BATCHES)) * (1 + 0.15 * ((k * 7) % 5 - 2) / 2)
        for k in range(BATCHES)
    ]


# validation sentences right of 25 per length (3-10 words), epoch by epoch: the short ones
# first, adding up to each epoch's exact match in EPOCHS
RIGHT_BY_LENGTH = {
    1: [0] * 8,
    2: [5, 2, 0, 0, 0, 0, 0, 0],
    3: [25, 25, 20, 15, 12, 8, 5, 2],
    4: [25, 25, 25, 25, 24, 23, 22, 19],
    5: [25] * 8,
}


def epoch(e, train, val, em, sec, best, gpu: bool = False) -> EpochDone:
    """Fixed figures, the machine's included (on CUDA: GPU memory and utilisation too)."""
    by_length = {n: [c, 25] for n, c in zip(range(3, 11), RIGHT_BY_LENGTH[e])}
    assert sum(c for c, _ in by_length.values()) == round(200 * em)
    return EpochDone(
        e,
        train,
        val,
        em,
        sec,
        0.5,
        1.0,
        20000,
        best,
        batch_losses(e, train),
        lr=0.005,
        tokens_per_s=20000 / sec,
        seconds_left=1.4 * (10 - e),
        rss_mib=300.0 + 2 * e,
        **({"gpu_mib": 180.0, "gpu_peak_mib": 1400.0 + 10 * e, "gpu_util": 87.0} if gpu else {}),
        val_by_length=by_length,
    )


def attention(n: int, steps: int | None = None, sharp: float = 0.9) -> np.ndarray:
    """Fixed weights: step t looks at word n-1-t (the mirror), the rest spread evenly."""
    steps = n + 1 if steps is None else steps
    a = np.full((steps, n + 1), (1 - sharp) / n)
    for t in range(steps):
        a[t, n - 1 - t if t < n else n] = sharp
    return a


def sentence(words: str, output: str | None = None) -> SentenceResult:
    src = words.split()
    out = src[::-1] if output is None else output.split()
    return SentenceResult(src, out, src[::-1], attention(len(src), len(out) + 1), len(out) + 1, match=out == src[::-1])


def make_app(tmp_path, monkeypatch) -> ReverseApp:
    monkeypatch.chdir(tmp_path)  # relative paths on screen, the same on every machine
    monkeypatch.setattr(LossChart, "INTERVAL", 0.0)  # every update drawn at once: no timer to race
    args = RunOptions(checkpoint=None, out=None, name="demo", threads=None)
    return ReverseApp(Config(**CFG), args, autostart=False)


class FixedResults:
    """What the results screen reads of engine.insight.report.Results, and nothing else: the
    engine may grow fields without moving this picture."""

    def __init__(
        self,
        evaluation,
        uniform_exact_match,
        analysis,
        files,
        config,
        checkpoint,
        best_epoch,
        best_val_loss,
        notebook_test=None,
        beam=None,
        known=None,
        unknown=None,
        failed_parts=(),
        faithfulness=None,
    ):
        self.evaluation, self.uniform_exact_match = evaluation, uniform_exact_match
        self.failed_parts = list(failed_parts)
        self.analysis, self.files, self.config, self.checkpoint = analysis, files, config, checkpoint
        self.best_epoch, self.best_val_loss = best_epoch, best_val_loss
        self.notebook_test, self.beam = notebook_test, beam
        self.known, self.unknown = known, unknown
        self.faithfulness = faithfulness

    def examples(self, k: int = 10) -> list[SentenceResult]:
        return self.evaluation.results[:k]


def fixed_curve(right: dict[int, int], not_measured: list[int]) -> LengthCurve:
    """A length sweep of 100 sentences a length, `right` of them right; the wrong ones mostly
    stopped early, as a model past its training lengths does."""
    counts = {n: (c, 100) for n, c in right.items()}
    failures = {
        n: {"stopped_early": (100 - c) - (100 - c) // 4, "ran_on": (100 - c) // 4, "wrong_word": 0}
        for n, c in right.items()
    }
    return LengthCurve(EvalResult([], 1.0, counts), failures, not_measured)


def fixed_sweep() -> tuple[LengthCurve, LengthCurve]:
    """(known, unknown) past the training lengths 3-6 (engine/insight/lengths.py's lengths)."""
    known = fixed_curve(
        {7: 100, 8: 100, 9: 100, 10: 100, 11: 100, 12: 99, 13: 97, 14: 90, 15: 78, 16: 64, 20: 21, 25: 0, 30: 0},
        [35, 40, 45, 50, 55, 60],
    )
    unknown = fixed_curve(
        {3: 100, 4: 100, 5: 100, 6: 99, 7: 97, 8: 93, 9: 85, 10: 70, 11: 52, 12: 33, 13: 15, 14: 4, 15: 0, 16: 0},
        [20, 25, 30, 35, 40, 45, 50, 55, 60],
    )
    return known, unknown


def fixed_faithfulness() -> dict:
    """Knock-outs and pins over 3-6 words (engine/insight/faithfulness.py's figures): the top
    word's knock-out changes nearly every step, a random one almost none."""

    def figures(sentences: int, steps: int, top: int, other: int, pin: int) -> dict:
        return {
            "sentences": sentences,
            "word_steps": steps,
            "top_knockout_changes": top / steps,
            "random_knockout_changes": other / steps,
            "pin_steps": steps,
            "pin_emits": pin / steps,
        }

    by_length = {str(n): figures(25, 25 * n, 25 * n - k, k // 2, 25 * n - 2 * k) for k, n in enumerate(range(3, 7))}
    return {
        **figures(100, 450, 444, 3, 438),
        "attention": True,
        "tied_top": 0.0,
        "lengths": [3, 6],
        "by_length": by_length,
        "seconds": 0.05,
    }


def fixed_results() -> FixedResults:
    examples = [
        sentence(s)
        for s in (
            "the cat sat on the mat",
            "quick brown fox jumps over the lazy dog",
            "red car",
            "big house in the tree",
            "fish eats old hat",
            "happy dog ran fast",
            "the bird drinks cold water",
            "slow new blue car",
            "sad fox sat",
            "hot red sun",
        )
    ]
    examples[4] = sentence("fish eats old hat", "hat old fish eats")
    counts = {2: (2, 2), 3: (2, 2), 4: (2, 3), 5: (1, 1), 6: (1, 1), 8: (1, 1)}
    ev = EvalResult(examples, 0.12, counts)
    analysis = (
        "## 1. What attention pattern emerges?\n\n"
        "At 97.3% of output steps the strongest weight is on the mirrored input word "
        "(mean weight 0.91).\n\n"
        "## 2. Without attention?\n\n"
        "The same model with uniform attention gets 3.1% of the test set right.\n"
    )
    files = {
        name: Path("runs/demo") / f
        for name, f in (
            ("attention_heatmap", "attention_heatmap.png"),
            ("loss_curve", "loss_curve.png"),
            ("metrics", "metrics.csv"),
            ("analysis", "analysis.md"),
            ("report", "report.json"),
        )
    }
    return FixedResults(
        ev,
        0.031,
        analysis,
        files,
        Config(min_len=3, max_len=6),
        Path("checkpoints/demo/best.pt"),
        best_epoch=5,
        best_val_loss=0.0451,
        known=fixed_sweep()[0],
        unknown=fixed_sweep()[1],
        faithfulness=fixed_faithfulness(),
    )


async def show_training(pilot, gpu: bool = False) -> None:
    """The training screen mid-run: five epochs done, the sixth a third through."""
    app = pilot.app
    app.training = True
    app.run_facts = "vocab 38 · 111,782 params · cpu x2"
    app.set_status("Training run demo · best model -> checkpoints/demo/best.pt · results -> runs/demo")
    app.screen.sync()
    for e in EPOCHS:
        app.post_message(EpochFinished(app.run_id, epoch(*e, gpu=gpu)))
    app.post_message(
        BatchProgress(
            app.run_id, BatchDone(6, 11, BATCHES), [0.06 * (1 + 0.1 * ((k * 3) % 4 - 1.5)) for k in range(11)]
        )
    )
    await pilot.pause()
    app.refresh_bindings()
    await pilot.pause()


@pytest.mark.parametrize("size", sizes((100, 32), (80, 24)))
def test_training_screen(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=show_training)


def test_training_screen_on_cuda(snap_compare, tmp_path, monkeypatch):
    """The GPU's memory column and figures fit beside the rest at 80x24."""

    async def run_before(pilot):
        await show_training(pilot, gpu=True)

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=(80, 24), run_before=run_before)


@pytest.mark.parametrize("size", sizes((100, 32), (80, 24)))
def test_training_screen_by_length(snap_compare, tmp_path, monkeypatch, size):
    """Four epochs in: the newest epoch's exact match by length falls from 100% at 3 words
    to 76% at 10, each bar with its figure where the width allows."""

    async def run_before(pilot):
        app = pilot.app
        app.training = True
        app.set_status("Training run demo · best model -> checkpoints/demo/best.pt · results -> runs/demo")
        app.screen.sync()
        for e in EPOCHS[:4]:
            app.post_message(EpochFinished(app.run_id, epoch(*e)))
        app.post_message(BatchProgress(app.run_id, BatchDone(5, 11, BATCHES), [0.1] * 11))
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=run_before)


def test_results_screen(snap_compare, tmp_path, monkeypatch):
    async def run_before(pilot):
        app = pilot.app
        app.results = fixed_results()
        app.action_show("results")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=(100, 32), run_before=run_before)


def test_results_screen_sweep_80x24(snap_compare, tmp_path, monkeypatch):
    """Scrolled to the length sweep: known and unknown words' curves past the training lengths."""

    async def run_before(pilot):
        app = pilot.app
        app.results = fixed_results()
        app.action_show("results")
        await pilot.pause()
        app.screen.query_one("#sweep-chart").scroll_visible(top=True, animate=False)
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=(80, 24), run_before=run_before)


def probe_screen(text: str, result: SentenceResult, notes: list[str], history: list[str]):
    async def run_before(pilot):
        app = pilot.app
        app.action_show("probe")
        await pilot.pause()
        screen = app.screen
        box = screen.query_one("#sentence")
        box.cursor_blink = False  # a blinking cursor would make the picture flaky
        box.value = text
        for h in history:
            screen.remember(h)
        screen.show_result(result, notes)
        screen.query_one(TitleBar).show("probe checkpoints/demo/best.pt: epoch 5")
        await pilot.pause()

    return run_before


def test_probe_screen(snap_compare, tmp_path, monkeypatch):
    r = sentence("the cat sat on the mat")
    assert snap_compare(
        make_app(tmp_path, monkeypatch),
        terminal_size=(100, 32),
        run_before=probe_screen("the cat sat on the mat", r, [], ["red car", "the cat sat on the mat"]),
    )


def test_probe_screen_forty_words_80x24(snap_compare, tmp_path, monkeypatch):
    """A typed 40-word sentence, more columns and rows than fit: the grid scrolls, its row
    and column labels stay put."""
    text = (
        "yesterday my old friend from the village told me a long story about the summer "
        "when the river flooded the fields and everyone in town carried sandbags to the "
        "old school while all the children watched from the green hill"
    )
    assert len(text.split()) == 40
    r = sentence(text)
    notes = [
        "not in the vocabulary (30 words): yesterday, my, old, friend, ...",
        "40 words: outside the training lengths 3-30",
    ]
    assert snap_compare(
        make_app(tmp_path, monkeypatch), terminal_size=(80, 24), run_before=probe_screen(text, r, notes, [text])
    )


def test_probe_screen_bad_input(snap_compare, tmp_path, monkeypatch):
    async def run_before(pilot):
        await probe_screen("?!", sentence("red car"), [], [])(pilot)
        pilot.app.screen.show_error(
            "Cannot probe that: no words in the input (a word is a run of "
            "letters or digits; punctuation, symbols and emoji only "
            "separate words)."
        )
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=(80, 24), run_before=run_before)


def test_help_screen(snap_compare, tmp_path, monkeypatch):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=(80, 24), press=["question_mark"])


# -- attention over training (tui/widgets/watch_view.py, tui/screens/timeline.py) -------------
def watch_snapshots() -> list:
    """Fixed snapshots of two watch sentences: the alignment sharpening over the first epoch
    and the output coming right at its end."""
    from engine.train.events import Snapshot, Watched

    words = ["the cat sat on the mat".split(), "big red dog".split()]
    marks = [(1, 1), (1, 2), (1, 4), (1, 8), (1, 16), (1, 32), (2, 32), (3, 32)]
    snaps = []
    for k, (e, b) in enumerate(marks):
        sharp = min(0.95, 0.2 + 0.12 * k)
        watched = []
        for src in words:
            right = k >= 5
            out = src[::-1] if right else (src[-1:] + src[:1] * (len(src) - 1))
            watched.append(Watched(src, out, attention(len(src), len(out) + 1, sharp).round(3).tolist(), right))
        snaps.append(Snapshot(e, b, BATCHES, watched))
    return snaps


async def show_watching(pilot) -> None:
    """The training screen mid-run, with the snapshots so far: the grid beside the chart."""
    await show_training(pilot)
    pilot.app.snapshots = watch_snapshots()[:6]
    await pilot.pause()


@pytest.mark.parametrize("size", sizes((100, 32), (80, 24)))
def test_training_screen_watching(snap_compare, tmp_path, monkeypatch, size):
    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=show_watching)


@pytest.mark.parametrize("size", sizes((100, 32), (80, 24)))
def test_timeline_screen(snap_compare, tmp_path, monkeypatch, size):
    """The third of eight snapshots, second watch sentence."""

    async def run_before(pilot):
        await show_training(pilot)
        pilot.app.snapshots = watch_snapshots()
        await pilot.pause()
        await pilot.press("w", "home", "right", "right", "down")
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=run_before)


def long_watch_snapshots() -> list:
    """A 16-word watch sentence, too big for a numbered grid beside the chart: the map."""
    from engine.train.events import Snapshot, Watched

    src = "the quick brown fox saw a lazy dog jump over the old red fence near home".split()
    return [Snapshot(2, BATCHES, BATCHES, [Watched(src, src[::-1], attention(16).round(3).tolist(), True)])]


@pytest.mark.parametrize("size", sizes((100, 32), (80, 24)))
def test_training_screen_watching_a_long_sentence(snap_compare, tmp_path, monkeypatch, size):
    async def run_before(pilot):
        await show_training(pilot)
        pilot.app.snapshots = long_watch_snapshots()
        await pilot.pause()

    assert snap_compare(make_app(tmp_path, monkeypatch), terminal_size=size, run_before=run_before)
