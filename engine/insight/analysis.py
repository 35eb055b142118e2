"""Statistics of the attention the model actually produced, and the written answers to the
notebook's four questions built from them. Every sentence of the text carries a measured
number or is chosen by one: nothing here is printed whatever the model learned.

Conventions: a sentence has n words; the encoder sees n + 1 tokens (the words, then EOS).
Output step t (0-based) of a correct reversal emits word n-1-t, its "mirrored" position.
Offsets are peak position minus mirrored position: +1 is the mirrored word's right-hand
neighbour (for the first step, that is the EOS token).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from .evaluate import SentenceResult
from .faithfulness import faithfulness_text
from .lengths import LengthCurve, describe_limit

# each score as the analysis names it, and its formula (engine/model/seq2seq.py, Attention.score)
SCORE_WORDS = {
    "additive": ("additive (Bahdanau)", "v · tanh(W_h h_j + W_s s)"),
    "general": ("general (Luong)", "s · W h_j"),
    "dot": ("dot (Luong)", "s · h_j"),
    "scaled-dot": ("scaled dot-product", "(W_q s) · (W_k h_j) / √d"),
    "shift": ("shift (location addressing)", "sharpen(shift(g · softmax(additive) + (1 - g) · w_{t-1}))"),
}


def attention_variant(cfg, formula: bool = True) -> str:
    """The attention a configuration trains, in words: its score (with its formula), then what
    adds to it."""
    if not cfg.attention:
        return "none: the control's uniform weights (a fixed mean context)"
    score = getattr(cfg, "score", "additive")
    name, maths = SCORE_WORDS[score]
    text = f"{name} score" + (f", {maths}" if formula else "")
    if formula and score == "dot" and cfg.bidirectional:
        text += " with h_j's two directions summed"
    extras = [f"the location term (kernel {cfg.location_kernel})"] if cfg.location_kernel else []
    extras += ["coverage"] if getattr(cfg, "coverage", False) else []
    extras += ["the copy mechanism"] if cfg.copy_on else []
    return text + (f"; with {', '.join(extras)}" if extras else "")


def attention_stats(results: Sequence[SentenceResult]) -> dict:
    """Measure the attention over word steps (t < n) and the EOS step (t = n)."""
    word_steps = 0
    hits = 0
    w_mirror, w_right, w_left, w_eos_col = [], [], [], []
    ent_ratio = []
    offsets: Counter = Counter()
    first_last_word, first_eos, first_hit = [], [], 0
    last_first_word, last_hit = [], 0
    eos_step_on_eos, eos_step_on_first, eos_step_max = [], [], []
    eos_step_argmax: Counter = Counter()
    by_len = defaultdict(
        lambda: {
            "steps": 0,
            "hits": 0,
            "w": 0.0,
            "ent": 0.0,
            "correct": 0,
            "n": 0,
            "short": 0,
            "long": 0,
            "wrong_word": 0,
        }
    )
    all_peaked, all_peaked_correct, not_peaked, not_peaked_correct = 0, 0, 0, 0

    for r in results:
        n, A = len(r.source), r.attention
        L = by_len[n]
        L["n"] += 1
        L["correct"] += r.match
        if not r.match:  # how it failed: stopped early, ran on, or the right length with a wrong word
            L["short" if len(r.output) < n else "long" if len(r.output) > n else "wrong_word"] += 1
        k = min(n, A.shape[0])  # word steps: step t should peak on word m = n-1-t
        if k:
            rows, t = A[:k], np.arange(k)
            m = n - 1 - t
            peaks = rows.argmax(axis=1)
            hit = peaks == m
            word_steps += k
            hits += int(hit.sum())
            offsets.update((peaks - m).tolist())
            w_mirror.extend(rows[t, m].tolist())
            w_right.extend(rows[t, m + 1].tolist())  # m + 1 <= n always exists (EOS column at n)
            w_left.extend(rows[t[m >= 1], m[m >= 1] - 1].tolist())
            w_eos_col.extend(rows[:, n].tolist())
            plogp = np.where(rows > 0, rows * np.log(np.where(rows > 0, rows, 1)), 0.0)
            ratio = -plogp.sum(axis=1) / math.log(n + 1)
            ent_ratio.extend(ratio.tolist())
            L["steps"] += k
            L["hits"] += int(hit.sum())
            L["w"] += float(rows[t, m].sum())
            L["ent"] += float(ratio.sum())
            first_last_word.append(rows[0, n - 1])
            first_eos.append(rows[0, n])
            first_hit += bool(hit[0])
            if k == n:
                last_first_word.append(rows[n - 1, 0])
                last_hit += bool(hit[n - 1])
        sentence_all_hit = bool(hit.all()) if k else True
        if A.shape[0] > n:  # the step that should emit EOS
            row = A[n]
            eos_step_on_eos.append(row[n])
            eos_step_on_first.append(row[0])
            eos_step_max.append(row.max())
            p = int(row.argmax())
            eos_step_argmax["eos" if p == n else "first word" if p == 0 else "other"] += 1
        if sentence_all_hit:
            all_peaked += 1
            all_peaked_correct += r.match
        else:
            not_peaked += 1
            not_peaked_correct += r.match

    def mean(xs) -> float:
        return float(np.mean(xs)) if len(xs) else float("nan")

    off_total = sum(offsets.values()) or 1
    n_eos = sum(eos_step_argmax.values()) or 1
    return {
        "copy": copy_stats(results),
        "sentences": len(results),
        "word_steps": word_steps,
        "exact_match": mean([r.match for r in results]),
        "mirror_peak_rate": hits / max(1, word_steps),
        "mirror_weight_mean": mean(w_mirror),
        "right_neighbour_weight_mean": mean(w_right),
        "left_neighbour_weight_mean": mean(w_left),
        "eos_column_weight_mean": mean(w_eos_col),
        "entropy_ratio_mean": mean(ent_ratio),  # 0 = one-hot, 1 = uniform over n + 1 tokens
        "peak_offsets": {str(k): v / off_total for k, v in sorted(offsets.items())},
        "first_step": {
            "mirror_peak_rate": first_hit / max(1, len(first_last_word)),
            "weight_last_word": mean(first_last_word),
            "weight_eos": mean(first_eos),
        },
        "last_word_step": {
            "mirror_peak_rate": last_hit / max(1, len(last_first_word)),
            "weight_first_word": mean(last_first_word),
        },
        "eos_step": {
            "count": len(eos_step_on_eos),
            "weight_eos": mean(eos_step_on_eos),
            "weight_first_word": mean(eos_step_on_first),
            "peak_weight": mean(eos_step_max),
            "peak_at": {k: v / n_eos for k, v in eos_step_argmax.items()},
        },
        "all_steps_peaked": {
            "sentences": all_peaked,
            "exact_match": all_peaked_correct / all_peaked if all_peaked else None,
        },
        "some_step_missed": {
            "sentences": not_peaked,
            "exact_match": not_peaked_correct / not_peaked if not_peaked else None,
        },
        "by_length": {
            n: {
                "sentences": v["n"],
                "exact_match": v["correct"] / v["n"],
                "mirror_peak_rate": v["hits"] / max(1, v["steps"]),
                "mirror_weight_mean": v["w"] / max(1, v["steps"]),
                "entropy_ratio_mean": v["ent"] / max(1, v["steps"]),
                "errors": {"stopped_early": v["short"], "ran_on": v["long"], "wrong_word": v["wrong_word"]},
            }
            for n, v in sorted(by_len.items())
        },
    }


def _counts_text(counts: dict[int, tuple[int, int]]) -> str:
    """'100 sentences per length up to 60 words, 50 beyond': how many each length measured."""
    runs: list[tuple[int, int, int]] = []  # (sentences, first length, last length)
    for n, (_, total) in sorted(counts.items()):
        if runs and runs[-1][0] == total:
            runs[-1] = (total, runs[-1][1], n)
        else:
            runs.append((total, n, n))
    if len(runs) == 1:
        return f"{runs[0][0]} sentence{'s' if runs[0][0] != 1 else ''} per length"
    return "sentences per length: " + ", ".join(
        f"{t} at {a}" + (f"-{b}" if b != a else "") + " words" for t, a, b in runs
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _cell(per_length: dict, n: int, not_measured: list[int]) -> str:
    """A length's exact match; "not decoded" past where that kind of sentence was lost."""
    return "not decoded" if n in not_measured and n not in per_length else _pct(per_length.get(n))


