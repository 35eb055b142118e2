"""tui/probe_changes.py through `reverse-tui probe` (tui.cli.main, in this process): the
interventions print the original and the changed output and whether each is the reversal;
--json holds both decodings with every step's weights; --export writes the attention
matrix as CSV, JSON or .npy; every bad flag is one line on standard error and status 2."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from tui.cli import main

TEXT = "the cat sat on the mat"


@pytest.fixture
def probe(reversing_checkpoint, capsys):
    def run(*args: str) -> tuple[int, str, str]:
        code = main(["probe", "--checkpoint", str(reversing_checkpoint), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_a_knockout_prints_both_outputs_and_their_verdicts(probe):
    code, out, _ = probe(TEXT, "--knockout", "6")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "original: mat the on sat cat the  (the reversal)"
    assert lines[1].startswith("changed:  ") and "(not the reversal; differs at step 1" in lines[1]
    assert lines[2] == "  knock out “mat” (input 6) from step 1"


def test_changes_stack_and_a_forced_word_is_said(probe):
    code, out, _ = probe(TEXT, "--force", "2:dog", "--knockout", "1@6", "--temperature", "1")
    assert code == 0
    changed = out.splitlines()[1].split()
    assert changed[1:3] == ["mat", "dog"]  # "changed:", then step 1's word, then the forced one
    assert "  force step 2 to “dog”" in out and "knock out “the” (input 1) from step 6" in out


def test_json_holds_both_decodings_with_their_weights(probe):
    code, out, _ = probe(TEXT, "--pin", "1:5", "--json")
    assert code == 0
    body = json.loads(out)
    assert body["input"] == [*TEXT.split(), "<eos>"] and body["reversal"] == TEXT.split()[::-1]
    original, changed = body["original"], body["changed"]
    assert original["reversal"] is True and original["output"] == TEXT.split()[::-1]
    assert changed["steps"][0]["weights"] == [0, 0, 0, 0, 1, 0, 0]  # pinned on input 5
    assert changed["steps"][0]["word"] == "the" and body["changes"] == ["pin step 1 on “the” (input 5)"]
    for step in original["steps"]:
        assert len(step["weights"]) == 7 and abs(sum(step["weights"]) - 1) < 1e-4
        assert 0 < step["p"] <= 1 and len(step["scores"]) == 7
    code, out, _ = probe(TEXT, "--json")  # no changes: the decoding alone
    assert code == 0 and "changed" not in json.loads(out)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npy"])
def test_export_writes_the_matrix_by_extension(probe, tmp_path, suffix):
    path = tmp_path / f"att{suffix}"
    code, out, _ = probe(TEXT, "--export", str(path))
    assert code == 0 and out.strip() == "mat the on sat cat the"
    if suffix == ".npy":
        matrix = np.load(path)
    elif suffix == ".csv":
        rows = list(csv.reader(path.open()))
        assert rows[0] == ["output", *TEXT.split(), "<eos>"]
        assert [r[0] for r in rows[1:]] == [*TEXT.split()[::-1], "<eos>"]
        matrix = np.array([[float(x) for x in r[1:]] for r in rows[1:]])
    else:
        body = json.loads(path.read_text())
        assert body["input"][-1] == "<eos>" and body["output"][-1] == "<eos>"
        matrix = np.array(body["attention"])
    assert matrix.shape == (7, 7)  # six words and <eos>, both ways
    np.testing.assert_allclose(matrix.sum(1), 1, atol=1e-4)
    assert (matrix[:6].argmax(1) == np.arange(5, -1, -1)).all()  # the anti-diagonal of a reversal
    assert not list(tmp_path.glob(".*.tmp"))


def test_export_with_changes_is_the_changed_decoding(probe, tmp_path):
    path = tmp_path / "pinned.npy"
    assert probe(TEXT, "--pin", "2:1", "--export", str(path))[0] == 0
    assert np.load(path)[1].tolist() == [1, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--knockout", "8"], "input 8 is outside the sentence"),
        (["--knockout", "0"], "--knockout 0: the input position I counts from 1"),
        (["--knockout", "2@x"], "--knockout 2@x: the step T must be a whole number"),
        (["--pin", "30:1"], "step 30 is past the decoding, which ends at step 7"),
        (["--pin", "3"], "--pin 3: expected T:I"),
        (["--pin", "1:9"], "input 9 is outside the sentence"),
        (["--force", "1:"], "expected T:WORD"),
        (["--force", "2:xylophone"], "“xylophone” is not in the model's vocabulary"),
        (["--temperature", "0"], "--temperature 0: expected a number above 0"),
        (["--temperature", "-1"], "--temperature -1: expected a number above 0"),
        (["--temperature", "warm"], "--temperature warm: expected a number above 0"),
        (["--export", "att.txt"], "unknown export format .txt; use .csv, .json, .npy"),
        (["--knockout", "1", "--beam", "2"], "greedy decoding only"),
        (["--json", "--grid"], "drop --grid"),
    ],
)
def test_bad_input_is_one_line_and_status_2(probe, args, message):
    code, out, err = probe(TEXT, *args)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("reverse-tui: ") and message in err, err


def test_interventions_need_one_sentence(probe, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("the cat sat\n"))
    code, out, err = probe("--knockout", "1")
    assert code == 2 and "one sentence" in err and len(err.splitlines()) == 1


def test_the_probe_screen_exports_with_ctrl_o(tmp_path, reversing_checkpoint):
    """ctrl+o asks where (a free probe-N.csv in the run's folder offered), writes the matrix
    on screen; an existing file or an unknown extension is refused with a message."""
    import asyncio

    from tests.test_app import make_app, probed, type_text, until
    from tui.screens.prompt import Prompt

    app = make_app(tmp_path, checkpoint=reversing_checkpoint)
    out = tmp_path / "out"
    out.mkdir()

    async def body():
        async with app.run_test(size=(100, 32)) as pilot:
            screen = app.screen
            await type_text(pilot, "the cat sat")
            await probed(pilot, "enter")
            await pilot.press("ctrl+o")
            await until(pilot, lambda: isinstance(app.screen, Prompt), "the export prompt")
            assert app.screen.query_one("#prompt-answer").value == str(out / "probe-1.csv")
            await pilot.press("enter")
            await until(pilot, lambda: (out / "probe-1.csv").exists(), "the CSV")
            for name, why in (("probe-1.csv", "exists; give another name"), ("m.txt", "unknown export format")):
                await pilot.press("ctrl+o")
                await until(pilot, lambda: isinstance(app.screen, Prompt), "the export prompt")
                app.screen.query_one("#prompt-answer").value = str(out / name)
                told = len(app._notifications)
                await pilot.press("enter")
                await until(pilot, lambda told=told: len(app._notifications) > told, name)
                last = list(app._notifications)[-1].message
                assert last.startswith("Could not export") and why in last, last
            assert screen.result is not None

    asyncio.run(body())
    rows = list(csv.reader((out / "probe-1.csv").open()))
    assert rows[0] == ["output", "the", "cat", "sat", "<eos>"] and [r[0] for r in rows[1:]] == [
        "sat",
        "cat",
        "the",
        "<eos>",
    ]
    assert not (out / "m.txt").exists() and sorted(p.name for p in out.iterdir()) == ["probe-1.csv"]
