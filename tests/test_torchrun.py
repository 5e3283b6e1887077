"""`torchrun --nproc_per_node 2 -m ubp embed --config RECIPE` on CPU (gloo): an objective at weight 0, killed and resumed."""

from __future__ import annotations

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
    assert "clients x 32 columns (sequence)" in unbroken

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
