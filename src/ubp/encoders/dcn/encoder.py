"""The `dcn` block (docs/methods.md §E): DCN-v2 over PLE-encoded features, trained on inner splits.

`fit` writes the inner windows (events before cutoff − k·horizon, k = 1 … `inner_splits`) into the
work folder and fits the input block (and the optional sequence block) on the latest, so that
nothing the network learns from, not even the input block's top-N columns or the PLE bins, depends
on a label day of that split; it then labels each split's fit clients from the horizon after its
cutoff (the challenge's six tasks but new SKUs: `inner_tasks`) and trains the cross network + head
on the rows of every split (multitask BCE, optionally InfoNCE between two views of each user).
`transform` applies the same fitted blocks and network to the whole input window, so the embedding
describes each user at the train-target start while nothing after it was ever read.

Views (`views`): "events" recomputes the input block on two event-masked copies of each inner window
(each event dropped with p = `drop_p`; drawn once, so three input-block passes instead of one), "columns" drops
whole column embeddings with p = `drop_p` at every step (no extra pass). The contrastive term is
off by default: on the small synthetic world both kinds of views lowered the downstream scores.
"""

from __future__ import annotations

import copy
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ubp.chunks import spans
from ubp.config import from_dict
from ubp.data.window import InputWindow
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.options import DcnOptions
from ubp.encoders.dcn.inner_split import inner_labels, write_inner_window
from ubp.encoders.dcn.losses import dcn_loss
from ubp.encoders.dcn.model import DcnModel, quantile_edges
from ubp.encoders.dcn.views import masked_window
from ubp.device import resolve_device
from ubp.encoders.registry import create
from ubp.encoders.shard_tables import sample_fit_clients
from ubp.encoders.top_items import most_bought
from ubp.errors import InputError
from ubp.encoders.saved_network import read_nested, read_network, write_nested, write_network
from ubp.io import atomic_dir
from ubp.training import fit_rows, seed_everything

TRANSFORM_BATCH = 256  # rows per step: the PLE codes of a step are rows × columns × bins float64


