"""PNG figures: the attention heatmap and the loss curve. Built on matplotlib Figure objects
(no pyplot global state), so they are safe from a worker thread and never open a window.

matplotlib and seaborn are imported on first use, not with this module: seaborn pulls in
scipy.stats, and the two cost ~2.5 s of start-up that the app and --no-ui would otherwise
spend before their first line."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..train.events import step_labels


def _figure(**kwargs):
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window, also without a display
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def warm_up() -> None:
    """Import matplotlib and seaborn now (~1.7 s, seaborn pulls in scipy.stats): the plot
    process's first step (engine/insight/plot_process.py), while the run is still training."""
    _figure()
    import seaborn  # noqa: F401


def attention_heatmap(
    attention: np.ndarray,
    source_tokens: Sequence[str],
    output_tokens: Sequence[str],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """x: encoder tokens, y: decoder steps, each cell its weight, with a colour bar."""
    rows, cols = attention.shape
    if (len(output_tokens), len(source_tokens)) != (rows, cols):
        raise ValueError(
            f"the attention has {rows} x {cols} weights, but {len(output_tokens)} output and "
            f"{len(source_tokens)} input labels"
        )
    fig = _figure(figsize=(max(5.0, 0.7 * cols + 2.5), max(4.0, 0.55 * rows + 1.8)), dpi=150)
    ax = fig.add_subplot()
    import seaborn as sns  # after _figure: the Agg backend is chosen first

    # the labels are set below, not by seaborn: its check of whether labels overlap draws the
    # figure once per label (5 s for a 30-word sentence)
    sns.heatmap(
        attention,
        ax=ax,
        vmin=0.0,
        vmax=1.0,
        cmap="viridis",
        square=False,
        xticklabels=False,
        yticklabels=False,
        annot=cols <= 16 and rows <= 16,
        fmt=".2f",
        annot_kws={"fontsize": 7},
        linewidths=0.4,
        linecolor="white",
        cbar_kws={"label": "attention weight"},
    )
    ax.set_xticks(np.arange(cols) + 0.5, list(source_tokens))
    ax.set_yticks(np.arange(rows) + 0.5, list(output_tokens))
    ax.set_xlabel("encoder tokens (input)")
    ax.set_ylabel("decoder steps (output)")
    ax.set_title(title or f'"{" ".join(source_tokens[:-1])}"', fontsize=10)
    ax.tick_params(axis="x", labelrotation=45)
    ax.tick_params(axis="y", labelrotation=0)
    fig.tight_layout()
    return _save(fig, Path(path))


SIDE_BY_SIDE_TOKENS = 40  # input tokens of all panels together that still fit beside one another


def attention_side_by_side(
    panels: Sequence[tuple[np.ndarray, Sequence[str], Sequence[str], str]],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """One sentence's attention in several models, a heatmap each, side by side on one colour
    scale (0-1, one colour bar for all): panels are (attention (steps, n + 1), input tokens,
    output tokens, panel title), the input tokens the same in every panel, so each column
    is the same input word across them. A long sentence in several models: the panels one
    above the other instead, the words at the same place in each."""
    if not panels:
        raise ValueError("no attention to draw")
    for attention, source, output, _ in panels:
        if attention.shape != (len(output), len(source)):
            raise ValueError(
                f"the attention has {attention.shape[0]} x {attention.shape[1]} weights, but "
                f"{len(output)} output and {len(source)} input labels"
            )
    cols = max(len(p[1]) for p in panels)
    rows = [len(p[2]) for p in panels]
    # side by side while they fit a page's width; else one above the other, each input word
    # in the same place down the page
    beside = cols * len(panels) <= SIDE_BY_SIDE_TOKENS
    width = max(3.2, 0.42 * cols + 1.6)
    # constrained: the titles, the labels and the one colour bar laid out without overlap
    if beside:
        fig = _figure(
            figsize=(width * len(panels) + 1.2, max(3.6, 0.38 * max(rows) + 2.2)), dpi=120, layout="constrained"
        )
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
    else:
        height = sum(0.3 * r + 1.4 for r in rows) + 0.6
        fig = _figure(figsize=(width + 1.2, height), dpi=120, layout="constrained")
        axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=[r + 4 for r in rows])[:, 0]
    import seaborn as sns  # after _figure: the Agg backend is chosen first

    annotate = cols <= 12 and max(rows) <= 13
    for ax, (attention, source, output, name) in zip(axes, panels):
        sns.heatmap(
            attention,
            ax=ax,
            vmin=0.0,
            vmax=1.0,
            cmap="viridis",
            cbar=False,  # one bar for every panel, below: the same scale
            xticklabels=False,
            yticklabels=False,
            annot=annotate,
            fmt=".2f",
            annot_kws={"fontsize": 6},
            linewidths=0.3,
            linecolor="white",
        )
        ax.set_xticks(np.arange(len(source)) + 0.5, list(source), rotation=60, fontsize=7)
        ax.set_yticks(np.arange(len(output)) + 0.5, list(output), rotation=0, fontsize=7)
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("input", fontsize=7)
    for ax in axes if not beside else axes[:1]:
        ax.set_ylabel("decoder steps (output)", fontsize=8)
    fig.colorbar(axes[0].collections[0], ax=list(axes), label="attention weight", shrink=0.8)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, Path(path))


