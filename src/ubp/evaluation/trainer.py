"""The downstream training protocol: the organisers' loop in plain PyTorch, and a quick probe.

Their Lightning loop does nothing that changes weights beyond this: seed, build, AdamW, then
per epoch one unshuffled pass over the clients in entry order (last short batch kept) and a
validation pass; its 2-batch sanity validation only touches metrics it then resets, and the
network has no dropout, so train/eval modes agree. `QUICK` keeps every rule but shrinks the
network, learns faster to make up for it and multiplies in bf16, which is what makes it rank
entries like `FULL` at a fraction of the cost.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ubp.chunks import spans
from ubp.evaluation.adamw import AdamW
from ubp.evaluation.metrics import EpochMetrics, score_epoch
from ubp.evaluation.model import Net


@dataclass(frozen=True)
class Protocol:
    """Everything fixed about a downstream run; FULL is the challenge's."""

    name: str
    thin: int
    wide: int
    blocks: int
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 1278
    threads: int | None = None  # CPU threads; None = torch's default (OMP_NUM_THREADS)
    autocast: str | None = None  # "bfloat16": the trunk's matmuls in bf16; weights, AdamW, head, logits float32
    torch_optim: bool = True  # False: ubp.evaluation.adamw (torch's fused kernel, no torch._dynamo import)


FULL = Protocol("full", thin=2048, wide=4096, blocks=3)
# Why each setting (docs/protocol.md §7): a 256/512 network with one block at learning rate 3e-3
# learns every entry of the quick-vs-full set within three epochs, including the baseline entry
# (raw counts, a few columns in the thousands) that the probe scored at chance at full mode's 1e-3.
# Batch 128 as in full mode: at 256 or 512 the same three epochs are too few steps, and the baseline
# entry fell to chance on churn and conversion. The trunk's matmuls in bf16 halve a step's time on a
# CPU with bf16 units and barely move a score (the head and logits stay float32: AUROC ranks logits).
# The fused AdamW makes one pass per step instead of eight and imports no torch._dynamo. One thread:
# on matrices this small threading costs more than it gains, and on a busy machine two spinning
# threads made the same run 40x slower; a network's result does not depend on the count.
QUICK = Protocol("quick", thin=256, wide=512, blocks=1, lr=3e-3, threads=1, autocast="bfloat16", torch_optim=False)
PROTOCOLS = {p.name: p for p in (FULL, QUICK)}


@dataclass(frozen=True)
class TrainResult:
    """The validation metrics of every epoch; the score is the best epoch's, as ranked."""

    epochs: tuple[EpochMetrics, ...]
    wall_s: float
    metrics_s: float = 0.0  # of wall_s, the time spent computing validation metrics
    cpu_s: float = 0.0  # CPU time of the process meanwhile, all threads (one thread: about wall_s when idle)

    @property
    def best_epoch(self) -> int:
        """First maximum on a tie, like Python's max() in the organisers' aggregator."""
        scores = [e.score for e in self.epochs]
        return scores.index(max(scores))

    @property
    def score(self) -> float:
        return round(self.epochs[self.best_epoch].score, 4)


@contextlib.contextmanager
def cpu_threads(n: int | None) -> Iterator[None]:
    """Use n intra-op threads for the duration, then restore torch's setting."""
    if n is None:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def exact_float32(device: torch.device) -> Iterator[None]:
    """Turn TF32 off on a GPU while training: the protocol is float32 throughout."""
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _logits(net: Net, x: torch.Tensor, protocol: Protocol) -> torch.Tensor:
    """The network's float32 logits; under `autocast` the trunk runs in that dtype, the head in float32
    (bf16 logits would tie scores that AUROC must rank)."""
    if protocol.autocast is None:
        return net(x)
    with torch.autocast(x.device.type, dtype=getattr(torch, protocol.autocast)):
        h = net.trunk(x)
    return net.head(h.float())


@torch.inference_mode()
def _predict(net: Net, x: torch.Tensor, batches: list[slice], protocol: Protocol) -> torch.Tensor:
    net.eval()
    return torch.cat([_logits(net, x[b].float(), protocol) for b in batches]).cpu()


def train_and_score(
    x: torch.Tensor,
    y_train: torch.Tensor,
    y_validation: torch.Tensor,
    popularity: np.ndarray | None,
    protocol: Protocol,
    seed: int | None = None,
    desc: str = "",
    show_progress: bool = False,
) -> TrainResult:
    """Train a fresh network on (x, y_train), score it on y_validation after each epoch.

    `x` (n, d) is cast to float32 per batch (an entry is float16, so the values are the same as
    casting it all at once) and sets the device; labels are 0/1 tensors (n, n_labels). `seed`
    replaces the protocol's initialisation seed (1278, the organisers') for replicate runs.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    device = x.device
    batches = list(spans(x.shape[0], protocol.batch_size))
    y_validation_cpu = y_validation.cpu()
    epochs: list[EpochMetrics] = []
    metrics_s = 0.0
    with exact_float32(device), cpu_threads(protocol.threads if device.type == "cpu" else None):
        torch.manual_seed(protocol.seed if seed is None else seed)
        net = Net(x.shape[1], y_train.shape[1], protocol.thin, protocol.wide, protocol.blocks).to(device)
        optimizer = (torch.optim.AdamW if protocol.torch_optim else AdamW)(net.parameters(), lr=protocol.lr)
        bar = tqdm(total=protocol.epochs * len(batches), desc=desc, unit="batch", leave=False,
                   disable=not show_progress)
        with bar:
            for epoch in range(protocol.epochs):
                bar.set_description(f"{desc} epoch {epoch + 1}/{protocol.epochs}")
                net.train()
                for b in batches:
                    loss = F.binary_cross_entropy_with_logits(_logits(net, x[b].float(), protocol), y_train[b].float())
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    bar.update()
                logits = _predict(net, x, batches, protocol)
                scored_at = time.perf_counter()
                epochs.append(score_epoch(logits, y_validation_cpu, popularity, protocol.batch_size))
                metrics_s += time.perf_counter() - scored_at
    return TrainResult(epochs=tuple(epochs), wall_s=time.perf_counter() - start, metrics_s=metrics_s,
                       cpu_s=time.process_time() - cpu_start)
