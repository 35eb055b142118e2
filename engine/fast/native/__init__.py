"""The fused CPU kernels of fused.c, compiled on first use and called through ctypes.

Why: on a CPU the recurrences' elementwise work (GRU gates, the attention's sigmoid,
softmax and context) is five to eight torch kernels per step and direction, each a
dispatch of several microseconds and a pass over memory, and Adam is seven passes over
every parameter. fused.c does each in one pass.

No build step at install time: the first call compiles fused.c with the system's C compiler
(`$CC` or `cc`, under a second) into the user's cache, keyed on the source, the flags, the
compiler and the CPU, and writes it through a temp file and a rename, so that parallel
first runs cannot load a half-written library. Where there is no compiler, or the build
fails, or REVERSE_TUI_NATIVE=0, `kernels()` returns None and the same maths runs as torch
ops (engine/fast/step_kernels.py's TorchSteps, Adam's foreach ops); `why_not()` says why.

`kernels_for` is the one place that decides which implementation runs (the decoder loop,
the encoder's scan, Adam all ask it).
"""

from __future__ import annotations

import ctypes
import hashlib
import keyword
import os
import platform
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

_FLOAT32 = torch.float32

SOURCE = Path(__file__).with_name("fused.c")
# FMA contraction on purpose: the exp polynomial and the gates run ~2x faster with it.
FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=fast", "-shared", "-fPIC", "-std=c99"]
# Tried in this order, the first that builds wins. -fopenmp links libgomp.so.1, which torch
# has already loaded: the kernels share torch's threads. Without OpenMP (Apple's clang) they
# run on one thread; without -march=native, with the compiler's baseline vector width.
VARIANTS = (["-march=native", "-fopenmp"], ["-march=native", "-fopenmp-simd"], ["-fopenmp-simd"])
COMPILE_SECONDS = 120

_P, _I, _I64, _F = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_float
# One declaration per kernel: its arguments' names and ctypes types, in the order of the C
# prototype in fused.c (tests/test_native.py parses fused.c and fails when a name,
# a type or the order differs). Callers pass every argument by name (Kernel.__call__), so an
# order slip on the Python side cannot happen. Every kernel's first argument is its thread
# count (torch.get_num_threads()); `_rs` is a row stride in elements; pointers may be None.
DECLARATIONS: dict[str, tuple[tuple[str, type], ...]] = {
    "gru_forward": (
        ("threads", _I),
        ("B", _I),
        ("H", _I),
        ("gi", _P),
        ("gi_rs", _I),
        ("gh", _P),
        ("gh_rs", _I),
        ("h", _P),
        ("out", _P),
        ("rz", _P),
        ("n", _P),
    ),
    "gru_backward": (
        ("threads", _I),
        ("B", _I),
        ("H", _I),
        ("dh", _P),
        ("dh_rs", _I),
        ("dh_extra", _P),
        ("extra_rs", _I),
        ("h", _P),
        ("rz", _P),
        ("n", _P),
        ("gh_n", _P),
        ("ghn_rs", _I),
        ("dgi", _P),
        ("dgi_rs", _I),
        ("dgh", _P),
        ("dgh_rs", _I),
        ("direct", _P),
    ),
    "attend_forward": (
        ("threads", _I),
        ("B", _I),
        ("S", _I),
        ("A", _I),
        ("K", _I),
        ("keys2", _P),
        ("q", _P),
        ("q_rs", _I),
        ("prev", _P),
        ("wloc2", _P),
        ("k", _I),
        ("v2", _P),
        ("mask", _P),
        ("enc", _P),
        ("sig", _P),
        ("w", _P),
        ("ctx", _P),
    ),
    "attend_backward": (
        ("threads", _I),
        ("B", _I),
        ("S", _I),
        ("A", _I),
        ("K", _I),
        ("dc", _P),
        ("enc", _P),
        ("dw_extra", _P),
        ("w", _P),
        ("sig", _P),
        ("v4", _P),
        ("prev", _P),
        ("wloc", _P),
        ("k", _I),
        ("dscore", _P),
        ("d_keys", _P),
        ("dq", _P),
        ("dq_rs", _I),
        ("dprev", _P),
        ("dwloc", _P),
    ),
    "adam_step": (
        ("threads", _I),
        ("n", _I64),
        ("p", _P),
        ("g", _P),
        ("m", _P),
        ("v", _P),
        ("b1", _F),
        ("b2", _F),
        ("step_size", _F),
        ("bias2_sqrt", _F),
        ("eps", _F),
    ),
}


