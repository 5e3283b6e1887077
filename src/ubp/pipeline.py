"""`ubp run`: raw logs (or a generated world) → split → blocks → profile → validate → scores → report.

Every stage writes files and is skipped when its output is already there for the same
inputs (their content, the options and the code version), so a second run after changing one
block refits only that block, a changed log is split and fitted again, a moved data folder
refits nothing, and a killed run resumes where it stopped. The data folder may be an
object-store URI (`ubp.store`): the prepared store, the input window and the targets are written
there; the run's own outputs (entry, model, evaluation, report) stay in the local RUN folder. The
fitted profile is written to RUN/model (`ubp.model`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path


from ubp import distributed, store
from ubp.cache import cache_root
from ubp.data.prepare import RELEVANT
from ubp.data.split import SPLIT_KEY
from ubp.data.window import InputWindow
from ubp.encoders.base import Run
from ubp.fingerprint import code_version, digest, file_digest, files_fingerprint
from ubp.io import write_json
from ubp.layout import REFERENCES, TASKS
from ubp.monitor import StageTimes
from ubp.profile import build_profile
from ubp.recipe import Recipe, recipe_for_blocks

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class RunOptions:
    out: Path
    data_dir: Path | str | None = None  # a folder or a store URI; None: generate a synthetic world of `scale` under out/world
    scale: str = "small"
    world_seed: int = 1
    mode: str = "quick"
    orders: int = 5
    device: str = "auto"
    tasks: tuple[str, ...] = TASKS
    references: tuple[str, ...] = REFERENCES
    user_tasks: tuple[tuple[str, Path], ...] = ()  # (name, label file): tasks of the user's own
    show_progress: bool = False
    cache: Path | None = None  # the fitted-block cache (None: `ubp.cache.cache_root`)


def ensure_world(opts: RunOptions) -> Path | str:
    """The data directory: the user's (an absolute path or a URI), or a synthetic world generated
    once per scale and seed."""
    if opts.data_dir is not None:
        location = store.resolve(opts.data_dir)
        return location if store.is_uri(location) else Path(location)
    world = Path(opts.out) / "world"
    made = json.loads((world / "world.json").read_text()) if (world / "world.json").is_file() else {}
    if (made.get("scale"), made.get("seed")) != (opts.scale, opts.world_seed):
        from ubp.synth.world import generate

        log.info("generating the %s synthetic world in %s", opts.scale, world)
        generate(world, n_users=None, scale=opts.scale, seed=opts.world_seed, show_progress=opts.show_progress)
    return world


def split_key(data_dir: Path | str) -> dict:
    """What the split depends on: the raw files' content, the relevant clients and the split's code."""
    from ubp.data.prepare import raw_fingerprint

    return {"raw": raw_fingerprint(data_dir), "relevant": files_fingerprint(data_dir, [RELEVANT]),
            "code": code_version("ubp.data.split")}


def stamp_split(data_dir: Path | str, key: dict) -> None:
    """Record beside the input window the key (`split_key`, taken before the split) it was made
    from; written after everything else of the split, so only a finished split has it."""
    store.write_json(store.join(store.resolve(data_dir), "input", SPLIT_KEY), key)


def ensure_split(data_dir: Path | str) -> InputWindow:
    """Prepare and split unless the input window and targets there were made from the raw files as
    they are now (content, not dates) by this code; locally or in an object store alike."""
    data_dir = store.resolve(data_dir)
    stamp = store.join(data_dir, "input", SPLIT_KEY)
    key = split_key(data_dir)
    made = all(store.is_file(store.join(data_dir, name)) for name in
               ("input/window/window.json", "target/validation_target.parquet", f"input/{SPLIT_KEY}"))
    if not (made and store.read_json(stamp) == key):
        from ubp.data.split import split

        log.info("%s", split(data_dir).describe())
        stamp_split(data_dir, key)
    return InputWindow.open(data_dir)


def shared_split(data_dir: Path | str) -> InputWindow:
    """`ensure_split` by rank 0 while the other ranks wait (under torchrun), then the window on every rank."""
    if distributed.is_main():
        ensure_split(data_dir)
    distributed.barrier()
    return InputWindow.open(data_dir)


def shared_window(opts: RunOptions, times: StageTimes) -> tuple[Path | str, InputWindow]:
    """The data directory and its input window on every rank: rank 0 makes the world and splits it
    (under torchrun the others wait for it)."""
    with times.stage("world"):
        data_dir = ensure_world(opts) if distributed.is_main() else None
    with times.stage("prepare+split"):
        data_dir = distributed.broadcast(data_dir)
        return data_dir, shared_split(data_dir)


def entry_digest(entry_dir: Path) -> str:
    return digest(files_fingerprint(entry_dir, ["client_ids.npy", "embeddings.npy"]), size=8)


def evaluation_files(data_dir: Path | str) -> list[str]:
    """What scoring reads in DIR: the target files and the relevant clients."""
    targets = store.list_files(store.join(data_dir, "target"))
    return [f"target/{name}" for name in targets if "/" not in name] + [RELEVANT]


def evaluation_key(data_dir: Path, entry_dir: Path, opts: RunOptions) -> dict:
    """Everything an entry's scores depend on: entry bytes, targets, user task files, code and settings."""
    from dataclasses import asdict

    from ubp.evaluation.trainer import PROTOCOLS

    return {"entry": entry_digest(entry_dir), "mode": opts.mode, "protocol": asdict(PROTOCOLS[opts.mode]),
            "orders": opts.orders, "seeds": "1278+k", "tasks": list(opts.tasks),
            "targets": digest(files_fingerprint(data_dir, evaluation_files(data_dir))),
            "user_tasks": {name: file_digest(path) for name, path in opts.user_tasks},
            "code": code_version("ubp.evaluation.evaluate")}