def _first_break(errs: dict) -> str:
    counting = errs["stopped_early"] + errs["ran_on"] > errs["wrong_word"]
    return "losing count of the words" if counting else "blurred reading of a word"


def _mean_of(by_len: dict, lengths: list[int], key: str) -> float:
    return float(np.mean([by_len[n][key] for n in lengths]))


def _peakedness(entropy_ratio: float) -> str:
    return "sharply peaked" if entropy_ratio < 0.2 else "moderately peaked" if entropy_ratio < 0.5 else "diffuse"


def _degree(rate: float) -> str:
    if rate >= 0.99:
        return "at virtually every step"
    if rate >= 0.9:
        return "at most steps"
    if rate >= 0.5:
        return "at a majority of steps"
    return "at only a minority of steps"


def copy_stats(results: Sequence[SentenceResult]) -> dict | None:
    """How often the copy mechanism copies: p_copy (engine/model/copy.py) over every output step,
    over the word steps (t < n) and the EOS step alone; None for a model without it."""
    gates = [r for r in results if r.copy is not None]
    if not gates:
        return None
    every = np.concatenate([np.asarray(r.copy, dtype=float) for r in gates])
    words = np.concatenate([np.asarray(r.copy[: len(r.source)], dtype=float) for r in gates])
    ends = np.asarray([r.copy[len(r.source)] for r in gates if len(r.copy) > len(r.source)], dtype=float)

    def share(x: np.ndarray) -> float | None:
        return float((x > 0.5).mean()) if len(x) else None

    return {
        "steps": int(len(every)),
        "p_copy_mean": float(every.mean()) if len(every) else None,
        "copy_dominates": share(every),  # share of steps with p_copy > 0.5
        "word_steps": {"p_copy_mean": float(words.mean()) if len(words) else None, "copy_dominates": share(words)},
        "eos_step": {"p_copy_mean": float(ends.mean()) if len(ends) else None, "copy_dominates": share(ends)},
    }


