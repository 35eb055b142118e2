"""Which implementation runs the model, decided here alone: engine/model's reference, plain
PyTorch under autograd, or the same weights through engine/fast where it implements the
configuration (faster on a CPU: bench/README.md).

engine/fast is optional. This is the one module that imports it, lazily: where it is not
there (removed, or a build without it), `--impl auto` runs the reference, `--impl fast` is a
clear error, and the C kernels (Adam's too) are off. engine/model imports nothing of it.
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch

from .model.seq2seq import Architecture, Seq2Seq

IMPLS = ("auto", "reference", "fast")
ABSENT = "engine/fast is not there"


def _fast(module: str) -> ModuleType | None:
    """engine.fast.<module>, or None where engine/fast cannot be found. Any other import
    error inside it is a bug, and raises."""
    try:
        return importlib.import_module(f"engine.fast.{module}")
    except ModuleNotFoundError as e:
        if e.name is not None and (e.name == "engine.fast" or e.name.startswith("engine.fast.")):
            return None
        raise


def fast_lacks(cfg) -> list[str]:
    """What of cfg the fast layer does not implement (engine/fast/seq2seq.py, lacks); all of
    it where engine/fast is not there."""
    fast = _fast("seq2seq")
    return [ABSENT] if fast is None else fast.lacks(cfg)


def choose_impl(cfg) -> str:
    """The one place that decides which implementation runs: --impl reference or fast as
    asked, and auto the fast layer wherever it implements the configuration."""
    if cfg.impl not in IMPLS:
        raise ValueError(f"--impl must be one of {', '.join(IMPLS)}, got {cfg.impl!r}")
    if cfg.impl == "reference":
        return "reference"
    lacks = fast_lacks(cfg)
    if cfg.impl == "fast" and lacks:
        raise ValueError(f"--impl fast does not implement {', '.join(lacks)}; use --impl reference")
    return "reference" if lacks else "fast"


def build_model(vocab_size: int, cfg: Architecture) -> Seq2Seq:
    """The model for cfg, with the fast layer attached where choose_impl picks it: how the
    trainer and a checkpoint's loader make one."""
    model = Seq2Seq(vocab_size, cfg)
    if choose_impl(cfg) == "fast":
        model.fast = _fast("seq2seq").FastPath()
    return model


def describe_impl(impl: str, cfg=None) -> str:
    """The run's line naming its implementation; with cfg, why --impl auto picked the reference
    (what engine/fast lacks of it)."""
    if impl != "reference":
        return "model: fast (engine/fast: hand-written loop and kernels, held equal to engine/model)"
    line = "model: reference (engine/model, plain PyTorch under autograd)"
    lacks = fast_lacks(cfg) if cfg is not None and cfg.impl == "auto" else []
    if lacks:
        line += f"; {ABSENT}" if ABSENT in lacks else f"; engine/fast lacks {', '.join(lacks)}"
    return line


def kernels_for(*tensors: torch.Tensor, allow: bool = True):
    """engine/fast's C kernels if they are to run on these tensors (engine/fast/native,
    kernels_for), else None: the torch ops run."""
    native = _fast("native")
    return None if native is None else native.kernels_for(*tensors, allow=allow)


def kernels_summary(device_type: str = "cpu") -> str:
    """One line for a run's header: whether the C kernels run, and if not, why."""
    native = _fast("native")
    if native is None:
        return "C kernels: not used off the CPU" if device_type != "cpu" else f"C kernels: off ({ABSENT})"
    return native.summary(device_type)
