"""Which default reverses long sentences, known words and unknown words alike?

    OMP_NUM_THREADS=1 python bench/length_study.py [--only NAME ...] [--seeds 42 1 2]
        [--per-bucket 100] [--json bench/results/length-study.json] [--raw /tmp/length-raw.json]
    python bench/length_study.py --summarise-from RAW.json [--json bench/results/length-study.json]

For each candidate configuration: train on the built-in corpus (timed: the Trainer alone,
one thread), load the best checkpoint as the app does, then greedy-decode fixed test sets
(seeded independently of the candidate) in length buckets 3-10, 11-20, 21-40, 41-60 of
four kinds:
  known    words drawn uniformly from the built-in vocabulary (engine.train.data.WORDS)
  unknown  every word made up ("w48213"), so every source token is <unk> and the output
           relies on <unk> replacement by the attention's peak (engine.insight.exact_match.output_words)
  mixed    a known sentence with 1-3 words swapped for made-up ones
  most     each word made up with probability 0.7 (typed English: mostly unseen words)
Failures are classed: `short` (stopped early), `long` (ran on; `budget` = never emitted EOS),
`wrong` (same length, a wrong word). Also the exact match on the seed's 3-10 test split.
Results are merged into the JSON files after every candidate, so partial runs survive:
  --json  the summary (committed): per run its base defaults, overrides, training seconds,
          the 3-10 test exact match, the goals met, and a row per length bucket with each
          kind's exact match, the sentences decoded and the failure classes seen
  --raw   only when given (not committed): the full rows as well, with every epoch's losses,
          the per-length counts and one failing 41-60 example per kind
--summarise-from reads a file of full rows (a --raw file, or the committed file before it
became a summary: `git show 1c37fe5:bench/results/length-study.json`) into the summary,
without training anything.

A candidate is a name in CANDIDATES or an ad-hoc spec, "epochs=10,max_len=30,lr=0.005".
Prototypes (not in the engine; spec keys), for that candidate only:
  unk_sentences=p     a share p of each batch's sentences shown entirely as <unk>
  marker=1            source [SOS] w1..wn [EOS]: EOS becomes "copy the start marker"
  no_eos=1            with marker=1: no EOS after the source words
  eos_from_context=1  the EOS logit reads only the attention context, not the decoder state
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import engine.train.trainer as train_mod  # noqa: E402
from engine.insight.evaluate import EvalResult, SentenceResult, evaluate  # noqa: E402
from engine.train.checkpoint import load_model  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.data import EOS, PAD, SOS, UNK, Batch, PairDataset, builtin_splits, random_sentences  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

BUCKETS = [(3, 10), (11, 20), (21, 40), (41, 60)]
KINDS = ["known", "unknown", "mixed", "most"]
GOALS = {(3, 10): 0.995, (11, 20): 0.995, (21, 40): 0.98, (41, 60): 0.90}  # 3-20 >= 99.5%

# name -> (Config overrides, prototype options)
CANDIDATES: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    # the study's recommendation (JSON rows: "unk_rate=0.3,epochs=10,max_len=30,train_size=3000,lr=0.005")
    "recommended": (dict(max_len=30, train_size=3000, epochs=10, lr=0.005, unk_rate=0.3), {}),
    "uni": (dict(bidirectional=False), {}),
    "uni-unk0.3": (dict(bidirectional=False, unk_rate=0.3), {}),
    "bi-unk0.3": (dict(unk_rate=0.3), {}),
    "uni-unk0.3-len3-20": (dict(bidirectional=False, unk_rate=0.3, max_len=20, train_size=5000), {}),
    "bi-unk0.3-len3-20": (dict(unk_rate=0.3, max_len=20, train_size=5000), {}),
    "uni-unk0.3-e3": (dict(bidirectional=False, unk_rate=0.3, epochs=3), {}),
    "uni-unk0.5": (dict(bidirectional=False, unk_rate=0.5), {}),
    "uni-unk0.3-allunk0.1": (dict(bidirectional=False, unk_rate=0.3), dict(unk_sentences=0.1)),
    "uni-unk0.3-len3-30": (dict(bidirectional=False, unk_rate=0.3, max_len=30, train_size=3500), {}),
    "uni-unk0.3-k3": (dict(bidirectional=False, unk_rate=0.3, location_kernel=3), {}),
    "uni-unk0.3-h96": (dict(bidirectional=False, unk_rate=0.3, hidden_dim=96), {}),
}


def made_up(rng: random.Random) -> str:
    return f"w{rng.randrange(10**6)}"


def test_sets(per_bucket: int) -> dict[str, dict[str, list[list[str]]]]:
    """kind -> bucket name -> sentences; lengths uniform in the bucket; fixed seed."""
    rng = random.Random(1234)
    out: dict[str, dict[str, list[list[str]]]] = {k: {} for k in KINDS}
    for lo, hi in BUCKETS:
        b = f"{lo}-{hi}"
        out["known"][b] = random_sentences(per_bucket, lo, hi, rng)
        out["unknown"][b] = [[made_up(rng) for _ in range(rng.randint(lo, hi))] for _ in range(per_bucket)]
        mixed = []
        for s in random_sentences(per_bucket, lo, hi, rng):
            for i in rng.sample(range(len(s)), k=rng.randint(1, 3)):
                s[i] = made_up(rng)
            mixed.append(s)
        out["mixed"][b] = mixed
    rng = random.Random(5678)  # its own stream: the three kinds above stay as they were
    for lo, hi in BUCKETS:
        out["most"][f"{lo}-{hi}"] = [
            [made_up(rng) if rng.random() < 0.7 else w for w in s] for s in random_sentences(per_bucket, lo, hi, rng)
        ]
    return out


def failure_classes(results) -> dict[str, int]:
    c = {"short": 0, "long": 0, "budget": 0, "wrong": 0}
    for r in results:
        if r.match:
            continue
        n, m = len(r.output), len(r.reference)
        if m < n:
            c["long"] += 1
            if r.steps >= 2 * (len(r.source) + 1) + 5:
                c["budget"] += 1
        elif n < m:
            c["short"] += 1
        else:
            c["wrong"] += 1
    return c


def all_unk_wrapper(share: float):
    """with_unknown_words, plus a share of sentences shown entirely as <unk>."""
    base = train_mod.with_unknown_words

    def wrapped(batch: Batch, rate: float, rng: torch.Generator, *rest) -> Batch:
        batch = base(batch, rate, rng, *rest)  # rest: the trainer's copy_from, whole, spans
        rows = torch.rand(batch.src.size(0), generator=rng) < share  # (B,)
        S = batch.src.size(1)
        is_word = torch.arange(S)[None, :] < (batch.src_len - 1)[:, None]  # (B, S)
        hide = rows[:, None] & is_word
        return Batch(
            batch.src.masked_fill(hide, UNK), batch.src_len, batch.tgt.masked_fill(hide, UNK), batch.index
        )  # tgt: same word slots

    return wrapped


# -- prototype: a start marker in the source, so that EOS is "copy the marker" -------------------
TRAILING_EOS = [True]  # marker layout: keep the source's EOS after the words (no_eos=1 drops it)


class MarkedPairDataset(PairDataset):
    """Source [SOS] w1..wn [EOS] (the marker at position 0), target wn..w1 [EOS]: the decoder
    walks its attention leftwards and emits EOS when it reaches the marker, the same
    position-following step that copies every word, instead of counting."""

    def __init__(self, sentences, vocab):
        self.sentences = [list(s) for s in sentences]
        n = len(self.sentences)
        e = int(TRAILING_EOS[0])
        width = max((len(s) for s in self.sentences), default=0) + 2
        self.src = torch.full((n, width), PAD, dtype=torch.long)
        self.tgt = torch.full((n, width), PAD, dtype=torch.long)
        for i, s in enumerate(self.sentences):
            ids = vocab.encode(s)
            self.src[i, : len(ids) + 1 + e] = torch.tensor([SOS] + ids + [EOS] * e)
            self.tgt[i, : len(ids) + 1] = torch.tensor(ids[::-1] + [EOS])
        self.src_len = torch.tensor([len(s) + 1 + e for s in self.sentences], dtype=torch.long)


def marked_unknown_words(batch: Batch, rate: float, rng: torch.Generator) -> Batch:
    """with_unknown_words for the marked layout: words sit at 1..n; target t mirrors n - t."""
    words = batch.src_len - 1 - int(TRAILING_EOS[0])  # (B,)
    S = batch.src.size(1)
    pos = torch.arange(S)
    is_word = (pos[None, :] >= 1) & (pos[None, :] <= words[:, None])  # (B, S)
    hide = (torch.rand(batch.src.shape, generator=rng) < rate) & is_word
    mirror = (words[:, None] - pos[None, :]).clamp(min=0)
    hide_tgt = hide.gather(1, mirror) & (pos[None, :] < words[:, None])
    return Batch(batch.src.masked_fill(hide, UNK), batch.src_len, batch.tgt.masked_fill(hide_tgt, UNK), batch.index)


@torch.no_grad()
def evaluate_marked(model, vocab, sentences, device, batch_size: int = 500) -> EvalResult:
    """evaluate() for the marked layout: an emitted <unk> copies the source word at the
    attention's peak (position p is word p - 1; the marker or EOS give <unk>)."""
    model.eval()
    ds = MarkedPairDataset(sentences, vocab)
    results: list = [None] * len(ds)
    t0 = time.perf_counter()
    for batch in ds.batches(batch_size):
        out = model.greedy(batch.src.to(device), batch.src_len.to(device))
        tokens, attn, length = out.tokens.cpu(), out.attention.float().cpu(), out.length.cpu()
        for j, row in enumerate(batch.index.tolist()):
            n_src, steps, src = int(batch.src_len[j]), int(length[j]), ds.sentences[row]
            a = attn[j, :steps, :n_src].numpy()
            words, ids = [], tokens[j, :steps].tolist()
            for t, i in enumerate(ids):
                if i == EOS:
                    break
                if i == UNK:
                    p = int(a[t].argmax())
                    words.append(src[p - 1] if 1 <= p <= len(src) else "<unk>")
                else:  # <pad> and <sos> too, as words that never match (engine.insight.exact_match.exact_match)
                    words.append(vocab.itos[i])
            reference = ds.references(row)
            right = EOS in ids and words == reference
            results[row] = SentenceResult(list(src), words, reference, a, steps, match=right)
    counts: dict = {}
    for r in results:
        c = counts.setdefault(len(r.source), [0, 0])
        c[0] += r.match
        c[1] += 1
    return EvalResult(results, time.perf_counter() - t0, {n: tuple(c) for n, c in sorted(counts.items())})


