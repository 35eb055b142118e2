"""engine/insight/faithfulness.py: attention tested as an explanation. On a model that
reverses, knocking out the word a step attends to most changes its word far more often than
a random one, and a pin moves it; on the no-attention control the "most attended" word is
drawn among equal weights and the two knock-outs differ only by chance; the sample spans
every length; the whole sample runs as one batch; the run's report, analysis and results
carry the figures."""

from __future__ import annotations

import pytest
import torch

from engine.insight.faithfulness import (
    STEPS_EACH,
    faithfulness_sample,
    faithfulness_text,
    gap_noise,
    measure_faithfulness,
)
from engine.train.checkpoint import load_model
from engine.train.config import Config
from engine.train.data import splits_for
from engine.train.trainer import Trainer
from tests.conftest import TINY

CPU = torch.device("cpu")


def test_the_sample_spreads_over_every_length():
    sentences = [["w"] * n for n in (3, 4, 5) for _ in range(200)] + [["w"] * 9]
    sample = faithfulness_sample(sentences, 300)
    counts = {n: sum(len(s) == n for s in sample) for n in (3, 4, 5, 9)}
    assert len(sample) >= 300 and counts[9] == 1 and counts[3] == counts[4] == counts[5] >= 100
    assert len(faithfulness_sample(sentences[:50], 300)) == 50  # fewer there: all of them


@pytest.fixture(scope="module")
def reversing(reversing_checkpoint):
    loaded = load_model(reversing_checkpoint)
    return loaded, splits_for(loaded.config)[0].test


def test_on_a_model_that_reverses_the_words_follow_the_attention(reversing):
    loaded, test = reversing
    f = measure_faithfulness(loaded.model, loaded.vocab, test, CPU, seed=1)
    assert f["attention"] and f["sentences"] == len(test) and f["tied_top"] == 0
    assert f["top_knockout_changes"] > 0.8 and f["random_knockout_changes"] < 0.1
    assert f["pin_emits"] > 0.8 and f["pin_steps"] > 0
    lengths = sorted({len(s) for s in test})
    assert list(f["by_length"]) == [str(n) for n in lengths]
    assert sum(v["sentences"] for v in f["by_length"].values()) == f["sentences"]
    assert sum(v["word_steps"] for v in f["by_length"].values()) == f["word_steps"]
    text = faithfulness_text(f)
    assert "The words follow the attention" in text and f"{100 * f['top_knockout_changes']:.1f}%" in text


def test_the_sample_is_one_batch(reversing, monkeypatch):
    """One decoding (a decoder step per output step, every sentence at once), then one step
    per kind of change over every word step: no loop over sentences."""
    loaded, test = reversing
    decoder, calls = loaded.model.decoder, []
    real = decoder.step
    monkeypatch.setattr(decoder, "step", lambda *a, **k: calls.append(a[0].shape[0]) or real(*a, **k))
    f = measure_faithfulness(loaded.model, loaded.vocab, test, CPU)
    budget = 2 * max(len(s) for s in test) + 5
    decoding, again = calls[:-3], calls[-3:]
    assert set(decoding) == {len(test)} and len(decoding) <= budget
    assert again == [f["word_steps"]] * 3
    eight = f["by_length"]["8"]  # longer than STEPS_EACH: that many of its steps each
    assert eight["word_steps"] == STEPS_EACH * eight["sentences"] and f["by_length"]["3"]["word_steps"] > 0


@pytest.fixture(scope="module")
def control(tmp_path_factory):
    path = tmp_path_factory.mktemp("control") / "none.pt"
    torch.manual_seed(0)
    for _ in Trainer(Config(**{**TINY, "attention": False, "epochs": 3, "test_size": 400}), path).run():
        pass
    return load_model(path)


def test_on_the_no_attention_control_the_two_knockouts_measure_the_same(control):
    cfg = control.config
    test = splits_for(cfg)[0].test
    f = measure_faithfulness(control.model, control.vocab, test, CPU, seed=cfg.seed)
    assert f["attention"] is False and f["tied_top"] == 1.0  # every weight equal, at every step
    assert f["word_steps"] > 300
    assert abs(f["top_knockout_changes"] - f["random_knockout_changes"]) <= gap_noise(f)
    text = faithfulness_text(f)
    assert "This model has no attention" in text and "within chance" in text
    assert "The words follow the attention" not in text


def test_the_run_reports_it(trained_results):
    f = trained_results.report["faithfulness"]
    assert f == trained_results.faithfulness and f["sentences"] == len(trained_results.evaluation.results)
    assert set(f) >= {"top_knockout_changes", "random_knockout_changes", "pin_emits", "by_length", "seconds"}
    assert "Knocking out the input word a step attends to most" in trained_results.analysis
    assert faithfulness_text(f) in trained_results.analysis


def test_the_results_screen_shows_it_by_length(trained_results):
    from tui.screens.results import FAITH_ROWS
    from tui.screens.results import faithfulness_text as shown

    f = trained_results.faithfulness
    lines = shown(f).plain.splitlines()
    assert f"knocked out {100 * f['top_knockout_changes']:.1f}%" in lines[0]
    assert f"a random other word {100 * f['random_knockout_changes']:.1f}%" in lines[0]
    rows = lines[2:]
    assert len(rows) == min(len(f["by_length"]), FAITH_ROWS)
    first = f["by_length"][min(f["by_length"], key=int)]
    assert rows[0].split()[0] == min(f["by_length"], key=int)
    assert f"{100 * first['top_knockout_changes']:4.0f}%" in rows[0]
    many = {**f, "by_length": {str(n): first for n in range(3, 31)}}  # 28 lengths: grouped into 10 rows
    grouped = shown(many).plain.splitlines()[2:]
    assert len(grouped) == FAITH_ROWS and grouped[0].split()[0] == "3-5" and grouped[-1].split()[0] == "30"


def test_the_headless_run_prints_it(trained_results):
    import io

    from rich.console import Console

    from tui.headless import print_results

    buf = io.StringIO()
    print_results(Console(file=buf, width=200), trained_results, "best.pt")
    f = trained_results.faithfulness
    line = next(x for x in buf.getvalue().splitlines() if x.startswith("knock-outs ("))
    assert f"({f['word_steps']} word steps)" in line and f"{100 * f['top_knockout_changes']:.1f}%" in line
