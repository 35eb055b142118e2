"""tui/flag_table.py: every flag's help is written once; `--help` prints it and docs/flags.md is
generated from it, so the three cannot drift."""

from __future__ import annotations

import argparse
import contextlib
import io
from dataclasses import fields

import pytest

from engine.train import distributed, threads
from engine.train.config import Config
from tests.conftest import ROOT
from tui.cli import main_parser
from tui.flag_table import flag_table, row


def test_docs_flags_md_is_the_generated_table():
    """Regenerate with `python3 -m tui.flag_table > docs/flags.md` after changing a flag's help."""
    assert (ROOT / "docs" / "flags.md").read_text() == flag_table()


def main_rows(flag: str) -> list[str]:
    """The rows of reverse-tui's own flag (not a sub-command's) in docs/flags.md."""
    main = flag_table().split("\n## reverse-tui probe")[0]
    return [line for line in main.splitlines() if line.startswith((f"| `{flag} ", f"| `{flag}`"))]


def _help_text() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main_parser().parse_args(["--help"])
    return " ".join(out.getvalue().split())  # argparse wraps lines: compare the words


@pytest.mark.parametrize("field", fields(Config), ids=lambda f: f.name)
def test_help_and_the_table_give_each_config_fields_own_text(field):
    text = field.metadata["help"]
    assert text.strip(), f"{field.name} has no help"
    flag = "--" + field.name.replace("_", "-")
    assert " ".join(text.split()) in _help_text()
    [line] = main_rows(flag)
    assert line.split(" | ")[2].removesuffix(" |").replace("`", "") == " ".join(text.split())


def test_a_row_splits_the_default_from_the_text():
    p = argparse.ArgumentParser()
    valued = p.add_argument("--max-vocab", metavar="N", help="how many (0: no cap) (default: 7)")
    switch = p.add_argument("--grid", action="store_true", help="say more")
    choice = p.add_argument("--device", choices=["a", "b"], help="which <unk> (default: a)")
    assert row(valued) == "| `--max-vocab N` | 7 | how many (0: no cap) |"
    assert row(switch) == "| `--grid` | off | say more |"
    assert row(choice) == "| `--device a\\|b` | a | which `<unk>` |"


@pytest.mark.parametrize(
    "flag, default",
    [("--dist-timeout", str(distributed.DEFAULT_TIMEOUT_S)), ("--threads", f"under {threads.SMALL_HIDDEN},")],
)
def test_the_run_flags_defaults_are_the_engines(flag, default):
    """Defaults written in tui/cli.py's help, which must not import torch before --help."""
    [line] = main_rows(flag)
    assert default in line.split(" | ")[1]
