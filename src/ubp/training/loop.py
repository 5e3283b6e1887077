"""The one training loop of every neural block.

A block hands the loop its batches (per epoch, already this rank's share), a forward that turns a
batch into named losses, the objectives' weights, its optimisers and schedulers. The loop runs
the steps (bf16 autocast when asked, weighted sum, backward, optional gradient clipping,
optimiser and scheduler steps), checkpoints every `checkpoint_every` steps, at each epoch end and
at the last step, and resumes from a checkpoint of the same settings. Under `torchrun` a forward
that is a module is wrapped in DistributedDataParallel, so every head it runs is inside DDP's
forward; the batches of each rank are the block's choice.

Losses stay on the device: the loop reads them back only every `log_every` steps (progress) and
once at the end, so a step on a GPU needs no host synchronisation.
"""

from __future__ import annotations

import logging
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from ubp import distributed
from ubp.training import checkpoint
from ubp.training.checkpoint import Stateful

log = logging.getLogger(__name__)

Losses = dict[str, torch.Tensor]
Callback = Callable[[int, Losses], None]


@dataclass(frozen=True)
class Step:
    """Where a batch sits in the run: its global step index and its epoch."""

    index: int
    epoch: int


@dataclass
class LoopOptions:
    """How the loop runs; everything that changes the result is also in `settings` (checked on resume)."""

    name: str  # progress label and checkpoint file name (`<name>.ckpt` in `work_dir`)
    work_dir: Path | None  # None: no checkpoints
    settings: dict[str, Any]  # config, seed, data fingerprint: a checkpoint of other settings is an error
    checkpoint_every: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    weights: dict[str, float] | None = None  # objective weights; None: the forward returns one loss
    grad_clip: float | None = None
    bf16: bool = False  # bf16 autocast of the forward (the caller decides on which devices it pays)
    log_every: int = 50  # steps between reads of the losses (progress bar)
    show_progress: bool = False
    callback: Callback | None = None  # called after every step with the detached losses (on the device)

    @property
    def checkpoint(self) -> Path | None:
        return None if self.work_dir is None else Path(self.work_dir) / f"{self.name}.ckpt"


def train_loop(
    forward: Callable[[Any, Step], Losses] | nn.Module,
    epoch_batches: Callable[[int], Sequence[Any]],
    steps_per_epoch: int,
    total_steps: int,
    optimizers: Sequence[torch.optim.Optimizer],
    parts: dict[str, Stateful],
    options: LoopOptions,
    schedulers: Sequence[Any] = (),
) -> float:
    """Run steps `start..total_steps` (start: the matching checkpoint's step, else 0).

    `epoch_batches(epoch)` gives this rank's `steps_per_epoch` batches of that epoch (a function of
    the seed and the epoch only, so a resumed run sees the same batches). Returns the mean weighted
    loss of the last epoch's steps run here (nan when none was left to run).
    """
    start = checkpoint.load_checkpoint(options.checkpoint, parts, options.settings) if options.checkpoint else 0
    if start:
        log.info("%s: resuming at step %d of %d from %s", options.name, start, total_steps, options.checkpoint)
    net = _wrap(forward, options.device)
    epoch_losses: list[torch.Tensor] = []
    running: Losses = {}
    batches: tuple[int, Sequence[Any]] = (-1, ())
    bar = _progress(total_steps, start, options.name, options.show_progress and distributed.is_main())
    for index in range(start, total_steps):
        epoch, k = divmod(index, steps_per_epoch)
        if batches[0] != epoch:
            batches = (epoch, epoch_batches(epoch))
            epoch_losses = []
        loss, losses = train_step(net, batches[1][k], Step(index, epoch), optimizers, options, schedulers)
        done = index + 1
        detached = {name: value.detach() for name, value in losses.items()}
        epoch_losses.append(loss.detach())
        running = {name: running.get(name, 0) + value for name, value in detached.items()}
        if options.checkpoint is not None and (
            done % options.checkpoint_every == 0 or done % steps_per_epoch == 0 or done == total_steps
        ):
            checkpoint.save_checkpoint(options.checkpoint, parts, done, options.settings)
        if bar is not None:
            bar.update(1)
            if done % options.log_every == 0 or done == total_steps:
                n = (done - 1) % options.log_every + 1
                bar.set_postfix({name: f"{float(v) / n:.3f}" for name, v in running.items()}, refresh=False)
        if done % options.log_every == 0:
            running = {}
        if options.callback is not None:
            options.callback(done, detached)
    if bar is not None:
        bar.close()
    return float(torch.stack(epoch_losses).mean()) if epoch_losses else float("nan")


