"""Data-parallel training under torchrun (engine/train/distributed.py), on the CPU with gloo: two
processes train to the same losses as one process with the same global batch, write one
set of files, stop together, resume, and end with a clear error when a process is killed or
stuck.

Each torchrun run starts two Python processes that import torch (a few seconds on 2 cores),
so the runs are tiny: 193 sentences (the last batch of 1 leaves rank 1 without rows), 41
validation sentences (two batches, one per rank), hidden 32."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from engine.runs.follow import Follower, RunEnded
from engine.runs.status import read_status
from engine.train import distributed
from engine.train.config import Config
from engine.train.data import PAD
from engine.train.events import EpochDone
from engine.train.trainer import Trainer, masked_loss
from tests.conftest import ROOT, TINY, cli_flags
from tui.cli import main

pytestmark = pytest.mark.slow  # torchrun: each run starts processes

SIZES = dict(
    train_size=193,
    val_size=41,
    test_size=20,
    min_len=3,
    max_len=6,
    embed_dim=16,
    hidden_dim=32,
    batch_size=32,
    lr=0.003,
    unk_rate=0.1,
    min_freq=1,
    dropout=0.0,
    device="cpu",
    seed=7,
)
FLAGS = cli_flags(**SIZES)
TIMEOUT = 240  # seconds: a hang fails the test instead of the suite


def torchrun(
    *args: str, nproc: int = 2, dist_timeout: int = 60, then: Sequence[Sequence[str]] = ()
) -> subprocess.Popen:
    """`torchrun -m tui --no-ui` with the common flags and args; `then`: the flags of further
    runs made in the same launch, one after another (tests/lean_run.py)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    common = ["--no-ui", *FLAGS, "--threads", "1", "--dist-timeout", str(dist_timeout)]
    runs = [*common, *args]
    for more in then:
        runs += ["--next", *common, *more]
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            "-m",
            "tests.lean_run",  # `-m tui`, its figures stood in
            *runs,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"torchrun did not end within {TIMEOUT} s (a hang):\n{out[-3000:]}")
    return proc.returncode, out


