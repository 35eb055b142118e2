"""One step of a decoding (engine/insight/stepper.py) drawn for the terminal: the step's attention
over the input as a row of bars (height and shade the weight, with its number below), the
output so far with this step's word highlighted, the five likeliest next words with bars,
the input word an <unk> copies and, with a beam, the continuations the step ranked and what
became of each (survives, pruned, finished). Greedy, a word cursor under the input, the
interventions' marks, the changes panel (widgets/step_changes.py) and, toggled, the step's
computation: its raw scores, weights and context shares.

Every colour is an xterm-256 palette index (attention_grid.PALETTE), so a 256-colour
terminal over plain ssh shows exactly these. A bar row too wide for the screen shows the
words around where the step looks, with "← N more" / "→ N more" counts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from engine.insight.stepper import Hypothesis, Step, Stepping

from .attention_grid import PALETTE, weight_text
from .step_changes import changes_block, marks_at

BAR_ROWS = 3  # lines of a bar: 8 eighths each, so 24 heights
EIGHTHS = " ▁▂▃▄▅▆▇█"
HBAR = " ▏▎▍▌▋▊▉█"  # horizontal eighths, for probabilities
FATE_STYLE = {"survives": "bold color(77)", "pruned": "color(244)", "finished": "bold color(226)"}
FATE_MARK = {"survives": "✓", "pruned": "✗", "finished": "■"}
NO_WORD = ("<eos>",)  # emitted, but no word of the output (engine.insight.exact_match.output_words)
MORE = 11  # room kept for a "← 12 more" count at either end of a cut bar row


def colour(weight: float) -> str:
    return f"color({PALETTE[min(9, max(0, int(weight * 10)))][0]})"


def cell_widths(tokens: Sequence[str], width: int) -> list[int]:
    """A column per token: its word and a space, 4-9 characters; 4-6 when that does not fit."""
    natural = [min(9, max(4, len(t) + 1)) for t in tokens]
    if sum(natural) <= width:
        return natural
    return [min(6, max(4, len(t) + 1)) for t in tokens]


def window(widths: Sequence[int], focus: int, width: int) -> tuple[int, int]:
    """[start, stop) of the tokens shown: all when they fit, else as many as fit around focus."""
    if sum(widths) <= width:
        return 0, len(widths)
    room = width - 2 * MORE
    start = stop = focus
    used = 0
    while True:  # grow to the right, then the left, one token at a time
        grew = False
        for side in (1, -1):
            j = stop if side == 1 else start - 1
            if 0 <= j < len(widths) and used + widths[j] <= room:
                used += widths[j]
                start, stop = (start, stop + 1) if side == 1 else (start - 1, stop)
                grew = True
        if not grew:
            return start, max(stop, start + 1)


def _clip(word: str, width: int) -> str:
    return word if len(word) <= width else word[: max(1, width - 1)] + "…"


def bar_row(
    attention: np.ndarray,
    tokens: Sequence[str],
    width: int,
    copied: int | None = None,
    cursor: int | None = None,
    marks: dict[int, str] | None = None,
) -> Text:
    """The step's weights (n + 1,) over tokens: BAR_ROWS lines of bars, a line of weights,
    a line of words (the copied one, for an <unk>, underlined); with a cursor, a line under
    the words: ▲ under the cursor's word and each mark (a knock-out's ✗, a pin's ●) under its own.
    A row too wide shows the words around the cursor, else around the peak."""
    widths = cell_widths(tokens, width)
    focus = int(np.argmax(attention))
    start, stop = window(widths, focus if cursor is None else cursor, width)
    cut = (start, stop) != (0, len(tokens))
    left = f"← {start} more".ljust(MORE) if cut and start else " " * (MORE if cut else 0)
    right = f" → {len(tokens) - stop} more" if stop < len(tokens) else ""
    out = Text(no_wrap=True, overflow="crop")
    levels = [round(float(w) * 8 * BAR_ROWS) for w in attention]
    for line in range(BAR_ROWS):
        out.append(left if line == BAR_ROWS - 1 else " " * len(left), style="dim")
        for j in range(start, stop):
            filled = min(8, max(0, levels[j] - 8 * (BAR_ROWS - 1 - line)))
            out.append(EIGHTHS[filled] * (widths[j] - 1), style=colour(float(attention[j])))
            out.append(" ")
        if line == BAR_ROWS - 1:
            out.append(right, style="dim")
        out.append("\n")
    out.append(" " * len(left))
    for j in range(start, stop):
        w = float(attention[j])
        out.append(weight_text(w).ljust(widths[j]), style="bold" if j == focus else "color(244)")
    out.append("\n" + " " * len(left))
    for j in range(start, stop):
        style = "bold underline" if j == copied else ("bold" if j == focus else "")
        if j == cursor:
            style += " reverse"
        out.append(_clip(tokens[j], widths[j] - 1), style=style)
        out.append(" " * (widths[j] - len(_clip(tokens[j], widths[j] - 1))))
    if cursor is not None:
        out.append("\n" + " " * len(left))
        for j in range(start, stop):
            mark = "▲" if j == cursor else (marks or {}).get(j, "")
            mark += (marks or {}).get(j, "") if j == cursor else ""
            out.append(mark.ljust(widths[j]), style="bold color(214)" if j != cursor else "bold")
    return out


def output_line(step: Step, final: bool, answer: Sequence[str]) -> Text:
    """The output so far, this step's word highlighted (<eos>: the decoding ends here)."""
    out = Text()
    out.append("Output:  ", style="bold")
    adds = step.chosen not in NO_WORD and step.output  # the step's word joined the output
    before = step.output[:-1] if adds else step.output
    if before:
        out.append(" ".join(before) + " ")
    shown = step.output[-1] if adds else step.chosen
    out.append(f" {shown} ", style="bold reverse")
    if final and answer != step.output:
        out.append("\nAnswer:  ", style="bold")
        out.append(" ".join(answer) or "(nothing)")
    return out