def _save(fig, path: Path) -> Path:
    """Drawn to a temporary file and renamed: a PNG on disk is always whole. Compressed at
    zlib's fastest level: its default level was a seventh of drawing the default run's
    heatmap (0.32-0.35 s against 0.37-0.41 s, for 139 KB against 87)."""
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, pil_kwargs={"compress_level": 1})
    os.replace(tmp, path)
    return path


SMOOTHING = 0.9  # EMA weight of the past: about the last ten batches


def batch_points(history: Sequence[dict]) -> list[tuple[float, float]]:
    """(x, training loss) per batch, x in epochs (1.37 = the second epoch, 37% through), from
    each epoch's `batch_losses`; an epoch without them (an older checkpoint) gives its mean
    at its end."""
    points: list[tuple[float, float]] = []
    for h in history:
        losses = h.get("batch_losses") or []
        if losses:
            n = len(losses)
            points += [(h["epoch"] - 1 + (k + 1) / n, loss) for k, loss in enumerate(losses)]
        else:
            points.append((float(h["epoch"]), h["train_loss"]))
    return points


def smooth(points: Sequence[tuple[float, float]], beta: float = SMOOTHING) -> list[tuple[float, float]]:
    """Exponential moving average in log space (the charts' scale), started at the first
    value so that it is not pulled towards zero; non-positive or non-finite losses skipped."""
    out, avg = [], None
    for x, y in points:
        if not 0 < y < math.inf:
            continue
        v = math.log(y)
        avg = v if avg is None else beta * avg + (1 - beta) * v
        out.append((x, math.exp(avg)))
    return out


