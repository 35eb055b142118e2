"""The package's shape: no module of tui/ imports another in a circle (lazy imports inside
functions count too), the run is written once, in engine/job.py, the engine and the command
line import no textual, and start-up leaves the plotting libraries for later.

Across modules by design (the whole package), so not one module's test_<module>.py."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Modules of `known` that this file imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        found |= {t for t in targets if t in known}
    return found - {name}


def import_graph(package: str = "tui") -> dict[str, set[str]]:
    files = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    known = set(files)
    return {name: _imports(path, name, known) for name, path in files.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_module_of_tui_imports_another_in_a_circle():
    graph = import_graph("tui")
    assert "tui.app" in graph and "tui.screens.help" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_no_module_of_engine_imports_another_in_a_circle():
    graph = import_graph("engine")
    assert "engine.train.trainer" in graph and "engine.fast.decoder_loop" in graph
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_faces_do_not_train_or_evaluate_by_themselves():
    """Trainer, finish_run and the control's checkpoint name live in engine/job.py; the
    headless run and the app only consume its events."""
    for face in ("tui/headless.py", "tui/app.py"):
        text = (ROOT / face).read_text()
        assert "Trainer(" not in text and "Trainer.resume" not in text, face
        assert "no-attention.pt" not in text, face
    for face in ("tui/headless.py", "tui/app.py"):  # evaluate_run (engine/job.py) is the way in
        assert "finish_run(" not in (ROOT / face).read_text() and "splits_for(" not in (ROOT / face).read_text()


@pytest.mark.slow
def test_engine_and_cli_do_not_import_textual():
    code = (
        "import sys, engine.train.trainer, engine.insight.report, engine.insight.plots, tui.cli, tui.headless, "
        "tui.probe_cli; bad = [m for m in sys.modules if m.startswith('textual')]; "
        "sys.exit(f'textual imported: {bad}' if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or done.stdout


@pytest.mark.slow
def test_start_up_leaves_the_plotting_libraries_for_later():
    """seaborn (and scipy.stats under it) and matplotlib cost ~2.5 s to import: the app and
    --no-ui load them when the first PNG is drawn, not before their first line."""
    code = (
        "import sys, tui.app, tui.headless, engine.insight.report, engine.insight.plots; "
        "bad = [m for m in ('seaborn', 'matplotlib', 'scipy') if m in sys.modules]; "
        "sys.exit(f'imported at start-up: {bad}' if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr or done.stdout
