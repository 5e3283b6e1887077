"""`torchrun --nproc_per_node 2 -m ubp …` on CPU (gloo): `embed --config RECIPE` with an objective at
weight 0, killed and resumed; `ablate`, whose leave-one-objective-out variants train at weight 0."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import torch

RECIPE = """
seed = 0
[[blocks]]
name = "sequence"
options = { preset = "tiny", max_steps = 40, checkpoint_every = 4, nup_weight = 0.0, warmup_steps = 2 }
"""


def torchrun(world: Path, out: Path, recipe: Path, **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "ubp", "embed", "--config", str(recipe), "--data-dir", str(world), "--out", str(out),
               "--cache", str(out.with_name(out.name + "-cache")), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **popen)


def finish(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    return output


def weights(out: Path) -> dict[str, torch.Tensor]:
    (model,) = out.with_name(out.name + "-cache").glob("blocks/sequence-*/model/sequence.pt")
    return torch.load(model, weights_only=True)["state"]


def test_torchrun_embed_killed_and_resumed_equals_the_unbroken_run(tiny_world: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE)
    unbroken = finish(torchrun(tiny_world, tmp_path / "a", recipe))
    assert "clients x 384 columns (sequence)" in unbroken  # 12 parts of the tiny width 32

    killed = torchrun(tiny_world, tmp_path / "b", recipe)
    deadline = time.monotonic() + 240
    while not list((tmp_path / "b-cache").glob("blocks/*/work/sequence.ckpt")):
        assert killed.poll() is None and time.monotonic() < deadline, "no checkpoint before the run ended"
        time.sleep(0.05)
    launcher = psutil.Process(killed.pid)
    for process in [*launcher.children(recursive=True), launcher]:  # both ranks and torchrun, mid-run
        process.send_signal(signal.SIGKILL)
    killed.communicate()
    assert not (tmp_path / "b" / "embeddings.npy").exists()

    resumed = finish(torchrun(tiny_world, tmp_path / "b", recipe))
    assert "sequence: resuming at step" in resumed
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    for name, value in a.items():
        assert torch.equal(b[name], value), name
    for name in ("client_ids.npy", "embeddings.npy"):
        np.testing.assert_array_equal(np.load(tmp_path / "b" / name), np.load(tmp_path / "a" / name))


ABLATION_RECIPE = """
seed = 0
[[blocks]]
name = "counts"
[[blocks]]
name = "sequence"
options = { preset = "tiny", max_steps = 6, nup_weight = 0.0, warmup_steps = 1 }
"""


def test_torchrun_ablate_trains_every_objective_variant(tiny_world: Path, tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(ABLATION_RECIPE)
    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "ubp", "ablate", "--config", str(recipe), "--data-dir", str(tiny_world), "--out",
               str(tmp_path / "run"), "--cache", str(cache), "--device", "cpu", "--orders", "1",
               "--references", ""]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("ablation: ") == 1  # rank 0 reports, once
    means = json.loads((tmp_path / "run" / "ablation.json").read_text())
    assert list(means) == ["all", "without counts", "without sequence", "sequence without NIP",
                           "sequence without NETP", "sequence without TDP"]  # NUP is already off in "all"
    fits = sorted(p.parent.name.split("-")[0] for p in cache.glob("blocks/*/meta.json"))
    assert fits == ["counts"] + ["sequence"] * 4  # each variant's sequence once; counts once, on rank 0
    assert not list(cache.glob("blocks/*/work*"))  # no rank left scratch behind


def test_a_block_that_does_not_train_across_ranks_is_fitted_on_rank_0_only(tiny_window, tmp_path, monkeypatch):
    """Rank 1's view of `fit_block` while rank 0 has saved the `counts` model: it loads it, never fits."""
    from ubp import distributed
    from ubp.encoders import REGISTRY
    from ubp.encoders.base import Run
    from ubp.profile import fit_block
    from ubp.recipe import BlockSpec

    spec, ids = BlockSpec("counts"), tiny_window.relevant_clients
    fitted = fit_block(spec, tiny_window, ids, tmp_path, Run(seed=0))  # rank 0's fit, done
    (fitted.model_dir.parent / "meta.json").unlink()  # … as rank 0 leaves it at the barrier
    for name, value in {"rank": lambda: 1, "world_size": lambda: 2, "is_main": lambda: False,
                        "broadcast": lambda obj: obj, "barrier": lambda: None, "gather_rows": lambda rows: None}.items():
        monkeypatch.setattr(distributed, name, value)

    def no_fit(*_):
        raise AssertionError("rank 1 fitted a block that rank 0 fits")

    monkeypatch.setattr(REGISTRY["counts"], "fit", no_fit)
    shared = fit_block(spec, tiny_window, ids, tmp_path, Run(seed=0))
    assert shared.matrix is None and not shared.cached
