"""One evaluation session: every (entry × task × run) network of a command trained in one pass.

The labels of all tasks come from the content-keyed cache (built once per data dir), each entry is
read once to check it, and the networks train in one pool of worker processes that import torch
once and keep the entries (memory-mapped, so the page cache shares one copy between them) and the
label tables in memory from one run to the next. A job names its entry, task and run; the
worker trains it exactly as `train_and_score` trains a network alone (the same seed, the same
rows, one thread in quick mode), so where and beside what it trains moves no bit of its scores.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ubp.data.raw import read_relevant_clients
from ubp.device import resolve_device
from ubp.errors import UsageError, input_error
from ubp.evaluation.label_cache import cached_task_tables
from ubp.evaluation.labels import TaskLabels, TaskTable
from ubp.evaluation.orders import ScoringRun, scoring_runs
from ubp.evaluation.trainer import PROTOCOLS, Protocol, TrainResult, train_and_score
from ubp.evaluation.user_tasks import read_task_file
from ubp.evaluation.validate import EMBEDDINGS, IDS, load_valid_entry

log = logging.getLogger(__name__)

# Training rows (scored clients × epochs, summed over jobs) below which one process finishes before
# a pool of fresh ones has imported torch (about 2 s each on an idle core, 10 s on a loaded one).
POOL_MIN_ROWS = 200_000


@dataclass(frozen=True)
class Job:
    """One network to train: the entry, the task and the index of the run (order and seed)."""

    entry: str
    task: str
    run: int


@dataclass(frozen=True)
class LabelSummary:
    """What a scores file says about a task's labels, kept once the label matrices are dropped."""

    n_clients: int
    n_labels: int
    train_positives: int
    validation_positives: int
    labels_with_validation_positive: int

    @classmethod
    def of(cls, labels: TaskLabels) -> LabelSummary:
        scored = labels.scored
        val = labels.validation[scored]
        return cls(int(scored.sum()), labels.n_labels, int(labels.train[scored].sum()), int(val.sum()),
                   int(val.any(axis=0).sum()))


@dataclass
class ScoredEntry:
    """One entry's part of a session: its clients, runs, label summaries and trained results."""

    entry_dir: Path
    client_ids: np.ndarray
    width: int
    missing_relevant: int | None
    plan: list[ScoringRun]
    labels: dict[str, LabelSummary]
    results: dict[str, list[TrainResult | None]] = field(default_factory=dict)


@dataclass
class SessionTimes:
    """Where a session's wall time went; network and metrics are summed over jobs (CPU seconds)."""

    labels_s: float = 0.0
    loading_s: float = 0.0
    training_s: float = 0.0
    network_s: float = 0.0
    metrics_s: float = 0.0
    network_cpu_s: float = 0.0  # CPU seconds of the training runs (metrics included), summed over jobs
    workers: int = 1
    jobs: int = 0


