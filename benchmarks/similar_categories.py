"""Do `ubp similar`'s neighbours share behaviour? Top-category overlap of heavy buyers' neighbours
against random clients', on one world.

Usage: python benchmarks/similar_categories.py [--data-dir DIR] [--heavy 20] [-k 10] [--top 5]
Fits the default profile on DIR (cached), then for each of the `--heavy` relevant clients with the
most input-window purchases compares their `--top` categories (purchases + cart additions) with
those of their k nearest neighbours and of k random relevant clients with item events. Overlap =
shared top categories / `--top`. Prints the mean overlap of neighbours beside random's and the ratio.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

from ubp.cache import cache_root
from ubp.encoders.base import Run
from ubp.layout import EventType
from ubp.neighbours import neighbours
from ubp.pipeline import ensure_split
from ubp.profile import build_profile
from ubp.recipe import load_recipe


def top_categories(window, top: int) -> dict[int, set[int]]:
    """Each client's `top` most frequent categories over purchases and cart additions."""
    kinds = [EventType.PRODUCT_BUY.value, EventType.ADD_TO_CART.value]
    counts = (window.stream().filter(pl.col("event_type").is_in(kinds) & pl.col("category").is_not_null())
              .group_by("client_id", "category").agg(pl.len().alias("n"))
              .sort(["client_id", "n", "category"], descending=[False, True, False])
              .group_by("client_id", maintain_order=True).agg(pl.col("category").head(top)).collect())
    return {c: set(cats) for c, cats in counts.iter_rows()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path, default=Path("/tmp/worlds/small"))
    ap.add_argument("--heavy", type=int, default=20)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()
    window = ensure_split(args.data_dir)
    with tempfile.TemporaryDirectory() as tmp:
        entry = Path(tmp) / "entry"
        build_profile(window, load_recipe(None), entry, cache_root() / "blocks", Run(seed=0, show_progress=False))
        relevant = window.relevant_clients
        buys = (window.events("product_buy").filter(pl.col("client_id").is_in(relevant.tolist()))
                .group_by("client_id").agg(pl.len().alias("n")).sort(["n", "client_id"], descending=[True, False])
                .collect())
        heavy = buys["client_id"].head(args.heavy).to_numpy()
        table = neighbours(entry, heavy, args.k)
    cats = top_categories(window, args.top)
    pool = np.array([c for c in relevant.tolist() if c in cats])
    rng = np.random.default_rng(0)

    def overlap(a: int, b: int) -> float:
        return len(cats.get(a, set()) & cats.get(b, set())) / args.top

    near, rand = [], []
    for cid in heavy.tolist():
        found = table.filter(pl.col("client_id") == cid)["neighbour_id"].to_list()
        near.append(np.mean([overlap(cid, n) for n in found]))
        rand.append(np.mean([overlap(cid, int(r)) for r in rng.choice(pool[pool != cid], args.k, replace=False)]))
    print(f"{args.data_dir}: default profile, {len(relevant):,} clients; {args.heavy} heaviest buyers "
          f"({int(buys['n'][args.heavy - 1])}-{int(buys['n'][0])} input-window purchases), k={args.k}, top {args.top} categories")
    print(f"top-category overlap  neighbours {np.mean(near):.3f} ± {np.std(near):.3f}   "
          f"random clients with item events {np.mean(rand):.3f} ± {np.std(rand):.3f}   ratio {np.mean(near) / max(np.mean(rand), 1e-9):.1f}x")


if __name__ == "__main__":
    main()
