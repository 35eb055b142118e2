"""How long a probe waits, through each implementation of greedy decoding that remains.

    python3 bench/decoding.py [--epochs 9] [--repeats 100] [--json bench/results/decoding.json]

Trains a default-config model for --epochs (built-in words, seed 42, on the threads a run at
the defaults uses: one), then times engine.insight.evaluate.probe of a 60-word sentence on 1 and 2
threads (--threads): the median of --repeats, the best of three rounds, through the fast
layer's greedy decoding (what --impl auto runs at the defaults) and the reference's
(Seq2Seq.greedy_reference, what runs with engine/fast removed), alternating the two so that
load on the machine hits them alike.

At commit b9859df this script also timed the NumPy probe and the fast layer's beam search
against the reference's (--beam 5 over the test set); both went (bench/README.md).
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
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.insight.evaluate import probe  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.threads import default_threads  # noqa: E402
from engine.train.trainer import Trainer  # noqa: E402

CPU = torch.device("cpu")


def sixty_words(test: list[list[str]]) -> list[str]:
    """Test sentences end to end, cut at 60 words: known words, a long probe."""
    words = [w for s in test for w in s]
    return words[:60]


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 3)


def alternating(fns: dict[str, Callable[[], float]], rounds: int) -> dict[str, list[float]]:
    """Each measurement `rounds` times, in turn, so that a spell of load hits all alike."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            out[name].append(fn())
    return out


def with_impl(model, impl: str):
    """Run the model's greedy decoding through `impl` ("fast" or "reference") for the call."""

    class Use:
        def __enter__(self):
            self.was = model.fast
            model.fast = self.was if impl == "fast" else None

        def __exit__(self, *_):
            model.fast = self.was

    return Use()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="the probe's thread counts")
    p.add_argument("--repeats", type=int, default=100)
    p.add_argument("--epochs", type=int, default=9, help="the model's training epochs (9: the default run's)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    cfg = Config(device="cpu", epochs=args.epochs)
    run_threads = default_threads(cfg.hidden_dim)  # what a run at the defaults uses
    torch.set_num_threads(run_threads)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "best.pt")
        for _ in trainer.run():
            pass
    print(f"trained {args.epochs} epoch(s) on {run_threads} thread(s)", flush=True)
    model, vocab, test = trainer.model.eval(), trainer.vocab, trainer.splits.test
    assert model.impl == "fast" and not model.copy
    text = " ".join(sixty_words(test))

    def through(impl: str) -> Callable[[], object]:
        def run():
            with with_impl(model, impl):
                return probe(model, vocab, text, CPU)

        return run

    probes = {impl: through(impl) for impl in ("fast", "reference")}
    answers = {name: fn() for name, fn in probes.items()}
    assert answers["fast"].output == answers["reference"].output, "the two greedy decodings disagree"
    steps = answers["fast"].steps
    probe_ms, probe_rounds = {}, {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        rounds = alternating({name: lambda fn=fn: median_ms(fn, args.repeats) for name, fn in probes.items()}, 3)
        probe_rounds[threads] = rounds
        probe_ms[threads] = {name: min(v) for name, v in rounds.items()}
        print(f"probe, 60 words ({steps} steps), {threads} thread(s), median of {args.repeats}, best of 3 rounds:")
        for name, ms in probe_ms[threads].items():
            print(f"  {name:9} {ms:8.3f} ms   rounds {rounds[name]}", flush=True)

    if args.json:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        result = {
            "date": time.strftime("%Y-%m-%d"),
            "commit": commit.stdout.strip()[:7],
            "torch": torch.__version__,
            "epochs": args.epochs,
            "load_average_at_end": os.getloadavg(),
            "probe_60_words": {"steps": steps, "best_median_ms": probe_ms, "rounds_ms": probe_rounds},
        }
        tmp_json = args.json.with_suffix(".tmp")
        tmp_json.write_text(json.dumps(result, indent=1) + "\n")
        tmp_json.replace(args.json)


if __name__ == "__main__":
    main()
