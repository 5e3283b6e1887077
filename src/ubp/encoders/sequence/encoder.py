"""`SequenceEncoder`: the sequential block of the profile (fit / transform / save / load)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ubp.config import from_dict, to_dict
from ubp.data.window import InputWindow
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.sequence.config import SequenceConfig, make_config
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.tokens import (
    Tokens,
    batch_width,
    inference_windows,
    make_batch,
    tokenize,
    width_multiple,
)
from ubp.encoders.sequence.train import Callback, train
from ubp.io import write_with

MODEL_FILE = "sequence.pt"


class SequenceEncoder:
    """Causal Transformer over each user's last events; the embedding is its final hidden state.

    Options: a `SequenceConfig` (a preset, "tiny" / "cpu" / "19m" / "126m" / "252m", and any field).
    """

    name: ClassVar[str] = "sequence"
    preferred_normalise: ClassVar[str] = "l2"  # neural rows: direction matters, norm does not
    fits_across_ranks: ClassVar[bool] = True  # under torchrun every rank trains on its share of the batches (DDP)

    def __init__(self, options: SequenceConfig | None = None) -> None:
        self.config: SequenceConfig = options or make_config()

    def fit(self, window: InputWindow, run: Run, callback: Callback | None = None) -> "SequenceEncoder":
        cfg = self.config
        tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets, folder=run.work_dir)  # shared by every rank
        torch.manual_seed(run.seed)
        self.model_ = train(SequenceModel(cfg), tokens, cfg, run, callback)
        return self

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "model_")
        cfg = self.config
        client_ids = np.asarray(client_ids, dtype=np.int64)
        tokens = tokenize(window, cfg.hash_rows, cfg.price_buckets, client_ids=np.unique(client_ids))
        return embed_clients(self.model_, tokens, client_ids, cfg.max_len, cfg.infer_batch_size)

    def save(self, path: Path) -> None:
        """`path/sequence.pt` (config + weights), written under a temporary name then renamed."""
        state = {k: v.cpu() for k, v in self.model_.state_dict().items()}
        write_with(Path(path) / MODEL_FILE, lambda tmp: torch.save({"config": to_dict(self.config), "state": state}, tmp))

    @classmethod
    def load(cls, path: Path) -> "SequenceEncoder":
        saved = torch.load(Path(path) / MODEL_FILE, map_location="cpu", weights_only=True)
        encoder = cls(from_dict(SequenceConfig, saved["config"], str(path)))
        encoder.model_ = SequenceModel(encoder.config)
        encoder.model_.load_state_dict(saved["state"])
        encoder.model_.eval()
        return encoder

    def __repr__(self) -> str:
        return f"SequenceEncoder({json.dumps(to_dict(self.config))})"


@torch.no_grad()
def embed_clients(
    model: SequenceModel, tokens: Tokens, client_ids: np.ndarray, max_len: int, batch_size: int
) -> np.ndarray:
    """float32 (len(client_ids), width): each client's state after its last `max_len` events.

    Clients absent from `tokens` get the empty-history state. Windows are embedded in order of
    length so batches carry little padding.
    """
    model.eval()
    device = next(model.parameters()).device
    user = _index_in(tokens.client_ids, client_ids)  # -1: no events → empty window at the end
    first, last = inference_windows(tokens, max_len)
    start, end = np.r_[first, 0][user], np.r_[last, 0][user]
    out = np.empty((len(client_ids), model.ln_f.normalized_shape[0]), dtype=np.float32)
    by_length = np.argsort(end - start, kind="stable")
    for i in range(0, len(by_length), batch_size):
        rows = by_length[i : i + batch_size]
        width = batch_width(end[rows] - start[rows], width_multiple(device), max_len)
        batch = make_batch(tokens, start[rows], end[rows], device, width)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            out[rows] = model.user_embedding(batch).float().cpu().numpy()
    return out


def _index_in(known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of each wanted id in `known` (distinct ids), -1 where it is absent."""
    if len(known) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(known, kind="stable")
    index = order[np.searchsorted(known[order], wanted).clip(max=len(known) - 1)]
    return np.where(known[index] == wanted, index, -1)
