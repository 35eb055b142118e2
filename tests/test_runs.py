"""Every run keeps its own files: names, folders, `latest`, refusals that write nothing, and
finding a model from a run's name or folder (engine/runs/folders.py, through the command line too)."""

import json
import os
import threading
from pathlib import Path

import pytest
import torch

from engine.errors import RunError
from engine.runs import folders as runs
from engine.runs.folders import find_checkpoint, new_run, read_pointer
from engine.train.config import Config
from engine.train.trainer import Trainer
from tests.conftest import QUICK, QUICK_FLAGS
from tui.cli import main

FLAGS = [*QUICK_FLAGS, "--epochs", "1"]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes, and every folder and link: what "nothing
    touched" compares."""
    seen = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        seen[key] = (
            (b"link:" + os.readlink(p).encode()) if p.is_symlink() else p.read_bytes() if p.is_file() else b"dir"
        )
    return seen


@pytest.fixture
def here(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_runs_started_in_the_same_second_get_names_of_their_own(here, monkeypatch):
    monkeypatch.setattr(runs, "timestamp_name", lambda now=None: "20261203-094507")
    names = []
    lock = threading.Lock()

    def start():
        paths = new_run()
        with lock:
            names.append(paths.name)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(names) == sorted(["20261203-094507"] + [f"20261203-094507-{k}" for k in range(2, 9)])
    for name in names:
        assert (here / "checkpoints" / name).is_dir() and (here / "runs" / name).is_dir()
    # the names sort by start: a suffix sorts before the next second
    assert sorted(["20261203-094507-2", "20261203-094508", "20261203-094507"]) == [
        "20261203-094507",
        "20261203-094507-2",
        "20261203-094508",
    ]


def test_latest_points_at_the_newest_run_and_a_file_stands_in_for_a_link(here, monkeypatch):
    first = new_run("first")
    assert read_pointer(Path("checkpoints/latest")) == Path("checkpoints/first")
    assert os.readlink("checkpoints/latest") == "first" and os.readlink("runs/latest") == "first"
    new_run("second")
    assert os.readlink("runs/latest") == "second"

    def no_links(*a, **k):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(os, "symlink", no_links)
    new_run("third")
    assert Path("runs/latest").is_file() and Path("runs/latest").read_text().strip() == "third"
    assert read_pointer(Path("runs/latest")) == Path("runs/third")
    torch.save({"x": 1}, Path("checkpoints/third/best.pt"))
    assert find_checkpoint(None) == Path("checkpoints/third/best.pt")
    assert first.checkpoint == Path("checkpoints/first/best.pt") and first.out == Path("runs/first")


def test_an_earlier_versions_runs_latest_folder_is_left_as_it_is(here):
    old = here / "runs" / "latest"
    old.mkdir(parents=True)
    (old / "report.json").write_text("{}")
    paths = new_run("fresh")
    assert old.is_dir() and not old.is_symlink() and (old / "report.json").read_text() == "{}"
    assert runs.point_latest(paths) == ["runs/latest is a folder of an earlier run, left as it is"]
    assert os.readlink("checkpoints/latest") == "fresh"


def test_a_run_that_would_write_over_another_is_refused_with_nothing_written(here):
    taken = new_run("taken")
    taken.checkpoint.write_bytes(b"model")
    (taken.out / "report.json").write_text("{}")
    before = snapshot(here)
    with pytest.raises(RunError, match="run 'taken' exists"):
        new_run("taken")
    with pytest.raises(RunError, match="already holds a model"):
        new_run(checkpoint=taken.checkpoint)
    with pytest.raises(RunError, match="already holds a run's files"):
        new_run(out=taken.out)
    with pytest.raises(RunError, match="'latest' points at the newest run"):
        new_run(out=Path("runs/latest"))
    for bad in ("latest", "../up", "a/b", "", ".hidden", "x" * 101):
        with pytest.raises(RunError, match="a run's name is"):
            new_run(bad)
    assert snapshot(here) == before


def test_torchruns_other_processes_take_the_paths_rank_0_has_begun_writing(here):
    """Rank 0 reserves the run's folders and starts its files; a slower rank that looks only
    then must work out the same paths, not refuse them as another run's (its silent exit 2
    ended a torchrun launch), and writes nothing. Rank 0 itself still refuses."""
    rank0 = new_run(checkpoint=Path("ck/best.pt"), out=Path("out"))
    rank0.checkpoint.write_bytes(b"model")
    (rank0.out / "config.toml").write_text("")
    named = new_run("named")
    (named.out / "report.json").write_text("{}")
    before = snapshot(here)
    other = new_run(checkpoint=rank0.checkpoint, out=rank0.out, reserve=False)
    assert (other.checkpoint, other.out) == (rank0.checkpoint, rank0.out)
    other = new_run("named", reserve=False)
    assert (other.name, other.checkpoint, other.out) == ("named", named.checkpoint, named.out)
    assert snapshot(here) == before
    with pytest.raises(RunError, match="already holds a model"):
        new_run(checkpoint=rank0.checkpoint, out=rank0.out)
    with pytest.raises(RunError, match="run 'named' exists"):
        new_run("named")


def test_overwrite_replaces_the_old_runs_files(here):
    old = new_run("again")
    old.checkpoint.write_bytes(b"old model")
    old.last.write_bytes(b"old state")
    (old.out / "metrics.csv").write_text("old")
    paths = new_run("again", overwrite=True)
    assert paths == old
    assert not old.checkpoint.exists() and not old.last.exists() and not (old.out / "metrics.csv").exists()


def test_a_model_is_found_by_run_name_folder_latest_or_file(here):
    a = new_run("a")
    torch.save({"x": 1}, a.checkpoint)
    torch.save({"x": 2}, a.last)
    (a.out / "report.json").write_text(json.dumps({"checkpoint": str(a.checkpoint)}))
    for spec in (
        "a",
        "checkpoints/a",
        "runs/a",
        "latest",
        "checkpoints/latest",
        "runs/latest",
        None,
        str(a.checkpoint),
    ):
        assert find_checkpoint(spec) == a.checkpoint, spec
    assert find_checkpoint("a", want_last=True) == a.last
    with pytest.raises(RunError, match="no such checkpoint file, run name or run folder"):
        find_checkpoint("nothing-here")
    empty = here / "empty"
    empty.mkdir()
    with pytest.raises(RunError, match="a folder with no model in it"):
        find_checkpoint(empty)


def test_the_flat_checkpoint_of_earlier_versions_still_loads(here):
    with pytest.raises(RunError, match="no trained model yet"):
        find_checkpoint(None)
    Path("checkpoints").mkdir()
    torch.save({"x": 1}, "checkpoints/best.pt")
    assert find_checkpoint(None) == Path("checkpoints/best.pt")


# -- through the command line ------------------------------------------------------------------
def test_a_second_run_keeps_the_first(here, capsys):
    assert main(["--no-ui", *FLAGS, "--name", "one"]) == 0
    first = snapshot(here / "checkpoints" / "one") | snapshot(here / "runs" / "one")
    assert main(["--no-ui", *FLAGS, "--seed", "3"]) == 0
    assert snapshot(here / "checkpoints" / "one") | snapshot(here / "runs" / "one") == first
    names = sorted(p.name for p in (here / "runs").iterdir() if p.name != "latest")
    assert len(names) == 2 and "one" in names
    second = next(n for n in names if n != "one")
    assert os.readlink(here / "runs" / "latest") == second == os.readlink(here / "checkpoints" / "latest")
    report = json.loads((here / "runs" / second / "report.json").read_text())
    assert report["run"] == second and report["checkpoint"] == f"checkpoints/{second}/best.pt"
    assert report["last_checkpoint"] == f"checkpoints/{second}/best.last.pt"
    assert sorted(p.name for p in (here / "checkpoints" / second).iterdir()) == ["best.last.pt", "best.pt"]
    assert f"run {second}: models -> checkpoints/{second}/, files -> runs/{second}/" in capsys.readouterr().out


def test_a_taken_name_is_one_line_and_status_2_with_nothing_touched(here, capsys):
    assert main(["--no-ui", *FLAGS, "--name", "mine"]) == 0
    capsys.readouterr()
    before = snapshot(here)
    for flags in (["--name", "mine"], ["--checkpoint", "checkpoints/mine/best.pt"], ["--out", "runs/mine"]):
        assert main(["--no-ui", *FLAGS, *flags]) == 2, flags
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("reverse-tui: ") and "nothing was written" in err[0], err
    assert snapshot(here) == before
    assert main(["--no-ui", *FLAGS, "--name", "mine", "--overwrite", "--seed", "5"]) == 0
    assert json.loads((here / "runs/mine/report.json").read_text())["config"]["seed"] == 5


@pytest.mark.slow
def test_resume_by_name_continues_the_run_in_its_own_folders(here, capsys):
    assert main(["--no-ui", *FLAGS, "--name", "r"]) == 0
    assert main(["--no-ui", "--resume", "r", "--epochs", "2", "--device", "cpu"]) == 0
    assert "resuming r after epoch 1 of 2" in capsys.readouterr().out
    assert sorted(p.name for p in (here / "runs").iterdir()) == ["latest", "r"]
    assert sorted(p.name for p in (here / "checkpoints").iterdir()) == ["latest", "r"]
    assert torch.load(here / "checkpoints/r/best.last.pt", weights_only=True)["epoch"] == 2
    report = json.loads((here / "runs/r/report.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [1, 2] and report["run"] == "r"
    # the folder and the last checkpoint name the same run
    for spec in ("runs/r", "checkpoints/r/best.last.pt"):
        assert main(["--no-ui", "--resume", spec, "--epochs", "2", "--device", "cpu"]) == 0
    assert sorted(p.name for p in (here / "runs").iterdir()) == ["latest", "r"]


def test_probe_takes_a_runs_name_or_folder(here, capsys):
    assert main(["--no-ui", *FLAGS, "--name", "p"]) == 0
    capsys.readouterr()
    outputs = []
    for spec in ([], ["--checkpoint", "p"], ["--checkpoint", "runs/p"], ["--checkpoint", "latest"]):
        assert main(["probe", *spec, "the cat sat"]) == 0
        outputs.append(capsys.readouterr().out)
    assert len(set(outputs)) == 1 and outputs[0].strip()
    assert main(["probe", "--checkpoint", "nope", "the cat sat"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["reverse-tui: nope: no such checkpoint file, run name or run folder (the runs are in checkpoints/)"]


def test_a_run_that_cannot_start_gives_its_name_back(here, capsys):
    assert main(["--no-ui", *FLAGS, "--name", "good"]) == 0
    (here / "empty.txt").write_text("")
    assert main(["--no-ui", *FLAGS, "--name", "bad", "--corpus", "empty.txt"]) == 2
    assert "reverse-tui: " in capsys.readouterr().err
    assert not (here / "runs" / "bad").exists() and not (here / "checkpoints" / "bad").exists()
    assert os.readlink(here / "runs" / "latest") == "good" == os.readlink(here / "checkpoints" / "latest")


def test_an_earlier_versions_flat_run_resumes_with_its_files_in_a_folder_of_their_own(here, capsys):
    trainer = Trainer(Config(**{**QUICK, "epochs": 1}), Path("checkpoints/best.pt"))  # no run recorded
    for _ in trainer.run():
        pass
    assert "run" not in torch.load("checkpoints/best.last.pt", weights_only=True)
    assert main(["--no-ui", "--resume", "checkpoints/best.last.pt", "--epochs", "2", "--device", "cpu"]) == 0
    assert torch.load("checkpoints/best.last.pt", weights_only=True)["epoch"] == 2  # the same run goes on
    folders = [p for p in (here / "runs").iterdir()]
    assert len(folders) == 1 and (folders[0] / "report.json").is_file()
    report = json.loads((folders[0] / "report.json").read_text())
    assert [e["epoch"] for e in report["epochs"]] == [1, 2] and report["checkpoint"] == "checkpoints/best.pt"
    assert find_checkpoint(None) == Path("checkpoints/best.pt")  # no latest: the flat model
