"""The options of every block, one frozen dataclass each, checked when a recipe is read.

These classes import nothing heavy (no torch, no polars), so a recipe's block options — names,
types and allowed values — are checked in well under a second, before any data is touched.
Each field carries a one-line `help` that `ubp blocks` prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ubp.config import ConfigError

VIEW_KINDS = ("events", "columns")
ITEM_ENCODERS = ("table", "sequence")
INNER_TASKS = ("churn", "conversion", "sku", "category", "price")
MAX_EMDE_OUT_DIM = 256


def option(default: Any, help: str) -> Any:
    """A dataclass field with its help line (mutable defaults get a factory)."""
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


def _check_inner(block: str | None, options: dict, where: str) -> None:
    """The options of a block that another block consumes are checked like a recipe's own."""
    if block is None:
        if options:
            raise ConfigError(f"{where}: options given but no block to pass them to")
        return
    from ubp.encoders.registry import block_options

    block_options(block, options, where)


@dataclass(frozen=True)
class RandomOptions:
    dim: int = option(128, "columns of Gaussian noise per client")

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ConfigError(f"random.dim: must be ≥ 1, got {self.dim}")


@dataclass(frozen=True)
class OracleOptions:
    """No options: the width is the world's hidden state."""


@dataclass(frozen=True)
class NoHistoryOptions:
    """No options: one indicator column."""


@dataclass(frozen=True)
class BaselineOptions:
    days: tuple[int, ...] = option((1, 7, 30), "look-back windows in days")
    top_n: int = option(10, "most frequent values per column counted")

    def __post_init__(self) -> None:
        if not self.days or min(self.days) < 1 or self.top_n < 1:
            raise ConfigError(f"baseline: days must be ≥ 1 and top_n ≥ 1, got days={self.days}, top_n={self.top_n}")


@dataclass(frozen=True)
class CountsOptions:
    top_n: int = option(100, "most bought categories and SKUs counted (price buckets: all 100)")
    windows: tuple[int, ...] = option((7, 30, 90), "frequency windows in days (all history is always added)")
    clip: float = option(5.0, "standardized values are clipped to ±clip")

    def __post_init__(self) -> None:
        if self.top_n < 1 or not self.windows or min(self.windows) < 1 or self.clip <= 0:
            raise ConfigError(f"counts: top_n ≥ 1, windows ≥ 1 day and clip > 0 are required, got {self}")


@dataclass(frozen=True)
class FeaturesOptions:
    windows: tuple[int, ...] = option((7, 14, 28, 60), "windowed-counter spans in days")
    n_clusters: int = option(32, "k-means clusters of product names")
    n_price_groups: int = option(10, "price-bucket groups for decayed counts")
    half_lives: tuple[float, ...] = option((7.0, 60.0), "half-lives in days of the decayed counts")
    top_n: int = option(100, "most bought categories and SKUs counted")
    clip: float = option(5.0, "standardized values are clipped to ±clip")

    def __post_init__(self) -> None:
        if not self.windows or min(self.windows) < 1 or self.n_clusters < 1 or self.n_price_groups < 1:
            raise ConfigError(f"features: windows ≥ 1 day, n_clusters ≥ 1 and n_price_groups ≥ 1 are required, got {self}")
        if not self.half_lives or min(self.half_lives) <= 0 or self.top_n < 1 or self.clip <= 0:
            raise ConfigError(f"features: half_lives > 0, top_n ≥ 1 and clip > 0 are required, got {self}")


@dataclass(frozen=True)
class EmdeOptions:
    dim: int = option(64, "Cleora item-vector width")
    iterations: int = option(3, "Cleora propagation steps")
    n_partitions: int = option(10, "LSH partitions of the item space")
    n_buckets: int = option(128, "buckets per partition (a power of two)")
    half_lives_days: tuple[float, ...] = option((7.0, 60.0), "half-lives in days of the decayed sketches")
    out_dim: int = option(256, f"columns after truncated SVD (1..{MAX_EMDE_OUT_DIM})")
    fit_users: int = option(50_000, "clients the SVD is fitted on")

    def __post_init__(self) -> None:
        if not 1 <= self.out_dim <= MAX_EMDE_OUT_DIM:
            raise ConfigError(f"emde.out_dim: must be in 1..{MAX_EMDE_OUT_DIM}, got {self.out_dim}")
        if not self.half_lives_days or min(self.half_lives_days) <= 0:
            raise ConfigError(f"emde.half_lives_days: must be positive, got {self.half_lives_days}")
        if min(self.dim, self.iterations, self.n_partitions, self.n_buckets, self.fit_users) < 1:
            raise ConfigError("emde: dim, iterations, n_partitions, n_buckets and fit_users must be ≥ 1")
        bits = self.n_buckets.bit_length() - 1
        if self.n_buckets < 2 or 1 << bits != self.n_buckets or bits > self.dim:
            raise ConfigError(f"emde.n_buckets: must be a power of two ≥ 2 with log2(n_buckets) ≤ dim, got {self.n_buckets}")


