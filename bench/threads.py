"""One run alone against two runs at once, under each thread policy.

    python bench/threads.py --json bench/results/threads-2cores.json   # 1 and 2 threads: minutes
    python bench/threads.py --threads 2 --policies spin                # one case

Each case starts `reverse-tui --no-ui` as fresh processes (the OpenMP wait policy is read
once, when libgomp loads, so it cannot be switched inside one process) and reads the
training seconds of its epochs from report.json. "pair" starts two identical runs at the
same moment and reports both. Run it on an otherwise idle machine: it measures contention.

The policies:
  spin     libgomp's default wait policy, which the project shipped with until now: a
           waiting thread spins 300,000 times before it sleeps
  spinNk   GOMP_SPINCOUNT=N000: a waiting thread spins N000 times, then sleeps
  passive  OMP_WAIT_POLICY=PASSIVE: a thread that waits sleeps at once
  shipped  whatever `reverse-tui` does today with no environment set (the default policy)

Each policy is measured at each of --threads (every run gets `--threads N`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

POLICIES = {
    "spin": {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "300000"},  # libgomp's default
    "spin30k": {"GOMP_SPINCOUNT": "30000"},
    "spin10k": {"GOMP_SPINCOUNT": "10000"},
    "spin1k": {"GOMP_SPINCOUNT": "1000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE"},
    "shipped": {},
}


def start(flags: list[str], env_extra: dict, workdir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(env_extra)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tui",
            "--no-ui",
            *flags,
            "--out",
            str(workdir),
            "--checkpoint",
            str(workdir / "best.pt"),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen, workdir: Path) -> dict:
    _, err = p.communicate(timeout=1800)
    if p.returncode != 0:
        raise SystemExit(f"a run failed ({p.returncode}): {err.strip().splitlines()[-1:]}")
    report = json.loads((workdir / "report.json").read_text())
    return {
        "epoch_seconds": [e["seconds"] for e in report["epochs"]],
        "train_seconds": report.get("train_seconds"),
        "threads": report.get("threads"),
    }


def case(flags: list[str], env_extra: dict, copies: int) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / f"run{i}" for i in range(copies)]
        t0 = time.perf_counter()
        procs = [start(flags, env_extra, d) for d in dirs]
        out = [finish(p, d) for p, d in zip(procs, dirs)]
        wall = time.perf_counter() - t0
    for o in out:
        o["wall_seconds"] = wall
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="the thread counts to measure")
    ap.add_argument("--policies", default="spin,spin10k,passive")
    ap.add_argument("--extra", default="", help="more flags for every run, e.g. '--hidden-dim 256'")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    unknown = [name for name in args.policies.split(",") if name not in POLICIES]
    if unknown:
        raise SystemExit(f"threads.py: unknown policy {unknown[0]!r} (one of {', '.join(POLICIES)})")
    rows = []
    for threads in args.threads:
        flags = ["--epochs", str(args.epochs), "--threads", str(threads), *args.extra.split()]
        for name in args.policies.split(","):
            env_extra = POLICIES[name]
            alone = case(flags, env_extra, 1)
            pair = case(flags, env_extra, 2)
            a = statistics.median(s for r in alone for s in r["epoch_seconds"])
            p = statistics.median(s for r in pair for s in r["epoch_seconds"])
            row = {
                "policy": name,
                "env": env_extra,
                "flags": flags,
                "threads": alone[0]["threads"],
                "alone_epoch_s": round(a, 2),
                "pair_epoch_s": round(p, 2),
                "pair_slowdown": round(p / a, 2),
                "alone": alone,
                "pair": pair,
            }
            rows.append(row)
            print(
                f"{name:8s} threads {row['threads']}  alone {a:6.2f} s/epoch   two at once "
                f"{p:6.2f} s/epoch   ({p / a:.1f}x slower; 2x is a fair share of 2 cores)",
                flush=True,
            )
    if args.json:
        machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.json.with_name(f".{args.json.name}.tmp")
        tmp.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
        tmp.replace(args.json)


if __name__ == "__main__":
    main()
