"""engine/runs/index.py: the runs under runs/ summed up from their small files (never a
checkpoint), oldest first; the configuration values that differ; the curves of the runs
compared; and every damaged, half-written or foreign folder listed with its problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.errors import RunIndexError
from engine.job import Finished, run_job
from engine.runs.folders import new_run
from engine.runs.index import as_json, differing_keys, list_runs, run_curves
from engine.runs.status import STATUS, write_status
from engine.train.config import Config
from tests.conftest import QUICK, ROOT, TINY, write_fake_run

NO_SUCH_PID = 4_194_305


def test_a_real_run_is_listed_with_its_own_figures(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = Config(**QUICK)
    paths = new_run("real")
    events = list(run_job(cfg, paths.checkpoint, paths.out, run=paths.record()))
    assert isinstance(events[-1], Finished)
    report = json.loads((paths.out / "report.json").read_text())

    (run,) = list_runs(Path("runs"))
    assert (run.name, run.status, run.problem) == ("real", "finished", None)
    assert run.config == cfg.to_dict() and run.planned_epochs == 2 and run.epochs == 2
    assert (run.best_epoch, run.best_val_loss) == (report["best_epoch"], report["best_val_loss"])
    assert run.test_exact_match == report["test_exact_match"]
    assert run.notebook_exact_match == report["notebook_test"]["exact_match"] and not run.notebook_is_test
    for curve, limit in (("known_words", run.known), ("unknown_words", run.unknown)):
        below = report["length_limits"][curve]["first_below_99"]
        assert limit.below_99 == (below["length"] if below else None)
        assert limit.longest == max(int(n) for n in report["length_limits"][curve]["per_length"])
    assert run.train_seconds == pytest.approx(sum(e["seconds"] for e in report["epochs"]))
    assert run.checkpoint == paths.checkpoint and run.has_report

    curves = run_curves(run)
    assert [e for e, _, _ in curves.loss] == [1, 2]
    assert [v for _, _, v in curves.loss] == pytest.approx([e["val_loss"] for e in report["epochs"]])
    # the test set's lengths, then past them
    assert list(curves.known)[: len(report["per_length"])] == [int(n) for n in report["per_length"]]
    assert curves.unknown == {int(n): a for n, a in report["length_limits"]["unknown_words"]["per_length"].items()}


def test_a_hundred_runs_list_without_loading_a_model(tmp_path, monkeypatch):
    def no_load(*args, **kwargs):
        raise AssertionError("the listing loaded a checkpoint")

    monkeypatch.setattr(torch, "load", no_load)
    runs_dir = tmp_path / "runs"
    for k in range(100):  # written in an order other than their start
        write_fake_run(runs_dir, f"run-{(k * 37) % 100:03d}", started=1_700_000_000.0 + (k * 37) % 100 * 60)
    runs = list_runs(runs_dir)
    assert [r.name for r in runs] == [f"run-{k:03d}" for k in range(100)]  # oldest first
    assert all(r.status == "finished" and r.problem is None for r in runs)
    assert all(r.checkpoint == tmp_path / "checkpoints" / r.name / "best.pt" for r in runs)


@pytest.mark.slow
def test_the_listing_imports_no_torch(tmp_path):
    write_fake_run(tmp_path / "runs", "a")
    code = (
        "import sys; from engine.runs.index import list_runs; "
        f"assert len(list_runs({str(tmp_path / 'runs')!r})) == 1; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=60)


def test_the_values_that_differ(tmp_path):
    runs_dir = tmp_path / "runs"
    write_fake_run(runs_dir, "a", config={"hidden_dim": 64})
    write_fake_run(runs_dir, "b", config={"hidden_dim": 128, "lr": 1e-3})
    write_fake_run(runs_dir, "c", config={"hidden_dim": 64})
    (runs_dir / "d").mkdir()  # no configuration: not a difference
    runs = list_runs(runs_dir)
    assert differing_keys(runs) == ["hidden_dim", "lr"]
    assert differing_keys([r for r in runs if r.name in "ac"]) == []
    assert differing_keys(runs[:1]) == []
    # a key one configuration lacks (another version's) is a difference
    b = next(r for r in runs if r.name == "b")
    b.config = {**b.config, "new_knob": 3}
    assert differing_keys(runs) == ["hidden_dim", "lr", "new_knob"]


def test_the_json_for_scripts(tmp_path):
    runs_dir = tmp_path / "runs"
    write_fake_run(runs_dir, "a", config={"hidden_dim": 64}, started=1_700_000_000.0)
    write_fake_run(runs_dir, "b", config={"hidden_dim": 128}, known_below=(None, None), started=1_700_000_060.0)
    data = json.loads(json.dumps(as_json(list_runs(runs_dir), runs_dir)))  # plain JSON values
    assert data["differing_keys"] == ["hidden_dim"]
    a, b = data["runs"]
    assert (a["name"], a["status"], a["problem"], a["differs"]) == ("a", "finished", None, {"hidden_dim": 64})
    assert a["length_limits"]["known_words"] == {"below_99": 40, "below_50": 55, "longest_measured": 180}
    assert b["length_limits"]["known_words"]["below_99"] is None  # never below 99% up to the longest
    assert a["test_exact_match"] == 0.99 and a["notebook_test_exact_match"] == 0.97 and a["best_val_loss"] == 0.05
    assert a["started"].startswith(time.strftime("%Y-%m-%dT%H:%M", time.localtime(1_700_000_000.0)))
    assert a["config"]["hidden_dim"] == 64 and a["checkpoint"].endswith("checkpoints/a/best.pt")


def test_a_run_on_the_notebooks_data_is_measured_on_its_test_set(tmp_path):
    notebook = {**Config.notebook().to_dict(), "device": "cpu", "epochs": 3}
    write_fake_run(tmp_path / "runs", "nb", config=notebook, test_exact_match=0.998)
    (run,) = list_runs(tmp_path / "runs")
    assert run.notebook_exact_match == 0.998 and run.notebook_is_test


def test_a_run_of_an_earlier_version_reads_its_report(tmp_path):
    runs_dir = tmp_path / "runs"
    write_fake_run(runs_dir, "20261203-094507", state=None)
    write_fake_run(runs_dir, "20261203-094508", state=None)
    report = runs_dir / "20261203-094508" / "report.json"
    report.write_text(json.dumps({**json.loads(report.read_text()), "interrupted": True}))
    first, second = list_runs(runs_dir)
    assert (first.status, second.status) == ("finished", "stopped")
    assert first.started == time.mktime(time.strptime("20261203-094507", "%Y%m%d-%H%M%S"))  # from its name


def test_a_running_run_and_one_whose_process_is_gone(tmp_path):
    runs_dir = tmp_path / "runs"
    write_fake_run(runs_dir, "live", state="running", report=False)  # this process runs it
    gone = write_fake_run(runs_dir, "gone", state="running", report=False)
    status = json.loads((gone / STATUS).read_text())
    write_status(gone, {**status, "pid": NO_SUCH_PID})
    runs = {r.name: r for r in list_runs(runs_dir)}
    assert runs["live"].status == "running" and runs["live"].problem is None
    assert runs["gone"].status == "failed" and "--resume" in runs["gone"].problem


def _only_config(d: Path) -> None:
    d.mkdir()
    (d / "config.toml").write_text(Config(**TINY).to_toml())


def _foreign(d: Path) -> None:
    d.mkdir()
    (d / "notes.txt").write_text("my holiday")


def _corrupt(name: str, text: str):
    def make(d: Path) -> None:
        write_fake_run(d.parent, d.name)
        (d / name).write_text(text)

    return make


def _shortened(name: str):
    def make(d: Path) -> None:
        write_fake_run(d.parent, d.name)
        data = (d / name).read_bytes()
        (d / name).write_bytes(data[: len(data) // 2])

    return make


BAD_FOLDERS = {  # what is in the folder: (status, words of its problem)
    "empty": (lambda d: d.mkdir(), "unknown", "empty"),
    "foreign": (_foreign, "unknown", "not a run"),
    "only config": (_only_config, "unknown", "only config.toml"),
    "report cut short": (_shortened("report.json"), "finished", "report.json: not JSON"),
    "report not a dict": (_corrupt("report.json", "[1, 2, 3]"), "finished", "report.json: not a run's report"),
    "status cut short": (_shortened("status.json"), "finished", "status.json: not JSON"),
    "status foreign": (_corrupt("status.json", '{"state": "done"}'), "finished", "not a reverse-tui run status"),
    "config not TOML": (_corrupt("config.toml", "epochs = = 3"), "finished", "config.toml: not valid TOML"),
    "metrics bad row": (
        _corrupt("metrics.csv", "epoch,train_loss,val_loss,seconds\n1,0.5,0.4,2.0\n2,zebra,0.3,2.0\n"),
        "finished",
        "metrics.csv: row 2 cannot be read",
    ),
    "metrics binary": (
        lambda d: (write_fake_run(d.parent, d.name), (d / "metrics.csv").write_bytes(b"\x00\xff" * 300)),
        "finished",
        "metrics.csv",
    ),
    "no checkpoint": (lambda d: write_fake_run(d.parent, d.name, checkpoint=False), "finished", "no checkpoint"),
    "a folder named report.json": (
        lambda d: (write_fake_run(d.parent, d.name, report=False), (d / "report.json").mkdir()),
        "finished",
        "report.json",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_FOLDERS))
def test_a_bad_folder_is_a_row_with_its_problem(tmp_path, kind):
    make, status, words = BAD_FOLDERS[kind]
    runs_dir = tmp_path / "runs"
    write_fake_run(runs_dir, "good")
    make(runs_dir / "bad")
    runs = {r.name: r for r in list_runs(runs_dir)}
    assert set(runs) == {"good", "bad"} and runs["good"].problem is None
    bad = runs["bad"]
    assert bad.status == status and words in bad.problem and "\n" not in bad.problem
    json.dumps(as_json(list(runs.values()), runs_dir))  # and still one JSON document


def test_what_is_not_a_run_folder_is_skipped(tmp_path):
    runs_dir = tmp_path / "runs"
    write_fake_run(runs_dir, "a")
    (runs_dir / "latest").symlink_to("a", target_is_directory=True)
    (runs_dir / ".hidden").mkdir()
    (runs_dir / "stray.txt").write_text("not a folder")
    (runs_dir / "dangling").symlink_to("nowhere")
    assert [r.name for r in list_runs(runs_dir)] == ["a"]


def test_a_runs_folder_that_cannot_be_listed_is_one_line(tmp_path):
    with pytest.raises(RunIndexError, match="no such folder"):
        list_runs(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunIndexError, match="not a folder"):
        list_runs(tmp_path / "file")
    assert list_runs(tmp_path) == []  # a folder with no runs: none


@pytest.mark.slow
def test_a_run_killed_outright_is_listed_as_not_running(tmp_path):
    """A real run in another process: running while it trains; after kill -9 (no end written)
    a run that did not finish, with the way to continue it."""
    code = (
        "from engine.train.config import Config; from engine.job import run_job; "
        "from engine.runs.folders import new_run; "
        f"cfg = Config(**{dict(TINY, epochs=500)!r}); p = new_run('victim'); "
        "[None for _ in run_job(cfg, p.checkpoint, p.out, run=p.record())]"
    )
    child = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "runs" / "victim" / "metrics.csv").exists():  # an epoch done: a model to resume
            assert child.poll() is None and time.monotonic() < deadline, "the run did not start"
            time.sleep(0.1)
        (run,) = list_runs(tmp_path / "runs")
        assert run.status == "running" and run.problem is None
    finally:
        child.kill()
        child.wait()
    (run,) = list_runs(tmp_path / "runs")
    assert run.status == "failed" and "--resume" in run.problem and run.epochs >= 1
    assert run.checkpoint == tmp_path / "checkpoints" / "victim" / "best.pt"


def test_the_attention_score_differs_and_a_run_from_before_it_reads_as_additive(tmp_path):
    from tui.run_table import COLUMNS, row

    runs_dir = tmp_path / "runs"
    old = write_fake_run(runs_dir, "a-old", started=1_700_000_000.0) / "config.toml"
    old.write_text("".join(line for line in old.read_text().splitlines(True) if not line.startswith("score =")))
    write_fake_run(runs_dir, "b-additive", config={"score": "additive"}, started=1_700_000_060.0)
    runs = list_runs(runs_dir)
    assert "score" not in Config.read_toml(old)  # written before the flag
    assert [r.config["score"] for r in runs] == ["additive", "additive"]
    assert differing_keys(runs) == []  # the same model
    write_fake_run(runs_dir, "c-dot", config={"score": "dot"}, started=1_700_000_120.0)
    runs = list_runs(runs_dir)
    assert differing_keys(runs) == ["score"]
    assert [row(r, ["score"])[len(COLUMNS)].plain for r in runs] == ["additive", "additive", "dot"]
    assert [r["differs"] for r in as_json(runs, runs_dir)["runs"]] == [
        {"score": s} for s in ("additive", "additive", "dot")
    ]
