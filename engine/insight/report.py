"""After training: reload the best checkpoint, evaluate the test set, and write every
artefact (heatmap, loss curve, metrics.csv, analysis.md, report.json). Shared by the
headless run and the terminal app, so the two faces never compute anything twice.

Each part of the evaluation and each file is made by itself: a part that raises is named,
with its error in one line, in Results.failed_parts and report.json's `failed_parts` (the
job puts them in status.json too), its figures are left out, and everything else is still
measured and written. Only a checkpoint that cannot be loaded ends the evaluation."""

from __future__ import annotations

import csv
import json
import os
import random
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..errors import CheckpointError, one_line
from ..runs.folders import last_path
from ..train.checkpoint import Loaded, load, load_model
from ..train.config import Config
from ..train.data import Vocab, splits_for, with_unseen_words
from ..train.events import EPOCH_FIELDS, Snapshot, by_length_of
from ..train.threads import evaluation_threads, in_parallel
from .analysis import attention_stats, attention_variant, write_analysis
from .evaluate import EvalResult, SentenceResult, evaluate, format_example
from .faithfulness import measure_faithfulness
from .lengths import REPEATED_LENGTHS, LengthCurve, length_curve, repeated_word_sentences, sweep_sentences
from .plot_process import PlotProcess, draw_figures, heatmap_job, loss_curve_job, timeline_job
from .watch import summary as watch_summary
from .watch import write_timeline


@dataclass
class UnseenWords:
    """Exact match on the test set with one to three words per sentence swapped for words
    outside the vocabulary: copied back through the attention (<unk> replaced), and not."""

    with_replacement: float | None  # None: that part failed (Results.failed_parts)
    without_replacement: float | None

    @property
    def complete(self) -> bool:
        return self.with_replacement is not None and self.without_replacement is not None

    @classmethod
    def of(cls, decoded: EvalResult | None, vocab: Vocab) -> UnseenWords:
        """Both figures from one decoding of the set (None: it failed)."""
        if decoded is None:
            return cls(None, None)
        return cls(decoded.exact_match, decoded.exact_match_without_replacement(vocab))


@dataclass
class NotebookTest:
    """Exact match on the notebook's own test set (1,000 sentences of 3-10 words)."""

    exact_match: float
    sentences: int
    correct: int
    lengths: tuple[int, int] = (3, 10)


@dataclass
class BeamSearch:
    width: int
    exact_match: float
    seconds: float
    per_length: dict[int, float]


@dataclass
class Control:
    """The same model trained without attention (--compare-no-attention)."""

    checkpoint: str
    attention: bool
    test_exact_match: float
    per_length: dict[int, float]  # the test set's lengths, then past them
    faithfulness: dict | None = None  # its knock-outs and pins (engine/insight/faithfulness.py)


@dataclass
class FailedPart:
    """A part of the evaluation, or a file, that raised (or could not be made without one
    that did); everything else was still measured and written."""

    part: str  # a key of PART_NAMES
    error: str  # one line

    def line(self) -> str:
        return f"{PART_NAMES.get(self.part, self.part)} failed: {self.error}"


@dataclass
class Results:
    """What finish_run measured; both faces read these fields, and report.json is built from
    them. A figure is None where its part failed (failed_parts says why)."""

    config: Config
    checkpoint: Path
    best_epoch: int | None
    best_val_loss: float | None
    evaluation: EvalResult | None  # the test set
    stats: dict | None  # the attention statistics (engine/insight/analysis.py's attention_stats)
    uniform_exact_match: float | None  # the same model decoding with uniform attention
    unseen: UnseenWords
    unknown: LengthCurve | None  # every word unknown, training lengths and past them
    known: LengthCurve | None  # known words, past the training lengths
    heatmap_example: SentenceResult | None
    analysis: str | None  # analysis.md
    files: dict[str, Path]  # the files written
    report: dict  # report.json, as written (or as it would have been)
    notebook_test: NotebookTest | None = None  # see notebook_test_set
    beam: BeamSearch | None = None  # --beam K > 1
    control: Control | None = None  # --compare-no-attention
    repeated: LengthCurve | None = None  # sentences of 2-3 distinct words repeated (REPEATED_LENGTHS)
    failed_parts: list[FailedPart] = field(default_factory=list)
    # attention tested as an explanation: knock-outs and pins (engine/insight/faithfulness.py)
    faithfulness: dict | None = None

    def examples(self, k: int = 10) -> list[SentenceResult]:
        return self.evaluation.results[:k] if self.evaluation is not None else []


