"""engine/runs/status.py: status.json as the job writes it (start, end of training, end), read
back, and checked against the processes running now: a process gone without writing its end
is a run that did not finish, and a process id reused by another process is not the run's."""

from __future__ import annotations

import json
import os
import socket

import pytest

from engine.runs.status import STATUS, StatusFile, observed, process_alive, process_start, read_status, write_status
from tests.fake_machine import MACHINES, as_machine

NO_SUCH_PID = 4_194_305  # above the largest pid_max Linux allows (2**22)


def running(**changes) -> dict:
    base = {
        "state": "running",
        "phase": "training",
        "started": 1_700_000_000.0,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "process_start": process_start(os.getpid()),
        "training": None,
    }
    return {**base, **changes}


def test_a_run_goes_running_then_evaluating_then_finished(tmp_path):
    status = StatusFile(tmp_path, "demo", tmp_path / "best.pt")
    first = read_status(tmp_path)
    assert first["state"] == "running" and first["phase"] == "training" and first["pid"] == os.getpid()
    assert first["name"] == "demo" and first["checkpoint"] == str(tmp_path / "best.pt")
    assert observed(first).state == "running" and observed(first).problem is None

    status.training_ended("finished", 3, evaluating=True, error=None)
    middle = read_status(tmp_path)
    assert middle["state"] == "running" and middle["phase"] == "evaluating" and middle["training"] == "finished"

    status.end("finished", evaluated=True)
    last = read_status(tmp_path)
    assert (last["state"], last["phase"], last["evaluated"], last["epochs"]) == ("finished", "ended", True, 3)
    assert last["ended"] >= last["started"]
    status.end("failed", evaluated=False, error="late")  # the end is written once
    assert read_status(tmp_path) == last
    assert [p.name for p in tmp_path.iterdir()] == [STATUS]  # no temporary file left behind


def test_no_model_to_evaluate_ends_at_once(tmp_path):
    status = StatusFile(tmp_path, None, tmp_path / "best.pt")
    status.training_ended("stopped", 0, evaluating=False, error=None)
    got = read_status(tmp_path)
    assert (got["state"], got["phase"], got["evaluated"]) == ("stopped", "ended", False)
    assert observed(got).problem is None  # no epoch: nothing was to be evaluated


def test_a_resumed_run_keeps_when_it_first_started(tmp_path):
    StatusFile(tmp_path, "demo", tmp_path / "best.pt").end("stopped", evaluated=True)
    first = read_status(tmp_path)
    StatusFile(tmp_path, "demo", tmp_path / "best.pt")
    again = read_status(tmp_path)
    assert again["started"] == first["started"] and again["resumed"] is not None and again["state"] == "running"


@pytest.mark.parametrize("kind", [*MACHINES, "macos"])
def test_a_process_gone_without_its_end_did_not_finish(monkeypatch, kind):
    as_machine(monkeypatch, kind)
    seen = observed(running(pid=NO_SUCH_PID))
    assert seen.state == "failed" and str(NO_SUCH_PID) in seen.problem and "--resume" in seen.problem
    # gone during its evaluation: training ended as it says; the report is what is missing
    seen = observed(running(pid=NO_SUCH_PID, phase="evaluating", training="stopped"))
    assert seen.state == "stopped" and "evaluation" in seen.problem


@pytest.mark.parametrize("kind", MACHINES)
def test_a_reused_process_id_is_not_the_run(monkeypatch, kind):
    as_machine(monkeypatch, kind)
    start = process_start(os.getpid())
    assert process_alive(os.getpid(), start)
    assert not process_alive(os.getpid(), start + 1)
    assert observed(running(process_start=start + 1)).state == "failed"


def test_without_psutil_or_proc_a_live_process_id_is_taken_for_the_run(monkeypatch):
    """macOS without psutil: no start time to tell a reused id by, so a live id is the run's."""
    as_machine(monkeypatch, "macos")
    assert process_start(os.getpid()) is None
    assert process_alive(os.getpid(), 12345) and observed(running(process_start=12345)).state == "running"


def test_another_host_cannot_be_checked_from_here():
    seen = observed(running(host="gpu-box-7", pid=NO_SUCH_PID))
    assert seen.state == "running" and "gpu-box-7" in seen.problem


def test_an_ended_run_reads_as_it_ended():
    assert observed({"state": "finished", "evaluated": True, "epochs": 3}).problem is None
    failed = observed({"state": "failed", "error": "the training loss became NaN"})
    assert failed.state == "failed" and failed.problem == "the training loss became NaN"
    unevaluated = observed({"state": "stopped", "evaluated": False, "epochs": 2})
    assert unevaluated.state == "stopped" and "not evaluated" in unevaluated.problem


@pytest.mark.parametrize(
    "text, words",
    [
        ("{", "not JSON"),
        ("", "not JSON"),
        ("[1, 2]", "not a reverse-tui run status"),
        (json.dumps({"format": "something else", "state": "running"}), "not a reverse-tui run status"),
        (json.dumps({"format": "reverse-tui run status v1", "state": "dancing"}), "not a reverse-tui run status"),
    ],
)
def test_a_damaged_status_is_one_line(tmp_path, text, words):
    (tmp_path / STATUS).write_text(text)
    with pytest.raises(ValueError) as e:
        read_status(tmp_path)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_no_status_file_is_none(tmp_path):
    assert read_status(tmp_path) is None
    write_status(tmp_path, {"state": "finished"})
    assert read_status(tmp_path)["state"] == "finished"
