"""The sequence block on the one training loop: its batches, its objectives as one module, its optimiser.

Everything random is a function of (seed, step, rank) or lives in the checkpoint (dropout's
torch RNG, every rank's), so a run killed after a checkpoint and restarted ends with the same
weights as an unbroken run. Under `torchrun` each process takes every world-th length-bucketed
batch and DDP averages the gradients; the heads run inside the DDP-wrapped module's forward, and
the heads of objectives with weight 0 are frozen, so DDP never waits for a gradient that cannot come.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ubp import distributed
from ubp.config import to_dict
from ubp.device import resolve_device
from ubp.encoders.base import Run
from ubp.encoders.sequence.future import FutureWindow, activity_labels, events_by_type, future_labels, future_window
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.config import OBJECTIVES, SequenceConfig
from ubp.layout import US_PER_DAY, EventType
from ubp.encoders.sequence.objectives import (
    ItemVocabulary,
    objective_losses,
    sampled_softmax_caps,
    vocabulary_tensors,
)
from ubp.encoders.sequence.tokens import (
    ITEM_TYPES,
    Tokens,
    batch_width,
    item_content,
    item_vocabulary,
    length_bucketed_batches,
    make_batch,
    to_device,
    training_chunks,
    url_vocabulary,
    width_multiple,
)
from ubp.training import LoopOptions, Step, fingerprint, train_loop
from ubp.training.loop import Callback

NAME = "sequence"  # checkpoint: `sequence.ckpt` in the run's work folder


class SequenceObjectives(nn.Module):
    """The model and its objectives as one module: a batch in, the per-objective mean losses out.

    DDP wraps this module, so every head that a loss uses runs inside the wrapped forward.
    """

    def __init__(self, model: SequenceModel, cfg: SequenceConfig, vocab: ItemVocabulary,
                 urls: ItemVocabulary | None = None, scale: dict[str, float] | None = None) -> None:
        super().__init__()
        self.model, self.cfg, self.vocab, self.urls, self.scale = model, cfg, vocab, urls, scale

    def forward(self, batch: dict, step: Step) -> dict[str, torch.Tensor]:
        hidden = self.model(batch)
        return objective_losses(self.model, hidden, batch, batch["is_first"], self.cfg, self.vocab, batch["generator"],
                                urls=self.urls, scale=self.scale)


class EpochBatches(Sequence):
    """This rank's batches of one epoch, each built (and copied to the device) when the loop asks for it."""

    def __init__(self, data: "TrainingData", epoch: int) -> None:
        self.data, self.epoch = data, epoch
        rng = np.random.default_rng([data.seed, epoch])
        self.chunks = length_bucketed_batches(data.end - data.start, data.cfg.batch_size, rng)[data.rank :: data.world]

    def __len__(self) -> int:
        return self.data.steps_per_epoch

    def __getitem__(self, k: int) -> dict:
        return self.data.batch(self.chunks[k], self.epoch * self.data.steps_per_epoch + k)


