"""Checkpoints: one file of plain values (tensors, numbers, strings, lists, dicts).

Saving writes a temporary file beside the target, flushes it to disk and renames it over
the target, so a crash at any moment leaves either the old file or the new one, whole.
Loading uses torch.load(weights_only=True): a checkpoint cannot run code, and every problem
becomes one CheckpointError sentence naming the file.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch

from ..errors import CheckpointError

FORMAT = "reverse-tui checkpoint v1"
REQUIRED = ("format", "model", "config", "vocab", "epoch", "history")


def save_atomic(payload: dict, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    # make the rename itself durable
    try:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def load(path: str | os.PathLike) -> dict:
    """Read and check a checkpoint; raise CheckpointError with a readable reason."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such file")
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    try:
        with warnings.catch_warnings():  # the error below says all; no pickle-protocol chatter
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        text = " ".join(str(e).split())
        found = re.search(r"unsupported GLOBAL (\S+)", text)
        if found:  # a pickle that names a Python callable: what a code-running file does
            raise CheckpointError(
                f"{path}: refused to load: it asks to run Python code "
                f"({found.group(1)}), and a checkpoint holds plain data only"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, or not a PyTorch file)") from None
    except (
        zipfile.BadZipFile,
        RuntimeError,
        EOFError,
        ValueError,
        OSError,
        AttributeError,
        UnicodeDecodeError,
        IndexError,
        KeyError,
        TypeError,
    ) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt: {type(e).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a reverse-tui checkpoint of this version (expected format {FORMAT!r})")
    missing = [k for k in REQUIRED if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint is missing {', '.join(missing)}")
    return payload


class Loaded:
    """A model restored from a checkpoint, ready to decode."""

    def __init__(self, model, vocab, config, payload: dict, path: Path):
        self.model, self.vocab, self.config, self.payload, self.path = model, vocab, config, payload, path


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> Loaded:
    """Checkpoint -> eval-mode model; any mismatch is a CheckpointError naming the file."""
    from ..impl import build_model
    from .config import Config
    from .data import Vocab

    path = Path(path)
    payload = load(path)
    try:
        cfg = Config.from_dict(payload["config"])
        vocab = Vocab(payload["vocab"])
        model = build_model(len(vocab), cfg)
        model.load_state_dict(payload["model"])
    except (TypeError, ValueError, KeyError, RuntimeError) as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: weights do not fit its configuration or vocabulary ({reason})") from None
    model.to(device).eval()
    return Loaded(model, vocab, cfg, payload, path)