def loss_curve(history: Sequence[dict], path: str | os.PathLike, best_epoch: int | None = None) -> Path:
    """The training loss of every batch (raw, light, and smoothed), the validation loss of
    every epoch as markers (log scale, x in epochs), validation exact match on a twin axis."""
    fig = _figure(figsize=(7, 4), dpi=150)
    ax = fig.add_subplot()
    raw = [(x, y) for x, y in batch_points(history) if 0 < y < math.inf]
    if raw:
        ax.plot(*zip(*raw), color="tab:blue", alpha=0.25, linewidth=0.8, label="train loss per batch")
        ax.plot(*zip(*smooth(raw)), color="tab:blue", linewidth=1.8, label="train loss, smoothed")
    val = [(h["epoch"], h["val_loss"]) for h in history if 0 < h["val_loss"] < math.inf]
    if val:
        ax.plot(*zip(*val), color="tab:orange", marker="o", linestyle="none", label="val loss per epoch")
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (log scale)")
    last = max([h["epoch"] for h in history], default=1)
    ax.set_xlim(0, last + 0.05)
    ax.set_xticks(range(0, last + 1, max(1, -(-last // 10))))
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best (epoch {best_epoch})")
    ax2 = ax.twinx()
    ax2.plot(
        [h["epoch"] for h in history],
        [100 * h["val_exact_match"] for h in history],
        color="tab:green",
        linestyle="--",
        marker=".",
        label="val exact match",
    )
    ax2.set_ylabel("val exact match (%)")
    ax2.set_ylim(0, 101)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, Path(path))


def _cut(text: str, width: int) -> str:
    """text in at most width characters, an ellipsis marking a cut"""
    return text if len(text) <= width else text[: width - 1] + "…"


def attention_timeline_gif(snapshots: Sequence[dict], path: str | os.PathLike, frame_ms: int = 600) -> Path:
    """The first watch sentence's attention at each snapshot (engine/insight/watch.py), one frame
    each: how the anti-diagonal forms. Every frame has the same grid (up to the sentence's
    length + 2 steps; rows past a snapshot's own end are blank), so the frames line up;
    the title says when (epoch and batch), what the model said, and whether it matched.
    matplotlib draws the frames, Pillow writes the GIF; the last frame stays twice as long.
    The axes, the colour bar and the input words are the same in every frame: they are drawn
    once and each frame redraws only what changes over them (its weights, step labels, title),
    ~10x less drawing than a full figure a frame."""
    from PIL import Image

    shown = [s for s in snapshots if s["sentences"]]
    first = [s["sentences"][0] for s in shown]
    if not first:
        raise ValueError("no snapshot to draw")
    source = first[0]["source"] + ["<eos>"]
    # the reversal's steps (the words, EOS) and one more to show a run-on; an untrained model
    # runs on to its step budget, which would leave the learned frames a strip at the top
    rows = min(max(len(w["weights"]) for w in first), len(source) + 1)
    fig = _figure(figsize=(max(4.5, 0.42 * len(source) + 2.2), max(3.5, 0.3 * rows + 1.6)), dpi=80)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the frames are read back as pixels
    ax = fig.add_subplot()
    image = ax.imshow(np.full((rows, len(source)), np.nan), vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    image.set_interpolation("nearest")
    fig.colorbar(image, ax=ax, label="attention weight", fraction=0.046, pad=0.03)
    ax.set_xticks(np.arange(len(source)), source, rotation=60, fontsize=7)
    ax.set_xlabel("input tokens", fontsize=8)
    ax.set_ylabel("decoder steps (output)", fontsize=8)

    def labels(w: dict) -> list[str]:
        return step_labels(w["output"], len(w["weights"]))[:rows] + [""] * (rows - len(w["weights"][:rows]))

    # one layout for every frame, made room for the widest step labels of any of them
    widest = max((labels(w) for w in first), key=lambda ls: max(map(len, ls), default=0))
    ax.set_yticks(np.arange(rows), widest, fontsize=7)
    ax.set_title("epoch\n", fontsize=8)
    fig.tight_layout()
    changing = [image, ax.yaxis, ax.title]
    for artist in changing:
        artist.set_visible(False)
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)  # everything but what changes
    for artist in changing:
        artist.set_visible(True)
    frames = []
    for snap, w in zip(shown, first):
        grid = np.full((rows, len(source)), np.nan)
        weights = np.asarray(w["weights"], dtype=float)[:rows]
        grid[: len(weights), : weights.shape[1] if weights.size else 0] = weights
        image.set_data(grid)
        ax.set_yticks(np.arange(rows), labels(w), fontsize=7)
        verdict = "match" if w["match"] else "no match"
        ax.set_title(
            f"epoch {snap['epoch']}, batch {snap['batch']}/{snap['batches']}: {verdict}\n"
            f"{_cut(' '.join(w['output']), 80) or '(nothing)'}",
            fontsize=8,
        )
        canvas.restore_region(background)
        for artist in [*changing, *ax.spines.values()]:  # the frame's lines stay over the image
            ax.draw_artist(artist)
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy()))
    # a GIF frame holds 256 colours: one palette for all, chosen from the last frame (the
    # colour bar and the most settled weights), then each frame mapped onto it, instead
    # of a palette searched for every frame
    palette = frames[-1].quantize(256)
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    durations = [frame_ms] * (len(frames) - 1) + [2 * frame_ms]
    frames[0].save(tmp, save_all=True, append_images=frames[1:], duration=durations, loop=0)
    os.replace(tmp, path)
    return path
