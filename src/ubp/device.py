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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX), where bf16 autocast makes a
    Transformer step faster; elsewhere it is emulated and slower than float32."""
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
