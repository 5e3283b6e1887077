"""Training and inference throughput of the `sequence` block, beside a plain-PyTorch reference.

For each preset (default: tiny and cpu) one epoch of the real training loop runs on the
window, then every client is embedded. The reference, measured in the same run on the same
batch shapes, is PyTorch's own `nn.TransformerEncoder` (same width / layers / heads, causal,
pre-norm; bf16 autocast on a GPU like the real loop) on random inputs: ratios near 1 mean the
embeddings, objectives and data pipeline cost little beside the Transformer itself.

Also printed: FLOPs of one training step (PyTorch's FlopCounterMode: matrix products and
attention, forward and backward) and the rate reached, against the device's measured bf16
matrix-product rate on a GPU; and a step-time breakdown (batch building and copy to the
device / the loop's own step: forward, losses, backward and optimiser, each synchronised) that says whether the
loop waits on data or on compute, with the GPU utilisation nvidia-smi saw during the fit.

    nice -n 10 .venv/bin/python benchmarks/bench_sequence.py [--data-dir DIR] [--presets tiny cpu] [--threads 1]
    python benchmarks/bench_sequence.py --device cuda --presets 19m 126m --users 6000 --max-events 512

Without --data-dir a random window (--users users, up to --max-events events each) is written
under /tmp/sequence-bench.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import subprocess
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl
import torch

from ubp.config import parse_assignments
from ubp.data.window import InputWindow, write_window
from ubp.encoders.base import Run
from ubp.encoders.sequence.config import make_config
from ubp.encoders.sequence.encoder import SequenceEncoder
from ubp.encoders.sequence.model import SequenceModel, count_parameters
from ubp.encoders.sequence.tokens import tokenize
from ubp.encoders.sequence.train import training
from ubp.training import Step
from ubp.training.loop import train_step
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


def reference_events_per_s(width: int, layers: int, heads: int, shape: tuple[int, int], train: bool,
                           device: torch.device) -> float:
    """PyTorch's TransformerEncoder, causal and pre-norm, on a random (B, L, d) batch."""
    layer = torch.nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.1, batch_first=True, norm_first=True)
    model = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False).to(device)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randn(*shape, width, device=device)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(shape[1], device=device)
    model.train(train)
    runs, t0 = 0, 0.0
    for i in range(6):
        if i == 1:
            _sync(device)
            t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if train:
                model(x, mask=mask, is_causal=True).float().square().mean().backward()
            else:
                with torch.no_grad():
                    model(x, mask=mask, is_causal=True)
        if train:
            optimizer.step()
            optimizer.zero_grad()
        runs += i >= 1
    _sync(device)
    return runs * shape[0] * shape[1] / (time.perf_counter() - t0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_tflops(device: torch.device) -> float:
    """The device's bf16 matrix-product rate on random data: the ceiling the step is compared with."""
    n = 8192
    a, b = torch.randn(n, n, device=device, dtype=torch.bfloat16), torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(10):
        a @ b
    _sync(device)
    return 10 * 2 * n**3 / (time.perf_counter() - t0) / 1e12


def step_profile(window: InputWindow, cfg, device: torch.device, steps: int = 20) -> dict[str, float]:
    """FLOPs of one training step and the synchronised time of its two phases (median of `steps`).

    The step is the training loop's own (`train_step` on the sequence block's `Training` pieces):
    building a batch of full-length chunks and copying it to the device, then forward, losses,
    backward and the optimiser step.
    """
    from torch.utils.flop_counter import FlopCounterMode

    tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets)
    torch.manual_seed(0)
    setup = training(SequenceModel(cfg), tokens, cfg, Run(seed=0, device=str(device), show_progress=False))
    data = setup.data
    longest = np.argsort(data.end - data.start)[::-1]  # full-length chunks: the shape most of a real epoch has
    rng = np.random.default_rng(0)
    phases: dict[str, list[float]] = {"batch": [], "step": []}
    flops = 0
    for i in range(steps + 3):
        chunk = rng.choice(longest[: max(cfg.batch_size * 4, 1)], cfg.batch_size, replace=False) \
            if len(longest) >= cfg.batch_size * 4 else longest[: cfg.batch_size]
        _sync(device)
        t0 = time.perf_counter()
        batch = data.batch(chunk, i)
        _sync(device)
        t1 = time.perf_counter()
        counter = FlopCounterMode(display=False) if i == 0 else contextlib.nullcontext()
        with counter:
            train_step(setup.objectives, batch, Step(i, 0), [setup.optimizer], setup.options, [setup.scheduler])
        _sync(device)
        t2 = time.perf_counter()
        if i == 0:
            flops = counter.get_total_flops()
        if i >= 3:  # warm-up steps (allocation, kernel selection) are left out
            phases["batch"].append(t1 - t0)
            phases["step"].append(t2 - t1)
    return {"flops": float(flops), **{k: float(np.median(v)) for k, v in phases.items()}}