def eos_from_context(model) -> None:
    """Prototype: the EOS logit reads only the attention context, never the decoder state,
    so the decoder cannot stop by counting steps (Newman et al. 2020): the weights from the
    state to EOS start at zero and their gradient is zeroed, so they stay zero."""
    out, H = model.decoder.out, model.decoder.hidden_dim
    with torch.no_grad():
        out.weight[EOS, :H] = 0
    mask = torch.ones_like(out.weight)
    mask[EOS, :H] = 0
    out.weight.register_hook(lambda g: g * mask)


def run_one(name: str, overrides: dict, proto: dict, seed: int, sets, ckpt: Path) -> dict:
    cfg = replace(Config(seed=seed, device="cpu"), **overrides)
    original = train_mod.with_unknown_words, train_mod.PairDataset
    if proto.get("marker"):
        train_mod.with_unknown_words, train_mod.PairDataset = marked_unknown_words, MarkedPairDataset
    if proto.get("unk_sentences"):
        if proto.get("marker"):
            raise ValueError("unk_sentences and marker do not combine in this prototype")
        train_mod.with_unknown_words = all_unk_wrapper(proto["unk_sentences"])
        if not cfg.unk_rate:
            raise ValueError("unk_sentences needs unk_rate > 0 (the wrapper runs only then)")
    TRAILING_EOS[0] = not proto.get("no_eos")
    try:
        t0 = time.perf_counter()
        trainer = Trainer(cfg, ckpt)
        if proto.get("eos_from_context"):
            eos_from_context(trainer.model)
        epochs = [e for e in trainer.run() if isinstance(e, train_mod.EpochDone)]
        train_s = time.perf_counter() - t0
    finally:
        train_mod.with_unknown_words, train_mod.PairDataset = original
    m = load_model(ckpt)
    dev = torch.device("cpu")
    ev_fn = evaluate_marked if proto.get("marker") else evaluate
    t1 = time.perf_counter()
    seed_test = builtin_splits(8000, 1000, 1000, 3, 10, seed).test  # the notebook's 3-10 test set
    test_em = ev_fn(m.model, m.vocab, seed_test, dev).exact_match
    row = {
        "config": overrides,
        "prototype": proto,
        "seed": seed,
        "train_seconds": round(train_s, 2),
        "epochs": [
            {
                "epoch": e.epoch,
                "train_loss": round(e.train_loss, 4),
                "val_loss": round(e.val_loss, 4),
                "val_em": e.val_exact_match,
                "seconds": round(e.seconds, 2),
            }
            for e in epochs
        ],
        "best_epoch": trainer.best_epoch,
        "test_3_10": test_em,
        "em": {},
        "failures": {},
        "per_length": {},
        "examples": {},
    }
    for kind in KINDS:
        row["em"][kind], row["failures"][kind], row["per_length"][kind] = {}, {}, {}
        for b, sents in sets[kind].items():
            ev = ev_fn(m.model, m.vocab, sents, dev)
            row["em"][kind][b] = ev.exact_match
            row["failures"][kind][b] = failure_classes(ev.results)
            for n, (c, t) in ev.counts.items():
                row["per_length"][kind][n] = [c, t]
            bad = [r for r in ev.results if not r.match]
            if bad and b == "41-60":
                r = bad[0]
                row["examples"][kind] = {
                    "source_len": len(r.source),
                    "output_len": len(r.output),
                    "output_tail": r.output[-6:],
                    "reference_tail": r.reference[-6:],
                }
    row["eval_seconds"] = round(time.perf_counter() - t1, 2)
    row["goals_met"] = {
        kind: all(row["em"][kind][f"{lo}-{hi}"] >= g for (lo, hi), g in GOALS.items()) for kind in KINDS
    }
    return row


