"""Shared fixtures: the tiny synthetic world, generated and split once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A split tiny world (raw layout, prepared store, input window, targets, oracle)."""
    from ubp.data.split import split
    from ubp.synth.world import generate

    root = tmp_path_factory.mktemp("tiny_world") / "world"
    generate(root, n_users=None, scale="tiny", seed=1, show_progress=False)
    split(root)
    return root


@pytest.fixture(scope="session")
def tiny_window(tiny_world: Path):
    from ubp.data.window import InputWindow

    return InputWindow.open(tiny_world)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test session fits into its own cache, never the user's ~/.cache/ubp."""
    import os

    os.environ["UBP_CACHE_DIR"] = str(tmp_path_factory.mktemp("ubp_cache"))
