"""Blends of already fitted blocks, without refitting: each entry is the concatenation of cached
block matrices (folders of a profile cache's `blocks/`, as `ubp run` leaves them), each normalised,
compressed and weighted as a recipe would (`ubp.profile.normalise`), then scored.

Unlike a recipe, a blend may hold one block twice (two seeds of the same block: a seed
ensemble), which is what this script is for; any recipe's blend can be reproduced with it too.

    python benchmarks/blend_cached.py --data-dir W --out /tmp/blends --orders 5 \\
        --entry best features=CACHE/blocks/features-…:64:2 dcn=CACHE/blocks/dcn-…:32:2 \\
                     sequence=CACHE/blocks/sequence-…:32:2 \\
        --entry best+seq1 … sequence=CACHE/blocks/sequence-<seed 1>:32:2

A part is BLOCK=FOLDER:PCA:WEIGHT[:NORMALISE]; PCA 0 keeps every column, NORMALISE defaults to
the block's own (`auto`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ubp.entry import write_entry
from ubp.evaluation.evaluate import evaluate_many
from ubp.layout import TASKS
from ubp.profile import normalise
from ubp.recipe import BlockSpec


def parse_part(text: str) -> tuple[BlockSpec, Path]:
    """BLOCK=FOLDER:PCA:WEIGHT[:NORMALISE] as the spec to normalise with and the cached folder."""
    block, _, rest = text.partition("=")
    folder, pca, weight, *how = rest.split(":")
    spec = BlockSpec(block, float(weight), how[0] if how else "auto", int(pca) or None)
    return spec, Path(folder)


def blend_entry(parts: list[tuple[BlockSpec, Path]], out: Path, seed: int) -> int:
    """Write the blend of `parts` as an entry in `out`; its width."""
    ids, columns = None, []
    for spec, folder in parts:
        these = np.load(folder / "client_ids.npy")
        if ids is not None and not np.array_equal(ids, these):
            raise SystemExit(f"{folder}: its clients differ from the first part's")
        ids = these
        columns.append(normalise(np.load(folder / "matrix.npy"), spec, seed)[0])
    matrix = np.concatenate(columns, axis=1)
    write_entry(out, ids, matrix)
    return matrix.shape[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--entry", nargs="+", action="append", required=True, metavar=("NAME", "PART"),
                    help="an entry's name, then its parts (BLOCK=FOLDER:PCA:WEIGHT[:NORMALISE])")
    ap.add_argument("--mode", choices=("quick", "full"), default="quick")
    ap.add_argument("--orders", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0, help="the PCA's seed, as a recipe's")
    ap.add_argument("--tasks", nargs="*", choices=TASKS, default=list(TASKS), help="built-in tasks to score")
    ap.add_argument("--task", action="append", default=[], metavar="NAME=FILE.parquet",
                    help="a task of your own (`ubp task-labels`), scored beside the built-in ones")
    args = ap.parse_args()
    user_tasks = {name: Path(file) for name, _, file in (t.partition("=") for t in args.task)}
    entries = {}
    for name, *parts in args.entry:
        width = blend_entry([parse_part(p) for p in parts], args.out / "entries" / name, args.seed)
        entries[name] = args.out / "entries" / name
        print(f"{name}: {width} columns")
    results, _ = evaluate_many(args.data_dir, entries, {n: args.out / "scores" / n for n in entries},
                               tasks=tuple(args.tasks), mode=args.mode, orders=args.orders, user_tasks=user_tasks)
    names = [*args.tasks, *user_tasks]
    print(f"{'entry':24s} " + " ".join(f"{t.removeprefix('propensity_'):>10s}" for t in names) + "    average")
    for name, result in results.items():
        scores = [result.scores["tasks"][t]["score"] for t in names]
        print(f"{name:24s} " + " ".join(f"{s:10.4f}" for s in scores) + f" {np.mean(scores):10.4f}")


if __name__ == "__main__":
    main()