@dataclass
class EvalPhase:
    """One part of the evaluation after training has ended: the faces show these as they come."""

    done: int  # parts finished so far, this one included
    total: int
    name: str  # what was measured, for a person
    seconds: float  # this part's own time (parts run side by side on a CPU's cores)
    detail: str = ""
    error: str | None = None  # one line: the part raised (the others go on)

    def line(self) -> str:
        if self.error is not None:
            return f"{self.name} failed after {self.seconds:.2f}s: {self.error} [{self.done}/{self.total}]"
        detail = f" ({self.detail})" if self.detail else ""
        return f"evaluated {self.name}{detail} in {self.seconds:.2f}s [{self.done}/{self.total}]"


PHASE_NAMES = {
    "test": "the test set",
    "uniform": "the uniform-attention ablation",
    "unseen": "unseen words, with and without <unk> replacement",
    "known": "known words past the training lengths",
    "unknown": "every word unknown, by length",
    "repeated": f"repeated words, {REPEATED_LENGTHS[0]}-{REPEATED_LENGTHS[1]} words",
    "notebook_test": "the notebook's test set",
    "beam": "beam search",
    "control_test": "the no-attention control",
    "control_beyond": "the control past the training lengths",
    "faithfulness": "knock-outs and pins of the attention",
    "control_faithfulness": "the control's knock-outs and pins",
}
# every part that can fail by itself: the evaluations above, then what is made of them
PART_NAMES = {
    **PHASE_NAMES,
    "control": "loading the no-attention control",
    "attention_stats": "the attention statistics",
    "attention_heatmap": "attention_heatmap.png",
    "loss_curve": "loss_curve.png",
    "attention_timeline": "attention_timeline.gif",
    "attention_timeline_data": "attention_timeline.json",
    "metrics": "metrics.csv",
    "analysis": "analysis.md",
    "report": "report.json",
}


def _phase_detail(result) -> str:
    if isinstance(result, LengthCurve):
        measured = len(result.per_length)
        return f"{measured} lengths" + (
            f", not past {max(result.per_length)}: {result.why_stopped}" if result.not_measured else ""
        )
    if isinstance(result, EvalResult):
        return f"{len(result.results):,} sentences"
    if isinstance(result, dict) and "word_steps" in result:
        return f"{result['sentences']:,} sentences, {result['word_steps']:,} word steps"
    return ""


class _Progress:
    """Counts the evaluation's parts as they end, and keeps those that failed, from whichever
    thread ends them."""

    def __init__(self, on_phase: Callable[[EvalPhase], None] | None, total: int = 0):
        self.on_phase, self.total, self.count = on_phase, total, 0
        self.failed: list[FailedPart] = []
        self.lock = threading.Lock()

    def timed(self, name: str, job: Callable):
        """job, timed and told as a phase; None where it raised (kept in failed)."""

        def run():
            t0 = time.perf_counter()
            try:
                result = job()
            except Exception as e:  # the part is lost, not the evaluation
                self.fail(name, one_line(e))
                self.done(PHASE_NAMES.get(name, name), time.perf_counter() - t0, error=one_line(e))
                return None
            self.done(PHASE_NAMES.get(name, name), time.perf_counter() - t0, _phase_detail(result))
            return result

        return run

    def attempt(self, part: str, job: Callable, *args):
        """job(*args), or None where it raised (kept in failed)."""
        try:
            return job(*args)
        except Exception as e:  # the part is lost, not the evaluation
            self.fail(part, one_line(e))
            return None

    def fail(self, part: str, error: str) -> None:
        with self.lock:
            self.failed.append(FailedPart(part, error))

    def done(self, name: str, seconds: float, detail: str = "", error: str | None = None) -> None:
        if self.on_phase is None:
            return
        with self.lock:
            self.count += 1
            phase = EvalPhase(self.count, self.total, name, seconds, detail, error)
        self.on_phase(phase)


