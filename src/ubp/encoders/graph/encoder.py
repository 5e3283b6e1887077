"""The `graph` block: TwHIN user vectors learned from the window's cart and purchase edges.

Users with a learned vector (every relevant client with an edge, plus the most active others up
to `max_users`) get it, L2-normalised. Inductive fallback for any other user: the normalised mean
of normalize(item + relation) over their edges to known items — the direction that maximises
their summed positive scores, so it needs no retraining. A user with no edge to a known item
gets a zero row.

Items get their own sparse table (`item_encoder="table"`), or (`"sequence"`) a sequence block is
fit on the same window and an item's vector is a learned linear map of that model's frozen
content embedding of the product (ids, category, price bucket, name): items that share content
share evidence. The nested block is saved in the `sequence` subfolder.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from ubp.config import from_dict
from ubp.data.window import InputWindow
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.options import GraphOptions
from ubp.encoders.graph.edges import RELATIONS, lookup, read_edges, user_table
from ubp.encoders.graph.items import product_content
from ubp.encoders.graph.model import TwHIN, in_batch_bce
from ubp.encoders.sequence.config import sequence_options
from ubp.encoders.sequence.encoder import SequenceEncoder
from ubp.encoders.saved_network import read_nested, read_network, write_nested, write_network
from ubp.io import atomic_dir, save_npy
from ubp.training import choose_device, fit_loop, seed_everything

class GraphEncoder:
    name: ClassVar[str] = "graph"
    preferred_normalise: ClassVar[str] = "l2"  # scored by cosine in training

    def __init__(self, options: GraphOptions | None = None) -> None:
        self.config = options or GraphOptions()

    def fit(self, window: InputWindow, run: Run) -> "GraphEncoder":
        cfg = self.config
        edges = read_edges(window)
        self.users_ = user_table(edges, window.relevant_clients, cfg.max_users)
        self.items_ = np.unique(edges["sku"].to_numpy()).astype(np.int64)
        user = lookup(self.users_, edges["client_id"].to_numpy())
        keep = user >= 0
        device = choose_device(run.device)
        u = torch.from_numpy(user[keep]).to(device)
        i = torch.from_numpy(lookup(self.items_, edges["sku"].to_numpy())[keep]).to(device)
        r = torch.from_numpy(edges["relation"].to_numpy()[keep].astype(np.int64)).to(device)
        features = self._fit_item_features(window, run)
        seed_everything(run.seed)
        model = self._model(features).to(device)
        sparse_opt = torch.optim.SparseAdam(model.sparse_parameters(), lr=cfg.lr)
        dense_opt = torch.optim.Adam(model.dense_parameters(), lr=cfg.dense_lr)

        def step(rows: torch.Tensor, epoch: int) -> torch.Tensor:
            rows = rows.to(device)
            ub, ib, rb = u[rows], i[rows], r[rows]  # (B,) each
            same = (ib[:, None] == ib[None, :]) & (rb[:, None] == rb[None, :])  # (B, B)
            loss = in_batch_bce(model(ub, ib, rb), same)
            sparse_opt.zero_grad(set_to_none=True)
            dense_opt.zero_grad(set_to_none=True)
            loss.backward()
            sparse_opt.step()
            dense_opt.step()
            return loss

        self.last_loss_ = float("nan")
        if len(u):
            parts = {"model": model, "sparse_opt": sparse_opt, "dense_opt": dense_opt}
            self.last_loss_ = fit_loop(self.name, len(u), cfg, run, step, parts, (u, i, r))
        self.model_ = model.cpu().eval()
        return self

    def _fit_item_features(self, window: InputWindow, run: Run) -> torch.Tensor | None:
        """With "sequence": fit the nested block (checkpoints in its own subfolder, so they never meet a
        standalone sequence block's) and return its frozen content vectors of `items_`; else None."""
        self.sequence_ = None
        if self.config.item_encoder != "sequence":
            return None
        work = None if run.work_dir is None else Path(run.work_dir) / self.name
        self.sequence_ = SequenceEncoder(sequence_options(self.config.sequence_options)).fit(window, dataclasses.replace(run, work_dir=work))
        return product_content(self.sequence_.model_, self.sequence_.config, window.products(), self.items_)

    def _model(self, item_features: torch.Tensor | None = None) -> TwHIN:
        cfg = self.config
        return TwHIN(
            len(self.users_), len(self.items_), len(RELATIONS), cfg.dim, cfg.learn_scale, cfg.scale, cfg.bias, item_features
        )

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "model_")
        client_ids = np.asarray(client_ids, dtype=np.int64)
        out = np.zeros((len(client_ids), self.config.dim), dtype=np.float32)
        pos = lookup(self.users_, client_ids)
        known = pos >= 0
        with torch.no_grad():
            out[known] = F.normalize(self.model_.users.weight[torch.from_numpy(pos[known])], dim=-1).numpy()
            rest = np.unique(client_ids[~known])
            if len(rest):
                vectors = self._inductive(window, rest)
                out[~known] = vectors[lookup(rest, client_ids[~known])]
        return out

    def _inductive(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        """Normalised mean target vector of each of the sorted `client_ids` over its edges to known items."""
        edges = read_edges(window, client_ids)
        item = lookup(self.items_, edges["sku"].to_numpy())
        keep = item >= 0
        rows = torch.from_numpy(lookup(client_ids, edges["client_id"].to_numpy())[keep])
        targets = self.model_.targets(
            torch.from_numpy(item[keep]), torch.from_numpy(edges["relation"].to_numpy()[keep].astype(np.int64))
        )
        sums = torch.zeros(len(client_ids), self.config.dim).index_add_(0, rows, targets)
        return F.normalize(sums, dim=-1).numpy()

    def save(self, path: Path) -> None:
        with atomic_dir(Path(path)) as tmp:
            write_network(tmp, dataclasses.asdict(self.config), self.model_)
            save_npy(tmp / "users.npy", self.users_)
            save_npy(tmp / "items.npy", self.items_)
            write_nested(tmp, {"sequence": self.sequence_})

    @classmethod
    def load(cls, path: Path) -> "GraphEncoder":
        params, state = read_network(path)
        self = cls(from_dict(GraphOptions, params, str(path)))
        self.users_, self.items_ = np.load(Path(path) / "users.npy"), np.load(Path(path) / "items.npy")
        item_block = "sequence" if self.config.item_encoder == "sequence" else None  # the nested block, if any
        self.sequence_ = read_nested(path, {"sequence": item_block})["sequence"]
        features = None
        if self.sequence_ is not None:
            features = torch.zeros(len(self.items_), self.sequence_.config.width)  # the saved state holds them
        self.model_ = self._model(features)
        self.model_.load_state_dict(state)
        self.model_.eval()
        return self
