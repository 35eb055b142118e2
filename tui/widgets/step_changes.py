"""The step-through's panel of changes (widgets/step_view.py draws it): each intervention in
words, the original and the changed output side by side (the words that differ marked), and
at the step on screen how likely the original's word is now against before. Every figure
comes from the decodings (engine/insight/stepper.py); nothing is recomputed here."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text

from engine.insight.interventions import Edits, Knockout, Pin, differing
from engine.insight.stepper import Step, Stepping

CHANGED = "bold color(214)"  # a word that differs from the original's
KNOCKED, PINNED = "✗", "●"


def marks_at(edits: Edits, index: int) -> dict[int, str]:
    """The input tokens changed at step `index`: ✗ knocked out, ● pinned on."""
    marks = {c.position: KNOCKED for c in edits.changes if isinstance(c, Knockout) and c.step <= index}
    marks.update({c.position: PINNED for c in edits.changes if isinstance(c, Pin) and c.step == index})
    return marks


def words_line(label: str, words: Sequence[str], marked: Sequence[bool], focus: int, width: int) -> Text:
    """`label` then the words on one line; the marked ones in orange, the word at `focus`
    underlined; too long, the words around `focus` with "…" for those cut."""
    room = width - len(label)
    start, stop = focus, focus + 1 if focus < len(words) else focus
    start = min(start, len(words))

    def used(a: int, b: int) -> int:
        return sum(len(w) + 1 for w in words[a:b]) + (2 if a else 0) + (2 if b < len(words) else 0)

    while True:  # grow to the right, then the left, a word at a time
        grew = False
        if stop < len(words) and used(start, stop + 1) <= room:
            stop, grew = stop + 1, True
        if start > 0 and used(start - 1, stop) <= room:
            start, grew = start - 1, True
        if not grew:
            break
    out = Text(label, style="bold", no_wrap=True, overflow="crop")
    if start:
        out.append("… ", style="dim")
    for j in range(start, stop):
        style = (CHANGED if marked[j] else "") + (" underline" if j == focus else "")
        out.append(words[j], style=style.strip())
        out.append(" ")
    if stop < len(words):
        out.append("…", style="dim")
    if not words:
        out.append("(nothing)", style="dim")
    return out


def changes_block(original: Stepping, changed: Stepping, index: int, width: int) -> Text:
    """The changes (one line, the newest last), both outputs, the step's word before and after."""
    out = Text(no_wrap=True, overflow="ellipsis")
    lines = changed.edits.lines(original.source_tokens)
    head = f"Changes ({len(lines)}, u undo, c clear): "
    out.append(head, style="bold")
    shown: list[str] = []  # the newest that fit, in their order
    for k in range(len(lines) - 1, -1, -1):
        item = f"{k + 1} {lines[k]}"
        if shown and len(head) + 2 + len(" · ".join([item, *shown])) > width:
            break
        shown.insert(0, item)
    cut = len(shown) < len(lines)
    out.append(("… " if cut else "") + " · ".join(shown))
    out.append("\n")
    was = original.output
    now = changed.output
    room = width - len("  not the reversal")
    out.append_text(words_line("Original: ", was, [False] * len(was), index, room))
    out.append(f"  {'the reversal' if original.match else 'not the reversal'}", style="dim")
    out.append("\n")
    out.append_text(words_line("Changed:  ", now, differing(was, now), index, room))
    out.append(
        f"  {'the reversal' if changed.match else 'not the reversal'}",
        style="bold green" if changed.match else "bold red",
    )
    out.append("\n")
    out.append_text(probability_line(original, changed.steps[index], index))
    return out


def probability_line(original: Stepping, step: Step, index: int) -> Text:
    """The original's word at this step: its probability before the changes and now."""
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(f"Step {index + 1}: ", style="bold")
    if index >= len(original.steps) or step.was is None or step.p_was is None or original.steps[index].p is None:
        out.append("the original decoding had ended before this step", style="dim")
        return out
    before = original.steps[index]
    out.append(f"“{step.was}” p {before.p:.3f} before, ")
    out.append(f"{step.p_was:.3f} now", style="bold" if abs(step.p_was - before.p) > 0.05 else "")
    shown = step.copied or step.chosen
    if shown != step.was:
        out.append(f"; now “{shown}” p {step.p:.3f}", style=CHANGED)
    return out
