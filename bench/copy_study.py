"""Does the copy mechanism (engine/model/copy.py) pay, on real texts the project was never tuned on
and on the built-in words?

    python bench/copy_study.py [--json bench/results/copy-study.json] [--only texts builtin]

texts:   the texts of bench/make_corpora.py, each trained as a user would, `reverse-tui
         --no-ui --corpus FILE` with no other flag (copy, joined and repeated-word sentences
         on). The three the recipe was settled on (licenses, pydoc: English; german) also
         without the joined sentences (--join 0), without the repeated-word sentences
         (--repeat-rate 0), with --no-copy, and with --unk-rate 0 (is the <unk>-rate trick
         still needed?); the two held out (french, spanish) at the defaults and --no-copy.
         --text-seeds: further seeds at the defaults only. Each is a whole run in a child
         process, timed by the wall clock: training, evaluation and files. Figures from its
         report.json, plus sentences of 2-3 repeated words of its vocabulary, 6-40 words
         (the joined sentences train to 40).
builtin: the default model on the built-in words, copy off (the default) and on (--copy), on
         three seeds: every figure report.json has, plus sentences of 2-3 repeated words, where
         only the position tells them apart, 6-40 words.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from make_corpora import HELD_OUT, SOURCES, make  # noqa: E402

from engine.insight.evaluate import evaluate  # noqa: E402
from engine.insight.lengths import made_up_words  # noqa: E402
from engine.train.checkpoint import load_model  # noqa: E402
from engine.train.data import SPECIALS  # noqa: E402

TEXT_VARIANTS = {
    "copy (default)": [],
    "copy, --join 0": ["--join", "0"],
    "copy, --repeat-rate 0": ["--repeat-rate", "0"],
    "--no-copy": ["--no-copy"],
    "copy, --unk-rate 0": ["--unk-rate", "0"],
}
HELD_OUT_VARIANTS = ("copy (default)", "--no-copy")
BUILTIN_VARIANTS = {"default (copy off)": [], "--copy": ["--copy"]}


def run_cli(flags: list[str], workdir: Path, name: str) -> tuple[dict, float, Path]:
    """One whole run as a user starts it; its report.json, wall seconds and checkpoint."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tui", "--no-ui", "--name", name, *flags],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"run {name} failed: {done.stderr.strip().splitlines()[-1:]}")
    report = json.loads((workdir / "runs" / name / "report.json").read_text())
    return report, seconds, workdir / "checkpoints" / name / "best.pt"


def repeated_word_sentences(words: list[str], lengths: range, per_length: int, seed: int) -> list[list[str]]:
    """Sentences of 2 or 3 distinct words, each drawn uniformly per position: only where a word
    sits tells its copies apart."""
    rng = random.Random(seed)
    out = []
    for n in lengths:
        for _ in range(per_length):
            pool = rng.sample(words, rng.choice([2, 3]))
            out.append([rng.choice(pool) for _ in range(n)])
    return out


def pooled(counts: dict[int, tuple[int, int]], a: int, b: int) -> float | None:
    """Exact match over every sentence of a-b words (None: none measured)."""
    c = [counts[n] for n in counts if a <= n <= b]
    return sum(x for x, _ in c) / sum(t for _, t in c) if c else None


def by_length(ev, bands: dict[str, tuple[int, int]]) -> dict:
    """An evaluation's exact match overall, pooled over each band of lengths, and per length."""
    by = {n: c / t for n, (c, t) in ev.counts.items()}
    return {
        "sentences": len(ev.results),
        "exact_match": ev.exact_match,
        **{name: pooled(ev.counts, a, b) for name, (a, b) in bands.items()},
        "lowest": min(by.values()),
        "lowest_at": min(by, key=by.get),
        "per_length": {str(n): v for n, v in sorted(by.items())},
    }


def repeated_words(checkpoint: Path, lengths: range, per_length: int = 40) -> dict:
    loaded = load_model(checkpoint)
    words = [w for w in loaded.vocab.itos if w not in SPECIALS]
    sents = repeated_word_sentences(words, lengths, per_length, 5)
    ev = evaluate(loaded.model, loaded.vocab, sents, torch.device("cpu"))
    return by_length(ev, {"6-12": (6, 12), "6-20": (6, 20), "21-40": (21, 40)})


def unknown_words(checkpoint: Path, lengths: range, per_length: int = 40) -> dict:
    """Sentences of made-up words (each reaches the model as <unk>) at every length: the
    report's sweep measures 41-50 and then every 25 words past a text's --join-len."""
    loaded = load_model(checkpoint)
    rng = random.Random(11)
    pool = made_up_words(loaded.vocab, rng)
    sents = [rng.choices(pool, k=n) for n in lengths for _ in range(per_length)]
    ev = evaluate(loaded.model, loaded.vocab, sents, torch.device("cpu"))
    return by_length(ev, {"3-40": (3, 40), "41-60": (41, 60)})


