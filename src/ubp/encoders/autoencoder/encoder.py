"""The `autoencoder` block: another block's output compressed by a denoising residual autoencoder.

The input block (default "features") is created from the registry and fitted inside `fit`; its
rows for the fit clients are the training set. Training: two noisy copies of each user's
standardised row (Gaussian noise, σ annealed 0.10 → 0.02 over the epochs), both reconstruct the
clean row, their latents are pulled together by InfoNCE. The block is the latent of the clean row
(eval mode, no noise).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ubp.chunks import spans
from ubp.errors import InputError
from ubp.config import from_dict
from ubp.data.window import InputWindow
from ubp.encoders.autoencoder.losses import autoencoder_loss, noise_sigma
from ubp.encoders.autoencoder.model import ResidualAutoencoder
from ubp.encoders.base import Run, check_fitted
from ubp.encoders.options import AutoencoderOptions
from ubp.encoders.registry import create
from ubp.encoders.shard_tables import sample_fit_clients
from ubp.encoders.saved_network import read_nested, read_network, write_nested, write_network
from ubp.io import atomic_dir
from ubp.standardize import Standardizer
from ubp.training import choose_device, fit_loop, seed_everything

TRANSFORM_BATCH = 65_536


class AutoencoderEncoder:
    name: ClassVar[str] = "autoencoder"
    preferred_normalise: ClassVar[str] = "standardize"  # latent columns on the network's own scale

    def __init__(self, options: AutoencoderOptions | None = None) -> None:
        self.config = options or AutoencoderOptions()

    def fit(self, window: InputWindow, run: Run) -> "AutoencoderEncoder":
        cfg = self.config
        self.input_ = create(cfg.input_block, **cfg.input_options).fit(window, run)
        clients = sample_fit_clients(window, cfg.max_users, run.seed)
        x = torch.from_numpy(np.ascontiguousarray(self.input_.transform(window, clients), dtype=np.float32))
        if len(x) < 2:
            raise InputError(f"{window.root}: autoencoder needs at least 2 clients to train on, the window has {len(x)}")
        device = choose_device(run.device)
        seed_everything(run.seed)
        model = ResidualAutoencoder(x.shape[1], cfg.hidden, cfg.latent)
        scaler = Standardizer.fit(x.numpy(), floor=1e-6, dtype=np.float32)  # the model's input buffers
        model.mean.copy_(torch.from_numpy(scaler.mean))
        model.std.copy_(torch.from_numpy(scaler.std))
        model.to(device).train()
        xs = model.standardize(x.to(device))
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

        def step(rows: torch.Tensor, epoch: int) -> torch.Tensor:
            xb = xs[rows.to(device)]  # (B, n_in)
            sigma = noise_sigma(epoch, cfg.epochs, cfg.sigma_start, cfg.sigma_end)
            views = torch.cat([xb, xb]) + sigma * torch.randn(2 * len(xb), xb.shape[1], device=device)
            z = model.encode(views)  # (2B, latent): one BatchNorm batch for both views
            recon = model.decode(z)
            loss = autoencoder_loss(
                xb, recon.chunk(2), z.chunk(2), cfg.lambda_con, cfg.lambda_l2, cfg.temperature
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss

        self.last_loss_ = fit_loop(self.name, len(x), cfg, run, step, {"model": model, "opt": opt}, (x,))
        self.model_ = model.cpu().eval()
        return self

    def transform(self, window: InputWindow, client_ids: np.ndarray) -> np.ndarray:
        check_fitted(self, "model_")
        x = np.asarray(self.input_.transform(window, client_ids), dtype=np.float32)
        out = np.empty((len(x), self.config.latent), dtype=np.float32)
        with torch.no_grad():
            for rows in spans(len(x), TRANSFORM_BATCH):
                xb = torch.from_numpy(x[rows])
                out[rows] = self.model_.encode(self.model_.standardize(xb)).numpy()
        return out

    def save(self, path: Path) -> None:
        with atomic_dir(Path(path)) as tmp:
            params = {"config": dataclasses.asdict(self.config), "n_in": int(self.model_.mean.numel())}
            write_network(tmp, params, self.model_)
            write_nested(tmp, {"input": self.input_})

    @classmethod
    def load(cls, path: Path) -> "AutoencoderEncoder":
        params, state = read_network(path)
        self = cls(from_dict(AutoencoderOptions, params["config"], str(path)))
        self.model_ = ResidualAutoencoder(params["n_in"], self.config.hidden, self.config.latent)
        self.model_.load_state_dict(state)
        self.model_.eval()
        self.input_ = read_nested(path, {"input": self.config.input_block})["input"]
        return self


