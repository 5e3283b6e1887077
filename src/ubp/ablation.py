"""`ubp ablate`: leave-one-block-out (and per-objective or per-head variants) on the same split.

Each variant is a recipe; blocks whose options did not change come from the fit cache, so
an ablation costs a refit only where options differ, and all variants are scored in one
evaluation session.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from ubp import distributed
from ubp.cache import cache_root
from ubp.encoders.base import Run
from ubp.encoders.registry import block_options
from ubp.encoders.sequence.config import OBJECTIVES
from ubp.io import write_text
from ubp.monitor import StageTimes
from ubp.pipeline import RunOptions, evaluate_entries, shared_window
from ubp.profile import build_profile
from ubp.recipe import Recipe
from ubp.report import task_means, write_ablation_report

def _sequence_switches(config: Any) -> dict[str, dict[str, object]]:
    """Each objective of the event Transformer at weight 0 (none for one already off)."""
    return {o.upper(): {f"{o}_weight": 0.0} for o in OBJECTIVES if getattr(config, f"{o}_weight") != 0.0}


def _dcn_switches(config: Any) -> dict[str, dict[str, object]]:
    """Each head of the inner split left out (none when only one is left)."""
    tasks = list(config.inner_tasks)
    if len(tasks) < 2:
        return {}
    return {t.upper(): {"inner_tasks": [u for u in tasks if u != t]} for t in tasks}


# Objectives a block can switch off one at a time: block → its resolved options → objective → the
# options that switch it off. An objective already off gets no variant, as it would only repeat "all".
OBJECTIVE_SWITCHES: dict[str, Callable[[Any], dict[str, dict[str, object]]]] = {
    "sequence": _sequence_switches,
    "dcn": _dcn_switches,
}


def variants(recipe: Recipe) -> dict[str, Recipe]:
    """The full recipe, each block left out, and each switchable objective left out."""
    out = {"all": recipe}
    if len(recipe.blocks) > 1:
        for block in recipe.blocks:
            out[f"without {block.name}"] = replace(recipe, blocks=tuple(b for b in recipe.blocks if b is not block))
    for i, block in enumerate(recipe.blocks):
        if block.name not in OBJECTIVE_SWITCHES:
            continue
        switches = OBJECTIVE_SWITCHES[block.name](block_options(block.name, block.options))
        for objective, off in switches.items():
            changed = replace(block, options={**block.options, **off})
            blocks = recipe.blocks[:i] + (changed,) + recipe.blocks[i + 1 :]
            out[f"{block.name} without {objective}"] = replace(recipe, blocks=blocks)
    return out


def ablate(opts: RunOptions, recipe: Recipe) -> Path:
    """Score every variant; write ablation.json and ablation.html under opts.out."""
    out = Path(opts.out)
    data_dir, window = shared_window(opts, StageTimes())
    run = Run(seed=recipe.seed, device=str(distributed.local_device(opts.device)), show_progress=opts.show_progress)
    entries: dict[str, Path] = {}
    for name, variant in variants(recipe).items():
        entries[name] = out / "ablation" / name.replace(" ", "_") / "entry"
        build_profile(window, variant, entries[name], cache_root(opts.cache) / "blocks", run)
    if not distributed.is_main():  # under torchrun the other ranks only help fit and embed
        return out / "ablation.html"
    outs = {name: entry.parent / "eval" for name, entry in entries.items()}
    table = evaluate_entries(data_dir, entries, outs, opts, StageTimes())
    means = {name: task_means(scores) for name, scores in table.items()}
    write_text(out / "ablation.json", json.dumps(means, indent=1))  # row and task order kept
    write_ablation_report(out / "ablation.html", means, opts.mode, opts.orders)
    return out / "ablation.html"
