"""`ubp ablate`: leave-one-block-out (and per-objective variants) on the same split.

Each variant is a recipe; blocks whose options did not change come from the fit cache, so
an ablation costs one evaluation per variant, plus a refit only where options differ.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ubp.cache import cache_root
from ubp.device import resolve_device
from ubp.encoders.base import Run
from ubp.encoders.registry import block_options
from ubp.encoders.sequence.config import OBJECTIVES
from ubp.io import write_text
from ubp.pipeline import RunOptions, ensure_split, ensure_world, evaluate_cached
from ubp.profile import build_profile
from ubp.recipe import Recipe
from ubp.report import task_means, write_ablation_report

# Objectives a block can switch off one at a time: block → objective → (option, value when off).
# A block with switches exposes its resolved options as `.config`; an objective already off there
# (future_window is off by default) gets no variant, as it would only repeat "all".
OBJECTIVE_SWITCHES: dict[str, dict[str, tuple[str, object]]] = {
    "sequence": {f"{o.upper()}": (f"{o}_weight", 0.0) for o in OBJECTIVES},
}


def variants(recipe: Recipe) -> dict[str, Recipe]:
    """The full recipe, each block left out, and each switchable objective left out."""
    out = {"all": recipe}
    if len(recipe.blocks) > 1:
        for block in recipe.blocks:
            out[f"without {block.name}"] = replace(recipe, blocks=tuple(b for b in recipe.blocks if b is not block))
    for i, block in enumerate(recipe.blocks):
        switches = OBJECTIVE_SWITCHES.get(block.name, {})
        config = block_options(block.name, block.options) if switches else None
        for objective, (option, off) in switches.items():
            if getattr(config, option) == off:
                continue
            changed = replace(block, options={**block.options, option: off})
            blocks = recipe.blocks[:i] + (changed,) + recipe.blocks[i + 1 :]
            out[f"{block.name} without {objective}"] = replace(recipe, blocks=blocks)
    return out


def ablate(opts: RunOptions, recipe: Recipe) -> Path:
    """Score every variant; write ablation.json and ablation.html under opts.out."""
    out = Path(opts.out)
    data_dir = ensure_world(opts)
    window = ensure_split(data_dir)
    run = Run(seed=recipe.seed, device=str(resolve_device(opts.device)), show_progress=opts.show_progress)
    table: dict[str, dict] = {}
    for name, variant in variants(recipe).items():
        slug = name.replace(" ", "_")
        entry = out / "ablation" / slug / "entry"
        build_profile(window, variant, entry, cache_root(opts.cache) / "blocks", run)
        table[name] = evaluate_cached(data_dir, entry, out / "ablation" / slug / "eval", opts)
    means = {name: task_means(scores) for name, scores in table.items()}
    write_text(out / "ablation.json", json.dumps(means, indent=1))  # row and task order kept
    write_ablation_report(out / "ablation.html", means, opts.mode, opts.orders)
    return out / "ablation.html"
