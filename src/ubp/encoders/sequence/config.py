"""Sizes, objectives and training settings of the sequential encoder, as one frozen dataclass.

Named presets cover the scaling table of docs/methods.md §A ("tiny" for tests, "cpu" default ~3M
parameters, "19m" / "126m" / "252m" for a GPU); any field can be overridden by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ubp.config import ConfigError, from_dict
from ubp.encoders.options import option

if TYPE_CHECKING:
    import torch

# Options added after sequence models were first saved, at the values such a model was trained with:
# a saved config without them loads as what it was.
ADDED_OPTIONS: dict[str, Any] = {"time_to_cutoff": False, "whole_history": False, "item_content": False,
                                 "loss_normalisation": "batch", "nup_logq": False, "activity_weight": 0.0,
                                 "by_event_type": False}
# Options that change only how a trained model's states become an embedding, not the training.
READ_OUT_OPTIONS: tuple[str, ...] = ("by_event_type", "whole_history", "infer_batch_size")
# The training objectives; each has an option `<name>_weight` (0 switches it off).
OBJECTIVES: tuple[str, ...] = ("nip", "nup", "netp", "tdp", "future_window", "activity")


@dataclass(frozen=True)
class SequenceConfig:
    """The sequence block's options: a `preset` whose sizes any field overrides by name."""

    preset: str = option("cpu", "size preset: tiny, cpu, 19m, 126m or 252m (fields given beside it override it)")
    # model
    width: int = option(128, 'hidden size = user embedding dimension')
    layers: int = option(4, 'Transformer layers')
    heads: int = option(4, 'attention heads')
    dropout: float = option(0.1, 'dropout rate')
    max_len: int = option(256, 'events per training chunk and per inference window')
    hash_rows: int = option(2**16, 'rows of the shared "unified embedding" table (row 0 = missing id)')
    part_dim: int = option(64, "width of each content part (an id's two lookups concatenated, price, name)")
    price_buckets: int = option(100, 'price buckets of the log')
    time_to_cutoff: bool = option(True, 'each event gets log1p(days to the cutoff of the window embedded), and a '
                                  '"now" token after the last event carries the time from it to the cutoff')
    whole_history: bool = option(True, 'the embedding is the last state beside the mean state over every chunk of '
                                 'the whole window (twice `width` columns), not the last state alone')
    by_event_type: bool = option(True, 'the embedding also holds, for each event type, the mean state after that '
                                 "type's events and the state after its last one (2 * 5 * `width` more columns)")
    item_content: bool = option(True, "NIP's candidate item vectors come from the item's content (SKU and category "
                                "rows, price bucket, name) through the input side's projection, not the SKU rows alone")
    # objectives: weight 0 switches one off
    nip_weight: float = option(1.0, 'next item (buy / add / remove targets), sampled softmax')
    nup_weight: float = option(1.0, 'next URL (page-visit targets), sampled softmax')
    netp_weight: float = option(1.0, 'next event type, cross-entropy')
    tdp_weight: float = option(1.0, 'log1p hours to the next event, squared error')
    # ids (SKU / category / URL) of an event in the next `future_window_days`, sampled softmax
    future_window_weight: float = option(0.0, 'weight of predicting the ids of the next future_window_days (off: not yet measured to help)')
    # log1p of the events of each type in the next `future_window_days`, from each state (censored ones left out)
    activity_weight: float = option(0.0, 'weight of regressing log1p(events of each type in the next future_window_days) '
                                    'from each state, where that future lies before the cutoff')
    future_window_days: float = option(14.0, 'days after an event that future_window and activity targets cover')
    temperature: float = option(0.05, 'sampled-softmax temperature')
    loss_normalisation: str = option("tokens", 'tokens: each loss is a sum over its targets divided by its mean '
                                     'target count per batch (every target weighs the same); batch: a per-batch mean')
    nup_logq: bool = option(True, "NUP's in-batch negatives get the logQ correction (URL popularity), as NIP's do")
    uniform_negatives: int = option(1024, 'NIP negatives drawn uniformly from the item vocabulary')
    # training
    batch_size: int = option(32, 'sequences per step (per process under DDP)')
    epochs: float = option(1.0, 'passes over the training chunks')
    max_steps: int = option(0, 'step cap (0: none besides epochs)')
    lr: float = option(1e-3, 'AdamW peak learning rate')
    weight_decay: float = option(0.01, 'AdamW weight decay')
    warmup_steps: int = option(100, 'linear warm-up steps (at most a tenth of the run)')
    min_lr_ratio: float = option(0.1, 'cosine decays to lr * min_lr_ratio')
    grad_clip: float = option(1.0, 'gradient-norm clip')
    checkpoint_every: int = option(500, 'steps between checkpoints')
    infer_batch_size: int = option(256, 'users per inference batch')
    cpu_bf16: bool | str = option("auto", 'bf16 autocast while training on a CPU too (always on a GPU): true, false or '
                                  '"auto" (on where the CPU computes bf16 natively, AVX512-BF16 or AMX: ~1.35x faster '
                                  'steps there, slower on a CPU without); embedding on a CPU stays float32')

    def trains_in_bf16(self, device: torch.device) -> bool:
        """Whether training autocasts to bf16 on `device`."""
        if device.type == "cuda":
            return True
        if self.cpu_bf16 != "auto":
            return self.cpu_bf16
        from ubp import device as devices  # here: checking a recipe's options must not import torch

        return devices.cpu_has_native_bf16()

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ConfigError(f"sequence: width {self.width} is not a multiple of heads {self.heads}")
        if self.part_dim % 2:
            raise ConfigError(f"sequence: part_dim {self.part_dim} must be even (two hash lookups)")
        if self.hash_rows < 2 or self.max_len < 1 + self.time_to_cutoff or self.batch_size < 1:
            raise ConfigError("sequence: hash_rows >= 2, max_len >= 1 (2 with time_to_cutoff) and batch_size >= 1 are required")
        weights = [getattr(self, f"{o}_weight") for o in OBJECTIVES]
        if min(weights) < 0 or max(weights) == 0:
            raise ConfigError("sequence: objective weights must be >= 0 with at least one > 0")
        if self.loss_normalisation not in ("tokens", "batch"):
            raise ConfigError(f"sequence: loss_normalisation must be tokens or batch, got {self.loss_normalisation!r}")
        if not (isinstance(self.cpu_bf16, bool) or self.cpu_bf16 == "auto"):
            raise ConfigError(f'sequence: cpu_bf16 must be true, false or "auto", got {self.cpu_bf16!r}')
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
    return sequence_options({"preset": preset, **overrides}, where=f"sequence[{preset}]")


def sequence_options(options: dict[str, Any], where: str = "sequence") -> SequenceConfig:
    """The block's options from a recipe: the preset's values, then the fields given beside it."""
    options = dict(options)
    preset = options.pop("preset", "cpu")
    if not isinstance(preset, str):
        raise ConfigError(f"{where}.preset: expected str, got {preset!r}")
    if preset not in PRESETS:
        raise ConfigError(f"{where}.preset: unknown preset {preset!r}; known: {sorted(PRESETS)}")
    return from_dict(SequenceConfig, {**PRESETS[preset], **options, "preset": preset}, where=where)
