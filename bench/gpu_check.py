"""A prepared check of a new GPU box, in one command (bench/README.md, "A GPU box"):

    bash bench/gpu_check.sh --prepare                 # once, where ../shared/baseline exists
    bash bench/gpu_check.sh --out DIR                 # on the GPU machine, from the repository root
    bash bench/gpu_check.sh --device cpu --quick --out DIR   # a dry run of the same steps on a CPU

Needs torch (rich, matplotlib and seaborn for the headless runs), not textual. The sections
(bench/gpu_check_sections.py) run one after another, each on its own: one that fails is
recorded with a one-line error and the rest go on. DIR/gpu-<gpu name>.json and a text
summary beside it are rewritten (a temporary file, then a rename) when each section starts
and when it ends, so a time limit or a kill keeps every section that finished, and names
the one that was running. The time limit's SIGTERM is caught: the running section is
recorded as stopped by it and the file is written once more.

GPU_CHECK_FAULT=SECTION:raise|term|kill makes SECTION fail, take the time limit's SIGTERM, or
be killed outright as it starts (tests/test_gpu_check.py uses it).
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]  # engine/, and the sections beside this file

from gpu_check_sections import SECTIONS, Skip  # noqa: E402

DEFAULT_BASELINE = ROOT / "bench" / ".baseline" / "seed_reference.py"  # git ignores it; --prepare fills it


class TimeLimit(BaseException):
    """The time limit's SIGTERM, raised where the check happens to be (a BaseException, so that
    no section's own `except Exception` swallows it)."""