def copy_lines(c: dict | None) -> list[str]:
    """The copy mechanism's paragraph: how much of the output was copied rather than generated."""
    if not c or not c["steps"]:
        return []
    w, e = c["word_steps"], c["eos_step"]
    text = (
        f"The copy mechanism: over {c['steps']} output steps the gate gives copying a mean weight "
        f"p_copy = {c['p_copy_mean']:.3f}, and copying outweighs generating (p_copy > 0.5) at "
        f"{_pct(c['copy_dominates'])} of steps"
    )
    if w["p_copy_mean"] is not None:
        text += f"; on word steps {w['p_copy_mean']:.3f} ({_pct(w['copy_dominates'])} copied)"
    if e["p_copy_mean"] is not None:
        text += f", on the EOS step {e['p_copy_mean']:.3f} ({_pct(e['copy_dominates'])} copied)"
    lean = "copies" if c["copy_dominates"] >= 0.5 else "generates"
    return [text + f". The model mostly {lean} its words.", ""]


def write_analysis(
    stats: dict,
    uniform_exact_match: float | None = None,
    train_range: tuple[int, int] | None = None,
    beyond: dict | None = None,
    unseen: dict | None = None,
    control: dict | None = None,
    per_length: dict[int, float] | None = None,
    has_attention: bool = True,
    known: LengthCurve | None = None,
    unknown: LengthCurve | None = None,
    variant: str | None = None,
    faithfulness: dict | None = None,
) -> str:
    """The analysis as Markdown, every claim computed from `stats`, the same for every attention
    variant; `variant`: the attention it measured, in words (attention_variant)."""
    s = stats
    off = {int(k): v for k, v in s["peak_offsets"].items()}
    right, left = off.get(1, 0.0), off.get(-1, 0.0)
    misses = 1 - s["mirror_peak_rate"]
    by_len = s["by_length"]
    lengths = sorted(by_len)
    short, long_ = lengths[0], lengths[-1]
    sharp_short = by_len[short]["entropy_ratio_mean"]
    sharp_long = by_len[long_]["entropy_ratio_mean"]
    fs, ls, es = s["first_step"], s["last_word_step"], s["eos_step"]
    lines = [
        "# Attention analysis",
        "",
        f"Measured on {s['sentences']} test sentences ({s['word_steps']} output word steps, "
        f"exact match {_pct(s['exact_match'])}); output step t of an n-word sentence reads best "
        "from input word n−1−t, its *mirrored* position.",
        "",
    ]
    if variant:
        lines += [f"Attention: {variant}.", ""]

    lines += [
        "## 1. What patterns do the attention weights show?",
        "",
        f"The most-attended input position is the mirrored one {_degree(s['mirror_peak_rate'])} "
        f"({_pct(s['mirror_peak_rate'])} of word steps), so the weights form "
        f"{'an anti-diagonal' if s['mirror_peak_rate'] >= 0.5 else 'no consistent anti-diagonal'} "
        f"in the heatmap. The mirrored word receives a mean weight of {s['mirror_weight_mean']:.3f}; "
        f"its right-hand neighbour {s['right_neighbour_weight_mean']:.3f} and its left-hand neighbour "
        f"{s['left_neighbour_weight_mean']:.3f}.",
        f"The mean attention entropy is {s['entropy_ratio_mean']:.3f} of a uniform spread's "
        f"({_peakedness(s['entropy_ratio_mean'])}).",
        "",
    ]
    if misses > 0:
        side = "the right-hand neighbour (+1)" if right >= left else "the left-hand neighbour (−1)"
        lines += [
            f"Where the peak is not on the mirrored word ({_pct(misses)} of steps), it falls on "
            f"{side} in {_pct(max(right, left) / misses)} of those cases "
            f"(+1: {_pct(right)} of all steps, −1: {_pct(left)}).",
            "",
        ]

    lines += [
        "## 2. Does attention align input and output tokens correctly?",
        "",
        f"Sentences whose every output step peaked on its mirrored word: {s['all_steps_peaked']['sentences']}, "
        f"exact match {_pct(s['all_steps_peaked']['exact_match'])}. Sentences with at least one step "
        f"peaking elsewhere: {s['some_step_missed']['sentences']}, exact match "
        f"{_pct(s['some_step_missed']['exact_match'])}.",
        "",
        "| length | sentences | exact match | peak on mirror | weight on mirror | entropy / uniform |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for n in lengths:
        v = by_len[n]
        lines.append(
            f"| {n} | {v['sentences']} | {_pct(v['exact_match'])} | {_pct(v['mirror_peak_rate'])} "
            f"| {v['mirror_weight_mean']:.3f} | {v['entropy_ratio_mean']:.3f} |"
        )
    lines.append("")
    if train_range:
        outside = [n for n in lengths if not train_range[0] <= n <= train_range[1]]
        if outside:
            lines += [
                f"Lengths {outside[0]}–{outside[-1]} lie outside training ({train_range[0]}–{train_range[1]}); "
                f"there the peak sits on the mirror at {_pct(_mean_of(by_len, outside, 'mirror_peak_rate'))} "
                f"of steps and exact match is {_pct(_mean_of(by_len, outside, 'exact_match'))}.",
                "",
            ]

    if beyond:
        bl = beyond["by_length"]
        lines += [
            f"Beyond the training lengths ({len(bl)} lengths, {beyond['sentences']} new sentences):",
            "",
            "| length | sentences | exact match | peak on mirror | weight on mirror | entropy / uniform |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for n, v in bl.items():
            lines.append(
                f"| {n} | {v['sentences']} | {_pct(v['exact_match'])} | {_pct(v['mirror_peak_rate'])} "
                f"| {v['mirror_weight_mean']:.3f} | {v['entropy_ratio_mean']:.3f} |"
            )
        broken = [n for n, v in bl.items() if v["exact_match"] < 0.5]
        errs = {k: sum(v["errors"][k] for v in bl.values()) for k in ("stopped_early", "ran_on", "wrong_word")}
        n_err = sum(errs.values())
        lines += [
            "",
            (
                f"Exact match first falls below 50% at length {broken[0]}, where the peak is on the "
                f"mirror at {_pct(bl[broken[0]]['mirror_peak_rate'])} of steps."
                if broken
                else f"Exact match stays at or above 50% up to length {max(bl)} "
                f"(lowest {_pct(min(v['exact_match'] for v in bl.values()))})."
            ),
            "",
        ]
        if n_err:
            lines += [
                f"Of the {n_err} wrong answers there, {errs['stopped_early']} stopped early, "
                f"{errs['ran_on']} ran on past the last word and {errs['wrong_word']} had the right length "
                f"with a wrong word: {_first_break(errs)} "
                "is what breaks first.",
                "",
            ]

    if known is not None and unknown is not None:
        k, u = {**(per_length or {}), **known.per_length}, unknown.per_length  # known: the test set, then beyond
        lines += [
            "How far it goes, on words it knows and on words it never saw (every word <unk>, "
            "copied back through the attention), greedy decoding; known words: "
            f"{_counts_text(known.evaluation.counts)} (at the training lengths: the test set); every word "
            f"unknown: {_counts_text(unknown.evaluation.counts)} (every such sentence of n words is the same "
            "input to the model, n <unk>, so one of distinct words answers for all):",
            "",
            "| length | known words | every word unknown |",
            "|---:|---:|---:|",
        ]
        for n in sorted(set(k) | set(u) | set(known.not_measured) | set(unknown.not_measured)):
            lines.append(f"| {n} | {_cell(k, n, known.not_measured)} | {_cell(u, n, unknown.not_measured)} |")
        lines += [
            "",
            describe_limit(known, "Known words past the training lengths"),
            describe_limit(unknown, "Every word unknown"),
            "",
        ]

    lines += ["## 3. How does attention help the model reverse sequences?", ""]
    if not has_attention:
        lines += [
            f"This model was trained without attention (a fixed mean context); it reaches "
            f"{_pct(s['exact_match'])} exact match on the test set.",
            "",
        ]
    if control and per_length:
        lines += [
            f"A control model trained the same way but with a fixed context (the mean of the encoder "
            f"outputs) in place of attention reaches {_pct(control['test_exact_match'])} on the test set, "
            f"against {_pct(s['exact_match'])} with attention:",
            "",
            "| length | with attention | without attention |",
            "|---:|---:|---:|",
        ]
        for n in sorted(per_length):
            lines.append(f"| {n} | {_pct(per_length[n])} | {_pct(control['per_length'].get(n))} |")
        lines.append("")
    if uniform_exact_match is not None and has_attention:
        lines += [
            f"Replacing the learned weights with a uniform spread over the input at test time "
            f"(same model, same decoder) changes exact match from {_pct(s['exact_match'])} to "
            f"{_pct(uniform_exact_match)}: the decoder "
            f"{'depends on' if uniform_exact_match < s['exact_match'] - 0.05 else 'barely relies on'} "
            "the attention to fetch each word.",
            "",
        ]
    if faithfulness:
        lines += [faithfulness_text(faithfulness), ""]
        cf = (control or {}).get("faithfulness")
        if cf and cf.get("top_knockout_changes") is not None:
            lines += [
                f"The no-attention control, measured the same way: {_pct(cf['top_knockout_changes'])} for the "
                f"“most attended” word (its weights are all equal), {_pct(cf['random_knockout_changes'])} for "
                f"a random one; a pin moves its word in {_pct(cf['pin_emits'])} of steps.",
                "",
            ]
    lines += copy_lines(s.get("copy"))
    lines += [
        f"With {s['mirror_weight_mean']:.3f} of the weight on the mirrored word on average, the "
        "context vector is "
        + ("close to a copy of that one word." if s["mirror_weight_mean"] > 0.8 else "a blend of several words.")
    ]
    if unseen:
        lines += [
            f"Sentences with one to three words the model never saw: exact match "
            f"{_pct(unseen['with_replacement'])} when each emitted <unk> is replaced by the source word "
            f"the attention peaked on, {_pct(unseen['without_replacement'])} without that replacement"
            + (
                " — the attention points at the right word even when the word itself is unknown."
                if unseen["with_replacement"] > unseen["without_replacement"] + 0.1
                else "."
            )
        ]
    lines += [""]

    lines += [
        "## 4. What happens at the beginning and end of sequences?",
        "",
        f"First output step: the peak is on the last input word in {_pct(fs['mirror_peak_rate'])} of sentences, "
        f"which gets a mean weight of {fs['weight_last_word']:.3f}; "
        f"the EOS token next to it gets {fs['weight_eos']:.3f}.",
        f"Last word step: the peak is on the first input word in {_pct(ls['mirror_peak_rate'])} of sentences, "
        f"with mean weight {ls['weight_first_word']:.3f}.",
    ]
    if es["count"]:
        where = max(es["peak_at"], key=es["peak_at"].get)
        lines.append(
            f"The step that emits EOS ({es['count']} sentences) peaks on the "
            f"{'EOS token' if where == 'eos' else where} in {_pct(es['peak_at'][where])} of them, "
            f"with mean peak weight {es['peak_weight']:.3f} "
            f"(weight on the EOS token {es['weight_eos']:.3f}, on the first word {es['weight_first_word']:.3f})."
        )
    lines.append(f"Across word steps the EOS token takes a mean weight of {s['eos_column_weight_mean']:.3f}.")
    lines += [
        "",
        f"Attention is {'sharper' if sharp_short < sharp_long else 'no sharper'} for short sentences than long ones: "
        f"entropy ratio {sharp_short:.3f} at length {short} against {sharp_long:.3f} at length {long_}.",
        "",
    ]
    return "\n".join(lines)
