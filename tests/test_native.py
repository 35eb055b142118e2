"""engine/fast/native: the C kernels are built where there is a compiler (again when the cached
library is damaged, without -fopenmp or -march=native where the compiler lacks them), the
torch path runs and says why where they cannot be, and one function decides where they run.

The ctypes declarations (engine/fast/native/__init__.py, DECLARATIONS) against the C prototypes
in fused.c: same kernels, same argument names and types, in the same order. ctypes trusts
the declaration, so a slip there would corrupt memory, not raise; those tests are the check."""

import ctypes
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from engine.fast import native
from engine.fast.step_kernels import TorchSteps, steps_for
from tests.conftest import HAVE_CC, ROOT, TURNED_OFF, needs_kernels

# C parameter type -> the ctypes type that passes it; every pointer travels as c_void_p
C_TYPES = {"int": ctypes.c_int, "int64_t": ctypes.c_int64, "float": ctypes.c_float}
PROTOTYPE = re.compile(r"^void\s+(\w+)\s*\(([^)]*)\)\s*\{", re.MULTILINE)  # exported: no `static`
PARAMETER = re.compile(r"^(?:const\s+)?(\w+)\s*(\*?)\s*(?:restrict\s+)?(\w+)$")


def prototypes(source: str) -> dict[str, list[tuple[str, type]]]:
    """Every exported `void name(...)` of a C source -> [(argument name, ctypes type)]."""
    found = {}
    for name, params in PROTOTYPE.findall(source):
        args = []
        for param in " ".join(params.split()).split(","):
            m = PARAMETER.match(param.strip())
            assert m, f"{name}: cannot read the parameter {param.strip()!r}"
            base, star, arg = m.groups()
            args.append((arg, ctypes.c_void_p if star else C_TYPES[base]))
        found[name] = args
    return found


def mismatches(source: str, declarations: dict) -> list[str]:
    """What differs between the C source's prototypes and the Python declarations."""
    c = prototypes(source)
    problems = [f"{name}: in fused.c, not declared" for name in c.keys() - declarations.keys()]
    problems += [f"{name}: declared, not in fused.c" for name in declarations.keys() - c.keys()]
    for name in c.keys() & declarations.keys():
        ours = [(arg, ctype) for arg, ctype in declarations[name]]
        if ours != c[name]:
            problems.append(
                f"{name}: declared {[(a, t.__name__) for a, t in ours]}, "
                f"fused.c {[(a, t.__name__) for a, t in c[name]]}"
            )
    return problems


SOURCE = native.SOURCE.read_text()


def test_every_declaration_equals_its_c_prototype():
    assert set(prototypes(SOURCE)) == {"gru_forward", "gru_backward", "attend_forward", "attend_backward", "adam_step"}
    assert mismatches(SOURCE, native.DECLARATIONS) == []


def edited(declarations: dict, name: str, change) -> dict:
    return {**declarations, name: tuple(change(list(declarations[name])))}


@pytest.mark.parametrize(
    "change",
    [
        lambda a: a[:3] + [a[4], a[3]] + a[5:],  # two arguments swapped
        lambda a: a[:-1],  # one left out
        lambda a: a + [("extra", ctypes.c_int)],  # one added
        lambda a: [("gates", a[0][1])] + a[1:],  # one renamed
        lambda a: [(a[0][0], ctypes.c_float)] + a[1:],  # one retyped
    ],
)
def test_a_changed_declaration_is_reported(change):
    assert mismatches(SOURCE, edited(native.DECLARATIONS, "gru_forward", change))


@pytest.mark.parametrize(
    "old,new",
    [
        (
            "const float *gi, int gi_rs, const float *gh, int gh_rs",  # reordered in C
            "const float *gh, int gh_rs, const float *gi, int gi_rs",
        ),
        ("float *rz, float *n) {", "float *rz, float *n, int extra) {"),  # added in C
        ("float *rz, float *n) {", "float *rz) {"),  # removed in C
        ("float *rz, float *n) {", "float *rz, float *gates) {"),  # renamed in C
        ("float *rz, float *n) {", "float *rz, int n) {"),  # retyped in C
        ("void adam_step(", "void adam_step_v2("),  # a kernel renamed
    ],
)
def test_a_changed_c_prototype_is_reported(old, new):
    assert SOURCE.count(old) == 1
    assert mismatches(SOURCE.replace(old, new), native.DECLARATIONS)


