"""Results screen: what finish_run measured on the test set (exact match overall and by
length; a chart of how far past the training lengths it holds, on known and on unknown
words; ten examples in the notebook's form, the measured analysis) and where the files went.
It draws the app's `results` (watched); the evaluation itself runs in the app's worker."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Markdown, ProgressBar, Static

from engine.insight.analysis import attention_variant
from engine.insight.evaluate import SentenceResult
from engine.insight.faithfulness import gap_noise
from engine.insight.lengths import describe_limit
from engine.insight.report import longest_trained

from ..widgets.overlay_chart import PALETTE, OverlayChart, Series
from ..widgets.title_bar import TitleBar

BAR = 24  # characters for a 100% bar


def example_text(r: SentenceResult) -> Text:
    """The notebook's four lines, with the verdict in colour."""
    t = Text()
    for label, words in (("Input", r.source), ("Output", r.output), ("Reference", r.reference)):
        t.append(f"{label}: ", style="bold")
        t.append(f'"{" ".join(words)}"\n')
    t.append("match" if r.match else "no match", style="bold green" if r.match else "bold red")
    return t


FAITH_ROWS = 10  # lengths grouped into at most this many rows
FAITH_BAR = 12


def _bands(lengths: list[str], rows: int) -> list[list[str]]:
    size = -(-len(lengths) // rows)  # ceil
    return [lengths[i : i + size] for i in range(0, len(lengths), size)]


def faithfulness_text(f: dict) -> Text:
    """The knock-out and pin figures (engine/insight/faithfulness.py): overall, then a row per
    group of lengths, each share a bar: the top word knocked out, a random one, a pin."""
    t = Text()
    a, r, p = f["top_knockout_changes"], f["random_knockout_changes"], f["pin_emits"]
    if a is None:
        t.append("No word steps were decoded in the sample.")
        return t
    t.append(f"{f['word_steps']:,} word steps of {f['sentences']} test sentences. ")
    t.append("A step's word changes when the word it attends to most is knocked out ", style="bold")
    t.append(f"{100 * a:.1f}%", style="bold")
    t.append(", a random other word ")
    t.append(f"{100 * r:.1f}%", style="bold")
    t.append(f" (chance ±{100 * gap_noise(f):.1f}); a pin on another word makes it that word ")
    t.append(f"{100 * p:.1f}%" if p is not None else "n/a", style="bold")
    t.append(".")
    if not f["attention"]:
        t.append("\nno attention: every weight is equal, the “most attended” word drawn among them", style="yellow")
    w = FAITH_BAR + 8  # a bar and its figure
    t.append(f"\n{'words':>7}  {'top word out':<{w}}{'random word out':<{w}}pinned word said\n", style="dim")
    by = f["by_length"]
    for band in _bands(list(by), FAITH_ROWS):
        steps = sum(by[n]["word_steps"] for n in band)
        pins = sum(by[n]["pin_steps"] for n in band)
        label = band[0] if len(band) == 1 else f"{band[0]}-{band[-1]}"
        t.append(f"{label:>7}  ")
        for key, of in (("top_knockout_changes", steps), ("random_knockout_changes", steps), ("pin_emits", pins)):
            share = sum((by[n][key] or 0) * by[n]["pin_steps" if key == "pin_emits" else "word_steps"] for n in band)
            x = share / of if of else 0.0
            filled = round(x * FAITH_BAR)
            t.append("█" * filled, style="color(39)")
            t.append("·" * (FAITH_BAR - filled), style="dim")
            t.append(f" {100 * x:4.0f}%  ")
        t.append("\n")
    t.rstrip()
    return t


def per_length_text(per_length: dict[int, float], counts: dict[int, tuple[int, int]], trained: tuple[int, int]) -> Text:
    t = Text()
    for n, acc in per_length.items():
        filled = round(acc * BAR)
        t.append(f"{n:>3} words ")
        t.append("█" * filled, style="green" if acc >= 0.995 else "yellow" if acc >= 0.5 else "red")
        t.append("·" * (BAR - filled), style="dim")
        t.append(f" {100 * acc:5.1f}%  ({counts[n][0]}/{counts[n][1]})")
        if n < trained[0] or n > trained[1]:
            t.append(f"  {'shorter' if n < trained[0] else 'longer'} than trained", style="dim")
        t.append("\n")
    t.rstrip()
    return t


class ResultsScreen(Screen):
    BINDINGS = [
        Binding("t", "app.show('train')", "Train", tooltip="the training screen"),
        Binding("p", "app.show('probe')", "Probe", tooltip="the probe screen"),
        Binding(
            "e", "evaluate", "Evaluate again", tooltip="evaluate the checkpoint on disk again (writes the files again)"
        ),
    ]

    def compose(self) -> ComposeResult:
        yield TitleBar()
        with VerticalScroll(id="results-body"):
            yield Static(id="results-status")
            yield ProgressBar(id="eval-progress", show_eta=False)
            yield Static(id="summary")
            yield Static("Accuracy by length, past the training lengths", classes="section")
            yield OverlayChart("No length sweep in these results.", id="sweep-chart")
            yield Static(id="sweep-limits")
            yield Static("Accuracy by length on the test set", classes="section")
            yield Static(id="per-length")
            yield Static("Does each word follow the attention? Knock-outs and pins", classes="section")
            yield Static(id="faithfulness")
            yield Static("Ten test examples", classes="section")
            yield Static(id="examples")
            yield Static("Analysis (measured from the attention this model produced)", classes="section")
            yield Markdown(id="analysis")
            yield Static("Files", classes="section")
            yield Static(id="files")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(TitleBar).show("results on the test set")
        for name in ("results", "results_error", "evaluating", "training", "following", "eval_phase"):
            self.watch(self.app, name, self.sync, init=False)
        self.sync()
        self.query_one("#results-body").focus()

    def action_evaluate(self) -> None:
        app = self.app
        if app.training or app.following:
            self.notify("Training is running; its best model is evaluated when it ends.")
        elif app.evaluating:
            self.notify("The evaluation is already running.")
        else:
            app.evaluate()

    def sync(self) -> None:
        """Redraw from the app's state (watched: results, results_error, evaluating, training,
        eval_phase)."""
        app, res, error = self.app, self.app.results, self.app.results_error
        try:
            status = self.query_one("#results-status", Static)
        except NoMatches:  # being taken down as the app exits
            return
        for node in self.query(
            ".section, #summary, #sweep-chart, #sweep-limits, #per-length, #faithfulness, #examples, #analysis, #files"
        ):
            node.display = res is not None
        status.display = res is None
        status.set_class(error is not None, "-error")
        bar = self.query_one("#eval-progress", ProgressBar)
        bar.display = res is None and error is None and app.evaluating
        phase = app.eval_phase
        if bar.display:
            bar.update(total=phase.total if phase else None, progress=phase.done if phase else 0)
        if res is None:
            if error:
                status.update(f"The evaluation failed: {error}")
            elif app.evaluating:
                phase = app.eval_phase
                status.update(
                    f"Evaluating {app.checkpoint}: the test set, then how far it goes past "
                    "the training lengths..." + (f"\nlast done: {phase.name} in {phase.seconds:.1f}s" if phase else "")
                )
            elif app.following:
                status.update(
                    "The run is training in another process; it evaluates its best model itself "
                    "when it ends (t shows the training)."
                )
            elif app.training:
                status.update(
                    "Training is running; its best model is evaluated on the test set "
                    "when it ends (t shows the training)."
                )
            else:
                status.update(f"No model to evaluate yet ({app.checkpoint} does not exist).")
            return
        ev = res.evaluation  # None: the test set's part failed (said below with the others)
        summary = Text()
        if ev is not None:
            correct = sum(r.match for r in ev.results)
            summary.append("Test exact match ", style="bold")
            style = "bold green" if ev.exact_match >= 0.995 else "bold yellow"
            summary.append(f"{100 * ev.exact_match:.1f}%", style=style)
            summary.append(f"  ({correct}/{len(ev.results)} sentences, evaluated in {ev.seconds:.2f}s)\n")
        summary.append("Attention ", style="bold")
        summary.append(attention_variant(res.config, formula=False) + "\n")
        for part in res.failed_parts:
            summary.append(part.line() + "\n", style="bold red")
        if res.notebook_test:
            summary.append(f"the notebook's test set (3-10 words): {100 * res.notebook_test.exact_match:.1f}%   ")
        if res.beam:
            summary.append(f"beam search (width {res.beam.width}): {100 * res.beam.exact_match:.1f}%   ")
        if res.uniform_exact_match is not None:
            summary.append(f"with uniform attention instead: {100 * res.uniform_exact_match:.1f}%   ")
        best = res.best_val_loss
        summary.append(
            f"best epoch {res.best_epoch}"
            + (f" (val loss {best:.4f})" if isinstance(best, float) else "")
            + f" from {res.checkpoint}"
        )
        folders = sorted({str(p.parent) for p in res.files.values()})
        summary.append(f"\nfiles written to {', '.join(folders)}: ", style="bold")
        summary.append(", ".join(p.name for p in res.files.values()))
        self.query_one("#summary", Static).update(summary)
        # the lengths it trained on, as the report's sweep counts them (a text's own longest,
        # or its joined sentences')
        results = ev.results if ev is not None else []
        trained = (res.config.min_len, longest_trained(res.config, [r.source for r in results]))
        per_length, counts = (ev.per_length, ev.counts) if ev is not None else ({}, {})
        self.query_one("#per-length", Static).update(per_length_text(per_length, counts, trained))
        self._draw_sweep(res, trained)
        faith = getattr(res, "faithfulness", None)
        self.query_one("#faithfulness", Static).update(
            faithfulness_text(faith) if faith else Text("Not measured (see above).", style="dim")
        )
        examples = Text("\n\n").join(example_text(r) for r in res.examples(10))
        self.query_one("#examples", Static).update(examples)
        self.query_one("#analysis", Markdown).update(res.analysis or "analysis.md was not written (see above).")
        self.query_one("#files", Static).update("\n".join(f"{name:<18} {path}" for name, path in res.files.items()))

    def _draw_sweep(self, res, trained: tuple[int, int]) -> None:
        """Known and unknown words' exact match by length on one chart, the training lengths
        between the two grey lines; known words come from the test set inside them and from
        the sweep past them."""
        chart = self.query_one("#sweep-chart", OverlayChart)
        limits = self.query_one("#sweep-limits", Static)
        known, unknown = getattr(res, "known", None), getattr(res, "unknown", None)
        series = sweep_series(res.evaluation.per_length if res.evaluation is not None else {}, known, unknown)
        lo, hi = trained
        chart.show(SWEEP_LEGEND.format(lo=lo, hi=hi), series, percent=True, marks=[lo, hi] if series else [])
        chart.display = bool(series)
        curves = ((known, "Known words"), (unknown, "Unknown words"))
        lines = [describe_limit(c, what) for c, what in curves if c and c.per_length]
        limits.update("\n".join(lines))
        limits.display = bool(lines)


KNOWN, UNKNOWN = PALETTE[0], PALETTE[1]
# the border title is Textual markup: the same 256-colour codes as hex (xterm's palette)
SWEEP_LEGEND = "[#00d7ff]━[/] known words  [#ff8700]━[/] unknown words  [#585858]│[/] trained {lo}-{hi} words"


def sweep_series(test_per_length: dict[int, float], known, unknown) -> list[Series]:
    """The two curves: known words (the test set's lengths, then the sweep's past them) and
    unknown words (the sweep's, at every length it measured)."""
    series = []
    if known is not None:
        points = {**test_per_length, **known.per_length}
        series.append(Series("known words", KNOWN, sorted(points.items())))
    if unknown is not None and unknown.per_length:
        series.append(Series("unknown words", UNKNOWN, sorted(unknown.per_length.items())))
    return series
