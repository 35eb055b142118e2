"""The sections of bench/gpu_check.py, in the order they run. Each takes the runner's Context
and returns its figures, with `summary` (one line for the text file) and, for a figure
outside its tolerance, `problems` (the section is then recorded as failed, its figures kept);
Skip says why a section cannot run here. The CPU dry run (--device cpu) takes every step
with the CPU standing in for the device.

  environment    GPU, driver, torch, CUDA, cuDNN, TF32 settings, threads
  default_run    `reverse-tui --no-ui` with --device auto (it must say cuda): exact match, times
  agreement      loss and every gradient, CPU against the device, same weights and batch:
                 float64, float32 with TF32 off, float32 with TF32 on (tolerances per row)
  loop_autograd  on the device: the hand-written loop against step-by-step autograd (float64),
                 and torch.autograd.gradcheck of the logits through the whole model
  mixed_lengths  one epoch of 3-30 words (padded, packed batches), plain and copy model, under
                 torch.cuda.set_sync_debug_mode("error") except where a read is allowed (one per
                 25 batches, the epoch's end); validation and decoding with their reads counted
  probe          the default run's and the copy model's checkpoints decoded through the model
                 (engine.insight.evaluate.decode, greedy and beam) on the device and on the CPU
  kernels        device kernels and aten ops per training batch at 5, 10, 20 and 30 words
  throughput     ms per training batch and tokens/s, batch 64/256/1024, default and notebook
  notebook_run   `--preset notebook`, a few epochs
  resume         1 epoch, then --resume to 2, against 2 uninterrupted (dropout on; with --quick
                 the default run, which then has dropout on, is the uninterrupted one)
  bench          bench/bench.py --epochs-only: the epoch against the notebook's code
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
import traceback
import warnings
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable

from engine.impl import build_model  # noqa: E402
from engine.insight.evaluate import decode  # noqa: E402
from engine.model.seq2seq import Seq2Seq  # noqa: E402
from engine.train.checkpoint import load_model  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.data import PairDataset, Vocab, random_sentences, splits_for, with_unseen_words  # noqa: E402
from engine.train.trainer import Trainer, masked_loss  # noqa: E402

SYNC_EVERY = 25  # training may read the device once per this many batches (its NaN check)
KERNEL_LENGTHS = (5, 10, 20, 30)
# CPU against the device, same weights and batch: reduction order and cuDNN's non-deterministic
# backward (atomic adds) move float64 by ~1e-13 and float32 by ~1e-6; TF32 keeps 10 mantissa bits
AGREEMENT_TOL = {  # dtype, tf32 -> (|loss difference|, largest relative gradient difference)
    ("float64", False): (1e-9, 1e-8),
    ("float32", False): (1e-4, 1e-3),
    ("float32", True): (1e-2, 5e-2),
}
LOOP_TOL = 1e-8  # float64: the fused loop against autograd, logits and gradients
GRADCHECK_NONDET_TOL = 1e-8  # float64: two backward passes of the same input may differ this much
PROBE_SHARE = 0.99  # share of sentences the device must decode word for word as the CPU does
PROBE_ATTENTION_TOL = 1e-4  # float32, TF32 off: largest attention weight difference


class Skip(Exception):
    """A section that cannot run here; the message says why."""


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`reverse-tui ARGS` from this checkout (no install needed on the GPU box)."""
    return subprocess.run(
        [PY, "-m", "tui", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def must(p: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    if p.returncode != 0:
        tail = (p.stderr.strip() or p.stdout.strip()).splitlines()[-3:]
        raise RuntimeError(f"exit {p.returncode}: {' | '.join(tail)}")
    return p


def drain(gen):
    """Run a generator to its end; return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def _sizes(quick: bool, train: int, val: int = 200, test: int = 200) -> list[str]:
    return ["--train-size", str(train), "--val-size", str(val), "--test-size", str(test)] if quick else []


# The dry run's default run: sentences of at most 10 words (its evaluation stays short), and
# dropout on, so that the resume section can take it as its uninterrupted run (one run fewer)
QUICK_RUN = [*_sizes(True, 600, 100, 100), "--max-len", "10", "--epochs", "2", "--dropout", "0.1"]


# -- environment -------------------------------------------------------------------------------
def environment(ctx) -> dict:
    device = ctx.device
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host": platform.node(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "cpu_cores": os.cpu_count(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            sms=props.multi_processor_count,
            cudnn=torch.backends.cudnn.version(),
        )
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    info["summary"] = f"{info.get('gpu', device)}, {info['threads']} threads"
    return info


# -- whole runs through the CLI ----------------------------------------------------------------
def default_run(ctx) -> dict:
    out = ctx.tmp / "default"
    # auto on the GPU box (it must pick cuda); the dry run names its device
    dev = "auto" if ctx.device.type == "cuda" else ctx.device.type
    flags = QUICK_RUN if ctx.quick else []
    t0 = time.perf_counter()
    p = must(
        cli(
            "--no-ui",
            "--device",
            dev,
            "--threads",
            str(ctx.threads),
            *flags,
            "--out",
            str(out),
            "--checkpoint",
            str(out / "best.pt"),
        )
    )
    wall = time.perf_counter() - t0
    first = p.stdout.splitlines()[0] if p.stdout else ""
    says = re.search(r"device (\S+?)[,\s]", first + " ")
    r = _report(out)
    data = {
        "says_device": says.group(1) if says else None,
        "first_line": first,
        "test_exact_match": r["test_exact_match"],
        "epoch_seconds": [e["seconds"] for e in r["epochs"]],
        "train_seconds": r.get("train_seconds"),
        "test_eval_seconds": r.get("test_eval_seconds"),
        "wall_seconds": round(wall, 2),
        "checkpoint": str(out / "best.pt"),
    }
    problems = []
    if ctx.device.type == "cuda" and not str(data["says_device"]).startswith("cuda"):
        problems.append(f"--device auto chose {data['says_device']}, not cuda")
    if not ctx.quick and data["test_exact_match"] < 0.9:
        problems.append(f"test exact match {data['test_exact_match']:.1%} (the recipe reaches ~100% on a CPU)")
    data["summary"] = (
        f"device {data['says_device']}, test exact match {100 * data['test_exact_match']:.1f}%, "
        f"epoch s {[round(x, 2) for x in data['epoch_seconds']]}, whole run {data['wall_seconds']} s"
    )
    return {**data, "problems": problems}


def notebook_run(ctx) -> dict:
    out = ctx.tmp / "notebook"
    flags = ["--epochs", "1", *_sizes(ctx.quick, 1000)] if ctx.quick else ["--epochs", "4"]
    p = must(
        cli(
            "--no-ui",
            "--preset",
            "notebook",
            "--device",
            ctx.device.type,
            "--threads",
            str(ctx.threads),
            *flags,
            "--out",
            str(out),
            "--checkpoint",
            str(out / "best.pt"),
        )
    )
    r = _report(out)
    epochs = [{k: e[k] for k in ("epoch", "train_loss", "val_loss", "val_exact_match", "seconds")} for e in r["epochs"]]
    return {
        "epochs": epochs,
        "test_exact_match": r["test_exact_match"],
        "lines": len(p.stdout.splitlines()),
        "summary": f"test exact match {100 * r['test_exact_match']:.1f}%, "
        f"epoch s {[round(e['seconds'], 2) for e in epochs]}",
    }


def resume(ctx) -> dict:
    """Dropout on, so that the random state (CPU and device) must be restored for the resumed
    run to draw the same masks as the uninterrupted one. The interrupted run is the same
    2-epoch run stopped by SIGINT after its first epoch (same lr schedule), then resumed.
    With --quick the default run, which finished the same run, is the uninterrupted one."""
    flags = [
        *(QUICK_RUN if ctx.quick else [*_sizes(True, 1200, 200, 100), "--dropout", "0.1", "--epochs", "2"]),
        *("--device", ctx.device.type, "--threads", str(ctx.threads)),
    ]
    shared = ctx.quick and ctx.sections.get("default_run", {}).get("status") == "ok"
    a, b = ctx.tmp / ("default" if shared else "resume-a"), ctx.tmp / "resume-b"
    if not shared:
        must(cli("--no-ui", *flags, "--out", str(a), "--checkpoint", str(a / "best.pt")))
    p = subprocess.Popen(
        [PY, "-m", "tui", "--no-ui", *flags, "--out", str(b), "--checkpoint", str(b / "best.pt")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        for line in p.stdout:
            if line.lstrip().startswith("1/"):  # the first epoch's line of the table
                p.send_signal(signal.SIGINT)  # stops after the current batch of epoch 2
                break
        p.communicate(timeout=600)
    finally:
        if p.poll() is None:
            p.kill()
    must(
        cli(
            "--no-ui",
            "--resume",
            str(b / "best.last.pt"),
            "--device",
            ctx.device.type,
            "--threads",
            str(ctx.threads),
            "--out",
            str(b),
            "--checkpoint",
            str(b / "best.pt"),
        )
    )
    la = [e["train_loss"] for e in _report(a)["epochs"]]
    lb = [e["train_loss"] for e in _report(b)["epochs"]]
    diff = max(abs(x - y) for x, y in zip(la, lb)) if len(la) == len(lb) else None
    problems = [] if diff is not None else [f"{len(lb)} epochs resumed against {len(la)} uninterrupted"]
    if diff is not None and diff > 1e-3:  # same masks and batches: only float rounding may differ
        problems.append(f"train loss resumed vs uninterrupted differs by {diff:.1e}")
    return {
        "uninterrupted": la,
        "resumed": lb,
        "max_abs_diff": diff,
        "summary": f"max train-loss difference resumed vs uninterrupted: {diff}",
        "problems": problems,
    }


def bench(ctx) -> dict:
    if not ctx.baseline.is_file():
        raise Skip(
            f"BASELINE MISSING at {ctx.baseline}: nothing to compare against "
            "(bash bench/gpu_check.sh --prepare, and carry bench/.baseline)"
        )
    out = ctx.tmp / "bench.json"
    args = [
        PY,
        str(ROOT / "bench" / "bench.py"),
        "--epochs-only",
        *("--device", ctx.device.type, "--threads", str(ctx.threads), "--baseline", str(ctx.baseline)),
        *(("--epochs", "1", "--train-size", "1000") if ctx.quick else ("--epochs", "3")),
        *("--json", str(out)),
    ]
    must(subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900))
    r = json.loads(out.read_text())
    rows = {x["figure"]: x for x in r.get("rows", [])}
    epoch = rows.get("train epoch, notebook config (s)", {})
    r["summary"] = (
        f"notebook-config epoch: baseline {epoch.get('baseline', 0):.2f} s, ours {epoch.get('ours', 0):.2f} s "
        f"({epoch.get('speedup') or 0:.2f}x in our favour)"
    )
    return r


# -- CPU against the device, and the loop against autograd -------------------------------------
def _batch(cfg: Config, n: int, seed: int = 0):
    """A batch of n built-in sentences (mixed lengths, so packing and masks are exercised)."""
    import random

    sents = random_sentences(n, cfg.min_len, cfg.max_len, random.Random(seed))
    vocab = Vocab.build(sents)
    batch = next(iter(PairDataset(sents, vocab).batches(n)))
    return vocab, batch


def _loss_and_grads(model: Seq2Seq, batch, device: torch.device, forcing):
    b = batch.to(device)
    model.zero_grad()
    logits, _ = model(b.src, batch.src_len, b.tgt_in, forcing)  # lengths: the host copy, no sync
    loss = masked_loss(logits, b.tgt)
    loss.backward()
    return loss.detach().double().cpu(), {
        n: p.grad.detach().double().cpu() for n, p in model.named_parameters() if p.grad is not None
    }


@contextmanager
def tf32(on: bool):
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def agreement(ctx) -> dict:
    """The same weights and batch on the CPU and on the device: |loss difference| and the
    largest relative gradient difference over all parameters (||g_dev - g_cpu|| / ||g_cpu||)."""
    rows, problems = [], []
    for name, cfg in (("default", Config(dropout=0.0)), ("notebook", Config.notebook(dropout=0.0))):
        vocab, batch = _batch(cfg, 64)
        forcing = [True] + [t % 2 == 0 for t in range(1, batch.tgt_in.size(1))]
        torch.manual_seed(0)
        base = build_model(len(vocab), cfg)
        for dtype, on in ((torch.float64, False), (torch.float32, False), (torch.float32, True)):
            with tf32(on):
                cpu = build_model(len(vocab), cfg).to(dtype)
                cpu.load_state_dict(base.state_dict())
                dev = build_model(len(vocab), cfg).to(dtype).to(ctx.device)
                dev.load_state_dict(base.state_dict())
                l_cpu, g_cpu = _loss_and_grads(cpu.train(), batch, torch.device("cpu"), forcing)
                l_dev, g_dev = _loss_and_grads(dev.train(), batch, ctx.device, forcing)
            rel = max(float((g_dev[k] - g_cpu[k]).norm() / g_cpu[k].norm().clamp_min(1e-30)) for k in g_cpu)
            dt = str(dtype).removeprefix("torch.")
            loss_tol, grad_tol = AGREEMENT_TOL[(dt, on)]
            row = {
                "config": name,
                "dtype": dt,
                "tf32": on,
                "loss_cpu": float(l_cpu),
                "loss_abs_diff": float((l_dev - l_cpu).abs()),
                "grad_max_rel_diff": rel,
                "tolerance": [loss_tol, grad_tol],
                "params_compared": len(g_cpu),
            }
            rows.append(row)
            if not (row["loss_abs_diff"] <= loss_tol and rel <= grad_tol):
                problems.append(
                    f"{name} {dt}{' tf32' if on else ''}: dloss {row['loss_abs_diff']:.1e} (tol {loss_tol:.0e}), "
                    f"grad {rel:.1e} (tol {grad_tol:.0e})"
                )
    summary = "; ".join(
        f"{x['config']} {x['dtype']}{' tf32' if x['tf32'] else ''}: dloss {x['loss_abs_diff']:.1e} "
        f"grad {x['grad_max_rel_diff']:.1e}"
        for x in rows
    )
    return {"rows": rows, "summary": summary, "problems": problems}


def loop_autograd(ctx) -> dict:
    """On the device, float64: the fast layer's logits and gradients against the reference
    model under autograd (Seq2Seq.forward_reference, what --impl reference trains with), for
    attention with and without the location term and the no-attention control; then
    gradcheck of the logits with respect to a few weights through the whole model."""
    device, rows, problems = ctx.device, [], []
    for arch in (
        dict(layers=1, bidirectional=True, location_kernel=5),
        dict(layers=2, bidirectional=False, location_kernel=0),
        dict(layers=2, bidirectional=True, location_kernel=3, attention=False),
    ):
        torch.manual_seed(1)
        model = build_model(20, Config(embed_dim=8, hidden_dim=12, dropout=0.0, **arch)).double().to(device)
        src = torch.randint(4, 20, (5, 7), device=device)
        src_len = torch.tensor([7, 5, 7, 3, 6])  # lengths stay on the host
        tgt_in = torch.randint(4, 20, (5, 6), device=device)
        forcing = [True, False, True, False, False, True]
        out = {}
        for fused in (True, False):
            model.zero_grad()
            logits, _ = (
                model(src, src_len, tgt_in, forcing)
                if fused
                else model.forward_reference(src, src_len, tgt_in, torch.tensor(forcing))
            )
            (logits.square().sum()).backward()
            out[fused] = (
                logits.detach(),
                {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None},
            )
        grads = out[True][1]
        row = {
            "arch": arch,
            "logits_max_abs_diff": float((out[True][0] - out[False][0]).abs().max()),
            "grad_max_abs_diff": max(float((grads[n] - out[False][1][n]).abs().max()) for n in grads),
        }
        rows.append(row)
        if max(row["logits_max_abs_diff"], row["grad_max_abs_diff"]) > LOOP_TOL:
            problems.append(f"{arch}: loop against autograd differs by {row['grad_max_abs_diff']:.1e}")
    torch.manual_seed(2)
    model = build_model(16, Config(embed_dim=6, hidden_dim=8, dropout=0.0)).double().to(device)
    src = torch.randint(4, 16, (3, 5), device=device)
    src_len = torch.tensor([5, 4, 5])
    tgt_in = torch.randint(4, 16, (3, 5), device=device)
    names = ["decoder.W_ic", "decoder.attention.v.weight", "encoder.gru.weight_hh_l0"]
    params = dict(model.named_parameters())
    leaves = tuple(params[n].detach().clone().requires_grad_() for n in names)

    def f(*ws):
        logits, _ = torch.func.functional_call(
            model, dict(zip(names, ws)), (src, src_len, tgt_in, [True, False, True, True, False])
        )
        return logits

    ok = bool(torch.autograd.gradcheck(f, leaves, nondet_tol=GRADCHECK_NONDET_TOL, raise_exception=False))
    if not ok:
        problems.append("gradcheck failed")
    worst = max(x["grad_max_abs_diff"] for x in rows)
    return {
        "rows": rows,
        "gradcheck": ok,
        "gradcheck_params": names,
        "tolerance": {"loop": LOOP_TOL, "gradcheck_nondet": GRADCHECK_NONDET_TOL},
        "summary": f"max grad diff {worst:.1e} (float64), gradcheck {'passed' if ok else 'FAILED'}",
        "problems": problems,
    }


# -- host syncs over mixed lengths -------------------------------------------------------------
def _where(e: BaseException) -> str:
    """The innermost frame of this project's code in e's traceback: file:line."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if str(ROOT / "engine") in f.filename]
    f = frames[-1] if frames else traceback.extract_tb(e.__traceback__)[-1]
    return f"{Path(f.filename).relative_to(ROOT) if str(ROOT) in f.filename else f.filename}:{f.lineno}"


@contextmanager
def sync_reads(cuda: bool, mode: str):
    """Under torch.cuda's sync debug mode ("error" raises at a read of the device, "warn" lets it
    through): yields the list of the reads' places (file:line) that "warn" saw. Off the GPU,
    nothing is watched."""
    seen: list[str] = []
    if not cuda:
        yield seen
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode(mode)
        try:
            yield seen
        finally:
            torch.cuda.set_sync_debug_mode(0)
    seen.extend(f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message).lower())


def _sync_epoch(trainer: Trainer, cuda: bool) -> dict:
    """One training epoch: batches where no read is allowed run under "error"; every
    SYNC_EVERY-th batch, the last one and the epoch's end run under "warn", their reads counted."""
    n = trainer.train_set.num_batches(trainer.cfg.batch_size)
    gen = trainer.train_epoch(1)
    allowed: dict[str, int] = {}  # "batch k" or "end" -> reads seen there
    for i in range(n + 1):  # n batches, then the epoch's end (its statistics are read once)
        may_read = i % SYNC_EVERY == SYNC_EVERY - 1 or i >= n - 1
        try:
            with sync_reads(cuda, "warn" if may_read else "error") as seen:
                next(gen, None)
        except RuntimeError as e:
            if "synchroniz" not in str(e).lower():
                raise
            return {"batches": n, "error": f"batch {i + 1} of {n} read the device at {_where(e)}"}
        if may_read and cuda:
            allowed[f"batch {i + 1}" if i < n else "end"] = len(seen)
    over = [k for k, reads in allowed.items() if k != "end" and reads > 1]
    return {
        "batches": n,
        "reads_where_allowed": allowed if cuda else None,  # off the GPU nothing is watched
        **({"error": f"more than one read at {', '.join(over)}"} if over else {}),
    }


def mixed_lengths(ctx) -> dict:
    cuda = ctx.device.type == "cuda"
    sizes = dict(train_size=640, val_size=100, test_size=100) if ctx.quick else dict(train_size=3000)
    rows, problems = [], []
    for name, copy in (("plain", "off"), ("copy", "on")):
        cfg = Config(copy=copy, epochs=1, device=ctx.device.type, **sizes)  # 3-30 words, batches padded
        trainer = Trainer(cfg, ctx.tmp / f"mixed-{name}.pt", device=ctx.device)
        row = {"model": name, **_sync_epoch(trainer, cuda)}
        if "error" in row:
            problems.append(f"{name}: {row['error']}")
        with sync_reads(cuda, "warn") as seen:
            trainer.validation()
        row["validation_reads"] = len(seen) if cuda else None
        row["validation_batches"] = trainer.val_set.num_batches(cfg.batch_size)
        with sync_reads(cuda, "warn") as seen:
            decode(trainer.model, trainer.vocab, trainer.splits.test, ctx.device)
        row["decode_reads"] = len(seen) if cuda else None
        row["decode_sentences"] = len(trainer.splits.test)
        row["decode_read_places"] = sorted(set(seen))[:10]
        row["checkpoint"] = str(trainer.save(ctx.tmp / f"mixed-{name}.pt"))
        rows.append(row)
    what = "sync debug error" if cuda else "no sync debug (CUDA only): the steps alone"
    return {
        "sync_debug": cuda,
        "rows": rows,
        "copy_checkpoint": rows[-1]["checkpoint"],
        "summary": f"{what}; "
        + "; ".join(
            f"{r['model']}: {r['batches']} batches {'FAILED' if 'error' in r else 'ok'}"
            + (f", validation {r['validation_reads']} reads, decode {r['decode_reads']} reads" if cuda else "")
            for r in rows
        ),
        "problems": problems,
    }


# -- decoding through the model on both sides ---------------------------------------------------
def _probe_sentences(cfg: Config, vocab: Vocab, n: int) -> list[list[str]]:
    """The run's own test sentences, some with unseen words, and some longer than training."""
    import random

    rng = random.Random(7)
    test = splits_for(cfg)[0].test[:n]
    longer = random_sentences(max(2, n // 10), cfg.max_len + 1, 2 * cfg.max_len, rng)
    return test + with_unseen_words(test[: max(2, n // 10)], rng, vocab) + longer


def _compare(dev, cpu) -> dict:
    same = [a.output == b.output and a.steps == b.steps for a, b in zip(dev, cpu)]
    attn = [float(abs(a.attention - b.attention).max()) for a, b, s in zip(dev, cpu, same) if s and a.steps]
    differ = [(" ".join(b.source), " ".join(a.output), " ".join(b.output)) for a, b, s in zip(dev, cpu, same) if not s]
    return {
        "sentences": len(same),
        "same_share": sum(same) / max(1, len(same)),
        "attention_max_abs_diff": max(attn, default=0.0),
        "first_differences": differ[:3],  # (source, device, cpu)
    }


def probe(ctx) -> dict:
    """Each checkpoint decoded by engine.insight.evaluate.decode (engine/model/seq2seq.py's greedy and beam
    search, the model on the device) and by the same on the CPU, TF32 off (the agreement
    section measures TF32): same words, same steps, attention weights within tolerance."""
    ckpts = [
        ("default", ctx.sections.get("default_run", {}).get("checkpoint")),
        ("copy", ctx.sections.get("mixed_lengths", {}).get("copy_checkpoint")),
    ]
    ckpts = [(name, p) for name, p in ckpts if p and Path(p).exists()]
    if not ckpts:
        raise Skip("no checkpoint to probe: default_run and mixed_lengths did not leave one")
    n, n_beam = (40, 4) if ctx.quick else (200, 20)
    rows, problems = [], []
    for name, path in ckpts:
        on_dev, on_cpu = load_model(path, ctx.device), load_model(path, "cpu")
        sentences = _probe_sentences(on_cpu.config, on_cpu.vocab, n)
        for beam, subset in ((1, sentences), (4, sentences[:n_beam])):
            with tf32(False):
                t0 = time.perf_counter()
                dev = decode(on_dev.model, on_dev.vocab, subset, ctx.device, beam=beam)
                sync(ctx.device)
                t_dev = time.perf_counter() - t0
                t0 = time.perf_counter()
                cpu = decode(on_cpu.model, on_cpu.vocab, subset, torch.device("cpu"), beam=beam)
                t_cpu = time.perf_counter() - t0
            row = {
                "checkpoint": name,
                "beam": beam,
                **_compare(dev, cpu),
                "device_seconds": round(t_dev, 3),
                "cpu_seconds": round(t_cpu, 3),
            }
            rows.append(row)
            if row["same_share"] < PROBE_SHARE or row["attention_max_abs_diff"] > PROBE_ATTENTION_TOL:
                problems.append(
                    f"{name} beam {beam}: {row['same_share']:.1%} decoded alike, "
                    f"attention differs by {row['attention_max_abs_diff']:.1e}"
                )
    return {
        "rows": rows,
        "tolerance": {"same_share": PROBE_SHARE, "attention": PROBE_ATTENTION_TOL},
        "summary": "; ".join(
            f"{r['checkpoint']} beam {r['beam']}: {100 * r['same_share']:.1f}% of {r['sentences']} alike, "
            f"attention {r['attention_max_abs_diff']:.1e}"
            for r in rows
        ),
        "problems": problems,
    }


# -- cost per batch ------------------------------------------------------------------------------
def _count_batch_ops(trainer: Trainer, device: torch.device, warm: int, measured: int) -> dict:
    """Device kernels (memory copies apart) and aten calls (nested ones included) per training
    batch, averaged over `measured` batches after `warm` ones."""
    from torch.profiler import ProfilerActivity, profile

    gen = trainer.train_epoch(1)
    for _ in range(warm):
        next(gen)
    sync(device)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=acts) as prof:
        for _ in range(measured):
            next(gen)
        sync(device)
    events = prof.events()
    on_device = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    copies = sum(1 for e in on_device if e.name.startswith(("Memcpy", "Memset")))
    aten = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CPU and e.name.startswith("aten::"))
    return {
        "kernels_per_batch": round((len(on_device) - copies) / measured, 1) if device.type == "cuda" else None,
        "copies_per_batch": round(copies / measured, 1) if device.type == "cuda" else None,
        "aten_ops_per_batch": round(aten / measured, 1),
    }


def kernels(ctx) -> dict:
    warm, measured = (1, 1) if ctx.quick else (2, 3)
    rows = []
    for name, base in (("default", Config()), ("copy", Config(copy="on")), ("notebook", Config.notebook())):
        for words in KERNEL_LENGTHS:
            cfg = replace(
                base,
                min_len=words,
                max_len=words,
                train_size=base.batch_size * (warm + measured),
                val_size=10,
                test_size=10,
                epochs=1,
                device=ctx.device.type,
            )
            trainer = Trainer(cfg, ctx.tmp / "kernels.pt", device=ctx.device)
            rows.append({"config": name, "words": words, **_count_batch_ops(trainer, ctx.device, warm, measured)})
    key = "kernels_per_batch" if ctx.device.type == "cuda" else "aten_ops_per_batch"
    summary = "; ".join(
        f"{c}: " + "/".join(str(r[key]) for r in rows if r["config"] == c) for c in ("default", "copy", "notebook")
    )
    return {"rows": rows, "summary": f"{key.replace('_', ' ')} at {KERNEL_LENGTHS} words: {summary}"}


def throughput(ctx) -> dict:
    """A warm-up epoch, then a timed one, of 24 batches (2 with --quick) of each size."""
    rows = []
    per_epoch = 2 if ctx.quick else 24
    for name, base in (("default", Config()), ("notebook", Config.notebook())):
        for bs in (64, 256) if ctx.quick else (64, 256, 1024):
            cfg = replace(
                base,
                batch_size=bs,
                train_size=bs * per_epoch,
                val_size=100,
                test_size=100,
                device=ctx.device.type,
                epochs=2,
            )
            trainer = Trainer(cfg, ctx.tmp / "throughput.pt", device=ctx.device)
            drain(trainer.train_epoch(1))  # warm-up: allocator, cuDNN plans, the C kernels' build
            sync(ctx.device)
            t0 = time.perf_counter()
            stats = drain(trainer.train_epoch(2))
            sync(ctx.device)
            seconds = time.perf_counter() - t0
            rows.append(
                {
                    "config": name,
                    "batch": bs,
                    "ms_per_batch": round(1000 * seconds / per_epoch, 2),
                    "tokens_per_s": round(stats.tokens / seconds),
                }
            )
    summary = "; ".join(f"{x['config']} b{x['batch']}: {x['ms_per_batch']} ms, {x['tokens_per_s']} tok/s" for x in rows)
    return {"rows": rows, "summary": summary}


SECTIONS = [
    environment,
    default_run,
    agreement,
    loop_autograd,
    mixed_lengths,
    probe,
    kernels,
    throughput,
    notebook_run,
    resume,
    bench,
]
