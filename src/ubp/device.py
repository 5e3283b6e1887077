"""The one place a device name becomes a torch device."""

from __future__ import annotations

import torch

from ubp.errors import UsageError


def resolve_device(requested: str = "auto") -> torch.device:
    """'auto' → the GPU when torch sees one, else the CPU; an unavailable GPU is the user's error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except RuntimeError as e:
        raise UsageError(f"unknown device {requested!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {requested!r} requested but torch sees no CUDA GPU; use 'cpu' or 'auto'")
    return device