class TrainingData:
    """Tokens cut into training chunks, with what a batch needs besides them (future window, seeds, device)."""

    def __init__(self, tokens: Tokens, cfg: SequenceConfig, seed: int, device: torch.device) -> None:
        self.tokens, self.cfg, self.seed, self.device = tokens, cfg, seed, device
        self.rank, self.world = distributed.rank(), distributed.world_size()
        self.start, self.end, self.is_first = training_chunks(tokens, cfg.max_len)
        self.user_first = tokens.offsets[:-1]
        self.steps_per_epoch = -(-len(self.start) // cfg.batch_size) // self.world  # equal on every rank
        self.future: FutureWindow | None = (
            future_window(tokens, cfg.future_window_days) if cfg.future_window_weight > 0 else None
        )
        self.by_type = events_by_type(tokens, len(EventType)) if cfg.activity_weight > 0 else None

    def batch(self, chunk: np.ndarray, step: int) -> dict:
        """The padded batch of chunks `chunk` at global step `step`, with the step's random generator.

        The generator is a function of (seed, step, rank); on a GPU a twin of it on the device
        draws the negatives there.
        """
        start, end = self.start[chunk], self.end[chunk]
        with_now = self.cfg.time_to_cutoff
        width = batch_width(end - start + with_now, width_multiple(self.device), self.cfg.max_len + with_now)
        seed = _step_seed(self.seed, step, self.rank)
        generator = torch.Generator().manual_seed(seed)
        valid = labels = None
        if self.future is not None:
            labels, valid = future_labels(self.future, self.tokens.ids, start, end - start, generator, width - with_now)
        now = self.now_times(start, end, generator) if with_now else None
        batch = make_batch(self.tokens, start, end, self.device, width, now=now, now_before_last=True)
        if labels is not None:
            if with_now:  # the now token's slot has no future (its state sees nothing new)
                labels, valid = (torch.from_numpy(_insert_slot(a.numpy(), end - start - 1)) for a in (labels, valid))
            batch.update(future_ids=to_device(labels, self.device), future_valid=to_device(valid, self.device))
        if self.by_type is not None:
            counts, has_future = activity_labels(self.tokens, self.by_type, start, end, self.cfg.future_window_days, width, now)
            batch.update(activity=to_device(counts, self.device), activity_valid=to_device(has_future, self.device))
        if self.device.type != "cpu":
            generator = torch.Generator(self.device).manual_seed(seed)
        real = np.arange(width)[None] < (end - start)[:, None]
        index = np.where(real, start[:, None] + np.arange(width)[None], 0)
        caps = sampled_softmax_caps(self.tokens.event_type[index], self.tokens.ids[index], real,
                                    None if valid is None else valid.numpy())
        return {**batch, "is_first": to_device(self.is_first[chunk], self.device), "generator": generator, "caps": caps}

    def now_times(self, start: np.ndarray, end: np.ndarray, generator: torch.Generator) -> np.ndarray:
        """A training chunk's "now": a moment drawn uniformly between its last two events (the
        time of the last where it is the user's first), so the now token's state learns to
        predict the next event from any moment of the gap before it, as at a window's cutoff."""
        ts = self.tokens.timestamp
        last = ts[end - 1]
        previous = np.where(end - 1 > self.user_first[self.chunk_user(start)], ts[np.maximum(end - 2, 0)], last)
        draw = torch.rand(len(start), generator=generator, dtype=torch.float64).numpy()
        return previous + np.floor(draw * (last - previous)).astype(np.int64)

    def chunk_user(self, start: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.tokens.offsets, start, side="right") - 1

    def target_scale(self) -> dict[str, float] | None:
        """Each objective's mean target count per batch over the training chunks (for
        `loss_normalisation = "tokens"`: a loss is its sum over targets divided by this)."""
        if self.cfg.loss_normalisation != "tokens":
            return None
        t, n_chunks = self.tokens, len(self.start)
        batches = max(-(-n_chunks // self.cfg.batch_size), 1)
        item = np.isin(t.event_type, [int(k) for k in ITEM_TYPES]) & (t.ids[:, 0] > 0)
        visit = (t.event_type == int(EventType.PAGE_VISIT)) & (t.ids[:, 4] > 0)
        counts = {
            "netp": t.n_events - int((~self.is_first).sum()),  # a later chunk's state 0 predicts nothing
            "tdp": t.n_events - n_chunks * (1 + self.cfg.time_to_cutoff),  # no gap at a chunk's start or after now
            "nip": int(item.sum()),
            "nup": int(visit.sum()),
        }
        if self.future is not None:
            counts["future_window"] = int((self.future.end > np.arange(1, t.n_events + 1)).sum())
        if self.by_type is not None:  # event states whose future ends before the cutoff (now tokens aside)
            horizon = t.timestamp + np.int64(round(self.cfg.future_window_days * US_PER_DAY))
            counts["activity"] = int((horizon <= t.now).sum())
        return {name: max(count / batches, 1.0) for name, count in counts.items()}

    def fingerprint(self) -> str:
        t = self.tokens
        return fingerprint(t.client_ids, t.offsets, t.event_type, t.ids, t.timestamp)


@dataclass(frozen=True)
class Training:
    """Everything a run of the loop needs, built once: the benchmark drives the same pieces step by step."""

    objectives: SequenceObjectives
    data: TrainingData
    optimizer: torch.optim.AdamW
    scheduler: torch.optim.lr_scheduler.LambdaLR
    options: LoopOptions
    total_steps: int

    def run(self) -> None:
        parts = {"model": self.objectives.model, "optimizer": self.optimizer, "scheduler": self.scheduler}
        train_loop(self.objectives, lambda epoch: EpochBatches(self.data, epoch), self.data.steps_per_epoch,
                   self.total_steps, [self.optimizer], parts, self.options, schedulers=[self.scheduler])


def training(model: SequenceModel, tokens: Tokens, cfg: SequenceConfig, run: Run,
             callback: Callback | None = None) -> Training:
    """The model on its device with its objectives, batches, optimiser, schedule and loop options."""
    device = resolve_device(run.device)
    model.to(device).train()
    _freeze_unused_heads(model, cfg)
    data = TrainingData(tokens, cfg, run.seed, device)
    content = item_content(tokens, cfg.hash_rows) if cfg.item_content else None
    vocab = vocabulary_tensors(*item_vocabulary(tokens, cfg.hash_rows), device=device, content=content)
    urls = vocabulary_tensors(*url_vocabulary(tokens, cfg.hash_rows), device=device) if cfg.nup_logq else None
    total = math.ceil(cfg.epochs * data.steps_per_epoch)
    total = min(total, cfg.max_steps) if cfg.max_steps else total
    optimizer = _optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _schedule(cfg, total))
    options = LoopOptions(
        name=NAME,
        work_dir=run.work_dir,
        settings={"config": to_dict(cfg), "seed": run.seed, "data": data.fingerprint()},
        checkpoint_every=cfg.checkpoint_every,
        device=device,
        weights={name: getattr(cfg, f"{name}_weight") for name in OBJECTIVES},
        grad_clip=cfg.grad_clip,
        bf16=cfg.trains_in_bf16(device),
        show_progress=run.show_progress,
        callback=callback,
    )
    objectives = SequenceObjectives(model, cfg, vocab, urls, data.target_scale())
    return Training(objectives, data, optimizer, scheduler, options, total)


def train(
    model: SequenceModel,
    tokens: Tokens,
    cfg: SequenceConfig,
    run: Run,
    callback: Callback | None = None,
) -> SequenceModel:
    """Train `model` in place on `tokens`; resumes from `run.work_dir` when a checkpoint is there.

    `callback(step, losses)` is called after every step with the detached per-objective losses
    (still on the device: reading them waits for the step to finish).
    """
    setup = training(model, tokens, cfg, run, callback)
    torch.manual_seed(run.seed * 1_000 + distributed.rank())  # dropout: each rank its own stream
    setup.run()
    return model.eval()


def _freeze_unused_heads(model: SequenceModel, cfg: SequenceConfig) -> None:
    """Heads no objective with weight > 0 uses get no gradient: frozen, DDP waits for none from them."""
    used = {
        model.next_type: cfg.netp_weight > 0,
        model.next_gap: cfg.tdp_weight > 0,
        model.item_query: cfg.nip_weight > 0,
        model.url_query: cfg.nup_weight > 0,
        model.item_out: (cfg.nip_weight > 0 and not cfg.item_content) or cfg.future_window_weight > 0,
        model.url_out: cfg.nup_weight > 0 or cfg.future_window_weight > 0,
    }
    if model.item_content_out is not None:
        used[model.item_content_out] = cfg.nip_weight > 0
    for head, on in used.items():
        head.requires_grad_(on)


def _insert_slot(array: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(B, W, ...) → (B, W + 1, ...) with an empty (zero / False) slot inserted at `at[b]` in each row."""
    pos = np.arange(array.shape[1] + 1)[None]
    source = np.clip(pos - (pos > at[:, None]), 0, array.shape[1] - 1)
    out = np.take_along_axis(array, source.reshape(*source.shape, *[1] * (array.ndim - 2)), axis=1)
    empty = (pos == at[:, None]).reshape(*source.shape, *[1] * (array.ndim - 2))
    return np.where(empty, np.zeros((), array.dtype), out)


def _step_seed(seed: int, step: int, rank: int) -> int:
    """Seed of a step's random draws (negatives, future labels): a function of (seed, step, rank), so resuming needs no state."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])


def _optimizer(model: SequenceModel, cfg: SequenceConfig) -> torch.optim.AdamW:
    """Weight decay on matrices and tables only (not on biases, norms or the start vector); fused on a GPU."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    fused = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.98), fused=fused or None)


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
