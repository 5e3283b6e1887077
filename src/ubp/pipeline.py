"""`ubp run`: raw logs (or a generated world) → split → blocks → profile → validate → scores → report.

Every stage writes files and is skipped when its output is already there for the same
inputs (their content, the options and the code version), so a second run after changing one
block refits only that block, a changed log is split and fitted again, a moved data folder
refits nothing, and a killed run resumes where it stopped. The fitted profile is written to
RUN/model (`ubp.model`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, replace
from pathlib import Path


from ubp import store
from ubp.cache import cache_root
from ubp.data.window import InputWindow
from ubp.device import resolve_device
from ubp.encoders.base import Run
from ubp.fingerprint import code_version, digest, files_fingerprint
from ubp.io import write_json
from ubp.layout import TASKS
from ubp.monitor import StageTimes
from ubp.profile import build_profile
from ubp.recipe import Recipe, recipe_for_blocks

log = logging.getLogger(__name__)

REFERENCES = ("random", "baseline", "counts", "oracle")


@dataclass(frozen=True)
class RunOptions:
    out: Path
    data_dir: Path | str | None = None  # None: generate a synthetic world of `scale` under out/world
    scale: str = "small"
    world_seed: int = 1
    mode: str = "quick"
    orders: int = 5
    device: str = "auto"
    tasks: tuple[str, ...] = TASKS
    references: tuple[str, ...] = REFERENCES
    show_progress: bool = False
    cache: Path | None = None  # the fitted-block cache (None: `ubp.cache.cache_root`)


def ensure_world(opts: RunOptions) -> Path:
    """The data directory: the user's, or a synthetic world generated once per scale and seed."""
    if opts.data_dir is not None:  # a URI is refused here: split and evaluation write beside the data
        return store.local_path(store.resolve(opts.data_dir))
    world = Path(opts.out) / "world"
    made = json.loads((world / "world.json").read_text()) if (world / "world.json").is_file() else {}
    if (made.get("scale"), made.get("seed")) != (opts.scale, opts.world_seed):
        from ubp.synth.world import generate

        log.info("generating the %s synthetic world in %s", opts.scale, world)
        generate(world, n_users=None, scale=opts.scale, seed=opts.world_seed, show_progress=opts.show_progress)
    return world


SPLIT_KEY = "split_key.json"


def split_key(data_dir: Path) -> dict:
    """What the split depends on: the raw files' content, the relevant clients and the split's code."""
    from ubp.data.prepare import RELEVANT, raw_fingerprint

    return {"raw": raw_fingerprint(data_dir), "relevant": files_fingerprint(data_dir, [str(RELEVANT)]),
            "code": code_version("ubp.data.split")}


def stamp_split(data_dir: Path, key: dict) -> None:
    """Record beside the input window the key (`split_key`, taken before the split) it was made from."""
    write_json(Path(data_dir) / "input" / SPLIT_KEY, key)


def ensure_split(data_dir: Path | str) -> InputWindow:
    """Prepare and split unless the input window and targets there were made from the raw files as
    they are now (content, not dates) by this code. A window in an object store is read as it is:
    split it where its raw files are, then copy `DIR/input/` there."""
    if store.is_uri(data_dir):
        return InputWindow.open(data_dir)
    data_dir = Path(data_dir)
    stamp = data_dir / "input" / SPLIT_KEY
    key = split_key(data_dir)
    made = (data_dir / "input" / "window" / "window.json").is_file() and (data_dir / "target" / "validation_target.parquet").is_file()
    if not (made and stamp.is_file() and json.loads(stamp.read_text()) == key):
        from ubp.data.split import split

        log.info("%s", split(data_dir).describe())
        stamp_split(data_dir, key)
    return InputWindow.open(data_dir)


def entry_digest(entry_dir: Path) -> str:
    return digest(files_fingerprint(entry_dir, ["client_ids.npy", "embeddings.npy"]), size=8)


