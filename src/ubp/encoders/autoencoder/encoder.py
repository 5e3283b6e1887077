"""The `autoencoder` block: another block's output compressed by a denoising residual autoencoder.

The input block (default "features") is created from the registry and fitted inside `fit`; its
rows for the fit clients are the training set. Training: two noisy copies of each user's
standardised row (Gaussian noise, σ annealed 0.10 → 0.02 over the epochs), both reconstruct the
clean row, their latents are pulled together by InfoNCE. The block is the latent of the clean row
(eval mode, no noise).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import torch

from ubp.config import from_dict
from ubp.data.window import InputWindow
from ubp.encoders.autoencoder.losses import autoencoder_loss, noise_sigma
from ubp.encoders.autoencoder.model import ResidualAutoencoder
from ubp.encoders.base import Run
from ubp.encoders.registry import REGISTRY, create
from ubp.encoders.tabular import fit_clients
from ubp.device import resolve_device
from ubp.io import atomic_dir
from ubp.training import fit_rows, seed_everything

TRANSFORM_BATCH = 65_536


@dataclass(frozen=True)
class AutoencoderConfig:
    input_block: str = "features"
    input_options: dict = field(default_factory=dict)
    hidden: tuple[int, ...] = (512, 256, 128, 64)
    latent: int = 64
    epochs: int = 20
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lambda_con: float = 0.1
    lambda_l2: float = 1e-3
    temperature: float = 0.1
    sigma_start: float = 0.10
    sigma_end: float = 0.02
    max_users: int | None = None  # train on a seeded sample of the fit clients (None: all)
    checkpoint_every: int = 1000  # steps between checkpoints (also one at each epoch end)


class AutoencoderEncoder:
    name: ClassVar[str] = "autoencoder"

    def __init__(self, **options: Any) -> None:
        self.config = from_dict(AutoencoderConfig, options, "autoencoder")

    def fit(self, window: InputWindow, run: Run) -> "AutoencoderEncoder":
        cfg = self.config
        self.input_ = create(cfg.input_block, **cfg.input_options).fit(window, run)
        clients = _train_clients(window, cfg.max_users, run.seed)
        x = torch.from_numpy(np.ascontiguousarray(self.input_.transform(window, clients), dtype=np.float32))
        if len(x) < 2:
            raise ValueError(f"autoencoder: needs at least 2 clients to train on, the window has {len(x)}")
        device = resolve_device(run.device)
        seed_everything(run.seed)
        model = ResidualAutoencoder(x.shape[1], cfg.hidden, cfg.latent)
        std = x.std(0, unbiased=False)
        model.mean.copy_(x.mean(0))
        model.std.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)))
        model.to(device).train()
        xs = model.standardize(x.to(device))
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

        def step(rows: torch.Tensor, epoch: int) -> torch.Tensor:
            xb = xs[rows.to(device)]  # (B, n_in)
            sigma = noise_sigma(epoch, cfg.epochs, cfg.sigma_start, cfg.sigma_end)
            views = torch.cat([xb, xb]) + sigma * torch.randn(2 * len(xb), xb.shape[1], device=device)
            z = model.encode(views)  # (2B, latent): one BatchNorm batch for both views
            recon = model.decode(z)
            return autoencoder_loss(xb, recon.chunk(2), z.chunk(2), cfg.lambda_con, cfg.lambda_l2, cfg.temperature)

        self.last_loss_ = fit_rows(self.name, len(x), cfg, run, step, [opt], {"model": model, "opt": opt}, (x,))
        self.model_ = model.cpu().eval()
        return self

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        x = np.asarray(self.input_.transform(window, client_ids), dtype=np.float32)
        out = np.empty((len(x), self.config.latent), dtype=np.float32)
        with torch.no_grad():
            for lo in range(0, len(x), TRANSFORM_BATCH):
                xb = torch.from_numpy(x[lo : lo + TRANSFORM_BATCH])
                out[lo : lo + len(xb)] = self.model_.encode(self.model_.standardize(xb)).numpy()
        return out

    def save(self, path: Path) -> None:
        with atomic_dir(Path(path)) as tmp:
            params = {"config": dataclasses.asdict(self.config), "n_in": int(self.model_.mean.numel())}
            (tmp / "config.json").write_text(json.dumps(params, indent=1))
            torch.save(self.model_.state_dict(), tmp / "model.pt")
            self.input_.save(tmp / "input")

    @classmethod
    def load(cls, path: Path) -> "AutoencoderEncoder":
        path = Path(path)
        params = json.loads((path / "config.json").read_text())
        self = cls(**params["config"])
        cfg = self.config
        self.model_ = ResidualAutoencoder(params["n_in"], cfg.hidden, cfg.latent)
        self.model_.load_state_dict(torch.load(path / "model.pt", map_location="cpu", weights_only=True))
        self.model_.eval()
        self.input_ = REGISTRY[cfg.input_block].load(path / "input")
        return self


def _train_clients(window: InputWindow, max_users: int | None, seed: int) -> np.ndarray:
    """The fit clients (relevant ones, else everyone with an event), optionally a seeded sample of them."""
    clients = fit_clients(window)
    if clients is None:
        clients = window.stream().select(pl.col("client_id").unique()).collect()["client_id"].to_numpy()
    clients = np.sort(np.asarray(clients, dtype=np.int64))
    if max_users is not None and len(clients) > max_users:
        pick = np.random.default_rng(seed).choice(len(clients), size=max_users, replace=False)
        clients = clients[np.sort(pick)]
    return clients
