"""Item vectors from a fitted sequence model: the content part of its embedding of a product event.

Each SKU becomes one cart event carrying its catalogue row (category, price, name) and goes through
the sequence block's own tokenisation, so its hash rows, price bucket and name tokens are exactly
those the sequence model saw; only the content part (no event type, time or position) is kept.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import polars as pl
import torch

from ubp.encoders.sequence.config import SequenceConfig
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.tokens import make_batch, tokenize_frame
from ubp.layout import STREAM_SCHEMA, EventType

CONTENT_BATCH = 16_384  # items per forward pass: bounds the (batch, 16, part) name lookup


def product_events(products: pl.DataFrame, skus: np.ndarray) -> pl.DataFrame:
    """One cart event per SKU (client_id = its position in `skus`), catalogue fields joined.

    A SKU missing from the catalogue keeps only its id. The timestamp is a constant: the
    context it feeds is not used.
    """
    frame = pl.DataFrame(
        {"client_id": np.arange(len(skus), dtype=np.int64), "sku": np.asarray(skus, dtype=np.int64)},
        schema={"client_id": pl.Int64, "sku": pl.Int64},
    )
    return (
        frame.join(products, on="sku", how="left")
        .with_columns(
            timestamp=pl.lit(datetime(1970, 1, 1)),
            event_type=pl.lit(EventType.ADD_TO_CART.value),
            url=pl.lit(None, dtype=pl.Int64),
            tokens=pl.col("name"),
        )
        .select(list(STREAM_SCHEMA))
        .cast(STREAM_SCHEMA)
    )


@torch.no_grad()
def product_content(model: SequenceModel, cfg: SequenceConfig, products: pl.DataFrame, skus: np.ndarray) -> torch.Tensor:
    """float32 CPU (len(skus), cfg.width): the sequence model's content embedding of each SKU, in order."""
    model.eval()
    device = next(model.parameters()).device
    tokens = tokenize_frame(product_events(products, skus), cfg.hash_rows, cfg.price_buckets, source="products")
    out = torch.empty(len(skus), cfg.width)
    for lo in range(0, len(skus), CONTENT_BATCH):
        rows = np.arange(lo, min(lo + CONTENT_BATCH, len(skus)))
        out[lo : lo + len(rows)] = model.embed.content(make_batch(tokens, rows, rows + 1, device))[:, 0].float().cpu()
    return out
