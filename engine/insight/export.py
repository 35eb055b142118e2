"""A decoding's attention matrix written for other tools: a row per output step, a column per
input token (the words, then <eos>), as CSV, JSON or NumPy's .npy, by the file's extension.
Written to a temporary file beside it and renamed, so a reader never sees half a file."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

FORMATS = (".csv", ".json", ".npy")


def export_format(path: str | Path) -> str:
    """The format a path asks for, or ValueError naming those there are."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"{path}: unknown export format {suffix or '(no extension)'}; use {', '.join(FORMATS)}")
    return suffix


def write_attention(
    path: str | Path, attention: np.ndarray, source_tokens: Sequence[str], output_tokens: Sequence[str]
) -> Path:
    """attention (steps, n + 1); source_tokens its columns' labels, output_tokens its rows'.
    CSV: a header `output,<tokens>` then a row per step; JSON: {"input", "output", "attention"};
    .npy: the matrix alone (float32), the labels being in the other two."""
    path = Path(path)
    kind = export_format(path)
    matrix = np.asarray(attention, dtype=np.float32)
    if matrix.shape != (len(output_tokens), len(source_tokens)):
        raise ValueError(f"the matrix is {matrix.shape}, the labels ({len(output_tokens)}, {len(source_tokens)})")
    tmp = path.with_name(f".{path.name}.tmp")
    if kind == ".npy":
        with open(tmp, "wb") as f:
            np.save(f, matrix)
    else:
        if kind == ".csv":
            buf = io.StringIO()
            w = csv.writer(buf)
            w.writerow(["output", *source_tokens])
            for word, row in zip(output_tokens, matrix):
                w.writerow([word, *(f"{x:.6g}" for x in row)])
            text = buf.getvalue()
        else:
            body = {"input": list(source_tokens), "output": list(output_tokens), "attention": matrix.tolist()}
            text = json.dumps(body, indent=1)
        tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
