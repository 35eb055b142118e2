"""What drawing one attention snapshot costs the terminal app's thread: the training screen
(through Textual's headless driver, which lays out and paints as on a terminal) shown a
run's snapshots one after another, against the same waits with none, in CPU seconds of the
app's thread; the map drawn by AttentionMap (prepared lines) against a Static given the same
map (Textual turns its spans into content at every update, and each update lays the screen out).

    python3 bench/watch_paint.py RUN_FOLDER [--repeats 5] [--json bench/results/watch-paint.json]

RUN_FOLDER: a run's folder with its snapshots.jsonl (any default run: reverse-tui --no-ui).
The app thread's CPU matters beyond its own core: while it holds Python's lock, the
training thread waits for it between its torch calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textual.widgets import Static  # noqa: E402

import tui.widgets.watch_view as watch_view  # noqa: E402
from engine.train.config import Config  # noqa: E402
from engine.train.events import Snapshot  # noqa: E402
from tui.app import ReverseApp  # noqa: E402
from tui.common import RunOptions  # noqa: E402
from tui.widgets.attention_map import AttentionMap  # noqa: E402

SIZES = ((100, 32), (120, 40))


class StaticMap(Static):
    """The map as a Static: every show converts the map and lays the screen out."""

    def show(self, text) -> None:
        self.text = text
        self.update(text)


def per_snapshot(snaps: list[Snapshot], size: tuple[int, int], repeats: int, tmp: Path) -> float:
    """Median app-thread CPU seconds to draw one snapshot on the training screen, less the
    same waits with nothing drawn."""
    cfg = Config(device="cpu")
    app = ReverseApp(cfg, RunOptions(checkpoint=tmp / "best.pt", out=tmp, threads=None), autostart=False)
    app.CSS_PATH = str(ROOT / "tui" / "app.tcss")
    spent: dict[bool, list[float]] = {False: [], True: []}

    async def body() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause(0.3)
            for _ in range(repeats):
                for draw in (False, True):
                    app.snapshots = []
                    await pilot.pause(0.05)
                    t = time.thread_time()
                    for snap in snaps:
                        if draw:
                            app.snapshots = [*app.snapshots, snap]
                        await pilot.pause(0.02)  # a refresh's worth: the paint is in it
                    spent[draw].append(time.thread_time() - t)

    asyncio.run(body())
    return (statistics.median(spent[True]) - statistics.median(spent[False])) / len(snaps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()
    lines = (args.run / "snapshots.jsonl").read_text().splitlines()
    snaps = [Snapshot.from_dict(json.loads(line)) for line in lines if line.strip()]
    if not snaps:
        raise SystemExit(f"{args.run / 'snapshots.jsonl'} holds no snapshot")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in SIZES:
            ms = {}
            for name, widget in (("static", StaticMap), ("prepared", AttentionMap)):
                watch_view.AttentionMap = widget  # what WatchView composes
                ms[name] = 1000 * per_snapshot(snaps, size, args.repeats, Path(tmp))
            watch_view.AttentionMap = AttentionMap
            key = f"{size[0]}x{size[1]}"
            rows[key] = {k: round(v, 2) for k, v in ms.items()} | {"ratio": round(ms["static"] / ms["prepared"], 2)}
            print(
                f"{key}: {ms['static']:.2f} ms a snapshot as a Static, {ms['prepared']:.2f} ms prepared "
                f"({ms['static'] / ms['prepared']:.2f}x)"
            )
    if args.json:
        doc = {"snapshots": len(snaps), "repeats": args.repeats, "ms_per_snapshot": rows}
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