def parse_spec(spec: str) -> tuple[dict, dict]:
    """An ad-hoc candidate: "epochs=6,unk_rate=0.3,bidirectional=false[,unk_sentences=0.1]"."""
    types = {k: type(v) for k, v in Config().to_dict().items()}
    overrides, proto = {}, {}
    for item in spec.split(","):
        key, value = item.split("=")
        if key in ("marker", "no_eos"):
            # its dataset predates the extended ids that validation and copying read
            raise SystemExit(
                "length_study: the marker prototype runs as it was measured, at commit 57e2e26 "
                "(git show 57e2e26:bench/length_study.py); its rows are in bench/README.md"
            )
        if key == "unk_sentences":
            proto[key] = float(value)
        elif key in ("marker", "no_eos", "eos_from_context"):
            proto[key] = value.lower() in ("1", "true", "yes")
        elif types[key] is bool:
            overrides[key] = value.lower() in ("1", "true", "yes")
        else:
            overrides[key] = types[key](value)
    return overrides, proto


BASE_KEYS = ("epochs", "train_size", "val_size", "min_len", "max_len", "lr", "unk_rate")


def base_defaults() -> dict:
    """The Config defaults that a run's overrides are relative to (they have changed over time)."""
    d = Config().to_dict()
    return {k: d[k] for k in BASE_KEYS}


