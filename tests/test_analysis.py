"""engine/insight/analysis.py: the analysis is computed from the attention (different attention,
different numbers), and says how many sentences each length measured."""

import numpy as np

from engine.insight.analysis import attention_stats, write_analysis
from tests.conftest import mirrored, sentence_result


def shifted(n):
    """Every step looks one to the right of the mirror (the notebook's model's habit)."""
    A = np.zeros((n + 1, n + 1))
    for t in range(n):
        A[t, n - t] = 0.7
        A[t, n - 1 - t] = 0.3
    A[n, 0] = 1.0
    return A


def test_analysis_numbers_follow_the_attention():
    words = ["the", "cat", "sat", "on", "mat"]
    good = attention_stats([sentence_result(words, mirrored(5))])
    off = attention_stats([sentence_result(words, shifted(5))])
    assert good["mirror_peak_rate"] == 1.0 and off["mirror_peak_rate"] == 0.0
    assert good["mirror_weight_mean"] > 0.99 and abs(off["mirror_weight_mean"] - 0.3) < 1e-9
    assert off["peak_offsets"] == {"1": 1.0}
    assert good["eos_step"]["peak_at"] == {"eos": 1.0} and off["eos_step"]["peak_at"] == {"first word": 1.0}
    soft = attention_stats([sentence_result(words, mirrored(5, sharp=0.5))])
    assert good["entropy_ratio_mean"] < soft["entropy_ratio_mean"]
    text_good, text_off = write_analysis(good, 0.1), write_analysis(off, 0.1)
    assert text_good != text_off
    assert "100.0% of word steps" in text_good and "0.0% of word steps" in text_off
    assert "right-hand neighbour (+1)" in text_off


def test_analysis_by_length_and_uniform_ablation_are_reported():
    rs = [
        sentence_result("the cat sat".split(), mirrored(3)),
        sentence_result("a b c d e f".replace("a", "old").split(), shifted(6)),
    ]
    s = attention_stats(rs)
    assert set(s["by_length"]) == {3, 6}
    assert s["by_length"][3]["mirror_peak_rate"] == 1.0 and s["by_length"][6]["mirror_peak_rate"] == 0.0
    text = write_analysis(s, uniform_exact_match=0.02)
    assert "2.0%" in text and "| 3 |" in text and "| 6 |" in text


def test_analysis_says_how_many_sentences_each_length_measured():
    from engine.insight.analysis import _counts_text

    assert (
        _counts_text({3: (1, 100), 6: (1, 100), 60: (1, 100), 80: (1, 50), 180: (2, 50)})
        == "sentences per length: 100 at 3-60 words, 50 at 80-180 words"
    )
    assert _counts_text({3: (1, 100), 6: (1, 100)}) == "100 sentences per length"


def test_the_analysis_names_the_attention_it_measured():
    from engine.insight.analysis import attention_variant
    from engine.train.config import Config

    assert attention_variant(Config()) == (
        "additive (Bahdanau) score, v · tanh(W_h h_j + W_s s); with the location term (kernel 5)"
    )
    assert attention_variant(Config(), formula=False) == "additive (Bahdanau) score; with the location term (kernel 5)"
    assert attention_variant(Config(score="dot", location_kernel=0)) == (
        "dot (Luong) score, s · h_j with h_j's two directions summed"
    )
    assert attention_variant(Config(score="general", bidirectional=False, coverage=True, copy="on")) == (
        "general (Luong) score, s · W h_j; with the location term (kernel 5), coverage, the copy mechanism"
    )
    assert attention_variant(Config(score="scaled-dot"), formula=False).startswith("scaled dot-product score;")
    assert attention_variant(Config(attention=False)).startswith("none")
    # the same statistics, whatever the score: only the line naming it differs
    stats = attention_stats([sentence_result("the cat sat".split(), mirrored(3))])
    texts = {s: write_analysis(stats, 0.1, variant=attention_variant(Config(score=s))) for s in ("additive", "dot")}
    assert (
        "Attention: dot (Luong) score, s · h_j" in texts["dot"]
        and "Attention: additive (Bahdanau)" in texts["additive"]
    )
    lines = [t.splitlines() for t in texts.values()]
    assert [i for i, (a, b) in enumerate(zip(*lines)) if a != b] == [4] and len(lines[0]) == len(lines[1])
