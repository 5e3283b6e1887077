"""scores.json → one self-contained HTML page (table + plot embedded as a base64 PNG).

The page has no external assets, so it can be mailed or attached to a CI run as one file.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from ubp.io import write_text


def plot_png(scores: dict) -> bytes:
    """Left: each task's score (min–max over orders as error bars). Right: score per epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(scores["tasks"])
    recs = [scores["tasks"][t] for t in tasks]
    fig, (ax_bar, ax_ep) = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    means = [r["score"] for r in recs]
    err = [[m - r["min"] for m, r in zip(means, recs)], [r["max"] - m for m, r in zip(means, recs)]]
    ax_bar.bar(tasks, means, yerr=err, capsize=4, color="#4c72b0")
    ax_bar.set_ylim(0, 1)
    ax_bar.set_ylabel("score (best epoch)")
    ax_bar.set_title(f"{scores['mode']} mode, {scores['n_orders']} order(s)")
    ax_bar.tick_params(axis="x", rotation=30)
    for task, rec in zip(tasks, recs):
        per_epoch = [[ep["score"] for ep in run["epochs"]] for run in rec["runs"]]
        mean_curve = [sum(col) / len(col) for col in zip(*per_epoch)]
        ax_ep.plot(range(1, len(mean_curve) + 1), mean_curve, marker="o", label=task)
    ax_ep.set_xticks(range(1, 1 + max(len(r["runs"][0]["epochs"]) for r in recs)))
    ax_ep.set_xlabel("epoch")
    ax_ep.set_ylabel("validation score (mean over orders)")
    ax_ep.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def render_html(scores: dict) -> str:
    rows = []
    for task, rec in scores["tasks"].items():
        best = rec["runs"][0]["epochs"][rec["runs"][0]["best_epoch"]]
        rows.append(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
                task, _fmt(rec["score"]), _fmt(rec["std"]), _fmt(rec["min"]), _fmt(rec["max"]),
                _fmt(best["auroc"]), _fmt(best["novelty"]), _fmt(best["diversity"]),
                rec["n_clients"], rec["n_positives"]["validation"], f"{rec['wall_s']:.1f}",
            )) + "</tr>"
        )
    meta = {k: scores[k] for k in ("entry", "data_dir", "mode", "device", "n_clients", "embedding_width",
                                   "missing_relevant_clients", "order_fingerprint", "n_orders",
                                   "package_version", "torch_version")}
    meta_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in meta.items())
    png = base64.b64encode(plot_png(scores)).decode("ascii")
    head = ("task", "score", "std", "min", "max", "AUROC*", "novelty*", "diversity*", "clients",
            "validation positives", "seconds")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>ubp evaluation: {html.escape(scores['entry'])}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}} th{{background:#f4f4f4}}</style></head>
<body><h1>ubp evaluation</h1>
<table>{meta_rows}</table>
<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>{''.join(rows)}</table>
<p>* best epoch of the first order. Scores: churn/conversion = AUROC; propensity = 0.8·AUROC + 0.1·novelty
+ 0.1·diversity, best of the epochs, rounded to 4 places; over several runs (row order k, network seed 1278+k), their mean.</p>
<img alt="scores" src="data:image/png;base64,{png}">
</body></html>
"""


def write_report(scores: dict, path: Path) -> None:
    write_text(path, render_html(scores))
