"""bench/gpu_check.sh and bench/gpu_check.py, the prepared check of a GPU box, proven on a CPU:
the record is on disk after every section (a time limit or a kill keeps what finished), each
section's status is ok / failed with one line / skipped with a reason, a missing notebook
baseline is said out loud, --prepare copies it into the folder git ignores, the sync-debug
epoch tells an allowed read from one that is not, and the CPU dry run passes whole."""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import gpu_check  # noqa: E402
import gpu_check_sections as sections  # noqa: E402

SCRIPT = ROOT / "bench" / "gpu_check.sh"


def on_disk(path: Path) -> dict:
    return json.loads(path.read_text())


def context(tmp_path: Path, **kw) -> gpu_check.Context:
    return gpu_check.Context(torch.device("cpu"), tmp_path, True, 1, kw.pop("baseline", tmp_path / "none.py"), **kw)


# -- the runner, with stand-in sections ----------------------------------------------------------
def test_each_section_is_on_disk_before_the_next_starts(tmp_path):
    record = gpu_check.Record(tmp_path / "out" / "gpu-x.json", {"device": "cpu"})
    seen = {}

    def first(ctx):
        return {"summary": "one", "value": 1}

    def second(ctx):  # what a kill at this moment would leave
        seen.update(on_disk(record.path)["sections"])
        raise ValueError("broken\nacross lines")

    def third(ctx):
        raise sections.Skip("not here")

    def fourth(ctx):
        return {"figure": 2.5, "problems": ["figure 2.5 over 1"]}

    def fifth(ctx):
        return {}

    gpu_check.run_sections([first, second, third, fourth, fifth], context(tmp_path), record)

    assert seen["first"]["status"] == "ok" and seen["first"]["value"] == 1
    assert seen["second"]["status"] == "running"
    s = on_disk(record.path)["sections"]
    assert list(s) == ["first", "second", "third", "fourth", "fifth"]
    assert s["second"]["status"] == "failed" and s["second"]["error"] == "ValueError: broken across lines"
    assert s["third"] == {"status": "skipped", "reason": "not here", "seconds": s["third"]["seconds"]}
    assert s["fourth"]["status"] == "failed" and s["fourth"]["error"] == "figure 2.5 over 1"
    assert s["fourth"]["figure"] == 2.5  # a measured failure keeps its figures
    assert s["fifth"]["status"] == "ok"
    assert all(isinstance(x["seconds"], float) for x in s.values())
    text = record.path.with_suffix(".txt").read_text()
    assert "second         FAILED" in text and "[not here]" in text and "not finished" in text


def test_the_time_limit_is_recorded_and_the_rest_marked_not_reached(tmp_path):
    record = gpu_check.Record(tmp_path / "gpu-x.json", {})

    def first(ctx):
        return {}

    def second(ctx):
        raise gpu_check.TimeLimit()

    def third(ctx):
        raise AssertionError("must not run")

    with pytest.raises(gpu_check.TimeLimit):
        gpu_check.run_sections([first, second, third], context(tmp_path), record)
    s = on_disk(record.path)["sections"]
    assert s["first"]["status"] == "ok"
    assert s["second"]["status"] == "failed" and "time limit" in s["second"]["error"]
    assert s["third"] == {"status": "skipped", "reason": "not reached: the time limit"}


def test_threads_default_to_the_cores_on_the_gpu_and_one_for_the_dry_run():
    from engine.train.threads import usable_cores

    assert gpu_check.parse_args(["--device", "cuda"]).threads == usable_cores()
    assert gpu_check.parse_args(["--device", "cpu"]).threads == 1
    assert gpu_check.parse_args(["--device", "cpu", "--threads", "3"]).threads == 3


def test_the_file_is_named_after_the_gpu():
    assert gpu_check.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert gpu_check.slug("cpu") == "cpu"


# -- the baseline ---------------------------------------------------------------------------------
def test_a_missing_baseline_is_said_out_loud(tmp_path):
    info = gpu_check.baseline_info(tmp_path / "seed_reference.py")
    assert info["present"] is False and info["warning"].startswith("BASELINE MISSING")
    with pytest.raises(sections.Skip, match="BASELINE MISSING"):
        sections.bench(context(tmp_path))
    record = gpu_check.Record(tmp_path / "gpu-x.json", {"baseline": info})
    record.write()
    assert "BASELINE MISSING" in record.path.with_suffix(".txt").read_text()


def test_a_present_baseline_is_identified(tmp_path):
    f = tmp_path / "seed_reference.py"
    f.write_text("x = 1\n")
    info = gpu_check.baseline_info(f)
    assert info["present"] is True and len(info["sha256"]) == 64 and "warning" not in info


@pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None, reason="not a git checkout")
def test_git_ignores_the_baseline_folder():
    """The file the check reads by default, which --prepare writes, is one git ignores."""
    baseline = gpu_check.DEFAULT_BASELINE.relative_to(ROOT)
    p = subprocess.run(["git", "check-ignore", "-q", str(baseline)], cwd=ROOT)
    assert p.returncode == 0


def _layout(tmp_path: Path) -> Path:
    """A repository with the script, beside a ../shared/baseline as the project's machine has."""
    repo = tmp_path / "repo"
    (repo / "bench").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "bench" / "gpu_check.sh")
    return repo