def typical_example(results: Sequence[SentenceResult]) -> SentenceResult:
    """The first sentence of median length, preferring one the model got right."""
    median = int(statistics.median_low(len(r.source) for r in results))
    same = [r for r in results if len(r.source) == median]
    return next((r for r in same if r.match), same[0])


def longest_trained(cfg: Config, test_sentences: Sequence[Sequence[str]]) -> int:
    """Where "beyond the training lengths" starts: --max-len for the built-in corpus (it
    draws every length up to it), and for a --corpus the longest test sentence, drawn from
    the same text as the training ones (a text of 3-10 words trained with --max-len 30 has
    never seen 20 words), or, where it trained on joined sentences, their --join-len."""
    if not cfg.corpus or not test_sentences:
        return cfg.max_len
    text = max(cfg.min_len, min(cfg.max_len, max(len(s) for s in test_sentences)))
    return max(text, cfg.join_len) if cfg.join != 0 else text


def notebook_test_set(cfg: Config) -> list[list[str]] | None:
    """The notebook's own test set (1,000 sentences of 3-10 words, this run's seed) when this
    run trained on other lengths of the built-in corpus: the baseline's figure, measured on
    the baseline's sentences. None for a --corpus run or one on the notebook's data."""
    if cfg.corpus or cfg.on_notebook_data:
        return None
    return splits_for(Config.notebook(seed=cfg.seed))[0].test