def evaluate_cached(data_dir: Path, entry_dir: Path, out: Path, opts: RunOptions) -> dict:
    """Scores of one entry, reusing earlier scores of the same entry bytes, targets, code and settings."""
    from dataclasses import asdict

    from ubp.evaluation.evaluate import evaluate
    from ubp.evaluation.trainer import PROTOCOLS

    targets = sorted(str(p.relative_to(data_dir)) for p in (Path(data_dir) / "target").glob("*") if p.is_file())
    key = {"entry": entry_digest(entry_dir), "mode": opts.mode, "protocol": asdict(PROTOCOLS[opts.mode]),
           "orders": opts.orders, "seeds": "1278+k", "tasks": list(opts.tasks),
           "targets": digest(files_fingerprint(data_dir, [*targets, "input/relevant_clients.npy"])),
           "code": code_version("ubp.evaluation.evaluate")}
    stamp = out / "eval_key.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == key and (out / "scores.json").is_file():
        return json.loads((out / "scores.json").read_text())
    evaluate(
        data_dir, entry_dir, out, tasks=opts.tasks, mode=opts.mode, device=opts.device,
        orders=opts.orders, strict=False, show_progress=opts.show_progress,
    )
    write_json(stamp, key)
    return json.loads((out / "scores.json").read_text())


def evaluation_workers(opts: RunOptions, n_entries: int) -> int:
    """Processes that score entries side by side: on a CPU, as many as the cores hold at the
    protocol's thread count (quick mode uses one thread, so 2 cores score 2 entries at once)."""
    from ubp.evaluation.trainer import PROTOCOLS

    threads = PROTOCOLS[opts.mode].threads
    if resolve_device(opts.device).type != "cpu" or threads is None:
        return 1
    return max(1, min(n_entries, (os.cpu_count() or 1) // threads))


def evaluate_entries(data_dir: Path, entries: dict[str, Path], out: Path, opts: RunOptions,
                     times: StageTimes) -> dict[str, dict]:
    """Scores of every entry, in parallel processes where the cores allow (see `evaluation_workers`)."""
    workers = evaluation_workers(opts, len(entries))
    if workers == 1:
        scores = {}
        for name, entry_dir in entries.items():
            with times.stage(f"evaluate {name}"):
                scores[name] = evaluate_cached(data_dir, entry_dir, out / name, opts)
        return scores
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    quiet = replace(opts, show_progress=False)  # one bar over entries, not one per process
    log.info("scoring %d entries in %d processes", len(entries), workers)
    # spawn, not fork: polars' and torch's thread pools do not survive a fork
    with times.stage(f"evaluate {len(entries)} entries ({workers} processes)"), \
            ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(evaluate_cached, data_dir, d, out / name, quiet): name for name, d in entries.items()}
        done = {}
        for future in tqdm(as_completed(futures), total=len(futures), desc="evaluate", unit="entry",
                           disable=not opts.show_progress):
            done[futures[future]] = future.result()
    return {name: done[name] for name in entries}


def run(opts: RunOptions, recipe: Recipe) -> Path:
    """The whole job; returns the path of the report."""
    from ubp.evaluation.validate import validate_entry
    from ubp.report import write_run_report

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    times = StageTimes()
    with times.stage("world"):
        data_dir = ensure_world(opts)
    with times.stage("prepare+split"):
        window = ensure_split(data_dir)
    run_ctx = Run(seed=recipe.seed, device=str(resolve_device(opts.device)), show_progress=opts.show_progress)
    blocks_dir = cache_root(opts.cache) / "blocks"
    with times.stage("profile"):
        profile = build_profile(window, recipe, out / "entry", blocks_dir, run_ctx, model_dir=out / "model")
    problems = validate_entry(data_dir, out / "entry", relevant_check=True)
    if problems:
        raise RuntimeError("the profile entry is not valid: " + "; ".join(problems))
    entries = {"profile": out / "entry"}
    with times.stage("references"):
        for ref in opts.references:
            if ref == "oracle" and not (data_dir / "oracle" / "embeddings.npy").is_file():
                continue
            ref_dir = out / "references" / ref
            build_profile(window, recipe_for_blocks([ref], seed=recipe.seed), ref_dir, blocks_dir, run_ctx)
            entries[ref] = ref_dir
    scores = evaluate_entries(data_dir, entries, out / "eval", opts, times)
    report = write_run_report(out, profile=profile, scores=scores, stages=times.stages, window=window,
                              entry_dir=out / "entry", mode=opts.mode)
    return report
