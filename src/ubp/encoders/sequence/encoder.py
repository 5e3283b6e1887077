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
from ubp.layout import EventType

MODEL_FILE = "sequence.pt"


class SequenceEncoder:
    """Causal Transformer over each user's events; the embedding is its state after the last of them
    (and the now token), beside the mean state over the whole history and, per event type, the
    mean state after that type's events and the state after its last one.

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
    """float32 (len(client_ids), k * width): each client's state after their last `max_len` slots
    (with `time_to_cutoff`: their last `max_len - 1` events and the now token at the window's
    cutoff); with `whole_history` beside it the mean state over every chunk of their history; with
    `by_event_type` then, for each event type, the mean state after that type's events and the state
    after its last one (zeros where the client has none), over the chunks read.

    Clients absent from `tokens` get the empty-history state. Chunks are embedded in order of
    length so batches carry little padding.
    """
    model.eval()
    device = next(model.parameters()).device
    with_now = cfg.time_to_cutoff
    user, start, end = history_chunks(tokens, cfg.max_len - with_now, cfg.whole_history)
    n_users = len(tokens.client_ids)
    user, start, end = np.r_[user, n_users], np.r_[start, 0], np.r_[end, 0]  # absent clients: one empty chunk
    d, n_types = model.ln_f.normalized_shape[0], len(EventType)
    by_type = n_types if cfg.by_event_type else 0
    # one row of parts per user, filled in place: the last state, the mean state, per type the mean
    # and the last state
    parts = np.zeros((n_users + 1, 1 + cfg.whole_history + 2 * by_type, d), dtype=np.float32)
    k = 1 + cfg.whole_history
    last, type_sum, type_last = parts[:, 0], parts[:, k : k + by_type], parts[:, k + by_type :]
    total = np.zeros((n_users + 1, d), dtype=np.float64)
    states = np.zeros(n_users + 1, dtype=np.float64)
    type_count = np.zeros((n_users + 1, n_types), dtype=np.float64)
    type_last_event = np.full((n_users + 1, n_types), -1, dtype=np.int64)  # global index of the one read
    by_length = np.argsort(end - start, kind="stable")
    is_last = np.r_[user[1:] != user[:-1], True]  # a user's last chunk comes last among theirs
    for i in range(0, len(by_length), cfg.infer_batch_size):
        rows = by_length[i : i + cfg.infer_batch_size]
        width = batch_width(end[rows] - start[rows] + with_now, width_multiple(device), cfg.max_len)
        now = np.full(len(rows), tokens.now, dtype=np.int64) if with_now else None
        batch = make_batch(tokens, start[rows], end[rows], device, width, now=now)
        # on a CPU the states stay float32 whatever `cpu_bf16` says: in bf16 a client's row would
        # depend on the width of the batch it is padded into
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            hidden = model(batch)
        out = model.read_out(hidden, batch)  # in float32: per-type sums run over up to `max_len` states
        who = user[rows]
        final = is_last[rows]
        last[who[final]] = out.last.float().cpu().numpy()[final]
        np.add.at(total, who, out.total.double().cpu().numpy())
        np.add.at(states, who, batch["length"].cpu().numpy() + 1.0)
        if by_type:
            np.add.at(type_sum, who, out.type_total.cpu().numpy())
            np.add.at(type_count, who, out.type_count.double().cpu().numpy())
            # a type's last event is the one with the highest global index among the user's chunks
            at = out.type_last_at.cpu().numpy()
            event = np.where(at >= 0, start[rows][:, None] + at, -1)
            np.maximum.at(type_last_event, who, event)
            r, t = np.nonzero((event >= 0) & (event == type_last_event[who]))
            type_last[who[r], t] = out.type_last.cpu().numpy()[r, t]
    if cfg.whole_history:
        parts[:, 1] = total / states[:, None]
    if by_type:
        type_sum /= np.maximum(type_count, 1.0)[..., None]
    index = _index_in(tokens.client_ids, client_ids)
    index = np.where(index < 0, n_users, index)
    flat = parts.reshape(n_users + 1, -1)
    # every known client in their order (a whole window's embedding): a view, not a second copy
    return flat[:n_users] if np.array_equal(index, np.arange(n_users)) else flat[index]


def _index_in(known: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    """Position of each wanted id in `known` (distinct ids), -1 where it is absent."""
    if len(known) == 0:
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(known, kind="stable")
    index = order[np.searchsorted(known[order], wanted).clip(max=len(known) - 1)]
    return np.where(known[index] == wanted, index, -1)
