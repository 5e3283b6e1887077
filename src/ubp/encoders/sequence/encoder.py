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
from ubp.encoders.sequence.config import ADDED_OPTIONS, SequenceConfig, make_config
from ubp.encoders.sequence.model import SequenceModel
from ubp.encoders.sequence.tokens import (
    Tokens,
    batch_width,
    history_chunks,
    make_batch,
    tokenize,
    width_multiple,
)
from ubp.encoders.sequence.train import Callback, train
from ubp.io import write_with

MODEL_FILE = "sequence.pt"


class SequenceEncoder:
    """Causal Transformer over each user's events; the embedding is its state after the last of them
    (and the now token), beside the mean state over the whole history.

    Options: a `SequenceConfig` (a preset, "tiny" / "cpu" / "19m" / "126m" / "252m", and any field).
    """

    name: ClassVar[str] = "sequence"
    # its standardized columns are a few shared directions: the downstream network learns more from
    # those directions one per column (measured: benchmarks/README.md)
    preferred_normalise: ClassVar[str] = "principal"
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
        return embed_clients(self.model_, tokens, client_ids, cfg)

    def save(self, path: Path) -> None:
        """`path/sequence.pt` (config + weights), written under a temporary name then renamed."""
        state = {k: v.cpu() for k, v in self.model_.state_dict().items()}
        write_with(Path(path) / MODEL_FILE, lambda tmp: torch.save({"config": to_dict(self.config), "state": state}, tmp))

    @classmethod
    def load(cls, path: Path) -> "SequenceEncoder":
        saved = torch.load(Path(path) / MODEL_FILE, map_location="cpu", weights_only=True)
        encoder = cls(from_dict(SequenceConfig, {**ADDED_OPTIONS, **saved["config"]}, str(path)))
        encoder.model_ = SequenceModel(encoder.config)
        encoder.model_.load_state_dict(saved["state"])
        encoder.model_.eval()
        return encoder

    def __repr__(self) -> str:
        return f"SequenceEncoder({json.dumps(to_dict(self.config))})"


@torch.no_grad()
def embed_clients(model: SequenceModel, tokens: Tokens, client_ids: np.ndarray, cfg: SequenceConfig) -> np.ndarray:
    """float32 (len(client_ids), width, or 2 * width with `whole_history`): each client's state after
    their last `max_len` slots (with `time_to_cutoff`: their last `max_len - 1` events and the now
    token at the window's cutoff), beside (with `whole_history`) the mean state over every chunk
    of their history.

    Clients absent from `tokens` get the empty-history state. Chunks are embedded in order of
    length so batches carry little padding.
    """
    model.eval()
    device = next(model.parameters()).device
    with_now = cfg.time_to_cutoff
    user, start, end = history_chunks(tokens, cfg.max_len - with_now, cfg.whole_history)
    n_users = len(tokens.client_ids)
    user, start, end = np.r_[user, n_users], np.r_[start, 0], np.r_[end, 0]  # absent clients: one empty chunk
    d = model.ln_f.normalized_shape[0]
    last = np.zeros((n_users + 1, d), dtype=np.float32)
    total = np.zeros((n_users + 1, d), dtype=np.float64)
    states = np.zeros(n_users + 1, dtype=np.float64)
    by_length = np.argsort(end - start, kind="stable")
    is_last = np.r_[user[1:] != user[:-1], True]  # a user's last chunk comes last among theirs
    for i in range(0, len(by_length), cfg.infer_batch_size):
        rows = by_length[i : i + cfg.infer_batch_size]
        width = batch_width(end[rows] - start[rows] + with_now, width_multiple(device), cfg.max_len)
        now = np.full(len(rows), tokens.now, dtype=np.int64) if with_now else None
        batch = make_batch(tokens, start[rows], end[rows], device, width, now=now)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16_on(device)):
            state, summed = model.read_out(model(batch), batch)
        final = is_last[rows]
        last[user[rows][final]] = state.float().cpu().numpy()[final]
        np.add.at(total, user[rows], summed.double().cpu().numpy())
        np.add.at(states, user[rows], batch["length"].cpu().numpy() + 1.0)
    index = _index_in(tokens.client_ids, client_ids)
    index = np.where(index < 0, n_users, index)
    if not cfg.whole_history:
        return last[index]
    return np.concatenate([last[index], (total[index] / states[index, None]).astype(np.float32)], axis=1)


def _index_in(known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of each wanted id in `known` (distinct ids), -1 where it is absent."""
    if len(known) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(known, kind="stable")
    index = order[np.searchsorted(known[order], wanted).clip(max=len(known) - 1)]
    return np.where(known[index] == wanted, index, -1)
