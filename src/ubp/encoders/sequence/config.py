"""Sizes, objectives and training settings of the sequential encoder, as one frozen dataclass.

Named presets cover the scaling table of docs/methods.md §A ("tiny" for tests, "cpu" default ~3M
parameters, "19m" / "126m" / "252m" for a GPU); any field can be overridden by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ubp.config import ConfigError, from_dict

# The training objectives; each has an option `<name>_weight` (0 switches it off).
OBJECTIVES: tuple[str, ...] = ("nip", "nup", "netp", "tdp", "future_window")


@dataclass(frozen=True)
class SequenceConfig:
    # model
    width: int = 128  # hidden size = user embedding dimension
    layers: int = 4
    heads: int = 4
    dropout: float = 0.1
    max_len: int = 256  # events per training chunk and per inference window
    hash_rows: int = 2**16  # rows of the shared "unified embedding" table (row 0 = missing id)
    part_dim: int = 64  # width of each content part (an id's two lookups concatenated, price, name)
    price_buckets: int = 100
    # objectives: weight 0 switches one off
    nip_weight: float = 1.0  # next item (buy / add / remove targets), sampled softmax
    nup_weight: float = 1.0  # next URL (page-visit targets), sampled softmax
    netp_weight: float = 1.0  # next event type, cross-entropy
    tdp_weight: float = 1.0  # log1p hours to the next event, squared error
    # ids (SKU / category / URL) of an event in the next `future_window_days`, sampled softmax;
    # off by default: not yet measured to help
    future_window_weight: float = 0.0
    future_window_days: float = 14.0
    temperature: float = 0.05
    uniform_negatives: int = 1024  # NIP negatives drawn uniformly from the item vocabulary
    # training
    batch_size: int = 32  # sequences per step (per process under DDP)
    epochs: float = 1.0
    max_steps: int = 0  # 0 = no cap besides `epochs`
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100  # at most a tenth of the run
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    infer_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ConfigError(f"sequence: width {self.width} is not a multiple of heads {self.heads}")
        if self.part_dim % 2:
            raise ConfigError(f"sequence: part_dim {self.part_dim} must be even (two hash lookups)")
        if self.hash_rows < 2 or self.max_len < 1 or self.batch_size < 1:
            raise ConfigError("sequence: hash_rows >= 2, max_len >= 1 and batch_size >= 1 are required")
        weights = [getattr(self, f"{o}_weight") for o in OBJECTIVES]
        if min(weights) < 0 or max(weights) == 0:
            raise ConfigError("sequence: objective weights must be >= 0 with at least one > 0")
        if self.future_window_days <= 0:
            raise ConfigError(f"sequence: future_window_days must be > 0, got {self.future_window_days}")


PRESETS: dict[str, dict[str, Any]] = {
    "tiny": dict(width=32, layers=2, heads=2, hash_rows=2**10, part_dim=16, batch_size=8,
                 uniform_negatives=64, warmup_steps=5, checkpoint_every=20, infer_batch_size=64),
    "cpu": {},
    "19m": dict(width=384, layers=6, heads=6, hash_rows=2**17, part_dim=128, batch_size=64,
                uniform_negatives=8192, lr=5e-4, warmup_steps=1000, checkpoint_every=2000),
    "126m": dict(width=768, layers=12, heads=12, hash_rows=2**19, part_dim=128, batch_size=64,
                 uniform_negatives=8192, lr=3e-4, warmup_steps=2000, checkpoint_every=2000),
    "252m": dict(width=1024, layers=16, heads=16, hash_rows=2**19, part_dim=192, batch_size=64,
                 uniform_negatives=8192, lr=2e-4, warmup_steps=2000, checkpoint_every=2000),
}


def make_config(preset: str = "cpu", **overrides: Any) -> SequenceConfig:
    """A preset with fields overridden by name; an unknown preset or field is an error."""
    if preset not in PRESETS:
        raise ConfigError(f"sequence: unknown preset {preset!r}; known: {sorted(PRESETS)}")
    return from_dict(SequenceConfig, {**PRESETS[preset], **overrides}, where=f"sequence[{preset}]")
