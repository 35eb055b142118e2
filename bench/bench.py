"""Benchmark reverse-tui against the seed notebook's code, in one run on one machine.

    python bench/bench.py                      # epoch time, evaluation, probe, memory, roofline
    python bench/bench.py --convergence        # also: wall time to 99% / 100% exact match (slow)
    python bench/bench.py --json bench/out.json

The notebook's code is imported from ../shared/baseline/seed_reference.py (--baseline PATH)
and driven with its own functions; its epochs and ours alternate, so load on the machine hits
both alike. Every figure is reported with how many times better we are: baseline / ours for
times and memory, ours / baseline for throughput (the JSON keeps baseline / ours as well).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.fast import native  # noqa: E402
from engine.insight.evaluate import evaluate, probe  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.machine import peak_rss_mib  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

DEFAULT_BASELINE = ROOT.parent / "shared" / "baseline" / "seed_reference.py"


def load_baseline(path: Path):
    spec = importlib.util.spec_from_file_location("seed_reference", path)
    mod = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the device on import
        spec.loader.exec_module(mod)
    return mod


def drain(gen):
    """Run a generator to its end and return its return value."""
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        return stop.value


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Baseline:
    """The notebook's pipeline, set up as its driver does (same sizes as ours)."""

    def __init__(self, ref, cfg: Config, device: torch.device):
        self.ref, self.cfg, self.device = ref, cfg, device
        ref.device = device
        ref.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        train = ref.create_dataset(cfg.train_size, cfg.min_len, cfg.max_len)
        val = ref.create_dataset(cfg.val_size, cfg.min_len, cfg.max_len)
        test = ref.create_dataset(cfg.test_size, cfg.min_len, cfg.max_len)
        self.vocab = ref.Vocabulary()
        for s, t in train:
            self.vocab.add_sentence(s)
            self.vocab.add_sentence(t)
        self.train_data = ref.prepare_data(train, self.vocab)
        self.val_data = ref.prepare_data(val, self.vocab)
        self.test_data = ref.prepare_data(test, self.vocab)
        self.train_loader = DataLoader(
            self.train_data, batch_size=cfg.batch_size, shuffle=True, collate_fn=ref.collate_fn
        )
        self.val_loader = DataLoader(self.val_data, batch_size=cfg.batch_size, shuffle=False, collate_fn=ref.collate_fn)
        enc = ref.Encoder(len(self.vocab.word2idx), cfg.embed_dim, cfg.hidden_dim, cfg.layers, cfg.dropout)
        dec = ref.Decoder(len(self.vocab.word2idx), cfg.embed_dim, cfg.hidden_dim, cfg.layers, cfg.dropout)
        self.model = ref.Seq2SeqWithAttention(enc, dec).to(device)
        self.opt = ref.AdamOptimizer(self.model.parameters(), lr=cfg.lr)
        self.tokens = sum(len(t) - 1 for _, t in self.train_data)  # target tokens (words + EOS)

    def train_epoch(self) -> float:
        sync(self.device)
        t0 = time.perf_counter()
        self.ref.train_epoch(self.model, self.train_loader, self.opt, self.device, self.cfg.teacher_forcing)
        sync(self.device)
        return time.perf_counter() - t0

    def validate(self) -> tuple[float, float]:
        """Its own val loss pass (timed) and, separately, exact match on that padded batched
        pass, the figure its training log would show."""
        sync(self.device)
        t0 = time.perf_counter()
        self.ref.evaluate(self.model, self.val_loader, self.device)
        sync(self.device)
        seconds = time.perf_counter() - t0
        self.model.eval()
        correct = 0
        with torch.no_grad():
            for src, tgt in self.val_loader:
                src, tgt = src.to(self.device), tgt.to(self.device)
                out, _ = self.model(src, tgt, 0.0)
                pred, ref = out[:, 1:].argmax(-1), tgt[:, 1:]
                correct += int(((pred == ref) | (ref == 0)).all(1).sum())
        return seconds, correct / len(self.val_data)

    def test_eval(self) -> tuple[float, float]:
        """The notebook's own test evaluation (one sentence at a time), timed; and its real
        exact match."""
        sync(self.device)
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.chdir(os.environ.get("TMPDIR", "/tmp")):
            acc = self.ref.evaluate_test_set(self.model, self.test_data, self.vocab, self.device, num_examples=10)
        sync(self.device)
        return time.perf_counter() - t0, acc / 100

    def probe_ms(self, n: int) -> float:
        src = next(s for s, _ in self.test_data if len(s) - 1 == self.cfg.max_len)
        x = torch.LongTensor(src).to(self.device)
        for _ in range(10):
            self.ref.predict_with_attention(self.model, x, self.vocab)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            self.ref.predict_with_attention(self.model, x, self.vocab)
            sync(self.device)
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    def epoch_flops(self) -> int:
        """Floating-point work of one training epoch (matmuls, convs; forward and backward)."""
        model = self.ref.Seq2SeqWithAttention(self.model.encoder, self.model.decoder)
        with FlopCounterMode(display=False) as fc:
            for src, tgt in self.train_loader:
                out, _ = model(src.to(self.device), tgt.to(self.device), self.cfg.teacher_forcing)
                self.ref.compute_loss(out[:, 1:], tgt[:, 1:].to(self.device)).backward()
        model.zero_grad()
        return fc.get_total_flops()


