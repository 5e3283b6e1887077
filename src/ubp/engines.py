"""Where per-shard work runs: in this process (`local`, the default) or on a Ray cluster (`ray`).

Every stage that works one shard at a time hands the engine a task function and a list of
tasks; each task names its shard by location (an absolute path or an object-store URI) and
carries small options, never a block's fitted state or caches. On Ray, the tasks become a Ray
Data dataset and `map_batches` runs the function once per task on the cluster's workers, with
`num_cpus` / `memory` reserved per task and polars limited to that many threads (a node then
runs as many shards as it has CPUs, each query on its share of them). A task writes its table
to the scratch location (`UBP_SCRATCH`, default `DIR/input/.ubp-scratch`) and returns
only where it wrote it; the driver reads the tables back one at a time, in task order, and
deletes them. `ray.init()` joins the cluster named by `RAY_ADDRESS` (a local one when unset)
with the user's `runtime_env` (`UBP_RAY_RUNTIME_ENV`, JSON, or the CLI's `--ray-runtime-env`).
Outputs equal the local engine's: the same function runs on the same shard, and ubp's own
errors (`ubp.errors.UbpError`, e.g. a bad row found in one shard) reach the driver as themselves.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import polars as pl

from ubp import store
from ubp.errors import UbpError, UsageError

ENGINES = ("local", "ray")
SCRATCH = ".ubp-scratch"
MAX_FUNCTION_BYTES = 64 * 2**20  # a task function is code plus small options; a fitted block's state is not
T = TypeVar("T")
R = TypeVar("R", pl.DataFrame, tuple[pl.DataFrame, ...])


@dataclass(frozen=True)
class Engine:
    """An engine and what each of its tasks gets."""

    name: str = "local"
    num_cpus: float = 1.0  # CPUs reserved per task; polars runs that many threads in it
    memory: int | None = None  # bytes reserved per task (None: Ray's default, no reservation)
    runtime_env: dict = field(default_factory=dict)  # passed to ray.init (working_dir, pip, env_vars …)
    scratch: str | None = None  # where tasks write their tables; default: DIR/input/.ubp-scratch


_current = Engine()


def current() -> Engine:
    return _current


def from_env(name: str, runtime_env: str | None = None, scratch: str | None = None) -> Engine:
    """The engine `name` with its task settings from the options given, else the environment
    (`UBP_RAY_TASK_CPUS`, `UBP_RAY_TASK_MEMORY` in bytes, `UBP_RAY_RUNTIME_ENV`, `UBP_SCRATCH`)."""
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    env_text = runtime_env if runtime_env is not None else os.environ.get("UBP_RAY_RUNTIME_ENV", "")
    try:
        parsed = json.loads(env_text) if env_text.strip() else {}
    except json.JSONDecodeError as e:
        raise UsageError(f"runtime_env {env_text!r} is not JSON: {e}") from e
    if not isinstance(parsed, dict):
        raise UsageError(f"runtime_env must be a JSON object, got {env_text!r}")
    try:
        cpus = float(os.environ.get("UBP_RAY_TASK_CPUS", "1"))
        memory = os.environ.get("UBP_RAY_TASK_MEMORY")
        memory_bytes = int(memory) if memory else None
    except ValueError as e:
        raise UsageError(f"UBP_RAY_TASK_CPUS / UBP_RAY_TASK_MEMORY must be numbers: {e}") from e
    if cpus <= 0:
        raise UsageError(f"UBP_RAY_TASK_CPUS must be positive, got {cpus}")
    scratch = scratch or os.environ.get("UBP_SCRATCH") or None
    return Engine(name, cpus, memory_bytes, parsed, store.resolve(scratch) if scratch else None)


@contextlib.contextmanager
def use(engine: str | Engine) -> Iterator[Engine]:
    """Run the per-shard maps inside the block on `engine` (a name takes its settings from the environment)."""
    global _current
    engine = from_env(engine) if isinstance(engine, str) else engine
    if engine.name == "ray":
        _ray()  # fail here, before any work, when Ray is not installed
    previous, _current = _current, engine
    try:
        yield engine
    finally:
        _current = previous


def map_shards(fn: Callable[[T], R], tasks: Sequence[T], near: str | None = None) -> Iterator[R]:
    """fn(task) for every task, in task order, on the current engine; fn returns a table or a tuple
    of tables (a table without rows may come back without its columns). `fn` must be a module-level function or a small picklable
    object: it travels to every worker. `near` is the data's location: scratch files go beside it
    unless a scratch location is set."""
    if _current.name == "local":
        yield from map(fn, tasks)
        return
    scratch = _current.scratch or (store.join(store.parent(near), SCRATCH) if near else None)
    if scratch is None:
        raise UsageError("the ray engine needs a scratch location every node can reach: set UBP_SCRATCH")
    yield from _ray_map(fn, tasks, store.join(scratch, uuid.uuid4().hex))


def _ray():
    try:
        import ray
    except ImportError as e:
        raise UsageError("the ray engine needs Ray Data: pip install 'ubp[ray]'") from e
    return ray


def task_env(engine: Engine) -> dict:
    """Per-task runtime_env: polars limited to the task's CPUs (read when polars is first imported)."""
    return {"env_vars": {"POLARS_MAX_THREADS": str(max(1, int(engine.num_cpus)))}}


