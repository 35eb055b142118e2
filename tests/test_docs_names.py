"""The docs name what exists. Comments, docstrings and the Markdown docs (every .py and .md
under engine/, tui/, bench/, docs/, tests/, and README.md) name files of this repository
that are there, and flags that reverse-tui's command line, a bench script or torchrun
takes; docs/flags.md's table gives the command line's own defaults, and a flag with a
value in a doc's code takes that value.

Across modules by design: it reads the docs of every package against tui/cli.py's parsers."""

from __future__ import annotations

import argparse
import contextlib
import io
import re
from dataclasses import fields
from pathlib import Path

import pytest
from torch.distributed.run import get_args_parser as torchrun_parser

from engine.train.config import Config
from tests.conftest import ROOT
from tui.cli import config_from_args, main_parser, probe_parser
from tui.compare_cli import compare_parser
from tui.runs_cli import runs_parser
from tui.watch_cli import watch_parser

# flags of other programs that the docs name on purpose; each says whose it is
EXTERNAL = {
    "--snapshot-update": "pytest-textual-snapshot's: regenerate the SVG snapshots",
    "--logdir": "tensorboard's",
    "--query-gpu": "nvidia-smi's",
    "--format": "nvidia-smi's",
    "--index-url": "pip's: where PyTorch's CPU-only wheels are",
    "--next": "tests/lean_run.py's: its next run, in the same process",
}

# a file of this repository by its path from the root: engine/model/seq2seq.py, tests/test_cli.py;
# not one in a hidden folder (bench/.baseline/: git-ignored, made on demand)
PATH = re.compile(r"(?<![\w/.-])((?:engine|tui|bench|docs|tests)/(?!\.)[\w/.-]*\.(?:py|md|sh|c|tcss))\b")
FLAG = re.compile(r"(?<![\w/.=-])--[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
FLAG_VALUE = re.compile(r"(?<![\w/.=-])(--[a-z][\w-]*)[ =]([a-z0-9.][\w.|-]*)")
CODE_SPAN = re.compile(r"`([^`]+)`")


def scanned() -> list[Path]:
    """The files whose names are checked; not this one, whose own test names stale ones."""
    files = [p for d in ("engine", "tui", "bench", "docs", "tests") for p in sorted((ROOT / d).rglob("*"))]
    files = [p for p in files if p.suffix in (".py", ".md") and p.is_file() and p != Path(__file__).resolve()]
    return files + [ROOT / "README.md"]


def lines(paths: list[Path]):
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield f"{path.relative_to(ROOT)}:{number}", line


def parsers() -> list[argparse.ArgumentParser]:
    return [main_parser(), probe_parser(), watch_parser(), runs_parser(), compare_parser()]


def bench_flags() -> set[str]:
    """The flags the bench scripts define: their argparse's, and those a shell script tests."""
    found = set()
    for path in (ROOT / "bench").glob("*.py"):
        found |= set(re.findall(r"""add_argument\(\s*(?:["']-\w["'],\s*)?["'](--[\w-]+)["']""", path.read_text()))
    for path in (ROOT / "bench").glob("*.sh"):
        code = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("#"))
        found |= set(FLAG.findall(code))
    return found


def known_flags() -> set[str]:
    found = bench_flags() | set(EXTERNAL)
    for p in [*parsers(), torchrun_parser()]:
        for action in p._actions:
            found |= set(action.option_strings)
    return found


def missing_paths(where_lines) -> list[str]:
    return [f"{where}: {m}" for where, line in where_lines for m in PATH.findall(line) if not (ROOT / m).exists()]


def unknown_flags(where_lines, known: set[str]) -> list[str]:
    return [f"{where}: {m}" for where, line in where_lines for m in FLAG.findall(line) if m not in known]


def takes_a_value(p: argparse.ArgumentParser, flag: str) -> bool:
    """A flag whose value the parser checks: a number, auto, or one of its choices."""
    for action in p._actions:
        if flag in action.option_strings:
            return action.nargs != 0 and (action.type not in (None, str, Path) or bool(action.choices))
    return False


def parses(p: argparse.ArgumentParser, args: list[str]) -> bool:
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            p.parse_known_args(args)
    except SystemExit:
        return False
    return True