def kernel_call(fn, name: str, declaration: tuple[tuple[str, type], ...]) -> Callable[..., None]:
    """One C function, called with every declared argument by name, each exactly once: a
    Python function of those arguments, keyword-only, so that Python's own argument binding
    refuses a missing or an unexpected one. (A dict of them checked by hand cost 4.7 us a
    call against 2.5 us, ~8,000 calls an epoch.) Its source is made from DECLARATIONS alone;
    `.names` and `.fn` are the arguments' names and the ctypes function."""
    names = tuple(arg for arg, _ in declaration)
    if not all(a.isidentifier() and not keyword.iskeyword(a) for a in (name, *names)):
        raise ValueError(f"{name}: not a declaration of Python names: {names}")
    fn.argtypes, fn.restype = [ctype for _, ctype in declaration], None
    scope = {"fn": fn}
    exec(f"def {name}(*, {', '.join(names)}):\n    fn({', '.join(names)})\n", scope)
    call = scope[name]
    call.names, call.fn = names, fn
    return call


class Kernels:
    """The loaded library: one attribute per declared C function (kernel_call)."""

    def __init__(self, dll: ctypes.CDLL):
        self.dll = dll  # kept alive: the functions point into it
        for name, declaration in DECLARATIONS.items():
            setattr(self, name, kernel_call(getattr(dll, name), name, declaration))


_state: dict = {}  # "dll" and "why", once kernels() has run
_lock = threading.Lock()  # the app's worker and its UI thread may both ask first


def _cpu_key() -> str:
    """What -march=native depends on: a library built for one CPU may not run on another
    (a home directory shared between machines)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return "\n".join(dict.fromkeys(l for l in lines if l.startswith(("model name", "flags"))))
    except OSError:
        return platform.processor() or platform.machine()


def _cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "reverse-tui"


def _prune(keep: Path, days: float = 7) -> None:
    """Remove libraries of other sources or compilers not used for a week (best effort)."""
    for old in keep.parent.glob("fused-*.so"):
        try:
            if old != keep and time.time() - old.stat().st_atime > days * 86400:
                old.unlink()
        except OSError:
            pass


def _compile(cc: str, lib: Path) -> None:
    """Build fused.c into lib, through a temp file and a rename."""
    lib.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for variant in VARIANTS:
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=lib.parent)
        os.close(fd)
        try:
            done = subprocess.run(
                [cc, *FLAGS, *variant, str(SOURCE), "-o", tmp], capture_output=True, text=True, timeout=COMPILE_SECONDS
            )
            if done.returncode == 0:
                os.replace(tmp, lib)
                _prune(lib)
                return
            errors.append((done.stderr.strip().splitlines() or ["no message"])[-1])
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    raise RuntimeError(f"{Path(cc).name} could not build {SOURCE.name}: {errors[-1]}")


def _build() -> Kernels:
    cc = shutil.which(os.environ.get("CC", "cc"))
    if cc is None:
        raise RuntimeError("no C compiler (cc) on PATH")
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=COMPILE_SECONDS).stdout
    key = hashlib.sha256(
        "\0".join([SOURCE.read_text(), repr((FLAGS, VARIANTS)), version, _cpu_key()]).encode()
    ).hexdigest()[:16]
    lib = _cache_dir() / f"fused-{key}.so"
    if not lib.exists():
        _compile(cc, lib)
    try:
        dll = ctypes.CDLL(str(lib))
    except OSError:  # a damaged cache file: build it again, once
        lib.unlink(missing_ok=True)
        _compile(cc, lib)
        dll = ctypes.CDLL(str(lib))
    return Kernels(dll)


def kernels() -> Kernels | None:
    """The compiled kernels, or None where they cannot be had (see why_not())."""
    with _lock:
        if "dll" in _state:
            return _state["dll"]
        if os.environ.get("REVERSE_TUI_NATIVE", "1") == "0":
            _state["dll"], _state["why"] = None, "turned off by REVERSE_TUI_NATIVE=0"
        else:
            try:
                _state["dll"], _state["why"] = _build(), None
            except (OSError, RuntimeError, subprocess.SubprocessError) as e:
                _state["dll"], _state["why"] = None, str(e)
    return _state["dll"]


def kernels_for(*tensors, allow: bool = True) -> Kernels | None:
    """The kernels if they are to run on these tensors, else None (torch ops run): allowed
    (tests and A/Bs turn them off per call), every tensor float32 on a CPU (gradient checks
    run in float64, a GPU has its own kernels), and built. Each kernel call still checks its
    own arguments' shapes and layout (engine/fast/step_kernels.py, engine/train/optim.py)."""
    if not allow or any(t.device.type != "cpu" or t.dtype != _FLOAT32 for t in tensors):
        return None
    return kernels()


def why_not() -> str | None:
    """Why kernels() is None; None when they are loaded."""
    kernels()
    return _state["why"]


def summary(device_type: str = "cpu") -> str:
    """One line for a run's header: whether the C kernels run, and if not, why."""
    if device_type != "cpu":
        return "C kernels: not used off the CPU"
    return "C kernels: on" if kernels() is not None else f"C kernels: off ({why_not()}; torch ops instead)"