def chosen_line(step: Step, stepping: Stepping) -> Text:
    out = Text()
    p = step.p if step.p is not None else dict(step.top).get(step.chosen)
    out.append("Forced:  " if step.forced else "Chosen:  ", style="bold")
    out.append(step.chosen, style="bold")
    if p is not None:
        out.append(f"  p = {p:.3f}")
    if step.copied is not None:
        j = stepping.source.index(step.copied) if step.copied in stepping.source else None
        where = f" (input word {j + 1}, weight {weight_text(float(step.attention[j]))})" if j is not None else ""
        out.append(f"   <unk> copies “{step.copied}”{where}", style="bold color(214)")
    elif step.chosen == "<unk>":
        out.append("   <unk> at <eos>: nothing to copy", style="color(214)")
    if step.copy is not None:  # the copy mechanism's gate: how much of the word came from the input
        out.append(f"   copy {weight_text(step.copy)}", style="color(214)" if step.copy >= 0.5 else "")
    if step.chosen == "<eos>":
        out.append("   the decoding ends here", style="dim")
    return out


def top_table(step: Step, width: int) -> Text:
    """The five likeliest next words: word, probability, a bar; the chosen one marked."""
    word_w = min(14, max(len(w) for w, _ in step.top))
    bar_w = max(4, min(20, width - word_w - 12))
    out = Text(no_wrap=True, overflow="crop")
    out.append("Next word     p\n", style="bold")
    for word, p in step.top:
        mark = "▶" if word == step.chosen else " "
        out.append(f"{mark} {_clip(word, word_w):<{word_w}} ", style="bold" if mark != " " else "")
        out.append(f"{p:5.3f} ")
        eighths = round(p * bar_w * 8)
        out.append("█" * (eighths // 8) + (HBAR[eighths % 8] if eighths % 8 else ""), style=colour(p))
        out.append("\n")
    out.rstrip()
    return out


def _tail(words: Sequence[str], width: int) -> str:
    """The last words that fit: a hypothesis differs from its neighbours at its end."""
    text = " ".join(words) or "(start)"
    return text if len(text) <= width else "…" + text[len(text) - width + 1 :]


def hypothesis_text(h: Hypothesis, lead: Hypothesis, width: int, style: str = "") -> Text:
    """A hypothesis in width characters, the words where it differs from the leading one
    highlighted and an <unk>'s copy underlined; when it does not fit, the words before its
    first difference that fit (a "…" for those cut), its middle cut when it still does not,
    to keep its last word."""
    words = h.words
    marks = list(zip(lead.words, lead.copies or [False] * len(lead.words)))
    copies = h.copies or [False] * len(words)
    differs = [j >= len(marks) or (w, c) != marks[j] for j, (w, c) in enumerate(zip(words, copies))]
    first = next((j for j, d in enumerate(differs) if d), len(words))
    start = max(0, min(first - 1, len(words) - 1))
    while start > 0 and len(" ".join(words[start - 1 :])) + 1 <= width:  # as much before it as fits
        start -= 1
    if len(" ".join(words)) <= width:
        start = 0
    shown = list(range(start, len(words)))
    prefix = "…" if start else ""

    def length(idx: list[int]) -> int:
        return len(prefix) + sum(len(words[j]) + 1 for j in idx) - 1

    middle_cut = False
    while length(shown) + (2 if middle_cut else 0) > width and len(shown) > 2:
        del shown[len(shown) // 2 if len(shown) > 3 else 1]  # keep its first and last words
        middle_cut = True
    out = Text(prefix, style="dim")
    for pos, j in enumerate(shown):
        if pos and shown[pos - 1] != j - 1:
            out.append(" …", style="dim")
        out.append(" " if pos else "")
        look = "color(214)" if differs[j] else style
        out.append(words[j], style=f"{look} underline" if copies[j] else look)  # underlined: an <unk>'s copy
    if not words:
        out.append("(start)", style="dim")
    out.truncate(width)
    return out


def hypotheses_table(step: Step, k: int, width: int, height: int) -> Text:
    """The continuations the step ranked, best first, each with its fate and summed
    log-probability; the best finished so far; whether the search ends here."""
    out = Text(no_wrap=True, overflow="crop")
    out.append(f"Beam {k}: {len(step.candidates)} best continuations\n", style="bold")
    words_w = max(8, width - 19)  # after the mark, the fate and the score
    rows = step.candidates
    room = max(1, height - 3)
    cut = len(rows) > room
    lead = rows[0] if rows else Hypothesis([], 0.0)
    for h in rows[: room - 1 if cut else room]:
        out.append(f"{FATE_MARK[h.fate]} {h.fate:<8} ", style=FATE_STYLE[h.fate])
        out.append(f"{h.score:6.2f} ")
        out.append(hypothesis_text(h, lead, words_w, "" if h.fate != "pruned" else "color(244)"))
        out.append("\n")
    if cut:
        out.append(f"… {len(rows) - room + 1} more\n", style="dim")
    out.append(_best_line(step.best, step.stopped, width))
    return out


def _best_line(best: Hypothesis | None, stopped: bool, width: int) -> Text:
    out = Text(no_wrap=True, overflow="crop")
    if best is None:
        out.append("best finished: none yet", style="dim")
        return out
    n = len(best.words)
    out.append("best finished: ", style="bold")
    out.append(f"{best.score:.3f} (sum / {n}) ", style=FATE_STYLE["finished"])
    out.append(_tail(best.words, max(8, width - len(out) - 1)))
    if stopped:
        out.append("\nsearch ends: no live one can beat it", style="bold")
    return out


def _score(x: float, room: int) -> str:
    """A raw score in `room` characters: one decimal where it fits, else none."""
    if not np.isfinite(x):
        return "-inf"
    text = f"{x:.1f}"
    return text if len(text) <= room else f"{x:.0f}"


def computation_block(step: Step, tokens: Sequence[str], width: int, temperature: float, cursor: int) -> Text:
    """The step's scores, weights and context shares under its input tokens (the words
    around the cursor when they do not all fit), then the words that make most of the context."""
    out = Text(no_wrap=True, overflow="crop")
    t = f"e_tj / {temperature:g}" if temperature != 1 else "e_tj"
    out.append("Computation  ", style="bold")
    out.append(f"a_tj = softmax_j({t})   c_t = Σ_j a_tj h_j\n", style="dim")
    if step.scores is None or step.shares is None:
        out.append("recorded for greedy decoding only", style="dim")
        return out
    label = 7
    widths = cell_widths(tokens, width - label)
    start, stop = window(widths, cursor, width - label)
    rows = [
        ("", [t for t in tokens]),
        ("e_tj", [_score(float(x), w - 1) for x, w in zip(step.scores, widths)]),
        ("a_tj", [weight_text(float(x)) for x in step.attention]),
        ("share", [f"{x:.2f}"[1:] if 0 <= x < 0.995 else f"{x:.1f}" for x in step.shares]),
    ]
    for name, cells in rows:
        out.append(f"{name:<{label}}", style="bold")
        for j in range(start, stop):
            cell = cells[j][: widths[j] - 1]
            out.append(cell.rjust(widths[j] - 1) + " ", style="reverse" if j == cursor and not name else "")
        out.append("\n")
    order = np.argsort(-step.shares)
    parts, total = [], 0.0
    for j in order:
        if total >= 0.9 or len(parts) == 3:
            break
        parts.append(f"{100 * step.shares[j]:.0f}% “{tokens[j]}”")
        total += float(step.shares[j])
    out.append("context: ", style="bold")
    out.append(", ".join(parts) + (" …" if total < 0.9 else ""))
    return out


class StepView(Widget):
    """A decoding and which step is on screen; draws that step to fit its size. Greedy, a
    word cursor over the input marks where the step screen's interventions land; with
    interventions, `stepping` is the changed decoding and `original` the unchanged one, and
    the changes panel compares them; `computation` shows the step's scores in place of its
    next words."""

    DEFAULT_CSS = """
    StepView {
        height: 1fr;
        padding: 0 1;
    }
    """

    index: reactive[int] = reactive(0)
    cursor: reactive[int] = reactive(0)
    computation: reactive[bool] = reactive(False)

    def __init__(self, stepping: Stepping, **kwargs) -> None:
        super().__init__(**kwargs)
        self.original = self.stepping = stepping
        # the cursor stands on the word each step looks at most until it is moved by hand
        self.cursor_moved = False
        self.set_reactive(StepView.cursor, int(np.argmax(stepping.steps[0].attention)))

    def watch_index(self, index: int) -> None:
        if not self.cursor_moved:
            self.cursor = int(np.argmax(self.stepping.steps[index].attention))

    def show(self, stepping: Stepping) -> None:
        """Another decoding of the same sentence (changed, or the original again), at the
        same step where it has one."""
        self.stepping = stepping
        self.index = self.validate_index(self.index)
        self.refresh()

    def validate_index(self, index: int) -> int:
        return max(0, min(len(self.stepping.steps) - 1, index))

    def validate_cursor(self, cursor: int) -> int:
        return max(0, min(len(self.stepping.source), cursor))

    @property
    def step(self) -> Step:
        return self.stepping.steps[self.index]

    @property
    def changed(self) -> bool:
        return self.stepping is not self.original

    def render(self) -> Group:
        s, step = self.stepping, self.step
        width, height = max(20, self.size.width), max(10, self.size.height)
        final = self.index == len(s.steps) - 1
        greedy = s.beam == 1
        mode = "greedy" if greedy else f"beam {s.beam}: the leading hypothesis"
        head = Text()
        head.append(f"Step {self.index + 1} of {len(s.steps)}", style="bold")
        head.append(f"   {mode}   attention over the input:", style="dim")
        if s.edits.temperature != 1:
            head.append(f"   T = {s.edits.temperature:g}", style="bold color(214)")
        copied = s.source.index(step.copied) if step.copied in s.source else None
        cursor = self.cursor if greedy else None
        parts = [
            head,
            bar_row(step.attention, s.source_tokens, width, copied, cursor, marks_at(s.edits, self.index)),
            Text(),
            output_line(step, final and not self.changed, s.output),
            chosen_line(step, s),
        ]
        if self.changed:
            parts.append(changes_block(self.original, s, self.index, width))
        parts.append(Text())
        if greedy:
            if self.computation:
                parts.append(computation_block(step, s.source_tokens, width, s.edits.temperature, self.cursor))
            else:
                parts.append(top_table(step, width))
            return Group(*parts)
        used = 1 + BAR_ROWS + 2 + 1 + 2 + (1 if final else 0) + 1
        right = max(24, width - 36)
        grid = Table.grid(padding=(0, 2))
        grid.add_column(width=width - right - 2)
        grid.add_column(width=right)
        grid.add_row(top_table(step, width - right - 2), hypotheses_table(step, s.beam, right, height - used))
        parts.append(grid)
        return Group(*parts)