class Workspace:
    """The data one process trains from: entries (each read or memory-mapped once) and their labels."""

    def __init__(self, entries: dict[str, Path], tables: dict[str, TaskTable], protocol: Protocol,
                 device: torch.device, orders: int):
        self.paths = entries
        self.tables = tables
        self.protocol = protocol
        self.device = device
        self.orders = orders
        self.arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.labels: dict[tuple[str, str], TaskLabels] = {}
        self.plans: dict[str, list[ScoringRun]] = {}

    def entry(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self.arrays:
            path = self.paths[name]
            self.arrays[name] = (np.load(path / IDS), np.load(path / EMBEDDINGS, mmap_mode="r"))
        return self.arrays[name]

    def task_labels(self, name: str, task: str) -> TaskLabels:
        if (name, task) not in self.labels:
            self.labels[(name, task)] = self.tables[task].align(self.entry(name)[0])
        return self.labels[(name, task)]

    def plan(self, name: str) -> list[ScoringRun]:
        if name not in self.plans:
            self.plans[name] = scoring_runs(self.entry(name)[0], self.orders, self.protocol.seed)
        return self.plans[name]

    def train(self, job: Job) -> TrainResult:
        """Train and score one network: the entry's scored rows in the run's order, the run's seed."""
        _, embeddings = self.entry(job.entry)
        labels = self.task_labels(job.entry, job.task)
        run = self.plan(job.entry)[job.run]
        rows = run.perm[labels.scored[run.perm]]
        return train_and_score(
            torch.from_numpy(np.ascontiguousarray(embeddings[rows])).to(self.device),  # float16; cast per batch
            torch.from_numpy(labels.train[rows]).to(self.device),
            torch.from_numpy(labels.validation[rows]),
            labels.popularity, self.protocol, seed=run.seed,
        )


_WORKSPACE: Workspace | None = None


def _start_worker(entries: dict[str, Path], tables: dict[str, TaskTable], mode: str, orders: int) -> None:
    global _WORKSPACE
    protocol = PROTOCOLS[mode]
    if protocol.threads is not None:
        torch.set_num_threads(protocol.threads)
    _WORKSPACE = Workspace(entries, tables, protocol, torch.device("cpu"), orders)


def _train_in_worker(job: Job) -> tuple[Job, TrainResult]:
    assert _WORKSPACE is not None, "worker used before its initializer ran"
    return job, _WORKSPACE.train(job)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def pool_size(protocol: Protocol, device: torch.device, n_jobs: int, training_rows: int) -> int:
    """Worker processes for a session: on a CPU, as many as the cores hold at the protocol's thread
    count (quick mode uses one thread), and one (no pool) when the work is too small to pay for
    starting them; full mode uses every thread in one process, and a GPU trains in this process."""
    if device.type != "cpu" or protocol.threads is None or training_rows < POOL_MIN_ROWS:
        return 1
    return max(1, min(n_jobs, available_cores() // protocol.threads))


def _job_cost(entry: ScoredEntry, task: str, protocol: Protocol) -> float:
    """Multiply-adds per training row times rows: longest jobs go first, so workers finish together."""
    per_row = entry.width * protocol.thin + 2 * protocol.blocks * protocol.thin * protocol.wide
    return entry.labels[task].n_clients * (per_row + protocol.thin * entry.labels[task].n_labels)


def _n_rows(entry_dir: Path) -> int:
    """An entry's row count from its ids file's header (0 when absent: reading it reports that)."""
    path = Path(entry_dir) / IDS
    try:
        return len(np.load(path, mmap_mode="r"))
    except (OSError, ValueError):
        return 0


def missing_relevant(data_dir: Path, client_ids: np.ndarray, strict: bool) -> int | None:
    """How many relevant clients have no row (None when the data dir lists none)."""
    path = Path(data_dir) / "input" / "relevant_clients.npy"
    if not path.is_file():
        if strict:
            raise input_error(path, "missing; --strict checks the entry against it")
        return None
    missing = np.setdiff1d(read_relevant_clients(path), client_ids)
    if len(missing):
        message = f"{len(missing)} relevant clients have no row in the entry"
        if strict:
            raise input_error(path, message, example=int(missing[0]))
        log.warning("warning: %s (example: %d); they are not scored", message, int(missing[0]))
    return int(len(missing))


def load_entries(data_dir: Path, entries: dict[str, Path], tables: dict[str, TaskTable], user_tasks: dict[str, Path],
                 protocol: Protocol, orders: int, strict: bool, keep: bool) -> tuple[dict[str, ScoredEntry], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Read and check each entry once, before any training; summarise its labels. `keep` holds the
    arrays for training in this process."""
    scored: dict[str, ScoredEntry] = {}
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, entry_dir in entries.items():
        client_ids, embeddings = load_valid_entry(entry_dir)
        n_missing = missing_relevant(data_dir, client_ids, strict)
        summaries = {}
        for task, table in tables.items():
            labels = table.align(client_ids)
            if not labels.scored.any():
                where = user_tasks.get(task, Path(data_dir) / "target" / "active_clients.npy" if task == "churn"
                                       else Path(entry_dir))
                raise input_error(where, f"task {task} has no client of the entry to score")
            summaries[task] = LabelSummary.of(labels)
        scored[name] = ScoredEntry(Path(entry_dir), client_ids, int(embeddings.shape[1]), n_missing,
                                   scoring_runs(client_ids, orders, protocol.seed), summaries)
        if keep:
            arrays[name] = (client_ids, embeddings)
    return scored, arrays


def run_session(
    data_dir: Path,
    entries: dict[str, Path],
    tasks: tuple[str, ...],
    mode: str = "quick",
    device: str = "auto",
    orders: int = 1,
    strict: bool = False,
    workers: int | None = None,
    label_cache: Path | None = None,
    user_tasks: dict[str, Path] | None = None,
    show_progress: bool = False,
) -> tuple[dict[str, ScoredEntry], SessionTimes]:
    """Train and score every (entry × task × run) network; `workers=None` sizes the pool itself.

    `user_tasks` (name → label file, see `user_tasks.py`) are scored after the built-in `tasks`."""
    protocol = PROTOCOLS[mode]
    torch_device = resolve_device(device)
    user_tasks = user_tasks or {}
    times = SessionTimes()
    start = time.perf_counter()
    tables = cached_task_tables(data_dir, tuple(dict.fromkeys(tasks)), label_cache)
    tables.update({name: read_task_file(name, path) for name, path in user_tasks.items()})
    tasks = tuple(tables)
    times.labels_s = time.perf_counter() - start

    start = time.perf_counter()
    jobs = [Job(name, task, k) for name in entries for task in tasks for k in range(orders)]
    training_rows = sum(_n_rows(path) for path in entries.values()) * len(tasks) * orders * protocol.epochs
    n_workers = workers if workers is not None else pool_size(protocol, torch_device, len(jobs), training_rows)
    if n_workers > 1 and torch_device.type != "cpu":
        raise UsageError("a pool of worker processes trains on the CPU only; use one worker on a GPU")
    scored, arrays = load_entries(data_dir, entries, tables, user_tasks, protocol, orders, strict, keep=n_workers == 1)
    times.loading_s = time.perf_counter() - start

    jobs.sort(key=lambda j: -_job_cost(scored[j.entry], j.task, protocol))
    for entry in scored.values():
        entry.results = {task: [None] * orders for task in tasks}
    times.workers, times.jobs = n_workers, len(jobs)
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), desc=f"{mode} networks", unit="net", disable=not show_progress)
    with bar:
        if n_workers == 1:
            workspace = Workspace(dict(entries), tables, protocol, torch_device, orders)
            workspace.arrays.update(arrays)
            for job in jobs:
                scored[job.entry].results[job.task][job.run] = workspace.train(job)
                bar.update()
        else:
            log.info("training %d networks in %d worker processes", len(jobs), n_workers)
            # spawn, not fork: polars' and torch's thread pools do not survive a fork
            with ProcessPoolExecutor(n_workers, mp_context=get_context("spawn"), initializer=_start_worker,
                                     initargs=(dict(entries), tables, mode, orders)) as pool:
                for future in as_completed([pool.submit(_train_in_worker, job) for job in jobs]):
                    job, result = future.result()
                    scored[job.entry].results[job.task][job.run] = result
                    bar.update()
    times.training_s = time.perf_counter() - start
    for entry in scored.values():
        for results in entry.results.values():
            for r in results:
                times.network_s += r.wall_s - r.metrics_s
                times.metrics_s += r.metrics_s
                times.network_cpu_s += r.cpu_s
    return scored, times