def summarise(row: dict, base: dict) -> dict:
    """A full row -> its summary: a row per length bucket, each kind's exact match, the
    sentences decoded (from the per-length counts), the failure classes that occurred."""
    buckets = {}
    for lo, hi in BUCKETS:
        b = f"{lo}-{hi}"
        kinds = [k for k in KINDS if b in row["em"].get(k, {})]
        counts = {k: sum(t for n, (_, t) in row["per_length"][k].items() if lo <= int(n) <= hi) for k in kinds}
        sentences = sorted(set(counts.values()))
        buckets[b] = {
            "sentences": sentences[0] if len(sentences) == 1 else counts,
            "exact_match": {k: row["em"][k][b] for k in kinds},
            "failures": {
                k: {c: n for c, n in row["failures"][k][b].items() if n}
                for k in kinds
                if any(row["failures"][k][b].values())
            },
        }
    return {
        "seed": row["seed"],
        "base": base,
        "config": row["config"],
        "prototype": row["prototype"],
        "train_seconds": row["train_seconds"],
        "best_epoch": row["best_epoch"],
        "test_3_10": row["test_3_10"],
        "goals_met": row["goals_met"],
        "buckets": buckets,
    }


ABOUT = {
    "script": "bench/length_study.py",
    "threads": 1,
    "kinds": "known: built-in words; unknown: every word made up (all <unk>); mixed: 1-3 made-up words; "
    "most: each word made up with probability 0.7",
    "failures": "short = stopped early, long = ran on (budget = never stopped), wrong = same length",
    "goals": "EM >= 99.5% for 3-20, >= 98% for 21-40, >= 90% for 41-60, every kind",
    "rows": "config: overrides of the Config defaults in base; buckets: greedy exact match per kind, "
    "the sentences decoded per kind, the failure classes that occurred",
}


