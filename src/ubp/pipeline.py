"""`ubp run`: raw logs (or a generated world) → split → blocks → profile → validate → scores → report.

Every stage writes files and is skipped when its output is already there for the same
inputs, so a second run after changing one block refits only that block, and a killed
run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path


from ubp.data.window import InputWindow
from ubp.encoders.base import Run
from ubp.layout import TASKS
from ubp.monitor import StageTimes
from ubp.profile import build_profile
from ubp.recipe import Recipe, recipe_for_blocks

log = logging.getLogger(__name__)

REFERENCES = ("random", "baseline", "counts", "oracle")


@dataclass(frozen=True)
class RunOptions:
    out: Path
    data_dir: Path | None = None  # None: generate a synthetic world of `scale` under out/world
    scale: str = "small"
    world_seed: int = 1
    mode: str = "quick"
    orders: int = 5
    device: str = "auto"
    tasks: tuple[str, ...] = TASKS
    references: tuple[str, ...] = REFERENCES
    user_tasks: tuple[tuple[str, Path], ...] = ()  # (name, label file): tasks of the user's own
    show_progress: bool = False


def ensure_world(opts: RunOptions) -> Path:
    """The data directory: the user's, or a synthetic world generated once."""
    if opts.data_dir is not None:
        return Path(opts.data_dir)
    world = Path(opts.out) / "world"
    if not (world / "world.json").is_file():
        from ubp.synth.world import generate

        log.info("generating the %s synthetic world in %s", opts.scale, world)
        generate(world, n_users=None, scale=opts.scale, seed=opts.world_seed, show_progress=opts.show_progress)
    return world


def ensure_split(data_dir: Path) -> InputWindow:
    """Prepare and split unless an input window and the targets are already there."""
    if not ((data_dir / "input" / "window" / "window.json").is_file() and (data_dir / "target" / "validation_target.parquet").is_file()):
        from ubp.data.split import split

        log.info("%s", split(data_dir).describe())
    return InputWindow.open(data_dir)


def entry_digest(entry_dir: Path) -> str:
    h = hashlib.sha1()
    for name in ("client_ids.npy", "embeddings.npy"):
        with open(entry_dir / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def evaluation_key(entry_dir: Path, opts: RunOptions) -> dict:
    """Everything an entry's scores depend on besides the data dir's targets."""
    from dataclasses import asdict

    from ubp.evaluation.label_cache import file_digest
    from ubp.evaluation.trainer import PROTOCOLS

    return {"entry": entry_digest(entry_dir), "mode": opts.mode, "protocol": asdict(PROTOCOLS[opts.mode]),
            "orders": opts.orders, "seeds": "1278+k", "tasks": list(opts.tasks),
            "user_tasks": {name: file_digest(path) for name, path in opts.user_tasks}}


def evaluate_entries(data_dir: Path, entries: dict[str, Path], outs: dict[str, Path], opts: RunOptions,
                     times: StageTimes) -> dict[str, dict]:
    """Scores of every entry, written under outs[name]: earlier scores of the same entry bytes and
    settings are reused, the others are scored together in one evaluation session."""
    from ubp.evaluation.evaluate import evaluate_many
    from ubp.io import write_json

    keys = {name: evaluation_key(entry_dir, opts) for name, entry_dir in entries.items()}
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
        log.info("evaluation: labels %.1fs, loading %.1fs, training %.1fs (%d networks, %d processes)",
                 session.labels_s, session.loading_s, session.training_s, session.jobs, session.workers)
        for name in stale:
            write_json(outs[name] / "eval_key.json", keys[name])
    return {name: json.loads((outs[name] / "scores.json").read_text()) for name in entries}


def run(opts: RunOptions, recipe: Recipe) -> Path:
    """The whole job; returns the path of the report."""
    from ubp.evaluation.validate import validate_entry
    from ubp.run_report import write_run_report

    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    times = StageTimes()
    with times.stage("world"):
        data_dir = ensure_world(opts)
    with times.stage("prepare+split"):
        window = ensure_split(data_dir)
    run_ctx = Run(seed=recipe.seed, device=_device(opts.device), show_progress=opts.show_progress)
    with times.stage("profile"):
        profile = build_profile(window, recipe, out / "entry", out / "blocks", run_ctx)
    problems = validate_entry(data_dir, out / "entry", relevant_check=True)
    if problems:
        raise ValueError("the profile entry is not valid: " + "; ".join(problems))
    entries = {"profile": out / "entry"}
    with times.stage("references"):
        for ref in opts.references:
            if ref == "oracle" and not (data_dir / "oracle" / "embeddings.npy").is_file():
                continue
            ref_dir = out / "references" / ref
            build_profile(window, recipe_for_blocks([ref], seed=recipe.seed), ref_dir, out / "blocks", run_ctx)
            entries[ref] = ref_dir
    scores = evaluate_entries(data_dir, entries, {name: out / "eval" / name for name in entries}, opts, times)
    report = write_run_report(out, profile=profile, scores=scores, stages=times.stages, window=window,
                              entry_dir=out / "entry", mode=opts.mode)
    return report


def _device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"

