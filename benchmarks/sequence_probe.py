"""What each design change of the `sequence` block does to its embedding, without the evaluator.

Fits the block as it was (every change off), each change on its own and all of them (the same
seed), embeds the window's relevant clients, and prints: the share of the embedding's second
moment in its column means, the participation ratio of its centred columns, the R^2 of a 5-fold
ridge probe for log1p(days from the client's last event to the cutoff), and the fit time.

    python benchmarks/sequence_probe.py DATA_DIR [KEY=VALUE ...]   # sequence options, e.g. epochs=0.5
"""

import sys
import time

import numpy as np
import polars as pl
import torch

from sequence_ablation import BEFORE, CHANGE_VARIANTS
from ubp.data.window import InputWindow
from ubp.encoders.base import Run
from ubp.encoders.sequence.config import make_config
from ubp.encoders.sequence.encoder import SequenceEncoder
from ubp.encoders.sequence.tokens import epoch_us
from ubp.layout import US_PER_DAY

torch.set_num_threads(2)
window = InputWindow.open(sys.argv[1])
extra = {k: (int(v) if v.isdigit() else float(v)) for k, v in (a.split("=") for a in sys.argv[2:])}
ids = window.relevant_clients
last = window.stream().group_by("client_id").agg(pl.col("timestamp").max()).collect()
cut = epoch_us(window.cutoff)
ts = dict(zip(last["client_id"].to_list(), last["timestamp"].cast(pl.Datetime("us")).dt.epoch("us").to_list()))
has = np.array([i in ts for i in ids])
y = np.log1p(np.array([(cut - ts[i]) / US_PER_DAY for i in ids[has]]))
for name, opts in CHANGE_VARIANTS.items():
    enc = SequenceEncoder(make_config(**{"preset": "cpu", **extra, **opts}))
    c0, t0 = time.process_time(), time.perf_counter()
    enc.fit(window, Run(seed=0, device="cpu", show_progress=False))
    fit_cpu, fit_wall = time.process_time() - c0, time.perf_counter() - t0
    x = enc.transform(window, ids).astype(np.float64)
    second = (x ** 2).mean(0).sum()
    share = (x.mean(0) ** 2).sum() / second
    c = x - x.mean(0)
    ev = np.linalg.eigvalsh(c.T @ c / len(c))
    pr = ev.sum() ** 2 / (ev ** 2).sum()
    z = np.c_[c[has], np.ones(has.sum())]
    folds = np.arange(len(y)) % 5
    sse = 0.0
    for f in range(5):
        tr, te = folds != f, folds == f
        w = np.linalg.solve(z[tr].T @ z[tr] + 1e-3 * np.eye(z.shape[1]), z[tr].T @ y[tr])
        sse += ((z[te] @ w - y[te]) ** 2).sum()
    r2 = 1 - sse / ((y - y.mean()) ** 2).sum()
    print(f"{name:<26} cols {x.shape[1]:>3}  column means {share:6.1%} of the second moment  participation ratio "
          f"{pr:5.1f}  probe R2 {r2:.2f}  fit {fit_cpu:.0f} CPU s / {fit_wall:.0f} s wall", flush=True)
