"""The one training loop and checkpoint format: weighting, mismatch errors, exact resume under 2 gloo ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from test_sequence import Killed, fit, one_thread, random_window  # noqa: F401 (fixture)

from ubp.data.window import InputWindow
from ubp.training import CheckpointMismatch, LoopOptions, train_loop
from ubp.training.checkpoint import diff_keys


def toy_fit(work_dir: Path | None, settings: dict, steps: int = 4, weights=None, kill_at: int | None = None):
    """A linear model trained on fixed rows by the loop: two named losses, a checkpoint every step."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.arange(12.0).view(4, 3) / 10

    def forward(rows, step):
        out = model(x[rows]).squeeze(-1)
        return {"a": out.square().mean(), "b": (out - 1).abs().mean()}

    def callback(done, losses):
        if done == kill_at:
            raise Killed

    options = LoopOptions(name="toy", work_dir=work_dir, settings=settings, checkpoint_every=1,
                          weights=weights or {"a": 1.0, "b": 0.5}, callback=callback)
    mean = train_loop(forward, lambda epoch: [torch.tensor([0, 1]), torch.tensor([2, 3])], 2, steps, [opt],
                      {"model": model, "opt": opt}, options)
    return model, mean


def test_loop_minimises_the_weighted_sum_and_resumes_exactly(tmp_path: Path) -> None:
    unbroken, mean = toy_fit(None, {})
    assert np.isfinite(mean)
    _, only_b = toy_fit(None, {}, weights={"a": 0.0, "b": 1.0})
    assert only_b != mean
    with pytest.raises(Killed):
        toy_fit(tmp_path, {"lr": 0.1}, kill_at=3)
    resumed, _ = toy_fit(tmp_path, {"lr": 0.1})
    assert torch.equal(resumed.weight, unbroken.weight) and torch.equal(resumed.bias, unbroken.bias)


def test_a_checkpoint_of_other_settings_is_an_error_naming_the_keys(tmp_path: Path) -> None:
    toy_fit(tmp_path, {"config": {"lr": 0.1, "width": 8}, "seed": 0}, steps=2)
    with pytest.raises(CheckpointMismatch, match=r"config\.lr \(checkpoint 0\.1, now 0\.2\), seed \(checkpoint 0, now 1\)"):
        toy_fit(tmp_path, {"config": {"lr": 0.2, "width": 8}, "seed": 1}, steps=2)
    assert diff_keys({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}) == [("a.c", "<absent>", 2)]


def _ranks(rank: int, root: str, name: str, kill_at: int | None, attempt: int = 0) -> None:
    import torch.distributed as dist

    # a fresh rendezvous file per launch: a file left by an earlier launch holds its ranks' old addresses
    dist.init_process_group("gloo", init_method=f"file://{root}/rendezvous-{name}-{attempt}", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        window = InputWindow.open(Path(root) / "world")
        callback = None if kill_at is None else lambda step, losses: _die_at(step, kill_at)
        try:
            encoder = fit(window, work_dir=Path(root) / name, callback=callback, **RESUME)
        except Killed:
            return
        if rank == 0:
            torch.save(encoder.model_.state_dict(), Path(root) / f"{name}.pt")
    finally:
        dist.destroy_process_group()


def _die_at(step: int, kill_at: int) -> None:
    if step == kill_at:
        raise Killed


RESUME = dict(max_steps=8, checkpoint_every=3, warmup_steps=2, nup_weight=0.0, dropout=0.2)


def test_two_gloo_ranks_killed_and_resumed_end_with_the_unbroken_weights(tmp_path: Path) -> None:
    random_window(tmp_path / "world", n_users=16)
    spawn = torch.multiprocessing.spawn
    spawn(_ranks, args=(str(tmp_path), "unbroken", None), nprocs=2, join=True)
    spawn(_ranks, args=(str(tmp_path), "resumed", 5), nprocs=2, join=True)  # checkpoint at 3, killed at 5
    assert (tmp_path / "resumed" / "sequence.ckpt").is_file() and not (tmp_path / "resumed.pt").exists()
    spawn(_ranks, args=(str(tmp_path), "resumed", None, 1), nprocs=2, join=True)
    unbroken, resumed = (torch.load(tmp_path / f"{n}.pt") for n in ("unbroken", "resumed"))
    for name, value in unbroken.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0, msg=name)
    state = torch.load(tmp_path / "resumed" / "sequence.ckpt", weights_only=False)
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    assert not torch.equal(state["rng"][0]["torch"], state["rng"][1]["torch"])  # each rank's own dropout stream
    with pytest.raises(CheckpointMismatch, match="written by 2 processes, this run has 1"):
        fit(InputWindow.open(tmp_path / "world"), work_dir=tmp_path / "resumed", **RESUME)
