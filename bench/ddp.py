"""One process against two (torchrun, gloo) on this machine's CPU, and the project's gradient
all-reduce against torch's DistributedDataParallel.

    python bench/ddp.py                     # ~4 min on 2 cores; bench/results/ddp-cpu-2cores.json
    python bench/ddp.py --epochs 1 --json -
    python bench/ddp.py --comm-only         # the all-reduces alone, added to the JSON

For each model size it trains the same data with the same global batch (64) and seed:

  single-1t   one process, 1 thread (no torchrun)
  single-2t   one process, 2 threads
  manual-2p   torchrun, 2 processes x 1 thread, the project's scheme (engine/train/distributed.py:
              rows[rank::world], loss scaled by the rank's share of the global tokens, one
              flat all-reduce of every gradient and the loss, a stop check per batch)
  ddp-2p      torchrun, 2 processes x 1 thread, the model wrapped in
              torch.nn.parallel.DistributedDataParallel (its buckets and backward hooks; the
              loss scaled by world x share, since DDP averages; the logged loss all-reduced
              and the stop check added, as a real run needs them)

and reports seconds per epoch (the median over epochs) and how close every batch's training
loss stays to single-1t's; and the milliseconds of one gloo all-reduce of the stop flag and of
each model's gradient bucket. It measures the training loop alone: data,
model and process start-up are outside the timings.
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
sys.path.insert(0, str(ROOT))

SIZES = {  # the default model at the default data (3-30 words), and a 4x wider one
    "hidden-64": dict(hidden_dim=64, embed_dim=32),
    "hidden-256": dict(hidden_dim=256, embed_dim=128),
}
DATA = dict(
    train_size=3000,
    val_size=200,
    test_size=100,
    min_len=3,
    max_len=30,
    batch_size=64,
    lr=0.005,
    unk_rate=0.3,
    min_freq=1,
    dropout=0.0,
    device="cpu",
    seed=42,
)


def worker(mode: str, size: str, epochs: int, threads: int) -> dict:
    import torch
    import torch.distributed as dist

    from engine.train import distributed
    from engine.train.config import Config
    from engine.train.optim import clip_grad_norm, scheduled_lr
    from engine.train.trainer import Trainer, masked_loss, with_unknown_words

    torch.set_num_threads(threads)
    group = distributed.init("cpu") if mode in ("manual", "ddp") else None
    cfg = Config(**DATA, **SIZES[size], epochs=epochs)
    t = Trainer(cfg, Path(tempfile.mkdtemp()) / "w.pt")
    if group:  # as Trainer.run does
        group.broadcast_(p.data for p in t.model.parameters())
    seconds, losses = [], []
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        distributed._group = None  # train_epoch's hooks off: DDP does the reduction
        ddp = DistributedDataParallel(t.model, gradient_as_bucket_view=True)
        n = t.train_set.num_batches(cfg.batch_size)
        for _ in range(epochs):
            t.model.train()
            t0 = time.perf_counter()
            for batch in t.train_set.batches(cfg.batch_size, shuffle=True, generator=t.rng):
                # as Trainer.train_epoch hides words (no copy mechanism on the built-in words)
                batch = with_unknown_words(batch, cfg.unk_rate, t.rng, 0, cfg.unk_sentences, cfg.span_share)
                forcing = torch.rand(batch.tgt.size(1), generator=t.rng) < cfg.teacher_forcing
                mine, share = group.shard(batch, int(batch.src_len.sum()))
                assert len(mine.index), "DDP needs rows on every rank (its reducer waits for each)"
                t.optimizer.zero_grad()
                logits, _ = ddp(mine.src, mine.src_len, mine.tgt_in, forcing[: mine.tgt.size(1)])
                loss = masked_loss(logits, mine.tgt) * share
                (loss * group.world).backward()  # DDP averages the gradients over the ranks
                logged = loss.detach().clone()
                dist.all_reduce(logged)
                clip_grad_norm(t.model.parameters(), cfg.clip)
                t.optimizer.lr = scheduled_lr(cfg.lr, cfg.lr_schedule, t.optimizer.t, cfg.epochs * n)
                t.optimizer.step()
                losses.append(float(logged))
                group.agree_stop(None)
            seconds.append(time.perf_counter() - t0)
    else:
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            for ev in t.train_epoch(epoch):
                losses.append(float(ev.loss))
                if group:
                    group.agree_stop(None)  # as the headless run does after every batch
            seconds.append(time.perf_counter() - t0)
    out = {
        "mode": mode,
        "size": size,
        "threads": threads,
        "epoch_seconds": seconds,
        "batches": len(losses) // epochs,
        "losses": losses,
        "params": sum(p.numel() for p in t.model.parameters()),
    }
    if group:
        distributed.shutdown(forget=True)
        if group.rank:
            return {}
    return out


def comm_worker() -> dict:
    """Milliseconds per gloo all-reduce (2 processes, loopback) of the stop flag and of each
    model's gradient bucket: what a batch pays for being shared out."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    out = {}
    for name, n in (
        ("stop flag (1 element)", 1),
        ("hidden-64 bucket (111,783 floats)", 111_783),
        ("hidden-256 bucket (1,651,239 floats)", 1_651_239),
    ):
        t = torch.zeros(n)
        for _ in range(20):
            dist.all_reduce(t)
        t0 = time.perf_counter()
        for _ in range(200):
            dist.all_reduce(t)
        out[name] = (time.perf_counter() - t0) / 200 * 1e3
    rank = dist.get_rank()
    dist.destroy_process_group()
    return {"allreduce_ms": out} if rank == 0 else {}