def write_metrics_csv(history: Sequence[dict], path: Path, best_epoch: int | None = None) -> Path:
    """Every epoch trained, a row each; `best` marks each epoch that improved on the ones
    before, `best_model` the one whose model the run's best checkpoint holds. Written to a
    temporary file and renamed: a reader never sees half a table."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*EPOCH_FIELDS, "best_model"], extrasaction="ignore")
        w.writeheader()
        for h in history:
            w.writerow({**h, "best_model": h.get("epoch") == best_epoch})
    os.replace(tmp, path)
    return path


def write_text_atomic(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def latest_state(checkpoint: Path, payload: dict) -> dict:
    """The latest state of the run a best checkpoint belongs to. The best model was saved at
    its epoch, so its own history stops there; the latest state beside it (best.last.pt)
    holds the epochs after, when it is of the same run (its history begins with the best's)."""
    last = last_path(Path(checkpoint))
    if not last.is_file():
        return payload
    try:
        later = load(last)
        same_run = list(later["history"])[: len(payload["history"])] == list(payload["history"])
    except (CheckpointError, TypeError):
        return payload
    return later if same_run else payload


def run_history(checkpoint: Path, payload: dict) -> list[dict]:
    """Every epoch of the run a best checkpoint belongs to (see latest_state)."""
    return list(latest_state(checkpoint, payload)["history"])


def snapshots_of(payload: dict) -> list[Snapshot]:
    """A checkpoint's attention snapshots (engine/insight/watch.py); [] for a run without them."""
    try:
        return [Snapshot.from_dict(d) for d in payload.get("snapshots") or []]
    except (KeyError, TypeError, ValueError):
        return []


def finish_run(
    checkpoint: str | Path,
    test_sentences: Sequence[Sequence[str]],
    out_dir: str | Path,
    device: torch.device,
    extra: dict | None = None,
    control_checkpoint: str | Path | None = None,
    plotter: PlotProcess | None = None,
    history: Sequence[dict] | None = None,
    on_phase: Callable[[EvalPhase], None] | None = None,
    snapshots: Sequence[Snapshot] | None = None,
) -> Results:
    """Evaluate the best checkpoint on the test set and write the artefacts to out_dir.
    history: every epoch the run trained (the trainer's); without it, read from the
    checkpoints (latest_state). control_checkpoint: a model trained the same way without
    attention, compared by length. on_phase: told as each part of the evaluation ends (from
    the evaluation's threads).
    plotter: a PlotProcess started earlier, best when training began (its imports then run
    on the core that training leaves free); without one, the figures are drawn here."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _finish_run(
            checkpoint, test_sentences, out, device, extra, control_checkpoint, plotter, history, on_phase, snapshots
        )
    finally:
        if plotter is not None:
            plotter.close()


def _finish_run(
    checkpoint: str | Path,
    test_sentences: Sequence[Sequence[str]],
    out: Path,
    device: torch.device,
    extra: dict | None,
    control_checkpoint: str | Path | None,
    plotter: PlotProcess | None,
    history: Sequence[dict] | None,
    on_phase: Callable[[EvalPhase], None] | None,
    snapshots: Sequence[Snapshot] | None,
) -> Results:
    loaded: Loaded = load_model(checkpoint, device)
    cfg = loaded.config
    if history is None or snapshots is None:  # a model opened from disk: its run's latest state, read once
        state = latest_state(Path(checkpoint), loaded.payload)
        history = list(state["history"]) if history is None else history
        snapshots = snapshots_of(state) if snapshots is None else snapshots
    history, snapshots = [dict(h) for h in history], list(snapshots)
    best_epoch, best_val_loss = loaded.payload.get("best_epoch"), loaded.payload.get("best_val_loss")
    model, vocab = loaded.model, loaded.vocab
    progress = _Progress(on_phase)  # every part below that raises is kept here, and the others go on
    # the figures that need only the history go to the plot process now, to be drawn while
    # the sentence sets are made; the heatmap follows once the test set is decoded
    early = [loss_curve_job(history, out / "loss_curve.png", best_epoch)]
    if snapshots:  # the first watch sentence's attention, frame by frame
        early.append(timeline_job([s.as_dict() for s in snapshots], out / "attention_timeline.gif"))
    sent_early = plotter is not None and plotter.submit(early, more=True)
    figures: dict = {"jobs": list(early), "sent": sent_early, "example": None}
    # every sentence set first, from one seeded generator, so the evaluations below are
    # independent of one another and of the order they run in
    rng = random.Random(cfg.seed + 2)
    # unseen words: one to three words per test sentence swapped for words outside the vocabulary
    unseen_set = with_unseen_words(test_sentences, rng, vocab)
    # longer than training (up to 6x the longest, at least 60 words, and on to 10x, at least
    # 100, while the model holds), of known words; and
    # sentences of words it never saw at every length, the way people type
    trained = (cfg.min_len, longest_trained(cfg, test_sentences))
    sweep = sweep_sentences(vocab, *trained, rng)
    # 2-3 known words repeated: only position tells their copies apart
    repeated_set = repeated_word_sentences(vocab.words(), rng)
    notebook_test = progress.attempt("notebook_test", notebook_test_set, cfg)
    control_model = None
    if control_checkpoint is not None:
        control_model = progress.attempt("control", load_model, control_checkpoint, device)

    def heatmap_jobs(ev: EvalResult | None) -> list[dict]:
        if ev is None:  # without it, the heatmap is said to be missing after the test set
            return []
        figures["example"] = example = progress.attempt("attention_heatmap", typical_example, ev.results)
        if example is None:
            return []
        path = out / "attention_heatmap.png"
        return [heatmap_job(example.attention, example.source_tokens, example.output_tokens, path)]

    def test_set_then_figures() -> EvalResult:
        # the heatmap needs only the test set's decoding: the plot process draws it while the
        # sweeps run (the other figures also when the test set fails)
        ev = None
        try:
            ev = evaluate(model, vocab, test_sentences, device)
            return ev
        finally:
            last = heatmap_jobs(ev)
            figures["jobs"] = last + figures["jobs"]
            sent_last = plotter is not None and plotter.submit(last)  # the last submit: the child's stdin closes
            figures["sent"] = figures["sent"] or sent_last

    jobs = {  # the test set first (the figures wait on it), then the longest, so two workers finish together
        "test": test_set_then_figures,
        "unknown": lambda: length_curve(model, vocab, sweep.unknown, device, held_from=sweep.held_from),
        # known words stop where exact match first falls below 50%: the longest lengths cost
        # the most, and past that point the model is mostly wrong (a fifth of the sweep on the default)
        "known": lambda: length_curve(model, vocab, sweep.known, device, held_from=sweep.held_from, stop_below=0.5),
        # the ablation: the same model decoding with uniform attention (only its exact match is read)
        "uniform": lambda: evaluate(model, vocab, test_sentences, device, attend=False, exact_match_only=True),
        "unseen": lambda: evaluate(model, vocab, unseen_set, device),  # read both ways (UnseenWords.of)
        "repeated": lambda: length_curve(model, vocab, repeated_set, device, stop_when_lost=False),
        # attention as an explanation: a few hundred test sentences, every word step knocked out and pinned
        "faithfulness": lambda: measure_faithfulness(model, vocab, test_sentences, device, seed=cfg.seed),
    }
    if notebook_test:
        jobs["notebook_test"] = lambda: evaluate(model, vocab, notebook_test, device)
    if cfg.beam > 1:
        jobs["beam"] = lambda: evaluate(model, vocab, test_sentences, device, beam=cfg.beam)
    if control_model is not None:
        c_model, c_vocab = control_model.model, control_model.vocab
        jobs["control_test"] = lambda: evaluate(c_model, c_vocab, test_sentences, device)
        # the same sentences past the training lengths, one length at a time (it runs on)
        jobs["control_beyond"] = lambda: length_curve(c_model, c_vocab, sweep.known, device).evaluation
        jobs["control_faithfulness"] = lambda: measure_faithfulness(c_model, c_vocab, test_sentences, device, cfg.seed)
    progress.total = len(jobs) + 1  # the evaluations, then the files
    with evaluation_threads(device) as workers:
        done = in_parallel({name: progress.timed(name, job) for name, job in jobs.items()}, workers)
    ev, known, unknown, repeated = done["test"], done["known"], done["unknown"], done["repeated"]
    uniform = done["uniform"].exact_match if done["uniform"] is not None else None
    if ev is None:
        progress.fail("attention_heatmap", "not drawn: the test set failed")
    stats = progress.attempt("attention_stats", attention_stats, ev.results) if ev is not None else None
    beam = None
    if done.get("beam") is not None:
        bev = done["beam"]
        beam = BeamSearch(cfg.beam, bev.exact_match, bev.seconds, dict(bev.per_length))
    unseen = UnseenWords.of(done["unseen"], vocab)
    beyond = known.evaluation if known is not None else None
    control = notebook = None
    if done.get("notebook_test") is not None:
        nev = done["notebook_test"]
        notebook = NotebookTest(nev.exact_match, len(nev.results), sum(r.match for r in nev.results))
    if done.get("control_test") is not None:
        c_test, c_beyond = done["control_test"], done["control_beyond"]
        control = Control(
            str(control_checkpoint),
            control_model.config.attention,
            c_test.exact_match,
            {**c_test.per_length, **(c_beyond.per_length if c_beyond is not None else {})},
            done.get("control_faithfulness"),
        )
    faithfulness = done["faithfulness"]

    def analysis_text() -> str:
        return write_analysis(
            stats,
            uniform,
            trained,
            attention_stats(beyond.results) if beyond is not None else None,
            asdict(unseen) if unseen.complete else None,
            asdict(control) if control else None,
            {**ev.per_length, **(beyond.per_length if beyond is not None else {})},
            cfg.attention,
            known,
            unknown,
            attention_variant(cfg),
            faithfulness,
        )

    if stats is None:
        analysis = None
        progress.fail("analysis", "not written: the test set or its attention statistics failed")
    else:
        analysis = progress.attempt("analysis", analysis_text)
    example = figures["example"]
    t_files = time.perf_counter()
    for kind, error in draw_figures(plotter, figures["jobs"], figures["sent"]).items():
        progress.fail(kind, error)
    drawn = {job["kind"] for job in figures["jobs"]} - {f.part for f in progress.failed}
    files = {kind: out / f"{kind}.png" for kind in ("attention_heatmap", "loss_curve") if kind in drawn}

    def write(name: str, make: Callable[[], Path]) -> None:
        path = progress.attempt(name, make)
        if path is not None:
            files[name] = path

    write("metrics", lambda: write_metrics_csv(history, out / "metrics.csv", best_epoch))
    if analysis is not None:
        write("analysis", lambda: write_text_atomic(out / "analysis.md", analysis))
    if snapshots:
        if "attention_timeline" in drawn:
            files["attention_timeline"] = out / "attention_timeline.gif"
        write("attention_timeline_data", lambda: write_timeline(snapshots, out / "attention_timeline.json"))
    report = {
        "test_exact_match": ev.exact_match if ev is not None else None,
        "per_length": {str(n): acc for n, acc in ev.per_length.items()} if ev is not None else {},
        "per_length_counts": {str(n): list(ct) for n, ct in ev.counts.items()} if ev is not None else {},
        "epochs": [
            {
                **{k: h[k] for k in ("epoch", "train_loss", "val_loss", "val_exact_match", "seconds")},
                "best_model": h["epoch"] == best_epoch,
                # words -> [correct, sentences] of the validation pass ({} for an older run)
                "val_by_length": {str(n): ct for n, ct in by_length_of(h.get("val_by_length")).items()},
            }
            for h in history
        ],
        "epoch_details": history,
        "best_epoch": best_epoch,
        "best_val_loss": best_val_loss,
        "checkpoint": str(Path(checkpoint)),
        "last_checkpoint": str(last_path(Path(checkpoint))),
        "device": str(device),
        "config": cfg.to_dict(),
        "test_eval_seconds": ev.seconds if ev is not None else None,
        "test_sentences": len(test_sentences),
        "notebook_test": _plain(notebook),
        "uniform_attention_exact_match": uniform,
        "unseen_words_exact_match": _plain(unseen),
        "no_attention_control": _plain(control),
        "beam": _plain(beam),
        "beyond_training_lengths": {str(n): acc for n, acc in beyond.per_length.items()} if beyond else {},
        "unknown_words_by_length": {str(n): acc for n, acc in unknown.per_length.items()} if unknown else {},
        "length_limits": {
            "known_words": known.as_dict() if known is not None else None,
            "unknown_words": unknown.as_dict() if unknown is not None else None,
        },
        # sentences of 2-3 distinct known words repeated, of REPEATED_LENGTHS words, pooled
        "repeated_words": repeated_report(repeated),
        "attention": stats,
        "faithfulness": faithfulness,
        "examples": [
            {
                "input": " ".join(r.source),
                "output": " ".join(r.output),
                "reference": " ".join(r.reference),
                "match": r.match,
            }
            for r in (ev.results[:10] if ev is not None else [])
        ],
        "heatmap_sentence": " ".join(example.source) if example is not None else None,
        "attention_timeline": watch_summary(snapshots),
        **(extra or {}),
    }
    # the parts lost so far (a report.json that cannot be written is in status.json alone)
    report["failed_parts"] = [asdict(f) for f in progress.failed]
    write("report", lambda: write_text_atomic(out / "report.json", json.dumps(report, indent=1, default=str)))
    progress.done("figures and files", time.perf_counter() - t_files, f"in {out}")
    return Results(
        config=cfg,
        checkpoint=Path(checkpoint),
        best_epoch=best_epoch,
        best_val_loss=best_val_loss,
        evaluation=ev,
        stats=stats,
        uniform_exact_match=uniform,
        unseen=unseen,
        unknown=unknown,
        known=known,
        heatmap_example=example,
        analysis=analysis,
        files=files,
        report=report,
        notebook_test=notebook,
        beam=beam,
        control=control,
        repeated=repeated,
        failed_parts=list(progress.failed),
        faithfulness=faithfulness,
    )


def repeated_report(curve: LengthCurve | None) -> dict | None:
    """report.json's `repeated_words`: exact match pooled over every sentence of 2-3 distinct
    words repeated, and by length (as length_limits' curves); None where the part failed."""
    if curve is None:
        return None
    return {
        "exact_match": curve.evaluation.exact_match,
        "lengths": list(REPEATED_LENGTHS),
        "distinct_words": [2, 3],
        **curve.as_dict(),
    }


def _plain(figures) -> dict | None:
    """A figures dataclass as report.json keeps it: its fields, lengths as string keys."""
    if figures is None:
        return None
    d = asdict(figures)
    if isinstance(d.get("per_length"), dict):
        d["per_length"] = {str(n): a for n, a in d["per_length"].items()}
    if isinstance(d.get("lengths"), tuple):
        d["lengths"] = list(d["lengths"])
    return d


__all__ = [
    "BeamSearch",
    "Control",
    "EvalPhase",
    "FailedPart",
    "NotebookTest",
    "Results",
    "UnseenWords",
    "finish_run",
    "format_example",
    "typical_example",
    "write_metrics_csv",
]