def evaluate_entries(data_dir: Path | str, entries: dict[str, Path], outs: dict[str, Path], opts: RunOptions,
                     times: StageTimes) -> dict[str, dict]:
    """Scores of every entry, written under outs[name]: earlier scores of the same entry bytes and
    settings are reused, the others are scored together in one evaluation session (reading a
    store's targets from a local copy)."""
    with store.local_copy(data_dir, evaluation_files(data_dir)) as local:
        return _evaluate_entries(local, entries, outs, opts, times)


def _evaluate_entries(data_dir: Path, entries: dict[str, Path], outs: dict[str, Path], opts: RunOptions,
                      times: StageTimes) -> dict[str, dict]:
    from ubp.evaluation.evaluate import evaluate_many

    keys = {name: evaluation_key(data_dir, entry_dir, opts) for name, entry_dir in entries.items()}
    stale = {}
    for name, entry_dir in entries.items():
        stamp = outs[name] / "eval_key.json"
        if not (stamp.is_file() and json.loads(stamp.read_text()) == keys[name] and (outs[name] / "scores.json").is_file()):
            stale[name] = entry_dir
    if stale:
        with times.stage(f"evaluate {len(stale)} entries"):
            _, session = evaluate_many(data_dir, stale, {name: outs[name] for name in stale}, tasks=opts.tasks,
                                       mode=opts.mode, device=opts.device, orders=opts.orders,
                                       user_tasks=dict(opts.user_tasks), show_progress=opts.show_progress)
        log.info("evaluation: labels %.1fs, loading %.1fs, training %.1fs (%d networks, %d processes, "
                 "%.0f CPU s in the networks)", session.labels_s, session.loading_s, session.training_s, session.jobs,
                 session.workers, session.network_cpu_s)
        for name in stale:
            write_json(outs[name] / "eval_key.json", keys[name])
    return {name: json.loads((outs[name] / "scores.json").read_text()) for name in entries}


def run(opts: RunOptions, recipe: Recipe) -> Path:
    """The whole job; returns the path of the report."""
    from ubp.evaluation.validate import validate_entry
    from ubp.report import write_run_report

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    times = StageTimes()
    data_dir, window = shared_window(opts, times)
    run_ctx = Run(seed=recipe.seed, device=str(distributed.local_device(opts.device)), show_progress=opts.show_progress)
    blocks_dir = cache_root(opts.cache) / "blocks"
    with times.stage("profile"):
        profile = build_profile(window, recipe, out / "entry", blocks_dir, run_ctx, model_dir=out / "model")
    problems = []
    if distributed.is_main():
        with store.local_copy(data_dir, [RELEVANT]) as local:
            problems = validate_entry(local, out / "entry", relevant_check=True)
    if problems:
        raise RuntimeError("the profile entry is not valid: " + "; ".join(problems))
    entries = {"profile": out / "entry"}
    with times.stage("references"):
        for ref in opts.references:
            if ref == "oracle" and not store.is_file(store.join(data_dir, "oracle", "embeddings.npy")):
                continue
            ref_dir = out / "references" / ref
            build_profile(window, recipe_for_blocks([ref], seed=recipe.seed), ref_dir, blocks_dir, run_ctx)
            entries[ref] = ref_dir
    if not distributed.is_main():  # the other ranks' work (training, embedding shares) is done
        return out / "report.html"
    scores = evaluate_entries(data_dir, entries, {name: out / "eval" / name for name in entries}, opts, times)
    report = write_run_report(out, profile=profile, scores=scores, stages=times.stages, window=window,
                              entry_dir=out / "entry", mode=opts.mode)
    return report