def test_prepare_copies_the_baseline_from_shared(tmp_path):
    repo = _layout(tmp_path)
    (tmp_path / "shared" / "baseline").mkdir(parents=True)
    (tmp_path / "shared" / "baseline" / "seed_reference.py").write_text("NOTEBOOK = True\n")
    p = subprocess.run(["bash", str(repo / "bench" / "gpu_check.sh"), "--prepare"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert (repo / "bench" / ".baseline" / "seed_reference.py").read_text() == "NOTEBOOK = True\n"
    assert [f.name for f in (repo / "bench" / ".baseline").iterdir()] == ["seed_reference.py"]  # no temp left


def test_prepare_without_a_baseline_is_one_line_and_status_2(tmp_path):
    repo = _layout(tmp_path)
    p = subprocess.run(["bash", str(repo / "bench" / "gpu_check.sh"), "--prepare"], capture_output=True, text=True)
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "no notebook baseline" in p.stderr
    assert not (repo / "bench" / ".baseline").exists()


# -- the sync-debug epoch's bookkeeping, with a stand-in trainer and sync debug mode -------------
class FakeTrainer:
    """A trainer whose epoch reads the device at the batches given (0-based; n: its end)."""

    def __init__(self, n: int, reads: dict[int, int]):
        self.n, self.reads = n, reads
        self.cfg = type("Cfg", (), {"batch_size": 1})()
        self.train_set = type("Set", (), {"num_batches": lambda _, bs: n})()

    def train_epoch(self, epoch):
        for i in range(self.n + 1):
            for _ in range(self.reads.get(i, 0)):
                read_the_device()
            if i < self.n:
                yield i


MODE = {"now": 0}


def read_the_device():
    """What torch does at a synchronising call under each sync debug mode."""
    if MODE["now"] == "error":
        raise RuntimeError("called a synchronizing CUDA operation")
    if MODE["now"] == "warn":
        warnings.warn("called a synchronizing CUDA operation", stacklevel=2)


@pytest.fixture
def sync_debug(monkeypatch):
    monkeypatch.setattr(torch.cuda, "set_sync_debug_mode", lambda mode: MODE.update(now=mode))
    yield
    MODE["now"] = 0


def test_reads_where_allowed_pass_and_are_counted(sync_debug):
    # the NaN check every 25 batches and at the last one, four reads at the epoch's end
    got = sections._sync_epoch(FakeTrainer(60, {24: 1, 49: 1, 59: 1, 60: 4}), cuda=True)
    assert "error" not in got
    assert got["reads_where_allowed"] == {"batch 25": 1, "batch 50": 1, "batch 60": 1, "end": 4}


def test_a_read_in_any_other_batch_fails_and_says_which(sync_debug):
    got = sections._sync_epoch(FakeTrainer(60, {2: 1}), cuda=True)
    assert got["error"].startswith("batch 3 of 60 read the device at ")


def test_two_reads_in_an_allowed_batch_fail(sync_debug):
    got = sections._sync_epoch(FakeTrainer(30, {24: 2}), cuda=True)
    assert got["error"] == "more than one read at batch 25"


def test_off_the_gpu_nothing_is_watched(sync_debug):
    got = sections._sync_epoch(FakeTrainer(30, {2: 3}), cuda=False)
    assert "error" not in got and MODE["now"] == 0


# -- the whole script on a CPU ---------------------------------------------------------------------
def run_script(out: Path, *args: str, fault: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GPU_CHECK_FAULT": fault}
    cmd = ["bash", str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_the_cpu_dry_run_passes_every_section(tmp_path):
    p = run_script(tmp_path)
    data = on_disk(tmp_path / "gpu-cpu.json")
    assert p.returncode == 0, p.stdout + p.stderr[-3000:]
    assert list(data["sections"]) == [s.__name__ for s in sections.SECTIONS]
    for name, s in data["sections"].items():
        assert s["status"] in ("ok", "skipped"), (name, s)
        assert s["status"] == "ok" or s["reason"], name
    assert data["finished"] and data["threads"] == 1  # the dry run's default
    assert data["sections"]["probe"]["rows"]  # it decoded through the model
    kernels = data["sections"]["kernels"]["rows"]
    assert sorted({r["words"] for r in kernels}) == list(sections.KERNEL_LENGTHS)
    assert (tmp_path / "gpu-cpu.txt").read_text().count("\n") == len(data["sections"]) + 2


ONLY = "environment,agreement,mixed_lengths"  # the third: a short section after the faulty one


@pytest.mark.slow
def test_a_failing_section_is_recorded_and_the_run_goes_on(tmp_path):
    p = run_script(tmp_path, "--only", ONLY, fault="agreement:raise")
    s = on_disk(tmp_path / "gpu-cpu.json")["sections"]
    assert p.returncode == 1
    assert s["environment"]["status"] == "ok"
    assert s["agreement"]["status"] == "failed" and "injected fault" in s["agreement"]["error"]
    assert s["mixed_lengths"]["status"] == "ok"


@pytest.mark.slow
def test_a_killed_run_keeps_the_sections_before_it(tmp_path):
    p = run_script(tmp_path, "--only", ONLY, fault="agreement:kill")
    data = on_disk(tmp_path / "gpu-cpu.json")
    assert p.returncode != 0
    assert data["sections"]["environment"]["status"] == "ok"
    assert data["sections"]["agreement"]["status"] == "running"
    assert "mixed_lengths" not in data["sections"] and data["finished"] is False
    assert "cut off" in (tmp_path / "gpu-cpu.txt").read_text()


@pytest.mark.slow
def test_the_time_limit_keeps_what_finished(tmp_path):
    p = run_script(tmp_path, "--only", ONLY, fault="agreement:term")
    s = on_disk(tmp_path / "gpu-cpu.json")["sections"]
    assert p.returncode == 124
    assert s["environment"]["status"] == "ok"
    assert s["agreement"]["status"] == "failed" and "time limit" in s["agreement"]["error"]
    assert s["mixed_lengths"]["status"] == "skipped"
