"""PNG figures: the attention heatmap and the loss curve. Built on matplotlib Figure objects
(no pyplot global state), so they are safe from a worker thread and never open a window.

matplotlib and seaborn are imported on first use, not with this module: seaborn pulls in
scipy.stats, and the two cost ~2.5 s of start-up that the app and --no-ui would otherwise
spend before their first line."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np


def _figure(**kwargs):
    import matplotlib
    matplotlib.use("Agg")  # files only; never a window, also without a display
    from matplotlib.figure import Figure
    return Figure(**kwargs)


def attention_heatmap(attention: np.ndarray, source_tokens: Sequence[str],
                      output_tokens: Sequence[str], path: str | os.PathLike,
                      title: str | None = None) -> Path:
    """x: encoder tokens, y: decoder steps, each cell its weight, with a colour bar."""
    rows, cols = attention.shape
    fig = _figure(figsize=(max(5.0, 0.7 * cols + 2.5), max(4.0, 0.55 * rows + 1.8)), dpi=150)
    ax = fig.add_subplot()
    import seaborn as sns  # after _figure: the Agg backend is chosen first
    sns.heatmap(attention, ax=ax, vmin=0.0, vmax=1.0, cmap="viridis", square=False,
                xticklabels=list(source_tokens), yticklabels=list(output_tokens),
                annot=cols <= 16 and rows <= 16, fmt=".2f", annot_kws={"fontsize": 7},
                linewidths=0.4, linecolor="white", cbar_kws={"label": "attention weight"})
    ax.set_xlabel("encoder tokens (input)")
    ax.set_ylabel("decoder steps (output)")
    ax.set_title(title or f'"{" ".join(source_tokens[:-1])}"', fontsize=10)
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path


def loss_curve(history: Sequence[dict], path: str | os.PathLike, best_epoch: int | None = None) -> Path:
    """Train and validation loss per epoch (log scale), validation exact match on a twin axis."""
    fig = _figure(figsize=(7, 4), dpi=150)
    ax = fig.add_subplot()
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train loss")
    ax.plot(epochs, [h["val_loss"] for h in history], marker="o", label="val loss")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (log scale)")
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best (epoch {best_epoch})")
    ax2 = ax.twinx()
    ax2.plot(epochs, [100 * h["val_exact_match"] for h in history], color="tab:green",
             linestyle="--", label="val exact match")
    ax2.set_ylabel("val exact match (%)")
    ax2.set_ylim(0, 101)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    return path