def read_until(proc: subprocess.Popen, text: str) -> str:
    """torchrun's output up to the first line holding text (it is streamed, unbuffered)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    proc.wait(timeout=TIMEOUT)
    pytest.fail(f"the run ended before printing {text!r}:\n{''.join(seen)[-3000:]}")


def worker_pid(launcher: int, rank: int) -> int:
    """The pid of the worker torchrun started with RANK=rank (its direct child)."""
    children = []
    for task in Path(f"/proc/{launcher}/task").iterdir():
        children += (task / "children").read_text().split()
    for pid in children:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in env:
            return int(pid)
    raise AssertionError(f"no worker with RANK={rank} among {children}")


def history(path: Path) -> list[dict]:
    return torch.load(path, weights_only=True)["history"]


def test_two_processes_train_like_one_and_resume(tmp_path):
    ck, out = tmp_path / "ck", tmp_path / "out"
    code, text = finish(torchrun("--epochs", "2", "--checkpoint", str(ck / "best.pt"), "--out", str(out)))
    assert code == 0, text[-3000:]
    # rank 0 alone prints and writes: each epoch line once, one checkpoint and its last state
    assert text.count("\n  1/2 ") == 1 and text.count("\n  2/2 ") == 1
    assert "data-parallel: 2 processes (gloo)" in text and text.count("test exact match") == 1
    assert sorted(p.name for p in ck.iterdir()) == ["best.last.pt", "best.pt"]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [
            "analysis.md",
            "attention_heatmap.png",
            "attention_timeline.gif",
            "attention_timeline.json",
            "config.toml",
            "epochs.jsonl",
            "loss_curve.png",
            "metrics.csv",
            "progress.json",
            "report.json",
            "snapshots.jsonl",
            "status.json",
        ]
    )
    assert read_status(out)["state"] == "finished"  # rank 0's, written once
    # what `reverse-tui watch` reads: rank 0's epochs, each once
    followed = Follower(out).poll()
    assert [e.epoch for e in followed if isinstance(e, EpochDone)] == [1, 2]
    assert isinstance(followed[-1], RunEnded) and followed[-1].state == "finished"

    # one process, the same global batch of 32
    single = Trainer(Config(**{**SIZES, "epochs": 2}), tmp_path / "single.pt")
    for _ in single.run():
        pass
    assert_same_training(history(ck / "best.last.pt"), single.history, epochs=[1, 2])

    # --resume under torchrun continues as a single process continues from the same state
    payload = torch.load(ck / "best.last.pt", weights_only=True)
    code, text = finish(
        torchrun(
            "--resume",
            str(ck / "best.last.pt"),
            "--epochs",
            "3",
            "--checkpoint",
            str(ck / "best.pt"),
            "--out",
            str(out),
        )
    )
    assert code == 0, text[-3000:]
    assert "resuming" in text and text.count("\n  3/3 ") == 1
    assert [json.loads(line)["epoch"] for line in (out / "epochs.jsonl").read_text().splitlines()] == [1, 2, 3]
    single = Trainer.resume(payload, tmp_path / "single-resumed.pt", epochs=3, device_name="cpu")
    for _ in single.run():
        pass
    assert_same_training(history(ck / "best.last.pt"), single.history, epochs=[1, 2, 3])


def test_each_attention_score_trains_under_torchrun_like_one_process(tmp_path):
    scores = ["general", "dot", "scaled-dot"]

    def flags(score: str) -> list[str]:
        ck, out = tmp_path / score / "ck", tmp_path / score / "out"
        return ["--score", score, "--epochs", "1", "--checkpoint", str(ck / "best.pt"), "--out", str(out)]

    # one launch trains the three, one after another: torchrun's start-up is most of each run
    code, text = finish(torchrun(*flags(scores[0]), then=[flags(s) for s in scores[1:]]))
    assert code == 0, text[-3000:]
    said = text.split("=== run ")[1:]  # what each run printed
    assert len(said) == len(scores), text[-3000:]
    for score, run in zip(scores, said):
        assert f"engine/fast lacks the {score} attention score" in run  # the reference model trains it
        assert run.count("test exact match") == 1
        single = Trainer(Config(**{**SIZES, "score": score, "epochs": 1}), tmp_path / f"single-{score}.pt")
        for _ in single.run():
            pass
        assert_same_training(history(tmp_path / score / "ck" / "best.last.pt"), single.history, epochs=[1])


def assert_same_training(two: list[dict], one: list[dict], epochs: list[int]) -> None:
    assert [h["epoch"] for h in two] == [h["epoch"] for h in one] == epochs
    for a, b in zip(two, one):
        assert a["batch_losses"] == pytest.approx(b["batch_losses"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-5)
        assert a["lr"] == b["lr"]  # the same plan, resumed the same way
        assert a["val_exact_match"] == b["val_exact_match"] and a["tokens"] == b["tokens"]
        # each rank validated its own batches: the counts by length are the whole set's, summed
        assert a["val_by_length"] == b["val_by_length"] and a["val_by_length"]


def test_a_signal_to_one_process_stops_every_process_after_the_same_batch(tmp_path):
    ck, out = tmp_path / "ck", tmp_path / "out"
    proc = torchrun("--epochs", "300", "--checkpoint", str(ck / "best.pt"), "--out", str(out))
    head = read_until(proc, "  1/300 ")
    os.kill(worker_pid(proc.pid, 1), signal.SIGTERM)  # rank 1 only: rank 0 hears it from rank 1
    code, text = finish(proc)
    text = head + text
    assert code != 0  # torchrun reports the workers' status 143
    assert text.count("stopped by SIGTERM") == 1, text[-3000:]
    report = (out / "report.json").read_text()
    assert '"interrupted": true' in report  # rank 0 still evaluated the best checkpoint
    last = torch.load(ck / "best.last.pt", weights_only=True)
    assert 1 <= last["epoch"] < 300


def test_a_killed_process_ends_the_run_with_a_clear_error(tmp_path):
    ck, out = tmp_path / "ck", tmp_path / "out"
    # gloo usually fails rank 0's collective at once. In about 1 kill in 30 (measured on 2
    # cores) rank 1 dies after its data reached rank 0 but before rank 0's own send went
    # out: gloo queues the write it could not finish, and when it then closes the connection
    # it fails the pending receives but not that queued send, so rank 0 waits in waitSend
    # for the whole --dist-timeout (torch 2.13's gloo; leaving the group or exiting waits for
    # that send too, so nothing above gloo can cut it short). 10 s is under torchrun's 30 s
    # before its SIGKILL, so the one line still comes.
    proc = torchrun("--epochs", "300", "--checkpoint", str(ck / "best.pt"), "--out", str(out), dist_timeout=10)
    head = read_until(proc, "  1/300 ")
    os.kill(worker_pid(proc.pid, 1), signal.SIGKILL)
    code, text = finish(proc)  # within TIMEOUT: no hang
    text = head + text
    assert code != 0
    assert "lost another process of this torchrun run" in text, text[-3000:]
    # no traceback through the project's code (torchrun prints its own summary after it)
    assert not any('File "' in line and ("/engine/" in line or "/tui/" in line) for line in text.splitlines())
    assert not (out / "report.json").exists()  # no half-written evaluation
    assert torch.load(ck / "best.pt", weights_only=True)["epoch"] >= 1  # what was saved stands


def test_a_stuck_process_ends_the_run_after_the_timeout(tmp_path):
    """SIGSTOP: the process lives but answers nothing; its peer gives up after --dist-timeout
    with one line. (torchrun, seeing that failure, then SIGTERMs the stuck one, which cannot
    act on it until it is continued: SIGCONT, or torchrun's SIGKILL 30 s later.)"""
    ck, out = tmp_path / "ck", tmp_path / "out"
    proc = torchrun("--epochs", "300", "--checkpoint", str(ck / "best.pt"), "--out", str(out), dist_timeout=8)
    head = read_until(proc, "  1/300 ")
    stuck = worker_pid(proc.pid, 1)
    os.kill(stuck, signal.SIGSTOP)
    head += read_until(proc, "lost another process")  # after 8 s, not never
    os.kill(stuck, signal.SIGCONT)
    code, text = finish(proc)
    text = head + text
    assert code != 0
    assert "lost another process of this torchrun run" in text and "Timed out" in text, text[-3000:]
    assert not (out / "report.json").exists()


def test_the_app_refuses_under_torchrun_in_one_line(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    assert main(["--epochs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--no-ui" in err[0] and "torchrun" in err[0]
    monkeypatch.setenv("RANK", "1")  # the others leave quietly, so torchrun waits for rank 0's line
    assert main(["--epochs", "1"]) == 0
    assert capsys.readouterr().err == ""


def test_bad_torchrun_settings_are_one_line_and_status_2(monkeypatch, capsys, tmp_path):
    for k, v in {"WORLD_SIZE": "2", "LOCAL_RANK": "0", "RANK": "0"}.items():
        monkeypatch.setenv(k, v)
    flags = ["--no-ui", "--out", str(tmp_path / "out"), "--checkpoint", str(tmp_path / "best.pt"), "--device", "cpu"]
    assert main([*flags, "--batch-size", "1"]) == 2  # the global batch cannot feed 2 processes
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch-size 1 is the global batch" in err[0]
    monkeypatch.delenv("MASTER_ADDR", raising=False)  # no rendezvous: cannot join, does not hang
    assert main(flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "could not join the other 1 process(es)" in err[0]
    assert distributed.current() is None and not (tmp_path / "best.pt").exists()


def test_shards_sum_to_the_whole_batch_loss_and_gradient(tmp_path):
    """The scheme's arithmetic, in one process: each rank's rows, its loss scaled by its share
    of the global batch's tokens; the sum over ranks is the whole batch's loss and gradient,
    an empty share included (3 rows over 4 ranks)."""
    t = Trainer(Config(**SIZES), tmp_path / "x.pt")
    batch = next(t.train_set.batches(3))
    forcing = torch.ones(batch.tgt.size(1), dtype=torch.bool)
    params = [p for p in t.model.parameters() if p.requires_grad]

    def loss_and_grads(b, scale=1.0):
        t.model.zero_grad()
        loss = masked_loss(t.model(b.src, b.src_len, b.tgt_in, forcing)[0], b.tgt) * scale
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in params]

    whole, whole_grads = loss_and_grads(batch)
    tokens = int(batch.src_len.sum())
    assert tokens == int((batch.tgt != PAD).sum())  # the host lengths count the target tokens
    total, grads = torch.zeros(()), [torch.zeros_like(p) for p in params]
    for rank in range(4):
        group = distributed.Group(rank, 4, rank, 4, "gloo", torch.device("cpu"), 60)
        mine, share = group.shard(batch, tokens)
        if not len(mine.index):
            assert rank == 3 and share == 0
            continue
        loss, g = loss_and_grads(mine, share)
        total += loss
        grads = [a + b for a, b in zip(grads, g)]
    assert total == pytest.approx(float(whole), rel=1e-5)
    for a, b in zip(grads, whole_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_without_torchrun_there_is_no_group():
    assert distributed.current() is None and distributed.is_main()


def test_a_join_error_with_brackets_is_said_in_one_line(tmp_path, monkeypatch, capsys):
    """gloo's messages can hold text rich would read as markup ("[/tmp/...]"): said as is."""
    from tui.headless import RunOptions, run_headless

    def cannot_join(device, timeout):
        raise ValueError("rank 0: could not join the other 1 process(es) (gloo): [/tmp/x] refused")

    monkeypatch.setattr(distributed, "launched", lambda: True)
    monkeypatch.setattr(distributed, "env_rank", lambda: 0)
    monkeypatch.setattr(distributed, "env_world", lambda: 2)
    monkeypatch.setattr(distributed, "init", cannot_join)
    monkeypatch.setattr(distributed, "shutdown", lambda forget=False: None)
    opts = RunOptions(checkpoint=tmp_path / "ck" / "best.pt", out=tmp_path / "out")
    assert run_headless(Config(**TINY), opts) == 2
    err = capsys.readouterr().err.strip()
    assert err == "reverse-tui: rank 0: could not join the other 1 process(es) (gloo): [/tmp/x] refused"
