"""`ubp similar`'s two indexes at scale: exact (IndexFlatIP) against HNSW, on unit rows.

Usage: python benchmarks/bench_similar.py [--n 1000000] [--dim 64] [--queries 1000]
Rows are a Gaussian mixture (profiles cluster; uniform noise would make every neighbour list
arbitrary). Prints the build time of each index, queries per second, recall@10 of HNSW against
the exact top 10 and the peak RSS. The exact index is the reference measured in the same run.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from ubp.neighbours import HNSW_EF_SEARCH, build_index, unit_rows


def rows(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """n unit rows around n/1000 centres, built a chunk at a time (float32 only)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(n // 1000, 1), dim)).astype(np.float32) * 2
    out = np.empty((n, dim), dtype=np.float32)
    for lo in range(0, n, 100_000):
        hi = min(lo + 100_000, n)
        out[lo:hi] = centres[rng.integers(0, len(centres), hi - lo)] + rng.normal(size=(hi - lo, dim)).astype(np.float32)
    return unit_rows(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("-k", type=int, default=10)
    args = ap.parse_args()
    import faiss

    x = rows(args.n, args.dim)
    q = x[np.random.default_rng(1).choice(len(x), args.queries, replace=False)]
    print(f"{args.n:,} rows x {args.dim}, {args.queries} queries, k={args.k}, faiss {faiss.__version__}, "
          f"{faiss.omp_get_max_threads()} threads (shared machine: compare the two rows, not absolute times)")
    results = {}
    for name, exact_max in (("exact", args.n), ("hnsw", 0)):
        t0, cpu0 = time.perf_counter(), time.process_time()
        index = build_index(x, exact_max=exact_max)
        built, built_cpu = time.perf_counter() - t0, time.process_time() - cpu0
        t0 = time.perf_counter()
        _, hits = index.search(q, args.k + 1)
        searched = time.perf_counter() - t0
        results[name] = hits
        print(f"{name:6s} build {built:8.1f} s ({built_cpu:8.1f} s of CPU)   {args.queries / searched:10,.0f} queries/s")
    recall = np.mean([len(set(a) & set(b)) / len(a) for a, b in zip(results["exact"][:, : args.k], results["hnsw"][:, : args.k])])
    print(f"HNSW recall@{args.k} against exact: {recall:.4f} (M=32, efConstruction=80, efSearch={HNSW_EF_SEARCH})")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