def refused_values(where_lines) -> list[str]:
    """`--flag value` in Markdown code (spans and fenced blocks) that no parser with the flag takes."""
    found, fenced = [], False
    for where, line in where_lines:
        if line.startswith("```"):
            fenced = not fenced
            continue
        for span in [line] if fenced else CODE_SPAN.findall(line):
            for flag, value in FLAG_VALUE.findall(span):
                checking = [p for p in parsers() if takes_a_value(p, flag)]
                for v in value.split("|") if checking else []:  # `--device auto|cpu|cuda`: each
                    if not any(parses(p, [flag, v]) for p in checking):
                        found.append(f"{where}: {flag} {v}")
    return found


# -- the repository's docs ----------------------------------------------------------------------
def test_every_file_named_is_there():
    assert missing_paths(lines(scanned())) == []


def test_every_flag_named_is_taken():
    assert unknown_flags(lines(scanned()), known_flags()) == []


def test_flag_values_in_the_docs_code_are_taken():
    assert refused_values(lines([p for p in scanned() if p.suffix == ".md"])) == []


def flag_rows() -> list[tuple[str, str]]:
    """(flag, default) from docs/flags.md's table of the model and training flags: the table is
    generated (tests/test_flag_table.py holds it so), and this checks what it says of each default."""
    text = (ROOT / "docs" / "flags.md").read_text()
    table = text[text.index("### Model and training") :].split("\n\n")[1]
    rows = []
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip("|"))]  # `auto\|cpu` is one cell
        rows.append((CODE_SPAN.findall(cells[0])[0].split()[0], cells[1].strip("`")))
    return rows


def test_the_flag_table_gives_the_command_lines_defaults():
    """Each Config flag's default in docs/flags.md is one the flag takes, and the default it has."""
    config_flags = {"--" + f.name.replace("_", "-"): f.name for f in fields(Config)}
    checked = []
    for flag, default in flag_rows():
        field = config_flags.get(flag)
        if field is None or field in ("corpus", "copy"):  # not a Config value, or no literal default
            continue
        if isinstance(getattr(Config(), field), bool):  # a switch (--x / --no-x): on or off
            assert default in ("on", "off"), (flag, default)
            assert getattr(Config(), field) == (default == "on"), (flag, default)
        else:
            args = main_parser().parse_args([flag, default])  # SystemExit: the flag does not take it
            assert getattr(config_from_args(args), field) == getattr(Config(), field), (flag, default)
        checked.append(flag)
    # the table lists every Config flag; --corpus and --copy give their defaults in words
    assert sorted(checked) == sorted(set(config_flags) - {"--corpus", "--copy"})


LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def broken_links(paths: list[Path]) -> list[str]:
    """Relative Markdown links whose file, or whose #heading in it, is not there."""
    found = []
    for where, line in lines(paths):
        here = ROOT / where.split(":")[0]
        for target in LINK.findall(line):
            if "://" in target:
                continue
            name, _, anchor = target.partition("#")
            path = (here.parent / name).resolve() if name else here
            if not path.exists():
                found.append(f"{where}: {target}")
            elif anchor and path.suffix == ".md":
                headings = re.findall(r"(?m)^#+ (.*)$", path.read_text())
                if anchor not in {slug(h) for h in headings}:
                    found.append(f"{where}: {target}")
    return found


def test_every_link_in_the_docs_leads_somewhere():
    assert broken_links([p for p in scanned() if p.suffix == ".md"]) == []


def test_the_readmes_test_command_is_the_one_ci_runs():
    """.ci/run starts with the README's test command, on a clean clone."""
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if "python3 -m pytest" in line]
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.DOTALL)
    assert ci[0] in blocks


# -- the checks themselves ------------------------------------------------------------------------
def test_the_checks_find_a_stale_name():
    text = [
        ("a.py:1", "# tests/test_gone.py holds it; see engine/model/seq2seq.py"),
        ("a.py:2", "lowercase=False, for a --corpus trained with --keep-case"),
        ("a.md:1", "`reverse-tui --repeat-rate often` and `--device tpu|cpu`"),
    ]
    assert missing_paths(text) == ["a.py:1: tests/test_gone.py"]
    assert unknown_flags(text, known_flags()) == ["a.py:2: --keep-case"]
    assert refused_values(text) == ["a.md:1: --repeat-rate often", "a.md:1: --device tpu"]


@pytest.mark.parametrize("flag", ["--nproc-per-node", "--standalone", "--quick", "--no-lowercase"])
def test_torchrun_bench_and_switch_flags_are_known(flag):
    assert flag in known_flags()
