"""`reverse-tui probe` with interventions, --json or --export: the flags read into the
engine's Edits (engine/insight/interventions.py), both decodings printed (original and
changed, whether each is the reversal), as text or JSON, and the attention matrix written.
Every mistake in a flag is a ValueError with one line for the user."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from engine.insight.evaluate import SentenceResult
from engine.insight.export import export_format, write_attention
from engine.insight.interventions import Edits, Force, Knockout, Pin, differing
from engine.insight.stepper import Stepping


def _count(text: str, flag: str, what: str) -> int:
    """A position or step typed from 1, 0-based."""
    try:
        k = int(text)
    except ValueError:
        raise ValueError(f"{flag}: {what} must be a whole number counted from 1, got {text!r}") from None
    if k < 1:
        raise ValueError(f"{flag}: {what} counts from 1, got {k}")
    return k - 1


def edits_from(args: argparse.Namespace) -> Edits:
    """--knockout I[@T], --pin T:I, --force T:WORD and --temperature X as Edits."""
    edits = Edits()
    if args.temperature is not None:
        try:
            edits = edits.with_temperature(float(args.temperature))
        except ValueError:
            raise ValueError(f"--temperature {args.temperature}: expected a number above 0") from None
    changes = []
    for text in args.knockout:
        flag = f"--knockout {text}"
        where, _, step = text.partition("@")
        first = _count(step, flag, "the step T") if step else 0
        changes.append(Knockout(_count(where, flag, "the input position I"), first))
    for text in args.pin:
        flag = f"--pin {text}"
        step, sep, where = text.partition(":")
        if not sep:
            raise ValueError(f"{flag}: expected T:I, a step and an input position")
        changes.append(Pin(_count(step, flag, "the step T"), _count(where, flag, "the input position I")))
    for text in args.force:
        flag = f"--force {text}"
        step, sep, word = text.partition(":")
        if not sep or not word.strip():
            raise ValueError(f"{flag}: expected T:WORD, a step and a word")
        changes.append(Force(_count(step, flag, "the step T"), word))
    for change in changes:
        try:
            edits = edits.plus(change)
        except ValueError as e:
            raise ValueError(f"{_flag_of(change)}: {e}") from None
    return edits


def _flag_of(change) -> str:
    if isinstance(change, Knockout):
        return f"--knockout {change.position + 1}@{change.step + 1}"
    if isinstance(change, Pin):
        return f"--pin {change.step + 1}:{change.position + 1}"
    return f"--force {change.step + 1}:{change.word}"


def given(args: argparse.Namespace) -> bool:
    """Whether any intervention flag was given."""
    return bool(args.knockout or args.pin or args.force or args.temperature is not None)


def check_export(args: argparse.Namespace) -> None:
    if args.export is not None:
        try:
            export_format(args.export)
        except ValueError as e:
            raise ValueError(f"--export {e}") from None


def decoding_dict(s: Stepping) -> dict:
    """One decoding for --json: its output, whether it is the reversal, and every step."""
    return {
        "output": s.output,
        "reversal": s.match,
        "steps": [
            {
                "word": step.copied or step.chosen,
                "p": step.p,
                **({"forced": True} if step.forced else {}),
                "weights": [round(float(w), 6) for w in step.attention],
                **({"scores": [_finite(x) for x in step.scores]} if step.scores is not None else {}),
                **({"p_copy": step.copy} if step.copy is not None else {}),
            }
            for step in s.steps
        ],
    }


def _finite(x) -> float | None:
    x = float(x)
    return round(x, 6) if np.isfinite(x) else None


def json_text(original: Stepping, changed: Stepping | None, edits: Edits) -> str:
    body = {
        "input": original.source_tokens,
        "reversal": original.source[::-1],
        "decoding": "greedy" if original.beam == 1 else f"beam {original.beam}",
        "original": decoding_dict(original),
    }
    if changed is not None:
        body["changes"] = edits.lines(original.source_tokens)
        body["temperature"] = edits.temperature
        body["changed"] = decoding_dict(changed)
    return json.dumps(body, indent=1, ensure_ascii=False)


def json_text_of_result(r: SentenceResult, beam: int) -> str:
    """A beam's answer for --json: its words, whether it is the reversal, each step's weights."""
    steps = [{"word": w, "weights": [round(float(x), 6) for x in row]} for w, row in zip(r.output_tokens, r.attention)]
    body = {
        "input": r.source_tokens,
        "reversal": r.reference,
        "decoding": f"beam {beam}",
        "original": {"output": r.output, "reversal": r.match, "steps": steps},
    }
    return json.dumps(body, indent=1, ensure_ascii=False)


def verdict(s: Stepping) -> str:
    return "the reversal" if s.match else "not the reversal"


def compared_text(original: Stepping, changed: Stepping) -> str:
    """Both outputs, whether each is the reversal, the steps where they differ, the changes."""
    diff = [t + 1 for t, d in enumerate(differing(original.output, changed.output)) if d]
    if len(changed.output) < len(original.output):
        diff.append(len(changed.output) + 1)  # it ended where the original went on
    where = f"; differs at step{'s' if len(diff) > 1 else ''} {', '.join(map(str, diff))}" if diff else "; the same"
    lines = [
        f"original: {' '.join(original.output) or '(nothing)'}  ({verdict(original)})",
        f"changed:  {' '.join(changed.output) or '(nothing)'}  ({verdict(changed)}{where})",
    ]
    lines += [f"  {line}" for line in changed.edits.lines(original.source_tokens)]
    return "\n".join(lines)


def export(path: str, s: Stepping) -> Path:
    return write_attention(path, s.attention, s.source_tokens, s.output_tokens)
