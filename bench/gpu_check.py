"""A prepared check of a new GPU box, in one command:

    bash bench/gpu_check.sh                 # on the GPU machine, from the repository root
    python bench/gpu_check.py --device cpu --quick   # a dry run of the same steps on a CPU

Needs torch (rich, matplotlib and seaborn for the headless runs), not textual. Each section
runs on its own: one that fails is recorded with its error and the rest go on. Writes
bench/results/gpu-<gpu name>.json and prints a short summary; sized to finish in under 8
minutes on one H100/H200.

Sections:
  environment   GPU, driver, torch, CUDA, cuDNN
  default_run   `reverse-tui --no-ui` with --device auto (it must say cuda): exact match, times
  notebook_run  `--preset notebook`, a few epochs
  agreement     loss and every gradient, CPU against the device, same weights and batch:
                float64, float32 with TF32 off, float32 with TF32 on
  loop_autograd on the device: the hand-written loop against step-by-step autograd (float64),
                and torch.autograd.gradcheck of the whole model's logits
  resume        1 epoch, then --resume to 2, against 2 uninterrupted (dropout on)
  probe         the probe on the default run's checkpoint, on the device and on the CPU
  throughput    ms per training batch, tokens/s and device kernels per batch, batch 64/256/1024,
                defaults and the notebook's configuration
  bench         bench/bench.py --epochs-only on the device: the epoch against the notebook's code
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.config import Config  # noqa: E402
from engine.data import PairDataset, Vocab, random_sentences  # noqa: E402
from engine.model import Seq2Seq  # noqa: E402
from engine.train import Trainer, masked_loss  # noqa: E402

PY = sys.executable


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


# -- sections ----------------------------------------------------------------------------------
def environment(device: torch.device, **_) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "host": platform.node(),
        "device": str(device),
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
    return info


def _report(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())


def default_run(device: torch.device, tmp: Path, quick: bool, **_) -> dict:
    out = tmp / "default"
    flags = ["--train-size", "1000", "--val-size", "200", "--test-size", "200"] if quick else []
    # auto on the GPU box (it must pick cuda); the dry run names its device
    dev = "auto" if device.type == "cuda" else device.type
    t0 = time.perf_counter()
    p = must(cli("--no-ui", "--device", dev, *flags, "--out", str(out), "--checkpoint", str(out / "best.pt")))
    wall = time.perf_counter() - t0
    first = p.stdout.splitlines()[0] if p.stdout else ""
    r = _report(out)
    return {
        "says_device": re.search(r"device (\S+?),", first + ",").group(1) if "device " in first else None,
        "first_line": first,
        "test_exact_match": r["test_exact_match"],
        "epoch_seconds": [e["seconds"] for e in r["epochs"]],
        "train_seconds": r.get("train_seconds"),
        "test_eval_seconds": r.get("test_eval_seconds"),
        "wall_seconds": round(wall, 2),
        "checkpoint": str(out / "best.pt"),
    }


def notebook_run(device: torch.device, tmp: Path, quick: bool, **_) -> dict:
    out = tmp / "notebook"
    flags = (
        ["--epochs", "1", "--train-size", "1000", "--val-size", "200", "--test-size", "200"]
        if quick
        else ["--epochs", "4"]
    )
    p = must(
        cli(
            "--no-ui",
            "--preset",
            "notebook",
            "--device",
            device.type,
            *flags,
            "--out",
            str(out),
            "--checkpoint",
            str(out / "best.pt"),
        )
    )
    r = _report(out)
    return {
        "epochs": r["epochs"]
        and [{k: e[k] for k in ("epoch", "train_loss", "val_loss", "val_exact_match", "seconds")} for e in r["epochs"]],
        "test_exact_match": r["test_exact_match"],
        "lines": len(p.stdout.splitlines()),
    }


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


def agreement(device: torch.device, **_) -> dict:
    """The same weights and batch on the CPU and on the device: |loss difference| and the
    largest relative gradient difference over all parameters (||g_dev - g_cpu|| / ||g_cpu||)."""
    rows = []
    for name, cfg in (("default", Config(dropout=0.0)), ("notebook", Config.notebook(dropout=0.0))):
        vocab, batch = _batch(cfg, 64)
        forcing = [True] + [t % 2 == 0 for t in range(1, batch.tgt_in.size(1))]
        torch.manual_seed(0)
        base = Seq2Seq(len(vocab), cfg)
        for dtype, tf32 in ((torch.float64, False), (torch.float32, False), (torch.float32, True)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
            cpu = Seq2Seq(len(vocab), cfg).to(dtype)
            cpu.load_state_dict(base.state_dict())
            dev = Seq2Seq(len(vocab), cfg).to(dtype).to(device)
            dev.load_state_dict(base.state_dict())
            l_cpu, g_cpu = _loss_and_grads(cpu.train(), batch, torch.device("cpu"), forcing)
            l_dev, g_dev = _loss_and_grads(dev.train(), batch, device, forcing)
            rel = max(float((g_dev[k] - g_cpu[k]).norm() / g_cpu[k].norm().clamp_min(1e-30)) for k in g_cpu)
            rows.append(
                {
                    "config": name,
                    "dtype": str(dtype).removeprefix("torch."),
                    "tf32": tf32,
                    "loss_cpu": float(l_cpu),
                    "loss_abs_diff": float((l_dev - l_cpu).abs()),
                    "grad_max_rel_diff": rel,
                    "params_compared": len(g_cpu),
                }
            )
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = True  # torch's defaults
    return {"rows": rows}


def loop_autograd(device: torch.device, **_) -> dict:
    """On the device, float64: the fast layer's logits and gradients against the reference
    model under autograd (Seq2Seq.forward_reference, what --impl reference trains with), for
    attention with and without the location term and the no-attention control; then
    gradcheck of the logits with respect to a few weights through the whole model."""
    rows = []
    for arch in (
        dict(layers=1, bidirectional=True, location_kernel=5),
        dict(layers=2, bidirectional=False, location_kernel=0),
        dict(layers=2, bidirectional=True, location_kernel=3, attention=False),
    ):
        torch.manual_seed(1)
        model = Seq2Seq(20, Config(embed_dim=8, hidden_dim=12, dropout=0.0, **arch)).double().to(device)
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
        rows.append(
            {
                "arch": arch,
                "logits_max_abs_diff": float((out[True][0] - out[False][0]).abs().max()),
                "grad_max_abs_diff": max(float((grads[n] - out[False][1][n]).abs().max()) for n in grads),
            }
        )
    torch.manual_seed(2)
    model = Seq2Seq(16, Config(embed_dim=6, hidden_dim=8, dropout=0.0)).double().to(device)
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

    ok = torch.autograd.gradcheck(f, leaves, raise_exception=False)
    return {"rows": rows, "gradcheck": bool(ok), "gradcheck_params": names}


def resume(device: torch.device, tmp: Path, **_) -> dict:
    """Dropout on, so that the random state (CPU and device) must be restored for the resumed
    run to draw the same masks as the uninterrupted one. The interrupted run is the same
    2-epoch run stopped by SIGINT after its first epoch (same lr schedule), then resumed."""
    import signal

    flags = [
        "--train-size",
        "1200",
        "--val-size",
        "200",
        "--test-size",
        "100",
        "--dropout",
        "0.1",
        "--epochs",
        "2",
        "--device",
        device.type,
    ]
    a, b = tmp / "resume-a", tmp / "resume-b"
    must(cli("--no-ui", *flags, "--out", str(a), "--checkpoint", str(a / "best.pt")))
    p = subprocess.Popen(
        [PY, "-m", "tui", "--no-ui", *flags, "--out", str(b), "--checkpoint", str(b / "best.pt")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    for line in p.stdout:
        if line.lstrip().startswith("1/"):  # the first epoch's line of the table
            p.send_signal(signal.SIGINT)  # stops after the current batch of epoch 2
            break
    p.communicate(timeout=600)
    must(
        cli(
            "--no-ui",
            "--resume",
            str(b / "best.last.pt"),
            "--device",
            device.type,
            "--out",
            str(b),
            "--checkpoint",
            str(b / "best.pt"),
        )
    )
    la = [e["train_loss"] for e in _report(a)["epochs"]]
    lb = [e["train_loss"] for e in _report(b)["epochs"]]
    return {
        "uninterrupted": la,
        "resumed": lb,
        "max_abs_diff": max(abs(x - y) for x, y in zip(la, lb)) if len(la) == len(lb) else None,
    }


def probe(device: torch.device, results: dict, **_) -> dict:
    ckpt = results.get("default_run", {}).get("checkpoint")
    if not ckpt:
        raise RuntimeError("no checkpoint: the default run failed")
    sentence = "the quick brown fox jumps over the lazy dog"
    on_dev = must(cli("probe", "--checkpoint", ckpt, "--device", device.type, sentence)).stdout.strip()
    on_cpu = must(cli("probe", "--checkpoint", ckpt, "--device", "cpu", sentence)).stdout.strip()
    return {"sentence": sentence, "device": on_dev, "cpu": on_cpu, "same": on_dev == on_cpu}


def _kernels_per_batch(step, device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        sync(device)
    return sum(1 for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA)


def _drain(gen):
    """Run a generator to its end; return its return value."""
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            return stop.value


def throughput(device: torch.device, quick: bool, **_) -> dict:
    """A warm-up epoch, then a timed one, of 24 batches (6 with --quick) of each size."""
    rows = []
    per_epoch = 6 if quick else 24
    for name, base in (("default", Config()), ("notebook", Config.notebook())):
        for bs in (64, 256) if quick else (64, 256, 1024):
            cfg = Config.from_dict(
                {
                    **base.to_dict(),
                    "batch_size": bs,
                    "train_size": bs * per_epoch,
                    "val_size": 100,
                    "test_size": 100,
                    "device": device.type,
                    "epochs": 2,
                }
            )
            with tempfile.TemporaryDirectory() as d:
                trainer = Trainer(cfg, Path(d) / "b.pt", device=device)
                _drain(trainer.train_epoch(1))  # warm-up: allocator, cuDNN plans, the C kernels' build
                sync(device)
                t0 = time.perf_counter()
                stats = _drain(trainer.train_epoch(2))
                sync(device)
                seconds = time.perf_counter() - t0
                gen = trainer.train_epoch(3)
                next(gen)
                kernels = _kernels_per_batch(lambda gen=gen: next(gen), device)
            rows.append(
                {
                    "config": name,
                    "batch": bs,
                    "ms_per_batch": round(1000 * seconds / per_epoch, 2),
                    "tokens_per_s": round(stats.tokens / seconds),
                    "kernels_per_batch": kernels,
                }
            )
    return {"rows": rows}


def bench(device: torch.device, tmp: Path, quick: bool, **_) -> dict:
    out = tmp / "bench.json"
    args = [
        PY,
        str(ROOT / "bench" / "bench.py"),
        "--epochs-only",
        "--device",
        device.type,
        "--epochs",
        "1" if quick else "3",
        "--json",
        str(out),
    ]
    must(subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900))
    return json.loads(out.read_text())


SECTIONS = [environment, default_run, notebook_run, agreement, loop_autograd, resume, probe, throughput, bench]


def summary(results: dict) -> str:
    lines = []
    env = results.get("environment", {})
    lines.append(
        f"{env.get('gpu', env.get('device'))} · driver {env.get('driver')} · torch {env.get('torch')} "
        f"· CUDA {env.get('cuda')}"
    )
    for name, r in results.items():
        if name == "environment":
            continue
        if "error" in r:
            lines.append(f"{name:13s} FAILED: {r['error']}")
        elif name == "default_run":
            lines.append(
                f"{name:13s} device {r['says_device']}, test exact match {100 * r['test_exact_match']:.1f}%, "
                f"epochs {r['epoch_seconds']} s, whole run {r['wall_seconds']} s"
            )
        elif name == "notebook_run":
            lines.append(
                f"{name:13s} test exact match {100 * r['test_exact_match']:.1f}%, epoch s "
                f"{[e['seconds'] for e in r['epochs']]}"
            )
        elif name == "agreement":
            lines.append(
                f"{name:13s} "
                + "; ".join(
                    f"{x['config']} {x['dtype']}{' tf32' if x['tf32'] else ''}: dloss {x['loss_abs_diff']:.1e} "
                    f"grad {x['grad_max_rel_diff']:.1e}"
                    for x in r["rows"]
                )
            )
        elif name == "loop_autograd":
            worst = max(x["grad_max_abs_diff"] for x in r["rows"])
            lines.append(
                f"{name:13s} max grad diff {worst:.1e} (float64), gradcheck {'passed' if r['gradcheck'] else 'FAILED'}"
            )
        elif name == "resume":
            lines.append(f"{name:13s} max train-loss diff resumed vs uninterrupted: {r['max_abs_diff']}")
        elif name == "probe":
            lines.append(f"{name:13s} device '{r['device']}' cpu '{r['cpu']}' same: {r['same']}")
        elif name == "throughput":
            lines.append(
                f"{name:13s} "
                + "; ".join(
                    f"{x['config']} b{x['batch']}: {x['ms_per_batch']} ms, {x['tokens_per_s']} tok/s"
                    + (f", {x['kernels_per_batch']} kernels" if x["kernels_per_batch"] else "")
                    for x in r["rows"]
                )
            )
        elif name == "bench":
            lines.append(f"{name:13s} see the JSON ({', '.join(list(r)[:6])})")
        lines[-1] += f"  [{r.get('_seconds', 0):.0f} s]" if isinstance(r, dict) else ""
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (the check) or cpu (a dry run of the steps)")
    ap.add_argument("--quick", action="store_true", help="smaller runs: to try the script itself")
    ap.add_argument("--only", default="", help="comma-separated sections")
    ap.add_argument("--json", type=Path, default=None, help="default: bench/results/gpu-<name>.json")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: PyTorch sees no CUDA device here; use --device cpu for a dry run", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    results: dict = {}
    chosen = [s for s in SECTIONS if not args.only or s.__name__ in args.only.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        for section in chosen:
            t0 = time.perf_counter()
            print(f"gpu_check: {section.__name__} ...", file=sys.stderr, flush=True)
            try:
                results[section.__name__] = section(device=device, tmp=Path(tmp), quick=args.quick, results=results)
            except Exception as e:  # recorded; the other sections still run
                results[section.__name__] = {
                    "error": f"{type(e).__name__}: {e}",
                    "traceback": traceback.format_exc(limit=4),
                }
            results[section.__name__]["_seconds"] = round(time.perf_counter() - t0, 1)
    name = results.get("environment", {}).get("gpu") or args.device
    path = (
        args.json or ROOT / "bench" / "results" / f"gpu-{re.sub(r'[^A-Za-z0-9]+', '-', name).strip('-').lower()}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    text = summary(results)
    path.with_suffix(".txt").write_text(text + "\n")
    print(text)
    print(f"wrote {path} and {path.with_suffix('.txt')}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
