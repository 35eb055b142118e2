"""The engine's rooms and the directions they may import in (docs/design.md, The modules):

    model/   the textbook model: imports nothing of the rest of the engine
    fast/    optional speed: imports model/ alone; only engine/impl.py imports it, so the
             engine trains, evaluates and probes with it removed
    runs/    a run's files: imports no torch, and of the other rooms only train/'s torch-free
             leaves (config, events, machine) and engine/errors.py
    engine/  never imports textual

The imports are read from each module's source (ast), lazy ones inside functions included;
two subprocesses then hide torch, and engine/fast, to show the rules hold where it counts.

Across modules by design (the whole engine), so not one module's test_<module>.py."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import ROOT, TINY

RUNS_MAY_IMPORT = {"engine.errors", "engine.train.config", "engine.train.events", "engine.train.machine"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def engine_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "engine").rglob("*.py"))}


def type_checking_only(tree: ast.Module) -> set[ast.AST]:
    """The nodes under `if TYPE_CHECKING:`: annotations only, never run."""
    hidden = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                hidden |= set(ast.walk(inner))
    return hidden


def imports(path: Path, name: str) -> set[str]:
    """Every module this file imports, anywhere in it, as absolute names: `from . import x`
    counts as the module package.x, `from .a import b` as package.a and package.a.b (b may be
    a module), `import a.b` as a.b; imports under `if TYPE_CHECKING:` do not count."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    hidden = type_checking_only(tree)
    found = set()
    for node in ast.walk(tree):
        if node in hidden:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found |= {base} | {f"{base}.{a.name}" for a in node.names}
    return found


def engine_imports(path: Path, name: str) -> set[str]:
    """The modules of the engine this file imports, other than itself and its own package."""
    known = set(engine_modules())
    return {m for m in imports(path, name) if m in known} - {name, "engine"}


def room(name: str) -> str:
    return ".".join(name.split(".")[:2])


def test_the_rooms_are_packages_that_say_what_they_hold():
    for pkg in ("model", "fast", "train", "runs", "insight"):
        init = ROOT / "engine" / pkg / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"engine/{pkg}/__init__.py has no docstring"


def test_model_imports_nothing_of_the_rest_of_the_engine():
    for name, path in engine_modules().items():
        if room(name) == "engine.model":
            outside = {m for m in engine_imports(path, name) if room(m) != "engine.model"}
            assert not outside, f"{name} imports {sorted(outside)}"


def test_fast_imports_only_the_model():
    for name, path in engine_modules().items():
        if room(name) == "engine.fast":
            outside = {m for m in engine_imports(path, name) if room(m) not in ("engine.model", "engine.fast")}
            assert not outside, f"{name} imports {sorted(outside)}"


def test_only_engine_impl_imports_the_fast_layer():
    """Lazily, by name (importlib): not even engine/impl.py names it in an import statement."""
    for name, path in engine_modules().items():
        if room(name) != "engine.fast":
            fast = {m for m in imports(path, name) if m == "engine.fast" or m.startswith("engine.fast.")}
            assert not fast, f"{name} imports {sorted(fast)}"
    assert '"engine.fast.' in (ROOT / "engine" / "impl.py").read_text()  # the one way in


def test_runs_import_no_torch_and_only_the_torch_free_leaves_of_train():
    for name, path in engine_modules().items():
        if room(name) == "engine.runs":
            found = imports(path, name)
            assert not {m for m in found if m.split(".")[0] == "torch"}, f"{name} imports torch"
            outside = {m for m in engine_imports(path, name) if room(m) != "engine.runs"} - RUNS_MAY_IMPORT
            assert not outside, f"{name} imports {sorted(outside)}"


def test_the_engine_never_imports_textual():
    for name, path in engine_modules().items():
        assert not {m for m in imports(path, name) if m.split(".")[0] == "textual"}, name


def test_the_import_reader_sees_lazy_relative_and_type_only_imports(tmp_path):
    """The rules above are only as good as this reader: it must fail them where it should."""
    src = tmp_path / "engine" / "model" / "probe.py"
    src.parent.mkdir(parents=True)
    src.write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            from ..train import trainer
            from . import seq2seq

            if TYPE_CHECKING:
                from ..runs.folders import RunPaths

            def later():
                from ..fast.seq2seq import FastPath
                import torch.nn
            """
        )
    )
    found = imports(src, "engine.model.probe")
    assert {"engine.train.trainer", "engine.model.seq2seq", "engine.fast.seq2seq", "torch.nn"} <= found
    assert "engine.runs.folders" not in found


def hiding(prefix: str) -> str:
    """Python that makes `prefix` and its submodules unimportable, as if not installed."""
    return textwrap.dedent(
        f"""
        import importlib.abc, sys

        class Hide(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == {prefix!r} or name.startswith({prefix!r} + "."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                return None

        sys.meta_path.insert(0, Hide())
        """
    )


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_the_runs_work_without_torch(tmp_path):
    names = sorted(name for name in engine_modules() if room(name) == "engine.runs")
    code = hiding("torch") + textwrap.dedent(
        f"""
        import importlib
        from pathlib import Path
        for name in {names!r}:
            importlib.import_module(name)
        from engine.runs.index import list_runs
        (Path(sys.argv[1]) / "runs").mkdir()
        assert list_runs(Path(sys.argv[1]) / "runs") == []
        assert "torch" not in sys.modules
        print("ok")
        """
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr or done.stdout


@pytest.mark.slow
def test_the_engine_trains_evaluates_and_probes_without_the_fast_layer(tmp_path):
    """engine/fast hidden as if removed: a one-epoch run through the trainer, its test set, a
    greedy and a beam probe of the checkpoint it saved; --impl fast says why it cannot run."""
    code = hiding("engine.fast") + textwrap.dedent(
        f"""
        import math
        from pathlib import Path
        import torch
        import engine.job
        from engine.impl import choose_impl, kernels_summary
        from engine.insight.evaluate import evaluate, probe
        from engine.train.checkpoint import load_model
        from engine.train.config import Config
        from engine.train.events import EpochDone
        from engine.train.trainer import Trainer

        torch.set_num_threads(1)
        folder = Path(sys.argv[1])
        trainer = Trainer(Config(**{dict(TINY, epochs=1)!r}), folder / "best.pt")
        epochs = [e for e in trainer.run() if isinstance(e, EpochDone)]
        assert len(epochs) == 1 and math.isfinite(epochs[0].val_loss), epochs
        assert trainer.model.impl == "reference"
        result = evaluate(trainer.model, trainer.vocab, trainer.splits.test, trainer.device)
        assert len(result.results) == len(trainer.splits.test)
        loaded = load_model(folder / "best.pt")
        assert loaded.model.impl == "reference"
        for beam in (1, 3):
            answer = probe(loaded.model, loaded.vocab, "the cat sat", torch.device("cpu"), beam=beam)
            assert answer.source == ["the", "cat", "sat"] and answer.steps >= 1
        try:
            choose_impl(Config(impl="fast"))
        except ValueError as e:
            assert "engine/fast is not there" in str(e), e
        else:
            raise AssertionError("--impl fast did not refuse")
        assert kernels_summary("cpu").startswith("C kernels: off")
        assert not [m for m in sys.modules if m.startswith("engine.fast")]
        print("ok")
        """
    )
    done = run_python(code, tmp_path)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr or done.stdout