@dataclass(frozen=True)
class AutoencoderOptions:
    input_block: str = option("features", "block whose output is compressed")
    input_options: dict = option({}, "options of the input block")
    hidden: tuple[int, ...] = option((512, 256, 128, 64), "encoder layer widths (the decoder mirrors them)")
    latent: int = option(64, "embedding width")
    epochs: int = option(20, "training epochs")
    batch_size: int = option(512, "clients per step")
    lr: float = option(1e-3, "AdamW learning rate")
    weight_decay: float = option(1e-5, "AdamW weight decay")
    lambda_con: float = option(0.1, "weight of the InfoNCE term between two noisy views")
    lambda_l2: float = option(1e-3, "weight of the latent L2 penalty")
    temperature: float = option(0.1, "InfoNCE temperature")
    sigma_start: float = option(0.10, "input noise at the start of the curriculum")
    sigma_end: float = option(0.02, "input noise at its end")
    max_users: int | None = option(None, "train on a seeded sample of this many fit clients (none: all)")
    checkpoint_every: int = option(1000, "steps between checkpoints (also one at each epoch end)")

    def __post_init__(self) -> None:
        _check_inner(self.input_block, self.input_options, "autoencoder.input_options")
        if self.latent < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("autoencoder: latent, epochs and batch_size must be ≥ 1")


@dataclass(frozen=True)
class DcnOptions:
    input_block: str = option("features", "block whose raw columns feed the network")
    input_options: dict = option({}, "options of the input block")
    sequence_block: str | None = option(None, "a block whose embedding joins x0 through an MLP (e.g. sequence)")
    sequence_options: dict = option({}, "options of the sequence block")
    sequence_dim: int = option(64, "width the sequence embedding is mapped to")
    n_bins: int = option(32, "piecewise-linear bins per input column")
    column_dim: int = option(2, "width of each column's encoding")
    ranks: tuple[int, ...] = option((64, 32, 32), "low-rank size of each cross layer")
    widths: tuple[int, ...] = option((64, 32, 32), "output width of each cross layer (the block's width is their sum)")
    head: tuple[int, ...] = option((64, 64, 64, 64), "hidden widths of the task head")
    horizon_days: int = option(14, "label window of the inner split in days")
    n_targets: int = option(100, "targets per propensity label of the inner split")
    inner_splits: int = option(2, "inner splits stacked as training rows, each `horizon_days` before the last")
    inner_tasks: tuple[str, ...] = option(INNER_TASKS, "heads of the inner split (any of these, each once)")
    contrastive: bool = option(False, "add InfoNCE between two views (off: on the synthetic worlds it costs propensity AUROC)")
    views: str = option("events", f"how views are made: one of {VIEW_KINDS}")
    drop_p: float = option(0.3, "share of events (or columns) dropped in a view, 0 ≤ p < 1")
    lambda_con: float = option(0.1, "weight of the InfoNCE term")
    temperature: float = option(0.1, "InfoNCE temperature")
    epochs: int = option(5, "training epochs (over the rows of every split)")
    batch_size: int = option(512, "clients per step")
    lr: float = option(1e-3, "AdamW learning rate")
    weight_decay: float = option(1e-5, "AdamW weight decay")
    max_users: int | None = option(None, "train on a seeded sample of this many fit clients per split (none: all)")
    checkpoint_every: int = option(1000, "steps between checkpoints")

    def __post_init__(self) -> None:
        if self.views not in VIEW_KINDS:
            raise ConfigError(f"dcn.views: {self.views!r}; expected one of {VIEW_KINDS}")
        if len(self.ranks) != len(self.widths) or not self.ranks:
            raise ConfigError(f"dcn: ranks {self.ranks} and widths {self.widths} need one entry per cross layer")
        if self.inner_splits < 1:
            raise ConfigError(f"dcn.inner_splits: {self.inner_splits}; expected ≥ 1")
        if not self.inner_tasks or len(set(self.inner_tasks)) < len(self.inner_tasks) or not set(self.inner_tasks) <= set(INNER_TASKS):
            raise ConfigError(f"dcn.inner_tasks: {list(self.inner_tasks)}; expected distinct names from {list(INNER_TASKS)}")
        if not 0.0 <= self.drop_p < 1.0:
            raise ConfigError(f"dcn.drop_p: {self.drop_p}; expected 0 <= p < 1")
        _check_inner(self.input_block, self.input_options, "dcn.input_options")
        _check_inner(self.sequence_block, self.sequence_options, "dcn.sequence_options")


@dataclass(frozen=True)
class GraphOptions:
    dim: int = option(256, "user and item vector width")
    max_users: int = option(1_500_000, "learned user vectors (relevant clients with edges always included)")
    epochs: int = option(10, "training epochs")
    batch_size: int = option(2048, "edges per batch; every other edge's target is a negative")
    lr: float = option(0.01, "SparseAdam learning rate of the user and item tables")
    dense_lr: float = option(0.01, "Adam learning rate of the relation vectors (and scale)")
    # Logit = scale·cos + bias. The slides' plain σ(cos) is learn_scale=False, scale=1, bias=0: on a
    # synthetic 3,000-user graph it collapses all users to one direction (community probe 0.09 =
    # chance); learned from (10, −10) as in SigLIP it reaches 0.95 (recall@10 of held-out items .14 vs .01).
    learn_scale: bool = option(True, "learn the logit scale and bias (SigLIP-style)")
    scale: float = option(10.0, "initial logit scale")
    bias: float = option(-10.0, "initial logit bias")
    checkpoint_every: int = option(2000, "steps between checkpoints (also one at each epoch end)")
    item_encoder: str = option("table", f"item vectors: one of {ITEM_ENCODERS}")
    sequence_options: dict = option({}, 'sequence-block options when item_encoder = "sequence"')

    def __post_init__(self) -> None:
        if self.item_encoder not in ITEM_ENCODERS:
            raise ConfigError(f"graph.item_encoder: {self.item_encoder!r}; expected one of {ITEM_ENCODERS}")
        if self.sequence_options and self.item_encoder != "sequence":
            raise ConfigError('graph.sequence_options: only used with item_encoder = "sequence"')
        if self.item_encoder == "sequence":
            _check_inner("sequence", self.sequence_options, "graph.sequence_options")