class Ours:
    def __init__(self, cfg: Config, device: torch.device, ckpt: Path):
        self.cfg, self.device = cfg, device
        self.trainer = Trainer(cfg, ckpt, device=device)
        self.epoch = 0

    def train_epoch(self) -> float:
        self.epoch += 1
        sync(self.device)
        t0 = time.perf_counter()
        stats = drain(self.trainer.train_epoch(self.epoch))
        sync(self.device)
        self.tokens = stats.tokens
        return time.perf_counter() - t0

    def validate(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        _, em = self.trainer.validate()
        sync(self.device)
        return time.perf_counter() - t0, em

    def test_eval(self) -> tuple[float, float]:
        r = evaluate(self.trainer.model, self.trainer.vocab, self.trainer.splits.test, self.device)
        return r.seconds, r.exact_match

    def probe_ms(self, n: int) -> float:
        words = next(s for s in self.trainer.splits.test if len(s) == self.cfg.max_len)
        text = " ".join(words)
        m, v = self.trainer.model, self.trainer.vocab
        for _ in range(10):
            probe(m, v, text, self.device)
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            probe(m, v, text, self.device)
            sync(self.device)
            times.append(time.perf_counter() - t0)
        return 1000 * statistics.median(times)

    def epoch_flops(self) -> int:
        t = Trainer(self.cfg, self.trainer.checkpoint_path.with_suffix(".flops.pt"), device=self.device)
        with FlopCounterMode(display=False) as fc:
            drain(t.train_epoch(1))
        return fc.get_total_flops()


def matmul_peak(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """Measured fp32 matrix-multiply throughput, FLOP/s (the roofline's ceiling)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    for _ in range(2):
        a @ b
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t0)


def child_memory(which: str, preset: str, device: str, threads: int, baseline: Path) -> float:
    """Peak resident memory of one side alone (train one epoch, evaluate), in its own process."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        which,
        "--preset",
        preset,
        "--device",
        device,
        "--threads",
        str(threads),
        "--baseline",
        str(baseline),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def run_child(args) -> None:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cfg = Config.notebook() if args.preset == "notebook" else Config()
    cfg = Config.from_dict({**cfg.to_dict(), "device": args.device})
    side = (
        Baseline(load_baseline(args.baseline), cfg, device)
        if args.child == "baseline"
        else Ours(cfg, device, Path(os.environ.get("TMPDIR", "/tmp")) / "bench-mem.pt")
    )
    print(f"child {args.child}: measuring", file=sys.stderr)
    side.train_epoch()
    side.validate()
    side.test_eval()
    print(peak_rss_mib())


def convergence(side_factory, max_epochs: int, targets=(0.99, 1.0)):
    """Wall time (training + validation, from the start) until val exact match first
    reaches each target; the side's own default configuration."""
    t0 = time.perf_counter()
    side = side_factory()
    reached, history = {}, []
    for _ in range(max_epochs):
        side.train_epoch()
        _, em = side.validate()
        history.append(em)
        for t in targets:
            if em >= t and t not in reached:
                reached[t] = time.perf_counter() - t0
        if all(t in reached for t in targets):
            break
    _, test_em = side.test_eval()
    return {
        "seconds_to": {str(t): reached.get(t) for t in targets},
        "epochs": len(history),
        "val_exact_match": history,
        "test_exact_match": test_em,
    }


def ratio(a, b):
    return a / b if a and b else None


def speedup(name: str, baseline, ours):
    """How many times better we are: baseline / ours for times and memory, ours / baseline
    for a throughput."""
    return ratio(ours, baseline) if "/s" in name else ratio(baseline, ours)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="the notebook's code")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs per side (median taken)")
    p.add_argument("--probes", type=int, default=200)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--convergence", action="store_true", help="also time runs to 99%% / 100%% exact match")
    p.add_argument("--max-baseline-epochs", type=int, default=30)
    p.add_argument("--no-memory", action="store_true")
    p.add_argument(
        "--epochs-only", action="store_true", help="only the training-epoch comparison (a quick check while optimising)"
    )
    p.add_argument(
        "--train-size", type=int, default=0, help="training sentences at the notebook's configuration (0: its 8,000)"
    )
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--child", choices=["baseline", "ours"], help=argparse.SUPPRESS)
    p.add_argument("--preset", default="notebook", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return run_child(args)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    have_baseline = args.baseline.exists()
    if not have_baseline:
        print(
            f"bench: baseline not found at {args.baseline}; measuring this project alone "
            "(pass --baseline PATH to compare)",
            file=sys.stderr,
        )
    ref = load_baseline(args.baseline) if have_baseline else None
    nb = Config.notebook(device=args.device, **({"train_size": args.train_size} if args.train_size else {}))
    ours_default = Config(device=args.device)
    info = {
        "machine": platform.processor() or platform.machine(),
        "cpu": _cpu_name(),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "native_kernels": "on"
        if device.type == "cpu" and native.kernels()
        else (native.why_not() or "not used off the CPU"),
        "gpu": torch.cuda.get_device_name() if device.type == "cuda" else None,
    }
    print(
        f"bench on {info['cpu']} ({info['threads']} threads), device {device}, torch {torch.__version__}, "
        f"C kernels: {info['native_kernels']}",
        flush=True,
    )

    rows, result = [], {"info": info}
    peak = matmul_peak(device)
    result["matmul_fp32_gflops"] = peak / 1e9

    # 1. training epochs at the notebook's configuration, alternating sides
    ours_nb = Ours(nb, device, tmp / "bench-ours-nb.pt")
    base = Baseline(ref, nb, device) if ref else None
    t_b, t_o, v_b, v_o = [], [], [], []
    for e in range(args.epochs):
        if base:
            t_b.append(base.train_epoch())
            v_b.append(base.validate()[0])
        t_o.append(ours_nb.train_epoch())
        v_o.append(ours_nb.validate()[0])
        print(f"  epoch {e + 1}: baseline {t_b[-1] if base else float('nan'):.2f}s  ours {t_o[-1]:.2f}s", flush=True)
    med_b = statistics.median(t_b) if base else None
    med_o = statistics.median(t_o)
    tokens = ours_nb.tokens
    rows.append(("train epoch, notebook config (s)", med_b, med_o))
    rows.append(("train tokens/s, notebook config", base.tokens / med_b if base else None, tokens / med_o))
    rows.append(("validation pass (s)", statistics.median(v_b) if base else None, statistics.median(v_o)))
    if args.epochs_only:
        for name, b, o in rows:
            up = speedup(name, b, o)
            print(
                f"{name}: baseline {'-' if b is None else f'{b:.4g}'}  ours {o:.4g}"
                + (f"  {up:.2f}x in our favour" if up else "")
            )
        write_json(args.json, result, rows)  # bench/gpu_check.py reads it
        return

    # 2. test-set evaluation and probe latency at the notebook's configuration (same trained epochs)
    tb = base.test_eval() if base else (None, None)
    to = ours_nb.test_eval()
    rows.append(("test-set evaluation, notebook config (s)", tb[0], to[0]))
    rows.append(
        (
            "probe latency, notebook config (ms)",
            base.probe_ms(args.probes) if base else None,
            ours_nb.probe_ms(args.probes),
        )
    )
    result["test_exact_match_after_timed_epochs"] = {"baseline": tb[1], "ours": to[1]}

    # 3. ours at its own defaults, against the baseline's own
    ours_def = Ours(ours_default, device, tmp / "bench-ours-def.pt")
    t_d = [ours_def.train_epoch() for _ in range(ours_default.epochs)]
    ours_def.validate()
    td = ours_def.test_eval()
    rows.append(("train epoch, each side's defaults (s)", med_b, statistics.median(t_d)))
    rows.append(("test-set evaluation, each side's defaults (s)", tb[0], td[0]))
    rows.append(("probe latency, each side's defaults (ms)", rows[4][1], ours_def.probe_ms(args.probes)))

    print("  counting the floating-point work of an epoch ...", flush=True)
    # 4. roofline: how far an epoch is from the machine's fp32 matmul ceiling
    flops_o = ours_nb.epoch_flops()
    flops_b = base.epoch_flops() if base else None
    result["roofline"] = {
        "matmul_fp32_gflops": peak / 1e9,
        "baseline_epoch_gflop": flops_b / 1e9 if flops_b else None,
        "ours_epoch_gflop": flops_o / 1e9,
        "baseline_fraction_of_peak": flops_b / med_b / peak if flops_b else None,
        "ours_fraction_of_peak": flops_o / med_o / peak,
        "ours_epoch_at_peak_s": flops_o / peak,
    }

    print("  peak memory, each side in its own process ...", flush=True)
    # 5. peak memory, each side alone in its own process
    if not args.no_memory:
        mem_b = child_memory("baseline", "notebook", args.device, args.threads, args.baseline) if base else None
        mem_o = child_memory("ours", "notebook", args.device, args.threads, args.baseline)
        rows.append(("peak memory, notebook config (MiB)", mem_b, mem_o))

    # 6. time to 99% / 100% exact match, each side with its own defaults
    if args.convergence:
        print("  convergence runs (the baseline's takes minutes) ...", flush=True)
        conv_o = convergence(lambda: Ours(ours_default, device, tmp / "bench-conv.pt"), ours_default.epochs)
        conv_b = convergence(lambda: Baseline(ref, nb, device), args.max_baseline_epochs) if base else None
        result["convergence"] = {"ours": conv_o, "baseline": conv_b}
        for t in ("0.99", "1.0"):
            rows.append(
                (
                    f"wall time to {float(t):.0%} val exact match (s)",
                    conv_b["seconds_to"][t] if conv_b else None,
                    conv_o["seconds_to"][t],
                )
            )

    print_table(write_json(args.json, result, rows))


def write_json(path: Path | None, result: dict, rows: list) -> dict:
    """The rows into result, and result to path (when given)."""
    result["rows"] = [
        {
            "figure": name,
            "baseline": b,
            "ours": o,
            "ratio_baseline_over_ours": ratio(b, o),
            "speedup": speedup(name, b, o),
        }
        for name, b, o in rows
    ]
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
        print(f"wrote {path}")
    return result


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def print_table(result: dict) -> None:
    def fmt(x) -> str:
        return "-" if x is None else f"{x:,.3f}" if x < 100 else f"{x:,.0f}"

    print(f"\n{'figure':<48}{'baseline':>12}{'ours':>12}{'ratio':>9}")
    for r in result["rows"]:
        rt = speedup(r["figure"], r["baseline"], r["ours"])
        print(f"{r['figure']:<48}{fmt(r['baseline']):>12}{fmt(r['ours']):>12}{('-' if not rt else f'{rt:.2f}x'):>9}")
    rf = result["roofline"]
    print(
        f"\nroofline: fp32 matmul {rf['matmul_fp32_gflops']:.0f} GFLOP/s measured; one epoch at the notebook "
        f"config is {rf['ours_epoch_gflop']:.0f} GFLOP for us"
        + (f" ({rf['baseline_epoch_gflop']:.0f} for the baseline)" if rf["baseline_epoch_gflop"] else "")
        + f"; we reach {100 * rf['ours_fraction_of_peak']:.0f}% of the ceiling"
        + (f", the baseline {100 * rf['baseline_fraction_of_peak']:.0f}%" if rf["baseline_fraction_of_peak"] else "")
        + f" (at the ceiling our epoch would take {rf['ours_epoch_at_peak_s']:.2f}s)"
    )


if __name__ == "__main__":
    main()