def figures(report: dict, seconds: float) -> dict:
    unknown = {int(k): v for k, v in report["unknown_words_by_length"].items()}

    def band(curve: dict[int, float], a: int, b: int) -> float | None:
        vals = [v for n, v in curve.items() if a <= n <= b]
        return min(vals) if vals else None

    return {
        "whole_run_seconds": round(seconds, 1),
        "train_seconds": round(report["train_seconds"], 1),
        "test_exact_match": report["test_exact_match"],
        "test_sentences": report["test_sentences"],
        "unseen_words_exact_match": report["unseen_words_exact_match"],
        "every_word_unknown_min_3_40": band(unknown, 3, 40),
        "every_word_unknown_min_41_60": band(unknown, 41, 60),
        "every_word_unknown": report["unknown_words_by_length"],
        "known_beyond_training": report["beyond_training_lengths"],
        "copy": report["attention"].get("copy"),
        "vocabulary": None,
    }


def study_texts(corpora: Path, work: Path, seeds: list[int], only: list[str] | None = None) -> dict:
    rows = {}
    for seed in seeds:
        for text in SOURCES:
            path = corpora / f"{text}.txt"
            if not path.exists():
                make(text, corpora)
            variants = HELD_OUT_VARIANTS if text in HELD_OUT else TEXT_VARIANTS
            if seed != seeds[0]:
                variants = ("copy (default)",)
            variants = [v for v in variants if not only or v in only]
            for variant in variants:
                name = f"{text}-{len(rows)}"
                flags = ["--corpus", str(path), "--seed", str(seed), *TEXT_VARIANTS[variant]]
                report, seconds, ck = run_cli(flags, work, name)
                row = figures(report, seconds)
                row["repeated_words_6_40"] = r = repeated_words(ck, range(6, 41))
                row["unknown_words_3_60"] = u = unknown_words(ck, range(3, 61))
                row["vocabulary"] = len(load_model(ck).vocab)
                held = " (held out)" if text in HELD_OUT else ""
                rows[f"{text}{held}: {variant}" + (f", seed {seed}" if seed != 42 else "")] = row
                print(
                    f"seed {seed} {text:9} {variant:22} test {row['test_exact_match']:.2%}  {seconds:5.1f} s  "
                    f"repeated 6-40 {r['exact_match']:.2%} (6-12 {r['6-12']:.2%}, 21-40 {r['21-40']:.2%})  "
                    f"unknown 3-40 {u['3-40']:.2%} 41-60 {u['41-60']:.2%}",
                    flush=True,
                )
    return rows


def study_builtin(seeds: list[int], work: Path) -> dict:
    rows = {}
    for seed in seeds:
        for variant, flags in BUILTIN_VARIANTS.items():
            name = f"builtin-{seed}-{len(rows)}"
            report, seconds, ck = run_cli(["--seed", str(seed), *flags], work, name)
            row = figures(report, seconds)
            row["per_length"] = report["per_length"]
            row["repeated_words_6_40"] = repeated_words(ck, range(6, 41))
            rows[f"seed {seed}: {variant}"] = row
            r = row["repeated_words_6_40"]
            print(
                f"seed {seed} {variant:20} test {row['test_exact_match']:.2%}  {seconds:5.1f} s  "
                f"unknown<=40 {row['every_word_unknown_min_3_40']} 41-60 {row['every_word_unknown_min_41_60']}  "
                f"repeated 6-20 {r['6-20']:.2%} 21-40 {r['21-40']:.2%}",
                flush=True,
            )
    return rows


def load_note() -> str:
    load = os.getloadavg()
    return (
        f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} (1/5/15 min) on {os.cpu_count()} cores "
        "when the study ended: the timings were taken with other jobs running on this shared machine "
        "unless that is under 1; the exact-match figures do not depend on load"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", type=Path)
    p.add_argument("--only", nargs="*", choices=["texts", "builtin"])
    p.add_argument("--seeds", type=int, nargs="*", default=[42, 43, 44], help="the built-in model's seeds")
    p.add_argument(
        "--text-seeds", type=int, nargs="*", default=[42], help="the texts' seeds: every variant on the first"
    )
    p.add_argument(
        "--variants", nargs="*", choices=list(TEXT_VARIANTS), help="only these rows of the texts, merged into --json's"
    )
    p.add_argument("--corpora", type=Path, help="where the texts are (made there if missing; default a temp dir)")
    args = p.parse_args()
    parts = args.only or ["texts", "builtin"]
    out: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores, torch {torch.__version__}",
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        corpora = args.corpora or work / "corpora"
        if "texts" in parts:
            out["texts"] = study_texts(corpora, work, args.text_seeds, args.variants)
        if "builtin" in parts:
            out["builtin"] = study_builtin(args.seeds, work)
    out["timing_note"] = load_note()
    if args.json:
        old = json.loads(args.json.read_text()) if args.json.exists() else {}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(f".{args.json.name}.tmp")
        if args.variants and "texts" in out:  # a few rows rerun: the others stay, in their order
            out["texts"] = {**old.get("texts", {}), **out["texts"]}
        tmp.write_text(json.dumps({**old, **out}, indent=1) + "\n")
        tmp.replace(args.json)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
