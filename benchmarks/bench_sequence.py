"""Training and inference throughput of the `sequence` block, beside a plain-PyTorch reference.

For each preset (default: tiny and cpu) one epoch of the real training loop runs on the
window, then every client is embedded. The reference, measured in the same run on the same
batch shapes, is PyTorch's own `nn.TransformerEncoder` (same width / layers / heads, causal,
pre-norm) on random inputs: ratios near 1 mean the embeddings, objectives and data pipeline
cost little beside the Transformer itself.

    nice -n 10 .venv/bin/python benchmarks/bench_sequence.py [--data-dir DIR] [--presets tiny cpu] [--threads 1]

Without --data-dir a random window (--users users, up to --max-events events each) is written
under /tmp/sequence-bench.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch

from ubp.data.window import InputWindow, write_window
from ubp.encoders.base import Run
from ubp.encoders.sequence.config import make_config
from ubp.encoders.sequence.encoder import SequenceEncoder
from ubp.encoders.sequence.model import count_parameters
from ubp.encoders.sequence.tokens import tokenize
from ubp.layout import PRODUCTS_SCHEMA, STREAM_SCHEMA, VECTOR_LEN


def random_window(root: Path, users: int, max_events: int, seed: int = 0) -> InputWindow:
    """Histories of 1..max_events random events (60% visits), ids drawn from a few thousand."""
    rng = np.random.default_rng(seed)
    n = rng.integers(1, max_events + 1, users)
    m = int(n.sum())
    kind = rng.choice(5, m, p=[0.05, 0.15, 0.05, 0.6, 0.15])
    cutoff = datetime(2024, 3, 1)
    minutes = rng.integers(1, 60 * 24 * 90, m)
    frame = pl.DataFrame(
        {
            "client_id": np.repeat(rng.choice(2**40, users, replace=False), n),
            "event_type": kind,
            "sku": rng.integers(0, 5000, m),
            "category": rng.integers(0, 300, m),
            "price": rng.integers(0, 100, m),
            "url": rng.integers(0, 20000, m),
            "tokens": rng.integers(0, 256, (m, VECTOR_LEN)),
        }
    ).with_columns(
        (pl.lit(cutoff) - pl.duration(minutes=pl.Series(minutes))).alias("timestamp"),
        *(pl.when(pl.col("event_type") <= 2).then(pl.col(c)).alias(c) for c in ("sku", "category", "price")),
        pl.when(pl.col("event_type") == 3).then(pl.col("url")).alias("url"),
        pl.when(pl.col("event_type") != 3).then(pl.col("tokens")).alias("tokens"),
    )
    products = pl.DataFrame(schema=PRODUCTS_SCHEMA)
    return write_window(frame.lazy().cast(STREAM_SCHEMA), products, cutoff, root / "input")


def reference_events_per_s(width: int, layers: int, heads: int, shape: tuple[int, int], train: bool) -> float:
    """PyTorch's TransformerEncoder, causal and pre-norm, on a random (B, L, d) batch."""
    layer = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.1, batch_first=True, norm_first=True)
    model = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(*shape, width)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(shape[1])
    model.train(train)
    runs, t0 = 0, 0.0
    for i in range(6):
        if i == 1:
            t0 = time.perf_counter()
        if train:
            model(x, mask=mask, is_causal=True).square().mean().backward()
            optimizer.step()
            optimizer.zero_grad()
        else:
            with torch.no_grad():
                model(x, mask=mask, is_causal=True)
        runs += i >= 1
    return runs * shape[0] * shape[1] / (time.perf_counter() - t0)


def bench_preset(window: InputWindow, preset: str, clients: np.ndarray, n_events: int) -> None:
    cfg = make_config(preset)
    encoder = SequenceEncoder(preset)
    stamps: list[float] = []
    t0 = time.perf_counter()
    run = Run(seed=0, show_progress=False)
    encoder.fit(window, run, callback=lambda step, losses: stamps.append(time.perf_counter()))
    fit_s = time.perf_counter() - t0
    steps = len(stamps)
    # the first step carries one-off costs (tokenising, allocation): time the others
    train_eps = n_events * (steps - 1) / steps / (stamps[-1] - stamps[0]) if steps > 1 else float("nan")
    t0 = time.perf_counter()
    out = encoder.transform(window, clients)
    infer_s = time.perf_counter() - t0
    shape = (cfg.batch_size, cfg.max_len + 1)
    ref_train = reference_events_per_s(cfg.width, cfg.layers, cfg.heads, shape, train=True)
    ref_infer = reference_events_per_s(cfg.width, cfg.layers, cfg.heads, (cfg.infer_batch_size, cfg.max_len + 1), False)
    infer_events = min(n_events, len(clients) * cfg.max_len)
    print(
        f"{preset:>5}: {count_parameters(encoder.model_) / 1e6:.2f}M params, {steps} steps, fit {fit_s:.1f} s\n"
        f"       train {train_eps:,.0f} events/s  (reference {ref_train:,.0f} padded positions/s, "
        f"ratio {train_eps / ref_train:.2f})\n"
        f"       infer {len(clients) / infer_s:,.0f} users/s, {infer_events / infer_s:,.0f} events/s "
        f"(reference {ref_infer:,.0f} positions/s, ratio {infer_events / infer_s / ref_infer:.2f}); "
        f"out {out.shape} {out.dtype}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--max-events", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.data_dir is not None:
        window = InputWindow.open(args.data_dir)
    else:
        window = random_window(Path("/tmp/sequence-bench"), args.users, args.max_events)
    t0 = time.perf_counter()
    tokens = tokenize(window, 2**16, 100)
    tok_s = time.perf_counter() - t0
    users = len(tokens.client_ids)
    print(f"window: {tokens.n_events:,} events, {users:,} users; torch threads {torch.get_num_threads()}")
    print(f"tokenise: {tok_s:.2f} s, {tokens.n_events / tok_s:,.0f} events/s")
    for preset in args.presets:
        bench_preset(window, preset, tokens.client_ids, tokens.n_events)


if __name__ == "__main__":
    main()
