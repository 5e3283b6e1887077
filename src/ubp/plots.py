"""The reports' plots, inline in self-contained HTML: matplotlib figures as base64 PNG, and the
evaluation report's plot as hand-drawn SVG.

Score axes start at 0.5 (chance for AUROC), lower only when a score falls below it, so bars of
entries that differ by hundredths are not drawn as if they differed by halves. matplotlib is
imported only by the plots that draw with it: `ubp evaluate` of a quick run on a small task takes a
few seconds, and matplotlib's import and rendering were a fifth of them.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import numpy as np

CHANCE = 0.5
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")  # matplotlib's default cycle, so SVG and PNG plots colour alike


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_to_img(fig) -> str:
    """An <img> tag holding the figure as a base64 PNG (no external files)."""
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}"/>'


def score_limits(values: list[float]) -> tuple[float, float]:
    """y from 0.5 (or just below the lowest score when one is under it) to just above the highest."""
    finite = [v for v in values if v == v]
    return (min([CHANCE, *(v - 0.02 for v in finite)]), min(1.0, max([CHANCE + 0.1, *(v + 0.03 for v in finite)])))


def _score_axis(ax, values: list[float]) -> None:
    ax.set_ylim(*score_limits(values))
    ax.axhline(CHANCE, color="#999", lw=0.8, ls="--")


def grouped_bars(values: dict[str, dict[str, float]], errors: dict[str, dict[str, float]] | None, title: str) -> str:
    """Bars per task (x) for each entry (colour): values[entry][task]; the axis starts at 0.5."""
    entries = list(values)
    tasks = list(next(iter(values.values())))
    fig, ax = _pyplot().subplots(figsize=(max(6, 1.6 * len(tasks)), 3.6))
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


class _Panel:
    """One SVG plot area: data x in [x0, x1] and y in [y0, y1] mapped into a box at (left, top)."""

    def __init__(self, left: float, top: float, width: float, height: float, x: tuple[float, float],
                 y: tuple[float, float]):
        self.left, self.top, self.width, self.height, self.x, self.y = left, top, width, height, x, y
        self.parts: list[str] = []

    def px(self, x: float) -> float:
        return self.left + (x - self.x[0]) / (self.x[1] - self.x[0]) * self.width

    def py(self, y: float) -> float:
        return self.top + (self.y[1] - y) / (self.y[1] - self.y[0]) * self.height

    def text(self, x: float, y: float, s: str, anchor: str = "middle", size: int = 11, rotate: float = 0) -> None:
        turn = f' transform="rotate({rotate} {x:.1f} {y:.1f})"' if rotate else ""
        self.parts.append(f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{turn}>'
                          f"{html.escape(s)}</text>")

    def line(self, x0: float, y0: float, x1: float, y1: float, colour: str = "#000", extra: str = "") -> None:
        self.parts.append(f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" stroke="{colour}"{extra}/>')

    def axes(self, title: str, ylabel: str) -> None:
        """Frame, y ticks every 0.05 (0.1 on a tall range), the dashed chance line, title, y label."""
        self.parts.append(f'<rect x="{self.left}" y="{self.top}" width="{self.width}" height="{self.height}" '
                          'fill="none" stroke="#000"/>')
        step = 0.05 if self.y[1] - self.y[0] <= 0.4 else 0.1
        tick = np.ceil(self.y[0] / step - 1e-9) * step
        while tick <= self.y[1] + 1e-9:
            self.line(self.left - 4, self.py(tick), self.left, self.py(tick))
            self.text(self.left - 6, self.py(tick) + 4, f"{tick:.2f}", anchor="end", size=10)
            tick += step
        if self.y[0] < CHANCE < self.y[1]:
            self.line(self.left, self.py(CHANCE), self.left + self.width, self.py(CHANCE), "#999",
                      ' stroke-dasharray="4 3"')
        self.text(self.left + self.width / 2, self.top - 8, title, size=12)
        self.text(self.left - 42, self.top + self.height / 2, ylabel, rotate=-90)


def evaluation_plot(scores: dict) -> str:
    """Left: each task's score (min–max over runs as error bars). Right: score per epoch. Inline SVG."""
    tasks = list(scores["tasks"])
    recs = [scores["tasks"][t] for t in tasks]
    means = [r["score"] for r in recs]
    curves = []
    for rec in recs:
        per_epoch = [[ep["score"] for ep in run["epochs"]] for run in rec["runs"]]
        curves.append([sum(col) / len(col) for col in zip(*per_epoch)])
    n_epochs = max(len(c) for c in curves)
    bars = _Panel(60, 30, 380, 250, (-0.5, len(tasks) - 0.5), score_limits(means + [r["min"] for r in recs]))
    bars.axes(f"{scores['mode']} mode, {scores['n_orders']} run(s)", "score (best epoch)")
    for i, (task, mean, rec) in enumerate(zip(tasks, means, recs)):
        x, half = bars.px(i), 0.35 * bars.width / len(tasks)
        top, base = bars.py(mean), bars.py(max(CHANCE, bars.y[0]))
        bars.parts.append(f'<rect x="{x - half:.1f}" y="{min(top, base):.1f}" width="{2 * half:.1f}" '
                          f'height="{abs(base - top):.1f}" fill="#4c72b0"/>')
        bars.line(x, bars.py(rec["min"]), x, bars.py(rec["max"]))
        bars.text(x, bars.top + bars.height + 14, task, anchor="end", size=10, rotate=-30)
    epochs = _Panel(560, 30, 300, 250, (0.7, n_epochs + 0.3), score_limits([v for c in curves for v in c]))
    epochs.axes("validation score per epoch", "mean over runs")
    for e in range(1, n_epochs + 1):
        epochs.text(epochs.px(e), epochs.top + epochs.height + 14, str(e), size=10)
    epochs.text(epochs.px((n_epochs + 1) / 2), epochs.top + epochs.height + 30, "epoch")
    for k, (task, curve) in enumerate(zip(tasks, curves)):
        colour = COLOURS[k % len(COLOURS)]
        points = " ".join(f"{epochs.px(e + 1):.1f},{epochs.py(v):.1f}" for e, v in enumerate(curve))
        epochs.parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        epochs.parts += [f'<circle cx="{epochs.px(e + 1):.1f}" cy="{epochs.py(v):.1f}" r="3" fill="{colour}"/>'
                         for e, v in enumerate(curve)]
        epochs.text(870, 40 + 14 * k, task, anchor="start", size=10)
        epochs.parts.append(f'<rect x="{862}" y="{32 + 14 * k}" width="6" height="6" fill="{colour}"/>')
    return ('<svg xmlns="http://www.w3.org/2000/svg" width="1010" height="360" font-family="sans-serif">'
            + "".join(bars.parts + epochs.parts) + "</svg>")


def run_diagnostics(entry_dir: Path, profile: dict, window) -> str:
    """Row norms per block, and a 2-D PCA projection coloured by purchases in the input window."""
    import polars as pl

    from ubp.entry import read_entry

    ids, emb = read_entry(entry_dir)
    x = emb.astype(np.float32)
    plt = _pyplot()
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
