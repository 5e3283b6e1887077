"""Where per-shard maps run: in this process (`local`, the default) or on Ray Data (`ray`).

The table blocks compute their per-user tables one shard at a time with a pure function of the
shard (`ubp.encoders.shard_tables.iter_raw`). That map is the one step worth spreading over machines,
and Ray Data runs it as it is: the shard tasks become a dataset, `map_batches` applies the
function on the cluster's workers, the small per-user tables stream back as Arrow. `ray.init()`
joins the cluster named by `RAY_ADDRESS` (a local one when unset). Outputs are identical to the
local engine's: the same function runs on the same shard, and rows are placed by client id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import polars as pl

from ubp.errors import UsageError

ENGINES = ("local", "ray")
T = TypeVar("T")
_TASK = "__ubp_task"
_current = "local"


@contextlib.contextmanager
def use(name: str) -> Iterator[None]:
    """Run the per-shard maps inside the block on engine `name`."""
    global _current
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    if name == "ray":
        _ray()  # fail here, before any work, when Ray is not installed
    previous, _current = _current, name
    try:
        yield
    finally:
        _current = previous


def map_shards(fn: Callable[[T], pl.DataFrame], tasks: Sequence[T]) -> Iterator[pl.DataFrame]:
    """fn(task) for every task, in task order, on the current engine (a table without rows may
    come back without its columns)."""
    if _current == "local" or len(tasks) < 2:
        yield from map(fn, tasks)
        return
    yield from _ray_map(fn, tasks)


def _ray():
    try:
        import ray
    except ImportError as e:
        raise UsageError("the ray engine needs Ray Data: pip install 'ubp[ray]'") from e
    return ray


def _ray_map(fn: Callable[[T], pl.DataFrame], tasks: Sequence[T]) -> Iterator[pl.DataFrame]:
    """Ray Data keeps the tasks' order (`preserve_order`), so a task's table is complete when the
    next task's rows arrive (a large one may come in several blocks); tasks that returned no rows
    leave no block and come back as empty tables."""
    ray = _ray()
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True

    def apply(batch):  # one task per batch; its table tagged with the task's index
        i = int(batch["task"][0])
        return fn(tasks[i]).with_columns(pl.lit(i, dtype=pl.Int64).alias(_TASK)).to_arrow()

    ds = ray.data.from_items([{"task": i} for i in range(len(tasks))], override_num_blocks=len(tasks))
    done, parts = 0, []  # tasks yielded so far; blocks of task `done`
    for batch in ds.map_batches(apply, batch_size=1, batch_format="numpy").iter_batches(
        batch_size=None, batch_format="pyarrow"
    ):
        frame = pl.from_arrow(batch)
        for part in frame.partition_by(_TASK, maintain_order=True):
            i = int(part[_TASK][0])
            while done < i:
                yield pl.concat(parts) if parts else pl.DataFrame()
                done, parts = done + 1, []
            parts.append(part.drop(_TASK))
    while done < len(tasks):
        yield pl.concat(parts) if parts else pl.DataFrame()
        done, parts = done + 1, []