@dataclass
class Context:
    """What every section is given."""

    device: object  # torch.device
    tmp: Path  # scratch space, removed at the end
    quick: bool
    threads: int
    baseline: Path
    sections: dict = field(default_factory=dict)  # name -> entry of the sections so far


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower() or "unknown"


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}" if text else type(e).__name__


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def baseline_info(path: Path) -> dict:
    """Whether the notebook's code is where the bench section reads it, and which file it is."""
    if not path.is_file():
        return {
            "path": str(path),
            "present": False,
            "warning": f"BASELINE MISSING: no notebook baseline at {path}; the bench section cannot compare "
            "(run `bash bench/gpu_check.sh --prepare` and carry bench/.baseline to the GPU machine)",
        }
    return {"path": str(path), "present": True, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


class Record:
    """The JSON and its text summary, rewritten whole after every change."""

    def __init__(self, path: Path, head: dict):
        self.path = path
        self.data = {**head, "sections": {}, "finished": False}

    @property
    def sections(self) -> dict:
        return self.data["sections"]

    def write(self) -> None:
        write_atomic(self.path, json.dumps(self.data, indent=2, default=str) + "\n")
        write_atomic(self.path.with_suffix(".txt"), summary(self.data) + "\n")


def summary(data: dict) -> str:
    env = data.get("sections", {}).get("environment", {})
    lines = [
        f"{env.get('gpu') or data.get('device')} · driver {env.get('driver')} · torch {env.get('torch')} "
        f"· CUDA {env.get('cuda')} · {data.get('threads')} threads{' · quick' if data.get('quick') else ''}"
    ]
    base = data.get("baseline", {})
    lines.append(base.get("warning") or f"baseline {base.get('path')} (sha256 {str(base.get('sha256'))[:12]})")
    for name, s in data.get("sections", {}).items():
        status = s.get("status", "?")
        what = {"failed": s.get("error"), "skipped": s.get("reason"), "running": "cut off while running"}.get(status)
        line = f"{name:14s} {status.upper() if status != 'ok' else 'ok':8s} {s.get('seconds', '-'):>6} s"
        if s.get("summary"):
            line += f"  {s['summary']}"
        if what:
            line += f"  [{what}]"
        lines.append(line)
    if not data.get("finished"):
        lines.append("(not finished: the sections above are what had run)")
    return "\n".join(lines)


def inject_fault(name: str) -> None:
    """GPU_CHECK_FAULT=SECTION:raise|term|kill, for the tests of the runner itself."""
    target, _, how = os.environ.get("GPU_CHECK_FAULT", "").partition(":")
    if target != name:
        return
    if how == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if how == "term":
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises TimeLimit at once; this only waits for it
    raise RuntimeError(f"injected fault in {name} (GPU_CHECK_FAULT)")


def run_one(section: Callable[[Context], dict], ctx: Context) -> dict:
    """One section's entry: status ok / failed (with a one-line error) / skipped (with a
    reason), its data, and seconds. A section reports a measured failure by returning
    `problems`; its data are kept beside them. TimeLimit passes through."""
    t0 = time.perf_counter()
    try:
        inject_fault(section.__name__)
        data = section(ctx)
        problems = data.pop("problems", [])
        entry = {"status": "failed", "error": "; ".join(problems)} if problems else {"status": "ok"}
        entry.update(data)
    except Skip as e:
        entry = {"status": "skipped", "reason": str(e)}
    except Exception as e:  # recorded; the other sections still run
        entry = {"status": "failed", "error": one_line(e), "traceback": traceback.format_exc(limit=6)}
    entry["seconds"] = round(time.perf_counter() - t0, 1)
    return entry


def run_sections(sections: Sequence[Callable[[Context], dict]], ctx: Context, record: Record) -> None:
    """Each section in turn; the record is on disk before a section starts and after it ends."""
    ctx.sections = record.sections
    for i, section in enumerate(sections):
        name = section.__name__
        print(f"gpu_check: {name} ...", file=sys.stderr, flush=True)
        record.sections[name] = {"status": "running", "started": now()}
        record.write()
        t0 = time.perf_counter()
        try:
            entry = run_one(section, ctx)
        except TimeLimit:
            record.sections[name] = {
                "status": "failed",
                "error": "stopped by the time limit (SIGTERM)",
                "seconds": round(time.perf_counter() - t0, 1),
            }
            for later in sections[i + 1 :]:
                record.sections[later.__name__] = {"status": "skipped", "reason": "not reached: the time limit"}
            record.write()
            raise
        record.sections[name] = entry
        record.write()
        what = entry.get("error") or entry.get("reason") or entry.get("summary", "")
        print(f"gpu_check: {name} {entry['status']} ({entry['seconds']} s) {what}", file=sys.stderr, flush=True)


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def on_sigterm(signum, frame) -> None:
    # timeout(1) signals this process and then its whole group, so a second SIGTERM may follow
    # at once: ignored, so that it cannot cut short the writing of the record
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise TimeLimit()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from engine.train.threads import usable_cores

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"], help="cuda (the check) or cpu (a dry run)")
    ap.add_argument("--quick", action="store_true", help="smaller runs: to try the script itself")
    ap.add_argument("--only", default="", help="comma-separated sections (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results", help="folder for gpu-<name>.json/.txt")
    ap.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for this check and its child runs (default: the usable cores with --device cuda; "
        "1 for the CPU dry run, where a second thread on a shared machine made it crawl)",
    )
    ap.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="the notebook's code (bench/bench.py)")
    args = ap.parse_args(argv)
    if args.threads is None:
        args.threads = usable_cores() if args.device == "cuda" else 1
    if args.threads < 1:
        ap.error(f"--threads must be at least 1, got {args.threads}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: PyTorch sees no CUDA device here; use --device cpu for a dry run", file=sys.stderr)
        return 2
    known = [s.__name__ for s in SECTIONS]
    only = [s for s in args.only.split(",") if s]
    if set(only) - set(known):
        print(f"gpu_check: unknown section(s) {', '.join(sorted(set(only) - set(known)))} (known: {', '.join(known)})")
        return 2
    torch.set_num_threads(args.threads)
    print(f"gpu_check: {torch.get_num_threads()} CPU threads (torch.set_num_threads; --threads)", file=sys.stderr)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    base = baseline_info(args.baseline)
    if not base["present"]:
        print(f"gpu_check: {base['warning']}", file=sys.stderr, flush=True)
    record = Record(
        args.out / f"gpu-{slug(name)}.json",
        {
            "started": now(),
            "device": str(device),
            "gpu_name": name,
            "quick": args.quick,
            "threads": torch.get_num_threads(),
            "baseline": base,
        },
    )
    print(f"gpu_check: writing {record.path} after each section", file=sys.stderr, flush=True)
    chosen = [s for s in SECTIONS if not only or s.__name__ in only]
    signal.signal(signal.SIGTERM, on_sigterm)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        ctx = Context(device, Path(tmp), args.quick, args.threads, args.baseline)
        try:
            run_sections(chosen, ctx, record)
        except TimeLimit:
            print(f"gpu_check: stopped by the time limit; wrote {record.path}", file=sys.stderr)
            return 124
    record.data["finished"] = now()
    record.write()
    print(summary(record.data))
    print(f"wrote {record.path} and {record.path.with_suffix('.txt')}")
    if not base["present"]:
        print(f"gpu_check: {base['warning']}", file=sys.stderr)
    return 1 if any(s["status"] == "failed" for s in record.sections.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
