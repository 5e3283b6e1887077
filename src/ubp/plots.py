"""The reports' plots: matplotlib figures returned as inline base64 PNG for self-contained HTML.

Score axes start at 0.5 (chance for AUROC), lower only when a score falls below it, so bars of
entries that differ by hundredths are not drawn as if they differed by halves.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CHANCE = 0.5


def figure_to_img(fig) -> str:
    """An <img> tag holding the figure as a base64 PNG (no external files)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}"/>'


def _score_axis(ax, values: list[float]) -> None:
    """y from 0.5 (or just below the lowest score when one is under it) to just above the highest."""
    finite = [v for v in values if v == v]
    low = min([CHANCE, *(v - 0.02 for v in finite)])
    high = min(1.0, max([CHANCE + 0.1, *(v + 0.03 for v in finite)]))
    ax.set_ylim(low, high)
    ax.axhline(CHANCE, color="#999", lw=0.8, ls="--")


def grouped_bars(values: dict[str, dict[str, float]], errors: dict[str, dict[str, float]] | None, title: str) -> str:
    """Bars per task (x) for each entry (colour): values[entry][task]; the axis starts at 0.5."""
    entries = list(values)
    tasks = list(next(iter(values.values())))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks)), 3.6))
    width = 0.8 / max(len(entries), 1)
    x = np.arange(len(tasks))
    for i, entry in enumerate(entries):
        ys = np.array([values[entry].get(t, np.nan) for t in tasks])
        errs = [errors[entry].get(t, 0.0) for t in tasks] if errors else None
        ax.bar(x + i * width - 0.4 + width / 2, ys - CHANCE, width, bottom=CHANCE, yerr=errs, label=entry, capsize=2)
    ax.set_xticks(x, tasks, rotation=20, ha="right")
    _score_axis(ax, [v for e in values.values() for v in e.values()])
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.legend(fontsize=8, ncols=min(len(entries), 5))
    return figure_to_img(fig)


def evaluation_plot(scores: dict) -> str:
    """Left: each task's score (min–max over runs as error bars). Right: score per epoch."""
    tasks = list(scores["tasks"])
    recs = [scores["tasks"][t] for t in tasks]
    fig, (ax_bar, ax_ep) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    means = np.array([r["score"] for r in recs])
    err = [[m - r["min"] for m, r in zip(means, recs)], [r["max"] - m for m, r in zip(means, recs)]]
    ax_bar.bar(tasks, means - CHANCE, bottom=CHANCE, yerr=err, capsize=4, color="#4c72b0")
    _score_axis(ax_bar, list(means))
    ax_bar.set_ylabel("score (best epoch)")
    ax_bar.set_title(f"{scores['mode']} mode, {scores['n_orders']} run(s)")
    ax_bar.tick_params(axis="x", rotation=30)
    curves = []
    for task, rec in zip(tasks, recs):
        per_epoch = [[ep["score"] for ep in run["epochs"]] for run in rec["runs"]]
        curve = [sum(col) / len(col) for col in zip(*per_epoch)]
        curves += curve
        ax_ep.plot(range(1, len(curve) + 1), curve, marker="o", label=task)
    ax_ep.set_xticks(range(1, 1 + max(len(r["runs"][0]["epochs"]) for r in recs)))
    _score_axis(ax_ep, curves)
    ax_ep.set_xlabel("epoch")
    ax_ep.set_ylabel("validation score (mean over runs)")
    ax_ep.legend(fontsize=8)
    return figure_to_img(fig)


def run_diagnostics(entry_dir: Path, profile: dict, window) -> str:
    """Row norms per block, and a 2-D PCA projection coloured by purchases in the input window."""
    import polars as pl

    from ubp.entry import read_entry

    ids, emb = read_entry(entry_dir)
    x = emb.astype(np.float32)
    fig, ax = plt.subplots(figsize=(6, 3))
    norms = [np.linalg.norm(x[:, b["columns"][0]: b["columns"][1]], axis=1) for b in profile["blocks"]]
    ax.boxplot(norms, showfliers=False)
    ax.set_xticks(range(1, len(norms) + 1), [b["name"] for b in profile["blocks"]])
    ax.set_ylabel("row L2 norm")
    ax.set_title("norm of each block's part of the profile")
    norm_img = figure_to_img(fig)

    buys = window.events("product_buy").group_by("client_id").agg(pl.len().alias("n")).collect()
    n_buys = pl.DataFrame({"client_id": ids}).join(buys, on="client_id", how="left").get_column("n").fill_null(0).to_numpy()
    segment = np.select([n_buys == 0, n_buys == 1], ["no purchase", "1 purchase"], "2+ purchases")
    rng = np.random.default_rng(0)
    sample = rng.choice(len(x), size=min(len(x), 5000), replace=False)
    xs = x[sample] - x[sample].mean(axis=0)
    _, _, vt = np.linalg.svd(xs, full_matrices=False)
    xy = xs @ vt[:2].T
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for label in ("no purchase", "1 purchase", "2+ purchases"):
        mask = segment[sample] == label
        ax.scatter(xy[mask, 0], xy[mask, 1], s=3, alpha=0.5, label=f"{label} ({mask.sum()})")
    ax.set_title("profile, first two principal components")
    ax.legend(markerscale=4, fontsize=8)
    return norm_img + figure_to_img(fig)
