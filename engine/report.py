"""After training: reload the best checkpoint, evaluate the test set, and write every
artefact (heatmap, loss curve, metrics.csv, analysis.md, report.json). Shared by the
headless run and the terminal app, so the two faces never compute anything twice."""
from __future__ import annotations

import csv
import json
import random
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .analysis import attention_stats, write_analysis
from .checkpoint import Loaded, load_model
from .data import with_unseen_words
from .evaluate import EvalResult, SentenceResult, evaluate, format_example
from .lengths import LengthCurve, length_sweep
from .plots import attention_heatmap, loss_curve
from .train import EPOCH_FIELDS


@dataclass
class Results:
    evaluation: EvalResult
    stats: dict
    uniform_exact_match: float
    analysis: str
    unseen: dict
    beyond: EvalResult | None   # known words, past the training lengths
    unknown: LengthCurve        # every word unknown, training lengths and past them
    known: LengthCurve          # beyond as a length curve
    heatmap_example: SentenceResult
    report: dict
    files: dict[str, Path]

    def examples(self, k: int = 10) -> list[SentenceResult]:
        return self.evaluation.results[:k]


def typical_example(results: Sequence[SentenceResult]) -> SentenceResult:
    """The first sentence of median length, preferring one the model got right."""
    median = int(statistics.median_low(len(r.source) for r in results))
    same = [r for r in results if len(r.source) == median]
    return next((r for r in same if r.match), same[0])


def write_metrics_csv(history: Sequence[dict], path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EPOCH_FIELDS, extrasaction="ignore")
        w.writeheader()
        for h in history:
            w.writerow(h)
    return path


def finish_run(checkpoint: str | Path, test_sentences: Sequence[Sequence[str]], out_dir: str | Path,
               device: torch.device, extra: dict | None = None,
               control_checkpoint: str | Path | None = None) -> Results:
    """Evaluate the best checkpoint on the test set and write the artefacts to out_dir.
    control_checkpoint: a model trained the same way without attention, compared by length."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    loaded: Loaded = load_model(checkpoint, device)
    cfg, history = loaded.config, loaded.payload["history"]
    ev = evaluate(loaded.model, loaded.vocab, test_sentences, device)
    # the ablation: the same model decoding with uniform attention
    uniform = evaluate(loaded.model, loaded.vocab, test_sentences, device, attend=False).exact_match
    stats = attention_stats(ev.results)
    beam = None
    if cfg.beam > 1:
        bev = evaluate(loaded.model, loaded.vocab, test_sentences, device, beam=cfg.beam)
        beam = {"width": cfg.beam, "exact_match": bev.exact_match, "seconds": bev.seconds,
                "per_length": {str(n): a for n, a in bev.per_length.items()}}
    # unseen words: one to three words per test sentence swapped for words outside the vocabulary
    rng = random.Random(cfg.seed + 2)
    unseen_set = with_unseen_words(test_sentences, rng, loaded.vocab)
    unseen = {"with_replacement": evaluate(loaded.model, loaded.vocab, unseen_set, device).exact_match,
              "without_replacement": evaluate(loaded.model, loaded.vocab, unseen_set, device,
                                              replace_unk=False).exact_match}
    # longer than training (up to 6x the longest, at least 60 words), of known words; and
    # sentences of words it never saw at every length, the way people type
    known, unknown = length_sweep(loaded.model, loaded.vocab, cfg.min_len, cfg.max_len, device, rng)
    beyond = known.evaluation
    longer = [r.source for r in beyond.results]
    beyond_stats = attention_stats(beyond.results)
    control = None
    if control_checkpoint is not None:
        c = load_model(control_checkpoint, device)
        c_test = evaluate(c.model, c.vocab, test_sentences, device)
        c_beyond = evaluate(c.model, c.vocab, longer, device) if longer else None
        control = {"checkpoint": str(control_checkpoint), "attention": c.config.attention,
                   "test_exact_match": c_test.exact_match,
                   "per_length": {**c_test.per_length, **(c_beyond.per_length if c_beyond else {})}}
    analysis = write_analysis(stats, uniform, (cfg.min_len, cfg.max_len), beyond_stats, unseen,
                              control, {**ev.per_length, **(beyond.per_length if beyond else {})},
                              cfg.attention, known, unknown)
    example = typical_example(ev.results)
    files = {
        "attention_heatmap": attention_heatmap(example.attention, example.source_tokens,
                                               example.output_tokens, out / "attention_heatmap.png"),
        "loss_curve": loss_curve(history, out / "loss_curve.png", loaded.payload.get("best_epoch")),
        "metrics": write_metrics_csv(history, out / "metrics.csv"),
    }
    (out / "analysis.md").write_text(analysis)
    files["analysis"] = out / "analysis.md"
    report = {
        "test_exact_match": ev.exact_match,
        "per_length": {str(n): acc for n, acc in ev.per_length.items()},
        "per_length_counts": {str(n): list(ct) for n, ct in ev.counts.items()},
        "epochs": [{k: h[k] for k in ("epoch", "train_loss", "val_loss", "val_exact_match", "seconds")}
                   for h in history],
        "epoch_details": history,
        "best_epoch": loaded.payload.get("best_epoch"),
        "best_val_loss": loaded.payload.get("best_val_loss"),
        "checkpoint": str(Path(checkpoint)),
        "device": str(device),
        "config": cfg.to_dict(),
        "test_eval_seconds": ev.seconds,
        "test_sentences": len(ev.results),
        "uniform_attention_exact_match": uniform,
        "unseen_words_exact_match": unseen,
        "no_attention_control": control,
        "beam": beam,
        "beyond_training_lengths": {str(n): acc for n, acc in beyond.per_length.items()},
        "unknown_words_by_length": {str(n): acc for n, acc in unknown.per_length.items()},
        "length_limits": {"known_words": known.as_dict(), "unknown_words": unknown.as_dict()},
        "attention": stats,
        "examples": [{"input": " ".join(r.source), "output": " ".join(r.output),
                      "reference": " ".join(r.reference), "match": r.match} for r in ev.results[:10]],
        "heatmap_sentence": " ".join(example.source),
        **(extra or {}),
    }
    (out / "report.json").write_text(json.dumps(report, indent=1, default=str))
    files["report"] = out / "report.json"
    return Results(ev, stats, uniform, analysis, unseen, beyond, unknown, known, example, report, files)


__all__ = ["Results", "finish_run", "format_example", "typical_example", "write_metrics_csv"]