def write_summary(path: Path, data: dict) -> None:
    """One line per run's header and one per length bucket, so the file stays readable."""
    lines = ["{", f' "about": {json.dumps(data["about"])},', ' "runs": {']
    runs = list(data["runs"].items())
    for i, (key, run) in enumerate(runs):
        head = {k: v for k, v in run.items() if k != "buckets"}
        lines.append(f'  {json.dumps(key)}: {json.dumps(head)[:-1]}, "buckets": {{')
        items = list(run["buckets"].items())
        for j, (b, r) in enumerate(items):
            lines.append(f"   {json.dumps(b)}: {json.dumps(r)}" + ("," if j < len(items) - 1 else ""))
        lines.append("  }}" + ("," if i < len(runs) - 1 else ""))
    lines += [" }", "}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def load(path: Path | None) -> dict:
    return json.loads(path.read_text()) if path and path.exists() else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--only",
        nargs="*",
        help="candidate names (exact) or ad-hoc specs (key=value,... as parse_spec reads them) to run, in this order",
    )
    p.add_argument("--seeds", type=int, nargs="*", default=[42])
    p.add_argument("--per-bucket", type=int, default=100)
    p.add_argument(
        "--json",
        type=Path,
        default=Path(__file__).parent / "results" / "length-study.json",
        help="the summary, merged run by run",
    )
    p.add_argument(
        "--raw",
        type=Path,
        default=None,
        help="also merge the full rows (epochs, per-length counts, examples) into this file",
    )
    p.add_argument(
        "--summarise-from",
        type=Path,
        default=None,
        metavar="RAW.json",
        help="add the runs of a file of full rows to --json, train nothing; their base "
        "defaults are taken as today's unless the file records them",
    )
    args = p.parse_args()
    summary = load(args.json)
    summary["about"] = {**summary.get("about", {}), **ABOUT}
    summary.setdefault("runs", {})
    if args.summarise_from:
        for key, row in load(args.summarise_from)["runs"].items():
            summary["runs"][key] = summarise(row, row.get("base", base_defaults()))
        write_summary(args.json, summary)
        print(f"{len(summary['runs'])} runs in {args.json}")
        return
    raw = load(args.raw)
    if args.raw:
        raw.setdefault("about", {**ABOUT, "per_bucket": args.per_bucket})
        raw.setdefault("runs", {})
    names = args.only or list(CANDIDATES)
    sets = test_sets(args.per_bucket)
    ckpt = Path("/tmp") / f"length-study-{os.getpid()}.pt"
    for seed in args.seeds:
        for name in names:
            overrides, proto = CANDIDATES[name] if name in CANDIDATES else parse_spec(name)
            row = run_one(name, overrides, proto, seed, sets, ckpt)
            row["per_bucket"] = args.per_bucket
            row["base"] = base_defaults()
            key = f"{name} seed {seed}" + (f" n{args.per_bucket}" if args.per_bucket != 100 else "")
            summary["runs"][key] = summarise(row, row["base"])
            write_summary(args.json, summary)
            if args.raw:
                raw["runs"][key] = row
                args.raw.parent.mkdir(parents=True, exist_ok=True)
                args.raw.write_text(json.dumps(raw, indent=1))
            ems = "  ".join(
                f"{k[:3]} " + "/".join(f"{100 * row['em'][k][f'{lo}-{hi}']:.0f}" for lo, hi in BUCKETS) for k in KINDS
            )
            fails = {
                k: {c: sum(f[c] for f in row["failures"][k].values()) for c in ("short", "long", "wrong")}
                for k in KINDS
            }
            print(
                f"{name:<24} s{seed:<3} train {row['train_seconds']:5.1f}s  test {100 * row['test_3_10']:5.1f}%  "
                f"{ems}  fails {fails}",
                flush=True,
            )
    for suffix in ("", ".last"):
        ckpt.with_name(ckpt.stem + suffix + ckpt.suffix).unlink(missing_ok=True)


if __name__ == "__main__":
    main()
