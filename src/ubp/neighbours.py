"""`ubp similar`: cosine nearest neighbours of clients in an entry, with faiss.

Rows are L2-normalised, so inner product is cosine. Up to `EXACT_MAX` rows the index is exact
(`IndexFlatIP`); beyond, an HNSW graph (`IndexHNSWFlat`, approximate, built once). The index is
saved beside the entry under a name holding a digest of the entry's bytes: a rewritten entry
gets a new index, an unchanged one is never indexed twice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from ubp.entry import PARQUET, read_entry
from ubp.errors import input_error
from ubp.fingerprint import digest, files_fingerprint
from ubp.io import write_with

log = logging.getLogger(__name__)

EXACT_MAX = 200_000  # rows searched exactly; beyond, HNSW
HNSW_M = 32  # graph degree
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


def unit_rows(x: np.ndarray) -> np.ndarray:
    """float32 rows scaled to norm 1 (all-zero rows stay zero: similarity 0 to everyone)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def build_index(x: np.ndarray, exact_max: int = EXACT_MAX):
    """An inner-product index over unit rows `x`: exact up to `exact_max` rows, HNSW beyond."""
    import faiss

    d = x.shape[1]
    if len(x) <= exact_max:
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
    index.add(x)
    return index


def entry_index(entry_dir: Path):
    """(index, client_ids, unit rows) of an entry: the saved index when it matches the entry's bytes."""
    import faiss

    entry_dir = Path(entry_dir)
    key = digest(files_fingerprint(entry_dir, ["client_ids.npy", "embeddings.npy", PARQUET]))
    ids, emb = read_entry(entry_dir)
    x = unit_rows(emb)
    path = entry_dir / f"neighbours-{key}.faiss"
    if path.is_file():
        index = faiss.read_index(str(path))
        if getattr(index, "hnsw", None) is not None:
            index.hnsw.efSearch = HNSW_EF_SEARCH
        return index, ids, x
    log.info("indexing %d rows of %s (%s)", len(x), entry_dir, "exact" if len(x) <= EXACT_MAX else "HNSW")
    index = build_index(x)
    for old in entry_dir.glob("neighbours-*.faiss"):  # an index of an earlier version of the entry
        old.unlink(missing_ok=True)
    write_with(path, lambda tmp: faiss.write_index(index, str(tmp)))
    return index, ids, x


def neighbours(entry_dir: Path, query_ids: np.ndarray, k: int = 10) -> pl.DataFrame:
    """The `k` most cosine-similar other clients of each query: client_id, rank, neighbour_id, similarity."""
    index, ids, x = entry_index(entry_dir)
    order = np.argsort(ids, kind="stable")
    pos = np.minimum(np.searchsorted(ids[order], query_ids), len(ids) - 1)
    found = ids[order][pos] == query_ids
    if not found.all():
        raise input_error(Path(entry_dir) / "client_ids.npy", f"{int((~found).sum())} asked client ids are not in the entry",
                          example=int(query_ids[~found][0]))
    rows = order[pos]
    sims, hits = index.search(x[rows], min(k + 1, len(ids)))
    out = {"client_id": [], "rank": [], "neighbour_id": [], "similarity": []}
    for q, row in enumerate(rows):
        keep = [(h, s) for h, s in zip(hits[q], sims[q]) if h >= 0 and h != row][:k]
        for rank, (h, s) in enumerate(keep, 1):
            out["client_id"].append(int(ids[row]))
            out["rank"].append(rank)
            out["neighbour_id"].append(int(ids[h]))
            out["similarity"].append(float(s))
    return pl.DataFrame(out, schema={"client_id": pl.Int64, "rank": pl.Int32, "neighbour_id": pl.Int64, "similarity": pl.Float32})