class DcnEncoder:
    name: ClassVar[str] = "dcn"
    # latent columns on the network's own scale, correlated: the principal axes serve the downstream
    # network better (measured: benchmarks/README.md)
    preferred_normalise: ClassVar[str] = "principal"

    def __init__(self, options: DcnOptions | None = None) -> None:
        self.config = options or DcnOptions()

    @property
    def dim(self) -> int:
        return sum(self.config.widths)

    # ----- inputs -------------------------------------------------------------------------------
    def _inputs(self, window: InputWindow, client_ids: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(raw columns, NaN = missing; the sequence embedding or None) of `client_ids` in `window`."""
        block = self.input_
        x = block.raw(window, client_ids) if hasattr(block, "raw") else block.transform(window, client_ids)
        seq = None
        if self.sequence_ is not None:
            seq = torch.from_numpy(np.asarray(self.sequence_.transform(window, client_ids), dtype=np.float32))
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), seq

    # ----- the encoder protocol -----------------------------------------------------------------
    def fit(self, window: InputWindow, run: Run) -> "DcnEncoder":
        if run.work_dir is None:
            with tempfile.TemporaryDirectory(prefix="ubp-dcn-") as tmp:
                return self._fit(window, run, Path(tmp))
        return self._fit(window, run, Path(run.work_dir) / self.name)

    def _fit(self, window: InputWindow, run: Run, work: Path) -> "DcnEncoder":
        cfg = self.config
        # split k: features from the events before cutoff − k·horizon, labels from the horizon after it
        inners = [write_inner_window(window, cfg.horizon_days * k, work / ("inner" if k == 1 else f"inner{k}"))
                  for k in range(1, cfg.inner_splits + 1)]
        # nested blocks checkpoint under this block's folder: a standalone block's checkpoint of the
        # whole window must never be resumed as one of the inner window
        nested = replace(run, work_dir=work)
        self.input_ = create(cfg.input_block, **cfg.input_options).fit(inners[0], nested)
        self.sequence_ = (
            None
            if cfg.sequence_block is None
            else create(cfg.sequence_block, **cfg.sequence_options).fit(inners[0], nested)
        )
        categories, skus = most_bought(inners[0], cfg.n_targets)  # every split predicts the latest targets
        xs, seqs, targets, view_pairs = [], [], [], []
        for k, inner in enumerate(inners):
            if k > 0 and not sum(inner.event_counts.values()):  # a log shorter than the splits asked
                break
            clients = sample_fit_clients(inner, cfg.max_users, run.seed + k)
            if k == 0 and len(clients) < 2:
                raise InputError(f"{window.root}: dcn needs at least 2 clients to train on, the window has {len(clients)}")
            later = window if k == 0 else inners[k - 1]
            targets.append(inner_labels(later, inner, clients, cfg.n_targets, cfg.inner_tasks, (categories, skus)))
            x_k, seq_k = self._inputs(inner, clients)
            xs.append(x_k)
            seqs.append(seq_k)
            if cfg.contrastive and cfg.views == "events":
                view_pairs.append(self._event_views(inner, clients, run, work if k == 0 else work / f"split{k}"))
        target = targets[0]
        x = _stack(xs)
        seq = None if self.sequence_ is None else _stack(seqs)
        labels = np.concatenate([t.labels for t in targets])
        weights = np.concatenate([t.weights for t in targets])
        views = tuple(_stack([pair[i] for pair in view_pairs]) for i in (0, 1)) if view_pairs else None
        view_pairs.clear()
        n_rows = len(x)

        device = resolve_device(run.device)
        seed_everything(run.seed)
        lo, hi, valid = quantile_edges(x.numpy(), cfg.n_bins)
        model = DcnModel(
            lo, hi, valid, cfg.column_dim, cfg.ranks, cfg.widths, cfg.head, target.labels.shape[1],
            seq_in=0 if seq is None else seq.shape[1], seq_dim=cfg.sequence_dim,
        ).to(device)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        x = x.to(device)
        labels, weights = torch.from_numpy(labels).to(device), torch.from_numpy(weights).to(device)
        seq = None if seq is None else seq.to(device)
        views = None if views is None else (views[0].to(device), views[1].to(device))

        def step(rows: torch.Tensor, epoch: int) -> torch.Tensor:
            rows = rows.to(device)
            sb = None if seq is None else seq[rows]
            logits = model.head(model.embed(x[rows], sb))
            pair = None
            if cfg.contrastive and views is not None:
                pair = (model.embed(views[0][rows], sb), model.embed(views[1][rows], sb))
            elif cfg.contrastive:
                pair = tuple(model.embed(x[rows], sb, column_drop=cfg.drop_p) for _ in range(2))
            return dcn_loss(logits, labels[rows], weights[rows], target.tasks, pair, cfg.lambda_con, cfg.temperature)

        data = [x, labels, weights] + ([] if seq is None else [seq]) + ([] if views is None else list(views))
        parts = {"model": model, "opt": opt}
        self.last_loss_ = fit_rows(self.name, n_rows, cfg, run, step, [opt], parts, tuple(data))
        self.model_ = model.cpu().eval()
        return self

    def _event_views(self, inner: InputWindow, clients: np.ndarray, run: Run, work: Path) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw input-block columns of two event-masked copies of the inner window."""
        out = []
        for view in (0, 1):
            masked = masked_window(inner, self.config.drop_p, run.seed, view, work / f"view{view}")
            out.append(self._inputs(masked, clients)[0])
        return out[0], out[1]

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "model_")
        x, seq = self._inputs(window, np.asarray(client_ids, dtype=np.int64))
        # In float64: a float32 matrix product's last bits depend on where a row sits in the batch;
        # rounded to float32 afterwards, each client's row no longer depends on who is embedded with it.
        model = copy.deepcopy(self.model_).double()
        out = np.empty((len(x), self.dim), dtype=np.float32)
        with torch.no_grad():
            for batch in spans(len(x), TRANSFORM_BATCH):
                out[batch] = model.embed(x[batch].double(), None if seq is None else seq[batch].double()).numpy()
        return out

    def save(self, path: Path) -> None:
        with atomic_dir(Path(path)) as tmp:
            m = self.model_
            params = {
                "config": asdict(self.config),
                "n_out": m.head[-1].out_features,
                "seq_in": 0 if m.seq is None else m.seq[0].in_features,
            }
            write_network(tmp, params, m)
            write_nested(tmp, {"input": self.input_, "sequence": self.sequence_})

    @classmethod
    def load(cls, path: Path) -> "DcnEncoder":
        params, state = read_network(path)
        self = cls(from_dict(DcnOptions, params["config"], str(path)))
        cfg = self.config
        nested = read_nested(path, {"input": cfg.input_block, "sequence": cfg.sequence_block})
        self.input_, self.sequence_ = nested["input"], nested["sequence"]
        shape = tuple(state["ple.lo"].shape)  # the bins themselves come with the state below
        self.model_ = DcnModel(
            np.zeros(shape), np.ones(shape), np.zeros(shape, bool), cfg.column_dim, cfg.ranks, cfg.widths, cfg.head, params["n_out"],
            seq_in=params["seq_in"], seq_dim=cfg.sequence_dim,
        )
        self.model_.load_state_dict(state)
        self.model_.eval()
        return self


def _stack(parts: list[torch.Tensor]) -> torch.Tensor:
    """The rows of every split in one tensor, each part released once copied (the list ends empty)."""
    out = torch.empty((sum(len(p) for p in parts), *parts[0].shape[1:]), dtype=parts[0].dtype)
    row = 0
    while parts:
        part = parts.pop(0)
        out[row : row + len(part)] = part
        row += len(part)
    return out