@pytest.mark.skipif(native.kernels() is None, reason="no C kernels here")
def test_a_kernel_takes_every_argument_by_name_exactly_once():
    k = native.kernels().adam_step
    args = {name: 0 for name in k.names}
    with pytest.raises(TypeError, match="adam_step\\(\\) missing 1 required keyword-only argument: 'eps'"):
        k(**{n: v for n, v in args.items() if n != "eps"})
    with pytest.raises(TypeError, match="adam_step\\(\\) got an unexpected keyword argument 'epsilon'"):
        k(**args, epsilon=0)
    with pytest.raises(TypeError, match="takes 0 positional arguments"):
        k(*args.values())  # by name only


def test_a_kernels_python_side_is_made_from_names_alone():
    """kernel_call writes a function from the declaration's names: one that is not a Python
    name is refused before any source is made of it."""
    import ctypes
    import types

    fn = types.SimpleNamespace()
    with pytest.raises(ValueError, match="not a declaration of Python names"):
        native.kernel_call(fn, "adam_step", (("n", ctypes.c_int), ("x): pass\nimport os\n(", ctypes.c_int)))
    with pytest.raises(ValueError, match="not a declaration of Python names"):
        native.kernel_call(fn, "adam_step", (("lambda", ctypes.c_int),))
    call = native.kernel_call(fn, "scale", (("n", ctypes.c_int), ("x", ctypes.c_void_p)))
    assert call.names == ("n", "x") and fn.argtypes == [ctypes.c_int, ctypes.c_void_p]


# -- building the kernels, and the torch path where they cannot be built ---------------------


@pytest.mark.skipif(not HAVE_CC or TURNED_OFF, reason="no C compiler here, or turned off")
def test_the_kernels_build_where_there_is_a_compiler():
    assert native.kernels() is not None, native.why_not()
    assert native.why_not() is None


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if k != "REVERSE_TUI_NATIVE"}, **env},
        timeout=120,
    )  # each child decides for itself, whatever this process runs


FALLBACK = """
import torch
from engine.fast import native
from engine.fast.step_kernels import steps_for, TorchSteps
print(native.kernels() is None, isinstance(steps_for(torch.zeros(1, 2, 3)), TorchSteps))
print(native.why_not())
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "env,why",
    [
        (dict(CC="/nonexistent/cc"), "no C compiler"),
        (dict(CC="false"), "could not build"),
        (dict(REVERSE_TUI_NATIVE="0"), "REVERSE_TUI_NATIVE=0"),
    ],
)
def test_without_the_kernels_the_torch_path_runs_and_says_why(tmp_path, env, why):
    done = run_python(FALLBACK, XDG_CACHE_HOME=str(tmp_path), **env)
    assert done.returncode == 0, done.stderr
    first, reason = done.stdout.strip().splitlines()
    assert first == "True True"
    assert why in reason


def test_one_function_decides_where_the_kernels_run():
    """native.kernels_for: float32 on a CPU where allowed; never float64, never when turned off."""
    x = torch.zeros(2, 3)
    assert native.kernels_for(x) is native.kernels()
    assert native.kernels_for(x, torch.zeros(2, dtype=torch.float64)) is None
    assert native.kernels_for(x, allow=False) is None
    assert isinstance(steps_for(x, allow_native=False), TorchSteps)


@pytest.mark.slow
@needs_kernels
def test_a_damaged_cached_library_is_built_again(tmp_path):
    code = "from engine.fast import native; print(native.kernels() is not None, native.why_not())"
    first = run_python(code, XDG_CACHE_HOME=str(tmp_path))
    assert first.stdout.split()[0] == "True", first.stderr
    (lib,) = (tmp_path / "reverse-tui").glob("fused-*.so")
    lib.write_bytes(b"not a library")
    again = run_python(code, XDG_CACHE_HOME=str(tmp_path))
    assert again.stdout.split()[0] == "True", again.stdout + again.stderr
    assert lib.read_bytes()[:4] == b"\x7fELF"


@pytest.mark.slow
@needs_kernels
def test_a_compiler_without_openmp_or_march_native_still_builds_them(tmp_path):
    """Apple's clang has no -fopenmp, some compilers no -march=native: the next variant."""
    real = shutil.which(os.environ.get("CC", "cc"))
    fussy = tmp_path / "fussy-cc"
    fussy.write_text(f'#!/bin/sh\ncase "$*" in *-march=native*|*-fopenmp\\ *) exit 1;; esac\nexec {real} "$@"\n')
    fussy.chmod(0o755)
    done = run_python(
        FALLBACK.replace("print(native.why_not())", "print(native.why_not(), 'ok')"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        CC=str(fussy),
    )
    assert done.stdout.strip().splitlines() == ["False False", "None ok"], done.stdout + done.stderr
