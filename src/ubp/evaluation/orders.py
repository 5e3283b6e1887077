"""Row orders and seeds of the downstream runs an entry is scored with.

The organisers' loaders do not shuffle, so an entry's row order moves its scores (docs/protocol.md
§5). With `orders=1` the entry is scored in its own order with their seed, exactly what their
pipeline would do with it. With `orders=K>1` it is scored K times: run k in the behaviour-free
order `hash_order(client_ids, salt=k)`, whatever order the file has, and with the network
initialised from seed 1278 + k. Every entry with the same clients then meets the same K runs, so
entries from any writer compare fairly. The seed varies too because the fixed seed alone does not
fix the network: its first layer's shape follows the entry's width, so two entries of different
widths start from unrelated weights. Measured on the small world (quick mode): the counts entry
with 64 all-zero columns appended, which holds exactly the same information, scored new-SKU .579
against .593 over the same three orders. A spread over orders alone hides that. (`ubp` itself
writes entries in the salt-0 order, so for them run 0 is the organisers' run.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ubp.errors import UsageError
from ubp.hashing import hash_order


@dataclass(frozen=True)
class ScoringRun:
    """One training of the downstream network: a row order (a permutation of entry rows) and a seed."""

    name: str
    perm: np.ndarray
    seed: int


def scoring_runs(client_ids: np.ndarray, k: int, base_seed: int) -> list[ScoringRun]:
    """The runs an entry is scored with; see the module docstring."""
    if k < 1:
        raise UsageError(f"orders must be at least 1, got {k}")
    if k == 1:
        return [ScoringRun("entry", np.arange(len(client_ids)), base_seed)]
    return [ScoringRun(f"hash-salt-{s}", hash_order(client_ids, salt=s), base_seed + s) for s in range(k)]