class GpuUtilisation:
    """nvidia-smi sampled every 100 ms in the background; mean utilisation (%) while it ran."""

    def __init__(self, device: torch.device) -> None:
        self.proc = None
        if device.type == "cuda":
            try:
                self.proc = subprocess.Popen(
                    ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-lms", "100"],
                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            except OSError:
                self.proc = None

    def stop(self) -> float:
        if self.proc is None:
            return float("nan")
        self.proc.terminate()
        out, _ = self.proc.communicate()
        values = [float(v) for v in out.split() if v.strip().isdigit()]
        return float(np.mean(values)) if values else float("nan")


def bench_preset(window: InputWindow, preset: str, clients: np.ndarray, n_events: int, device: torch.device,
                 overrides: dict, peak: float) -> None:
    cfg = make_config(preset, **overrides)
    encoder = SequenceEncoder(preset, **overrides)
    stamps: list[float] = []
    utilisation = GpuUtilisation(device)
    t0 = time.perf_counter()
    run = Run(seed=0, show_progress=False, device=str(device))
    encoder.fit(window, run, callback=lambda step, losses: stamps.append(time.perf_counter()))
    _sync(device)
    fit_s = time.perf_counter() - t0
    stamps[-1] = time.perf_counter()  # steps are queued without waiting: the loop's time ends when the device is done
    busy = utilisation.stop()
    steps = len(stamps)
    # the first step carries one-off costs (tokenising, allocation): time the others
    step_s = (stamps[-1] - stamps[0]) / (steps - 1) if steps > 1 else float("nan")
    train_eps = n_events * (steps - 1) / steps / (stamps[-1] - stamps[0]) if steps > 1 else float("nan")
    t0 = time.perf_counter()
    out = encoder.transform(window, clients)
    infer_s = time.perf_counter() - t0
    shape = (cfg.batch_size, cfg.max_len + 1)
    ref_train = reference_events_per_s(cfg.width, cfg.layers, cfg.heads, shape, True, device)
    ref_infer = reference_events_per_s(cfg.width, cfg.layers, cfg.heads, (cfg.infer_batch_size, cfg.max_len + 1),
                                       False, device)
    infer_events = min(n_events, len(clients) * cfg.max_len)
    prof = step_profile(window, cfg, device)
    prof_step = prof["batch"] + prof["step"]
    rate = prof["flops"] / prof_step / 1e12
    print(
        f"{preset:>5}: {count_parameters(encoder.model_) / 1e6:.2f}M params, {steps} steps, fit {fit_s:.1f} s "
        f"on {device}\n"
        f"       train {train_eps:,.0f} events/s, {step_s * 1e3:.1f} ms/step  (reference {ref_train:,.0f} padded "
        f"positions/s, ratio {train_eps / ref_train:.2f})\n"
        f"       infer {len(clients) / infer_s:,.0f} users/s, {infer_events / infer_s:,.0f} events/s "
        f"(reference {ref_infer:,.0f} positions/s, ratio {infer_events / infer_s / ref_infer:.2f}); "
        f"out {out.shape} {out.dtype}\n"
        f"       full-length step ({cfg.batch_size}x{cfg.max_len}): {prof['flops'] / 1e9:,.1f} GFLOP; "
        f"batch {prof['batch'] * 1e3:.1f} ms + forward/backward/optimiser {prof['step'] * 1e3:.1f} ms "
        f"= {prof_step * 1e3:.1f} ms; "
        + (f"{rate:.1f} TFLOP/s" if rate >= 1 else f"{rate * 1e3:.1f} GFLOP/s")
        + (f" = {rate / peak:.1%} of the measured bf16 matmul rate ({peak:.0f} TFLOP/s)" if peak else "")
        + f"; data share {prof['batch'] / prof_step:.0%}"
        + (f"; GPU busy {busy:.0f}% of the fit (nvidia-smi)" if not math.isnan(busy) else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--max-events", type=int, default=200)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides, e.g. epochs=0.5")
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
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
    peak = matmul_tflops(device) if device.type == "cuda" else 0.0
    if peak:
        print(f"{torch.cuda.get_device_name()}: bf16 8192^3 matrix product {peak:.0f} TFLOP/s")
    for preset in args.presets:
        bench_preset(window, preset, tokens.client_ids, tokens.n_events, device, parse_assignments(args.set), peak)


if __name__ == "__main__":
    main()
