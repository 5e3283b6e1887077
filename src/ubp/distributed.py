"""The process group under `torchrun`: who this process is, its device, and the few collectives ubp uses.

`torchrun --nproc_per_node N -m ubp …` starts N copies of the command with RANK, LOCAL_RANK and
WORLD_SIZE in the environment. `session` joins them into one process group (NCCL when the
processes train on GPUs, gloo on CPUs) with one GPU per local rank; without those variables
(a plain `ubp …`) it is a no-op and every helper answers as the only process of a world of one.
Only rank 0 writes shared files (checkpoints, block folders, the entry); the others read them
after a barrier.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from ubp.device import resolve_device

TIMEOUT = timedelta(hours=6)  # a rank may wait this long for rank 0 (e.g. while it writes a large block)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def launched() -> bool:
    """True when started by torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_device(requested: str) -> torch.device:
    """The device of this process: `requested` resolved, and on a GPU the one of this local rank."""
    device = resolve_device(requested)
    if device.type == "cuda" and launched() and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


@contextmanager
def session(requested_device: str = "auto") -> Iterator[torch.device]:
    """Join torchrun's process group for the block's duration (a no-op outside torchrun); yields this process's device."""
    device = local_device(requested_device)
    if not launched() or dist.is_initialized():
        yield device
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", timeout=TIMEOUT)
    try:
        yield device
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (picklable objects)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank."""
    if not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def share(n: int) -> slice:
    """This rank's contiguous share of n rows (the first n % world ranks take one more)."""
    bounds = np.linspace(0, n, world_size() + 1).round().astype(int)
    return slice(int(bounds[rank()]), int(bounds[rank() + 1]))


def gather_rows(rows: np.ndarray) -> np.ndarray | None:
    """Each rank's `rows` (its `share`) stacked in rank order on rank 0; None on the other ranks."""
    if not dist.is_initialized():
        return rows
    parts: list[Any] = [None] * dist.get_world_size() if is_main() else None
    dist.gather_object(rows, parts, dst=0)
    return np.concatenate(parts) if is_main() else None