def run(mode: str, size: str, epochs: int, threads: int, nproc: int) -> dict:
    args = ["--worker", mode, size, "--epochs", str(epochs), "--threads", str(threads)]
    if nproc > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            __file__,
            *args,
        ]
    else:
        cmd = [sys.executable, __file__, *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode or not lines:
        raise SystemExit(f"{mode} {size} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
    return json.loads(lines[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--sizes", nargs="*", default=list(SIZES), choices=list(SIZES))
    p.add_argument("--json", default=str(ROOT / "bench" / "results" / "ddp-cpu-2cores.json"))
    p.add_argument(
        "--comm-only",
        action="store_true",
        help="measure the all-reduces alone and add them to the existing --json file",
    )
    p.add_argument("--worker", nargs=2, metavar=("MODE", "SIZE"), help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        out = comm_worker() if args.worker[0] == "comm" else worker(*args.worker, args.epochs, args.threads)
        if out:
            print(json.dumps(out))
        return
    comm = run("comm", "-", 1, 1, 2)["allreduce_ms"]
    for name, ms in comm.items():
        print(f"all-reduce of the {name}: {ms:.3f} ms")
    if args.comm_only:
        results = json.loads(Path(args.json).read_text())
        results["allreduce_ms"] = comm
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"updated {args.json}")
        return
    import torch

    results = {
        "allreduce_ms": comm,
        "machine": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "data": DATA,
        "epochs": args.epochs,
        "runs": [],
    }
    for size in args.sizes:
        base = None
        for mode, threads, nproc in (("single", 1, 1), ("single", 2, 1), ("manual", 1, 2), ("ddp", 1, 2)):
            t0 = time.perf_counter()
            r = run(mode, size, args.epochs, threads, nproc)
            label = f"{mode}-{threads}t" if mode == "single" else f"{mode}-{nproc}p"
            med = statistics.median(r["epoch_seconds"])
            base = base or r
            rel = [abs(a - b) / abs(b) for a, b in zip(r["losses"], base["losses"])]
            # float rounding (a different summation order: threads, shards) grows as training
            # goes on, as it does between 1 and 2 threads in one process; the first batches
            # show the arithmetic, the first batch past 1e-3 how long it stays close
            first_10 = max(rel[:10])
            apart = next((i + 1 for i, d in enumerate(rel) if d > 1e-3), None)
            row = {
                "label": label,
                "size": size,
                "params": r["params"],
                "batches_per_epoch": r["batches"],
                "epoch_seconds": r["epoch_seconds"],
                "median_epoch_seconds": med,
                "speedup_vs_single_1t": statistics.median(base["epoch_seconds"]) / med,
                "max_rel_loss_diff_first_10_batches": first_10,
                "first_batch_over_1e-3_rel": apart,
                "max_rel_loss_diff_all": max(rel),
                "losses": r["losses"],
                "wall_seconds": time.perf_counter() - t0,
            }
            results["runs"].append(row)
            print(
                f"{size:10s} {label:10s} {med:6.2f} s/epoch  x{row['speedup_vs_single_1t']:.2f}  "
                f"first 10 batch losses within {first_10:.1e} of single-1t, apart by 1e-3 from batch "
                f"{apart} of {len(rel)}",
                flush=True,
            )
    if args.json == "-":
        print(json.dumps(results, indent=2))
    else:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
