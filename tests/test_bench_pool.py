"""bench/app_drawing_cost.py --pool: several benches' runs read as one sample, the figure the
bench README quotes for seeds 1-3 together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import app_drawing_cost  # noqa: E402  (bench/app_drawing_cost.py)


def bench_file(path: Path, costs: list[float], drawing: float, other: float) -> Path:
    found = {"cost_per_run": costs, "app_thread_share_drawing": drawing, "app_thread_share_not_drawing": other}
    path.write_text(json.dumps(found))
    return path


def test_the_runs_of_every_file_are_one_sample(tmp_path):
    a = bench_file(tmp_path / "a.json", [0.01, 0.03, -0.02], 0.030, 0.012)
    b = bench_file(tmp_path / "b.json", [0.05, 0.00, 0.02], 0.025, 0.009)
    line = app_drawing_cost.pooled([a, b])
    # six runs: median of (-2, 0, 1, 2, 3, 5) is 1.5, mean 1.5, standard deviation 2.43 -> 0.99
    assert line.startswith("6 runs from 2 files")
    assert "median +1.5%, mean +1.5% (standard error 1.0 points)" in line
    assert "2.5-3.0% of a drawing epoch's seconds, 0.9-1.2% of the others'" in line


def test_a_file_that_cannot_be_read_is_one_line_and_an_exit(tmp_path):
    good = bench_file(tmp_path / "a.json", [0.01, 0.02], 0.03, 0.01)
    script = ROOT / "bench" / "app_drawing_cost.py"
    missing = tmp_path / "missing.json"
    command = [sys.executable, str(script), "--pool", str(good), str(missing)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip() == f"--pool: {missing}: [Errno 2] No such file or directory: '{missing}'"
