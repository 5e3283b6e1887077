"""Candidate blocks scored before anyone writes an encoder for them: each is a matrix computed
here from a split data dir's input events, saved as a folder that `blend_cached.py` takes as a
part (pass it under a registered block's name with an explicit normalisation, e.g.
`counts=OUT/raster:32:1:principal`).

    raster      log1p events per day over the last 56 days, and per event type per week over
                the last 21 weeks (161 columns): the activity curve a churn or conversion
                forecast reads
    taste_cat   TF-IDF of log1p(buy ×3 + cart ×2 + removal ×1) per client × category, truncated
                SVD to 48: a client's tastes smoothed through the categories' co-occurrence
    taste_sku   the same over client × SKU (buys and cart additions)
    taste_url   the same over client × URL (page visits)
    parts:FOLDER:K  a cached `sequence` read-out (e.g. from `reembed_sequence.py`) compressed part by
                part: the first K principal components of each of its 128-column states

    python benchmarks/candidate_blocks.py --data-dir W --like CACHE/blocks/features-… --out O raster taste_cat

Rows follow the client order of `--like` (any cached block of the same run), so the parts blend.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl
import scipy.sparse as sp
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer

from ubp.io import save_npy
from ubp.layout import EVENT_TYPES

DAY_S = 86_400


def events(data_dir: Path, ids: np.ndarray) -> dict[str, pl.DataFrame]:
    """Each event type's input events of `ids`, with `r`, the client's row."""
    rows = pl.DataFrame({"client_id": ids, "r": np.arange(len(ids))})
    return {t: pl.read_parquet(data_dir / "input" / f"{t}.parquet").join(rows, on="client_id") for t in EVENT_TYPES}


def age(col: str, unit_s: int, cutoff: np.datetime64) -> pl.Expr:
    """Whole `unit_s` periods from `col` to the cutoff."""
    return ((pl.lit(cutoff) - pl.col(col)).dt.total_seconds() // unit_s).cast(pl.Int64)


def binned(frame: pl.DataFrame, n_rows: int, n_bins: int) -> np.ndarray:
    """log1p of the events per (row, bin) for bins 0 … n_bins − 1."""
    out = np.zeros((n_rows, n_bins))
    g = frame.filter(pl.col("b") < n_bins).group_by("r", "b").len()
    np.add.at(out, (g["r"].to_numpy(), g["b"].to_numpy()), g["len"].to_numpy())
    return np.log1p(out)


def raster(ev: dict[str, pl.DataFrame], n: int, cutoff: np.datetime64) -> np.ndarray:
    every = pl.concat([e.select("r", "timestamp") for e in ev.values()]).with_columns(b=age("timestamp", DAY_S, cutoff))
    weekly = [binned(e.with_columns(b=age("timestamp", 7 * DAY_S, cutoff)), n, 21) for e in ev.values()]
    return np.concatenate([binned(every, n, 56), *weekly], axis=1)


def taste(pairs: pl.DataFrame, n: int, column: str) -> np.ndarray:
    """TF-IDF of log1p(weighted counts) per client × `column`, truncated SVD to 48."""
    keys, col = np.unique(pairs[column].to_numpy(), return_inverse=True)
    x = sp.csr_matrix((pairs["w"].to_numpy().astype(np.float64), (pairs["r"].to_numpy(), col)), shape=(n, len(keys)))
    x.data = np.log1p(x.data)
    return TruncatedSVD(48, random_state=0).fit_transform(TfidfTransformer().fit_transform(x))


def by_parts(folder: Path, k: int, ids: np.ndarray, part: int = 128) -> np.ndarray:
    if not np.array_equal(np.load(folder / "client_ids.npy"), ids):
        raise SystemExit(f"{folder}: its clients differ from --like's")
    m = np.load(folder / "matrix.npy").astype(np.float64)
    out = []
    for p in range(m.shape[1] // part):
        x = m[:, p * part : (p + 1) * part]
        out.append(PCA(k, random_state=0).fit_transform((x - x.mean(0)) / (x.std(0) + 1e-6)))
    return np.concatenate(out, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--like", type=Path, required=True, help="a cached block folder whose client order to follow")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("blocks", nargs="+", help="raster, taste_cat, taste_sku, taste_url or parts:FOLDER:K")
    args = ap.parse_args()
    ids = np.load(args.like / "client_ids.npy")
    cutoff = json.loads((args.data_dir / "input" / "window" / "window.json").read_text())["cutoff"]
    ev = events(args.data_dir, ids)
    props = pl.read_parquet(args.data_dir / "product_properties.parquet").select("sku", "category")
    item = {"product_buy": 3.0, "add_to_cart": 2.0, "remove_from_cart": 1.0}
    for name in args.blocks:
        if name == "raster":
            m = raster(ev, len(ids), np.datetime64(cutoff))
        elif name == "taste_cat":
            pairs = pl.concat([ev[t].join(props, on="sku").select("r", "category", pl.lit(w).alias("w")) for t, w in item.items()])
            m = taste(pairs, len(ids), "category")
        elif name == "taste_sku":
            m = taste(pl.concat([ev[t].select("r", "sku", pl.lit(1.0).alias("w")) for t in ("product_buy", "add_to_cart")]), len(ids), "sku")
        elif name == "taste_url":
            m = taste(ev["page_visit"].select("r", "url", pl.lit(1.0).alias("w")), len(ids), "url")
        elif name.startswith("parts:"):
            _, folder, k = name.split(":")
            m, name = by_parts(Path(folder), int(k), ids), f"parts{k}"
        else:
            raise SystemExit(f"unknown candidate {name!r}")
        save_npy(args.out / name / "client_ids.npy", ids)
        save_npy(args.out / name / "matrix.npy", m.astype(np.float32))
        print(f"{name}: {m.shape[1]} columns")


if __name__ == "__main__":
    main()
