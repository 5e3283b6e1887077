"""Small matplotlib helpers that return figures as inline base64 PNG for self-contained HTML."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def figure_to_img(fig) -> str:
    """An <img> tag holding the figure as a base64 PNG (no external files)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    return f'<img alt="plot" src="data:image/png;base64,{data}"/>'


def grouped_bars(values: dict[str, dict[str, float]], errors: dict[str, dict[str, float]] | None, title: str) -> str:
    """Bars per task (x) for each entry (colour): values[entry][task]."""
    import numpy as np

    entries = list(values)
    tasks = list(next(iter(values.values())))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(tasks)), 3.6))
    width = 0.8 / max(len(entries), 1)
    x = np.arange(len(tasks))
    for i, entry in enumerate(entries):
        ys = [values[entry].get(t, np.nan) for t in tasks]
        errs = [errors[entry].get(t, 0.0) for t in tasks] if errors else None
        ax.bar(x + i * width - 0.4 + width / 2, ys, width, yerr=errs, label=entry, capsize=2)
    ax.set_xticks(x, tasks, rotation=20, ha="right")
    finite = [v for e in values.values() for v in e.values() if v == v]
    if finite:
        ax.set_ylim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.03))
    ax.set_title(title)
    ax.legend(fontsize=8, ncols=min(len(entries), 4))
    return figure_to_img(fig)
