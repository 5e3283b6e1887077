"""Training loop: AdamW, warm-up + cosine, clipping, bf16 on CUDA, checkpoints, exact resume, DDP.

Everything random is a function of (seed, step, rank) or lives in a checkpoint (dropout's
torch RNG), so a run killed after a checkpoint and restarted ends with the same weights as an
unbroken run. Under `torchrun` each process takes every world-th batch and DDP averages the
gradients; only rank 0 writes checkpoints and draws progress.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from ubp.errors import UsageError
from ubp.config import to_dict
from ubp.encoders.base import Run
from ubp.encoders.sequence.config import SequenceConfig
from ubp.encoders.sequence.future import future_labels, future_window
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.objectives import objective_losses, total_loss, vocabulary_tensors
from ubp.encoders.sequence.tokens import (
    Tokens,
    batch_width,
    item_vocabulary,
    length_bucketed_batches,
    make_batch,
    training_chunks,
    width_multiple,
)

CHECKPOINT = "sequence.ckpt"
Callback = Callable[[int, dict[str, float]], None]


def train(
    model: SequenceModel,
    tokens: Tokens,
    cfg: SequenceConfig,
    run: Run,
    callback: Callback | None = None,
) -> SequenceModel:
    """Train `model` in place on `tokens`; resumes from `run.work_dir` when a checkpoint is there.

    `callback(step, losses)` is called after every step (progress hooks, early stops).
    """
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    device = torch.device(run.device)
    model.to(device).train()
    unused = min(cfg.nip_weight, cfg.nup_weight, cfg.netp_weight, cfg.tdp_weight) == 0  # heads left out
    net = DistributedDataParallel(model, find_unused_parameters=unused) if world > 1 else model
    vocab = vocabulary_tensors(*item_vocabulary(tokens, cfg.hash_rows), device=device)
    future = future_window(tokens, cfg.future_window_days) if cfg.future_window_weight > 0 else None
    start, end, is_first = training_chunks(tokens, cfg.max_len)
    steps_per_epoch = -(-len(start) // cfg.batch_size) // world  # equal on every rank
    total = math.ceil(cfg.epochs * steps_per_epoch)
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg, total))
    torch.manual_seed(run.seed * 1_000 + rank)
    path = Path(run.work_dir) / CHECKPOINT if run.work_dir is not None else None
    step = _resume(path, model, optimizer, scheduler, cfg) if path is not None and path.is_file() else 0
    progress = _progress(total, step, run.show_progress and rank == 0)
    epoch_batches: tuple[int, list[np.ndarray]] = (-1, [])
    while step < total:
        epoch, i = divmod(step, steps_per_epoch)
        if epoch_batches[0] != epoch:
            rng = np.random.default_rng([run.seed, epoch])
            epoch_batches = (epoch, length_bucketed_batches(end - start, cfg.batch_size, rng)[rank::world])
        chunk = epoch_batches[1][i]
        width = batch_width(end[chunk] - start[chunk], width_multiple(device), cfg.max_len)
        batch = make_batch(tokens, start[chunk], end[chunk], device, width)
        generator = torch.Generator().manual_seed(_step_seed(run.seed, step, rank))
        if future is not None:
            labels, valid = future_labels(future, tokens.ids, start[chunk], end[chunk] - start[chunk], generator, width)
            batch.update(future_ids=labels.to(device), future_valid=valid.to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            first = torch.from_numpy(is_first[chunk]).to(device)
            losses = objective_losses(model, net(batch), batch, first, cfg, vocab, generator)
        loss = total_loss(losses, cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        scheduler.step()
        step += 1
        values = {k: float(v.detach()) for k, v in losses.items()}
        if path is not None and rank == 0 and (step % cfg.checkpoint_every == 0 or step == total):
            _save(path, model, optimizer, scheduler, step, cfg)
        if progress is not None:
            progress.update(1)
            progress.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)
        if callback is not None:
            callback(step, values)
    if progress is not None:
        progress.close()
    return model.eval()


def _step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of a step's negative sampling: a function of (seed, step, rank), so resuming needs no state."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _optimizer(model: SequenceModel, cfg: SequenceConfig) -> torch.optim.AdamW:
    """Weight decay on matrices and tables only (not on biases, norms or the start vector)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98))


def _schedule(cfg: SequenceConfig, total: int) -> Callable[[int], float]:
    """Linear warm-up to `lr`, then cosine decay to `lr * min_lr_ratio` at the last step.

    The warm-up is capped at a tenth of the run, so a short run on a small window is not all warm-up.
    """
    warmup = max(1, min(cfg.warmup_steps, total // 10))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _save(path: Path, model, optimizer, scheduler, step: int, cfg: SequenceConfig) -> None:
    """Write the checkpoint under a temporary name, then rename: a kill never leaves half a file."""
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "step": step,
        "rng": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        "config": to_dict(cfg),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(path: Path, model, optimizer, scheduler, cfg: SequenceConfig) -> int:
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["config"] != to_dict(cfg):
        raise UsageError(f"{path}: checkpoint of a different sequence config; remove it or use another work_dir")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"]["cuda"]:
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    return int(state["step"])


def _progress(total: int, step: int, wanted: bool):
    """A tqdm bar with per-objective losses, only on a terminal (never floods a log file)."""
    if not (wanted and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=step, desc="sequence", unit="step", dynamic_ncols=True)