def _ray_map(fn: Callable[[T], R], tasks: Sequence[T], out_dir: str) -> Iterator[R]:
    """Ray Data keeps the tasks' order (`preserve_order`); each task's table goes through the store."""
    import cloudpickle

    ray = _ray()
    engine = _current
    if not ray.is_initialized():
        ray.init(runtime_env=engine.runtime_env or None, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    payload = cloudpickle.dumps(fn)
    if len(payload) > MAX_FUNCTION_BYTES:
        raise ValueError(f"task function {fn!r} pickles to {len(payload) / 2**20:.0f} MiB: a task must carry "
                         "shard locations and small options, not a block's state")
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.execution_options.preserve_order = True
    fn_ref = ray.put(payload)
    items = [{"task": i, "payload": cloudpickle.dumps(t)} for i, t in enumerate(tasks)]
    ds = ray.data.from_items(items, override_num_blocks=max(len(items), 1))
    apply = _ApplyTask(fn_ref, out_dir)
    remote = {"num_cpus": engine.num_cpus, "runtime_env": task_env(engine)}
    if engine.memory:
        remote["memory"] = engine.memory
    try:
        rows = ds.map_batches(apply, batch_size=1, batch_format="numpy", **remote).iter_rows()
        for row in rows:
            if row["error"]:
                raise pickle.loads(row["error"])
            tables = tuple(store.read_parquet(p) if p else pl.DataFrame() for p in row["paths"].split("\n"))
            yield tables if row["several"] else tables[0]
    finally:
        store.delete_dir(out_dir)


class _ApplyTask:
    """Runs one task on a worker: unpickles the function once per worker, writes the table to the store."""

    def __init__(self, fn_ref, out_dir: str) -> None:
        self.fn_ref, self.out_dir, self.fn = fn_ref, out_dir, None

    def __getstate__(self) -> dict:
        return {"fn_ref": self.fn_ref, "out_dir": self.out_dir}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["fn_ref"], state["out_dir"])

    def __call__(self, batch: dict) -> dict:
        import ray

        if self.fn is None:
            self.fn = pickle.loads(ray.get(self.fn_ref))
        i = int(batch["task"][0])
        try:
            result = self.fn(pickle.loads(batch["payload"][0]))
        except UbpError as e:  # the user's error, shown by the driver as one line
            return {"task": [i], "paths": [""], "several": [False], "error": [pickle.dumps(e)]}
        tables = result if isinstance(result, tuple) else (result,)
        paths = []
        for j, table in enumerate(tables):
            paths.append(store.join(self.out_dir, f"task-{i:06d}-{j}.parquet") if table.width else "")
            if table.width:
                store.write_parquet(table, paths[-1])
        return {"task": [i], "paths": ["\n".join(paths)], "several": [isinstance(result, tuple)], "error": [b""]}

