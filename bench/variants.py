"""The attention scores side by side: each --score with and without the location term, on the
same seeds at the defaults, each variant one seed group trained as a user starts it
(`reverse-tui --no-ui --seeds N --seed S --name VARIANT [flags]`) in a fresh folder of its own.
Per variant: the group's mean and min-max from `reverse-tui runs --json` (test exact match,
the 99% length limits for known and unknown words, repeated words at 21-40, epochs to 99%
validation exact match), the median epoch time over its runs' epochs, which implementation
ran, and how its wrong answers failed (the analysis's kinds: stopped early, ran on, wrong word).

    python3 bench/variants.py [--only additive dot ...] [--lock /tmp/cpu.lock] [--work DIR] [-- FLAGS]

The scores other than additive train the reference model; additive runs through the fast
layer by default, so `additive-ref` runs it through the reference too (epoch times then compare
like with like). --work keeps the runs; a variant whose group is already complete there is
collected, not trained again. FLAGS after -- go to every run (e.g. a tiny check:
`-- --train-size 200 --epochs 1`, with --seeds 2 --json /tmp/v.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
VARIANTS = {
    "additive": ["--score", "additive"],
    "additive-noloc": ["--score", "additive", "--location-kernel", "0"],
    "general": ["--score", "general"],
    "general-noloc": ["--score", "general", "--location-kernel", "0"],
    "dot": ["--score", "dot"],
    "dot-noloc": ["--score", "dot", "--location-kernel", "0"],
    "scaled-dot": ["--score", "scaled-dot"],
    "scaled-dot-noloc": ["--score", "scaled-dot", "--location-kernel", "0"],
    "additive-ref": ["--score", "additive", "--impl", "reference"],
    "additive-ref-noloc": ["--score", "additive", "--impl", "reference", "--location-kernel", "0"],
    "shift": ["--score", "shift"],
}
KINDS = ("stopped_early", "ran_on", "wrong_word")
SWEEPS = {  # report.json's sweeps, the lengths whose wrong answers are counted
    "known": (("length_limits", "known_words"), range(31, 61)),
    "unknown": (("length_limits", "unknown_words"), range(3, 61)),
    "repeated": (("repeated_words",), range(21, 41)),
}


def cli(args: list[str], cwd: Path, log: Path | None = None, lock: str | None = None) -> str:
    """`reverse-tui ARGS` from this checkout, in cwd; its stdout (also written to log)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "tui", *args]
    if lock:
        cmd = ["flock", lock, *cmd]
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if log is not None:
        log.write_text(done.stdout + done.stderr)
    if done.returncode not in (0, 1):  # 1: a run failed (a NaN loss), still a figure of the group
        raise SystemExit(f"variants: {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def group_entry(folder: Path, name: str) -> tuple[dict | None, dict]:
    """The group as `reverse-tui runs --json` lists it, and its runs' figures by name."""
    if not (folder / "runs").is_dir():
        return None, {}
    listing = json.loads(cli(["runs", "--json"], folder))
    runs = {r["name"]: r.get("figures", {}) for r in listing.get("runs", []) if r.get("group") == name}
    return next((g for g in listing.get("groups", []) if g["name"] == name), None), runs


def _get(report: dict, path: tuple[str, ...]):
    for key in path:
        report = report.get(key) if isinstance(report, dict) else None
    return report


def failure_kinds(reports: list[dict]) -> dict:
    """Per sweep: the wrong answers summed over the runs at its lengths, by kind, and the
    lengths below 99% on any run."""
    out = {}
    for sweep, (path, lengths) in SWEEPS.items():
        counts = dict.fromkeys(KINDS, 0)
        failing = set()
        for r in reports:
            curve = _get(r, path) or {}
            for n, kinds in (curve.get("failures") or {}).items():
                if int(n) in lengths:
                    for k in KINDS:
                        counts[k] += int(kinds.get(k, 0))
            for n, acc in (curve.get("per_length") or {}).items():
                if int(n) in lengths and acc < 0.99:
                    failing.add(int(n))
        out[sweep] = {"lengths": f"{lengths.start}-{lengths.stop - 1}", **counts, "below_99_at": sorted(failing)}
    return out


def implementation(stdout: str, reports: list[dict]) -> list[str]:
    """Each run's implementation, from its 'model: ...' line; where no output was kept, the
    one its configuration picks (engine/impl.py)."""
    said = [line.split()[1] for line in stdout.splitlines() if line.startswith("model: ")]
    if said:
        return said
    from engine.impl import choose_impl
    from engine.train.config import Config

    return [choose_impl(Config(**r["config"])) for r in reports if isinstance(r.get("config"), dict)]


def measure(name: str, flags: list[str], work: Path, seeds: int, seed: int, extra: list[str], lock) -> dict:
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "stdout.txt"
    entry, figures = group_entry(folder, name)
    if entry is None or len(entry["runs"]) < seeds:
        if entry is not None:
            raise SystemExit(f"variants: {folder} holds an incomplete group {name}; remove it or give another --work")
        args = ["--no-ui", "--seeds", str(seeds), "--seed", str(seed), "--name", name, *flags, *extra]
        start = time.perf_counter()
        cli(args, folder, log, lock)
        print(f"{name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
        entry, figures = group_entry(folder, name)
    reports = [json.loads((folder / "runs" / run / "report.json").read_text()) for run in entry["runs"]]
    epoch_seconds = [e["seconds"] for r in reports for e in r.get("epoch_details") or r.get("epochs") or []]
    impls = implementation(log.read_text() if log.exists() else "", reports)
    return {
        "flags": flags + extra,
        "runs": entry["runs"],
        "seeds": entry["seeds"],
        "status": entry["status"],
        "summary": entry["summary"],
        "per_run": {run: {k: f["value"] for k, f in figures.get(run, {}).items()} for run in entry["runs"]},
        "epoch_seconds_median": statistics.median(epoch_seconds) if epoch_seconds else None,
        "epochs": len(epoch_seconds),
        "implementation": sorted(set(impls)),
        "threads": sorted({r.get("threads") for r in reports if r.get("threads") is not None}),
        "failures": failure_kinds(reports),
    }


def holds(v: dict) -> bool:
    """The bar a default must hold: repeated words at 21-40 >= 99% and unknown words past 40
    words on every seed."""
    s = v["summary"]
    rep, unk = s.get("repeated_exact_match"), s.get("unknown_below_99")
    return bool(rep and unk and rep["min"] >= 0.99 and unk["min"] > 40)


def spread(s: dict | None, pct: bool = False) -> str:
    if not s:
        return "–"

    def f(x, beyond=False):
        text = f"{100 * x:.1f}" if pct else f"{x:.1f}".rstrip("0").rstrip(".")
        return (">" if beyond else "") + text

    mean = ("≥" if s["beyond"] else "") + f(s["mean"])
    return f"{mean} ({f(s['min'], s['min_beyond'])}–{f(s['max'], s['max_beyond'])})"


def kinds_text(f: dict) -> str:
    total = sum(f[k] for k in KINDS)
    if not total:
        return "none"
    return "/".join(str(f[k]) for k in KINDS)


def table(results: dict) -> str:
    lines = [
        "| variant | model | test exact % | known <99% at | unknown <99% at | repeated 21-40 % | epochs to 99% "
        "| s/epoch | wrong answers: known 31-60 · unknown 3-60 · repeated (early/ran on/wrong word) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, v in results.items():
        s, fl = v["summary"], v["failures"]
        secs = v["epoch_seconds_median"]
        lines.append(
            f"| {name} | {'/'.join(v['implementation']) or '?'} | {spread(s.get('test_exact_match'), True)} "
            f"| {spread(s.get('known_below_99'))} | {spread(s.get('unknown_below_99'))} "
            f"| {spread(s.get('repeated_exact_match'), True)} | {spread(s.get('epochs_to_99'))} "
            f"| {secs:.2f} | {kinds_text(fl['known'])} · {kinds_text(fl['unknown'])} · {kinds_text(fl['repeated'])} |"
            if secs is not None
            else f"| {name} | – | – | – | – | – | – | – | – |"
        )
    return "\n".join(lines)


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--work", type=Path, help="keep the runs here (default: a temporary folder, removed)")
    p.add_argument("--lock", help="run each group under `flock LOCK` (a machine shared with others)")
    p.add_argument("--json", type=Path, default=ROOT / "bench/results/variants.json")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        results = {}
        for name in args.only:
            results[name] = measure(name, VARIANTS[name], work, args.seeds, args.seed, extra, args.lock)
            results[name]["holds"] = holds(results[name])
    commit = subprocess.run(["git", "log", "-1", "--format=%h"], cwd=ROOT, capture_output=True, text=True)
    import torch

    out = {
        "date": time.strftime("%Y-%m-%d"),
        "commit": commit.stdout.strip(),
        "machine": f"{os.cpu_count()} cores, torch {torch.__version__}",
        "command": "python3 bench/variants.py " + " ".join(sys.argv[1:]),
        "variants": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    tmp_json = args.json.with_name(f".{args.json.name}.tmp")
    tmp_json.write_text(json.dumps(out, indent=1) + "\n")
    tmp_json.replace(args.json)
    print(table(results))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
