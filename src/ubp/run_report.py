"""The run's self-contained HTML report: scores beside the references, gap closed, blocks,
stage timings and peak memory, and diagnostics that help a user trust a profile."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import polars as pl

from ubp.data.window import InputWindow
from ubp.entry import read_entry
from ubp.plots import figure_to_img, grouped_bars

CSS = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}.best{font-weight:bold;background:#e8f5e9}
.note{color:#555;font-size:90%}img{max-width:100%}
"""


def task_means(scores: dict) -> dict[str, tuple[float, float]]:
    """Per task (mean, std over row orders) from a scores.json document."""
    out = {}
    for task, rec in scores["tasks"].items():
        out[task] = (float(rec["score"]), float(rec.get("std", 0.0)))
    return out


def score_table(means: dict[str, dict[str, tuple[float, float]]], reference: str | None = None) -> str:
    """HTML table: entries × tasks (mean ± std) plus the average; best per column in bold,
    and each entry's difference to the `reference` entry when one is named."""
    tasks = list(next(iter(means.values())))
    avg = {name: float(np.mean([m[t][0] for t in tasks])) for name, m in means.items()}
    best = {t: max(m[t][0] for m in means.values()) for t in tasks}
    rows = ["<table><tr><th>entry</th>" + "".join(f"<th>{t}</th>" for t in tasks) + "<th>average</th></tr>"]
    for name, m in means.items():
        cells = []
        for t in tasks:
            mean, std = m[t]
            cls = ' class="best"' if mean == best[t] else ""
            delta = ""
            if reference in means and name != reference:
                delta = f"<br><small>Δ {mean - means[reference][t][0]:+.4f}</small>"
            cells.append(f"<td{cls}>{mean:.4f} ± {std:.4f}{delta}</td>")
        rows.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}<td>{avg[name]:.4f}</td></tr>")
    rows.append("</table>")
    return "".join(rows)


def gap_closed(scores: dict[str, dict], entry: str = "profile") -> str:
    """Share of the baseline→oracle gap the entry closes, per task and on average."""
    if not {"baseline", "oracle", entry} <= set(scores):
        return "<p class='note'>Gap closed needs the baseline and oracle references.</p>"
    m = {k: task_means(scores[k]) for k in ("baseline", "oracle", entry)}
    cells, shares = [], []
    for task in m[entry]:
        gap = m["oracle"][task][0] - m["baseline"][task][0]
        share = (m[entry][task][0] - m["baseline"][task][0]) / gap if abs(gap) > 1e-9 else float("nan")
        shares.append(share)
        cells.append(f"<td>{share:.0%}</td>")
    head = "".join(f"<th>{t}</th>" for t in m[entry])
    return (f"<table><tr><th></th>{head}<th>average</th></tr><tr><td>{entry}</td>{''.join(cells)}"
            f"<td>{np.nanmean(shares):.0%}</td></tr></table>")


def stage_table(stages: list[dict]) -> str:
    rows = "".join(f"<tr><td>{s['stage']}</td><td>{s['seconds']:.1f}</td><td>{s['peak_rss_mib']:.0f}</td></tr>" for s in stages)
    return f"<table><tr><th>stage</th><th>seconds</th><th>peak RSS (MiB)</th></tr>{rows}</table>"


def block_table(profile: dict) -> str:
    rows = []
    for b in profile["blocks"]:
        fit = profile["block_fit_seconds"].get(b["name"], 0.0)
        cached = "cached" if b["name"] in profile["cached_blocks"] else f"{fit:.1f} s"
        rows.append(f"<tr><td>{b['name']}</td><td>{b['columns'][0]}–{b['columns'][1]}</td><td>{b['in_dim']}</td>"
                    f"<td>{b['normalise']}</td><td>{b['weight']}</td><td>{cached}</td></tr>")
    return ("<table><tr><th>block</th><th>columns</th><th>raw width</th><th>normalisation</th><th>weight</th>"
            f"<th>fit</th></tr>{''.join(rows)}</table>")


def diagnostics(entry_dir: Path, profile: dict, window: InputWindow) -> str:
    """Row norms per block, and a 2-D PCA projection coloured by purchases in the input window."""
    import matplotlib.pyplot as plt

    ids, emb = read_entry(entry_dir)
    x = emb.astype(np.float32)
    fig, ax = plt.subplots(figsize=(6, 3))
    norms = [np.linalg.norm(x[:, b["columns"][0]: b["columns"][1]], axis=1) for b in profile["blocks"]]
    ax.boxplot(norms, showfliers=False)
    ax.set_xticks(range(1, len(norms) + 1), [b["name"] for b in profile["blocks"]])
    ax.set_ylabel("row L2 norm")
    ax.set_title("norm of each block's part of the profile")
    norm_img = figure_to_img(fig)

    buys = (
        window.events("product_buy").group_by("client_id").agg(pl.len().alias("n")).collect()
    )
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


def write_run_report(
    out: Path, profile: dict, scores: dict[str, dict], stages: list[dict], window: InputWindow,
    entry_dir: Path, mode: str,
) -> Path:
    means = {name: task_means(s) for name, s in scores.items()}
    absent = window.absent_event_types
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>ubp run report</title><style>{CSS}</style></head><body>",
        "<h1>Universal Behavioral Profile — run report</h1>",
        f"<p>{profile['n_clients']:,} clients × {profile['width']} columns; {window.n_events:,} input-window events "
        f"before {window.cutoff:%Y-%m-%d}; evaluation mode <b>{mode}</b> "
        f"({next(iter(scores.values()))['n_orders']} runs: behaviour-free row order and network seed k, mean ± std).</p>",
        f"<p>Event types absent from the log: <b>{', '.join(absent) if absent else 'none'}</b>"
        + (" (their features are zeros)." if absent else ".") + "</p>",
        "<h2>Scores</h2>", score_table(means, reference="counts"),
        grouped_bars({k: {t: v[0] for t, v in m.items()} for k, m in means.items()},
                     {k: {t: v[1] for t, v in m.items()} for k, m in means.items()}, "score per task"),
        "<h2>Share of the baseline → oracle gap closed</h2>", gap_closed(scores),
        "<h2>Blocks</h2>", block_table(profile),
    ]
    ablation_path = Path(out) / "ablation.json"
    if ablation_path.is_file():
        ablation = {k: {t: tuple(v) for t, v in m.items()} for k, m in json.loads(ablation_path.read_text()).items()}
        parts += ["<h2>Per-block contributions (leave one out, from <code>ubp ablate</code>)</h2>",
                  score_table(ablation, reference="all")]
    parts += [
        "<h2>Stages</h2>", stage_table(stages),
        "<h2>Diagnostics</h2>", diagnostics(entry_dir, profile, window),
        f"<p class='note'>config hash {profile['config_hash']}, ubp {profile['package_version']}</p>",
        "</body></html>",
    ]
    path = Path(out) / "report.html"
    tmp = path.with_suffix(".html.tmp")
    tmp.write_text("".join(parts))
    tmp.replace(path)
    (Path(out) / "summary.json").write_text(json.dumps({"scores": {k: {t: list(v) for t, v in m.items()} for k, m in means.items()},
                                                         "stages": stages, "profile": profile}, indent=1, default=str))
    return path