def train_step(
    net: Callable[[Any, Step], Losses],
    batch: Any,
    step: Step,
    optimizers: Sequence[torch.optim.Optimizer],
    options: LoopOptions,
    schedulers: Sequence[Any] = (),
) -> tuple[torch.Tensor, Losses]:
    """One optimisation step: forward (bf16 autocast if asked), weighted loss, backward,
    clipping, optimiser and scheduler steps. Returns the weighted loss and the named losses."""
    with torch.autocast(options.device.type, dtype=torch.bfloat16, enabled=options.bf16):
        losses = net(batch, step)
    loss = weighted_loss(losses, options.weights)
    for o in optimizers:
        o.zero_grad(set_to_none=True)
    loss.backward()
    if options.grad_clip is not None:
        params = [p for o in optimizers for g in o.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, options.grad_clip)
    for o in optimizers:
        o.step()
    for s in schedulers:
        s.step()
    return loss, losses


def _wrap(forward: Callable[[Any, Step], Losses] | nn.Module, device: torch.device) -> Callable[[Any, Step], Losses]:
    """A module's forward runs inside DDP under torchrun (gradients averaged over ranks); anything else as is."""
    if not isinstance(forward, nn.Module) or distributed.world_size() == 1:
        return forward
    return DistributedDataParallel(forward, device_ids=[device.index] if device.type == "cuda" else None)


def weighted_loss(losses: Losses, weights: dict[str, float] | None) -> torch.Tensor:
    """The loss a step minimises: the weighted sum of the named losses (the only one when `weights` is None)."""
    if weights is None:
        (loss,) = losses.values()
        return loss
    return sum(weights[name] * value for name, value in losses.items())


def _progress(total: int, start: int, desc: str, wanted: bool) -> tqdm | None:
    """A tqdm bar drawn only on a terminal: never floods a log file."""
    if not (wanted and sys.stderr.isatty()):
        return None
    return tqdm(total=total, initial=start, desc=desc, unit="step", dynamic_ncols=True, leave=False)


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices) so a CPU fit is a function of its seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The shuffle of epoch `epoch`: a function of (seed, epoch) only, so a resumed run sees the same batches."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


def batch_slices(n: int, batch_size: int) -> list[slice]:
    """Batches covering 0..n; the remainder joins the last batch so no batch has a lone row (BatchNorm, in-batch negatives)."""
    steps = max(1, n // batch_size)
    return [slice(k * batch_size, (k + 1) * batch_size if k < steps - 1 else n) for k in range(steps)]


def fit_rows(
    name: str,
    n_rows: int,
    cfg: Any,
    run: Any,
    loss: Callable[[torch.Tensor, int], torch.Tensor],
    optimizers: Sequence[torch.optim.Optimizer],
    parts: dict[str, Stateful],
    data: tuple[torch.Tensor, ...],
) -> float:
    """The loop for a block that trains on rows: shuffled row batches, `loss(rows, epoch)` on each.

    Epochs, batch size and checkpoint cadence come from the block's config `cfg`, seed, device and
    progress from the `run`; a checkpoint is resumed only for the same config, seed and data.
    """
    import dataclasses

    slices = batch_slices(n_rows, cfg.batch_size)
    options = LoopOptions(
        name=name,
        work_dir=run.work_dir,
        settings={"config": dataclasses.asdict(cfg), "seed": run.seed, "data": checkpoint.fingerprint(*data)},
        checkpoint_every=cfg.checkpoint_every,
        show_progress=run.show_progress,
    )

    def rows_of_epoch(epoch: int) -> list[torch.Tensor]:
        perm = epoch_permutation(n_rows, run.seed, epoch)
        return [perm[s] for s in slices]

    return train_loop(
        lambda rows, step: {"loss": loss(rows, step.epoch)},
        rows_of_epoch,
        len(slices),
        cfg.epochs * len(slices),
        optimizers,
        parts,
        options,
    )
