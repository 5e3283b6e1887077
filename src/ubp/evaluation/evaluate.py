"""`ubp evaluate`: score an entry on the downstream tasks and write scores.json + report.html.

Row orders. The organisers' loaders do not shuffle, so an entry's row order moves its scores
(challenge.md §5). With `orders=1` the entry is scored in its own order, exactly what their
pipeline would do with it. With `orders=K>1` it is scored under K behaviour-free orders,
`hash_order(client_ids, salt)` for salt 0..K−1, whatever order the file has: every entry with
the same clients then meets the same K orders, so entries from any writer compare fairly.
(`ubp` itself writes entries in the salt-0 order, so for them order 0 is their own order.)
Each task reports the mean over orders with its spread (std, min, max).
"""

from __future__ import annotations

import json
import logging
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

import ubp
from ubp.errors import input_error
from ubp.evaluation.labels import TaskLabels, build_labels
from ubp.evaluation.report import atomic_write_text, write_report
from ubp.evaluation.trainer import PROTOCOLS, TrainResult, resolve_device, train_and_score
from ubp.evaluation.validate import load_valid_entry
from ubp.hashing import hash_order, order_fingerprint
from ubp.layout import TASKS

log = logging.getLogger(__name__)

SCORES_FILE = "scores.json"
REPORT_FILE = "report.html"


def row_orders(client_ids: np.ndarray, k: int) -> list[tuple[str, np.ndarray]]:
    """(name, permutation of entry rows) for each order scored; see the module docstring."""
    if k < 1:
        raise ValueError(f"orders must be at least 1, got {k}")
    if k == 1:
        return [("entry", np.arange(len(client_ids)))]
    return [(f"hash-salt-{s}", hash_order(client_ids, salt=s)) for s in range(k)]


def missing_relevant(data_dir: Path, client_ids: np.ndarray, strict: bool) -> int | None:
    """How many relevant clients have no row (None when the data dir lists none)."""
    path = Path(data_dir) / "input" / "relevant_clients.npy"
    if not path.is_file():
        if strict:
            raise FileNotFoundError(f"{path}: missing; --strict checks the entry against it")
        return None
    missing = np.setdiff1d(np.load(path).astype(np.int64), client_ids)
    if len(missing):
        message = f"{len(missing)} relevant clients have no row in the entry"
        if strict:
            raise input_error(path, message, example=int(missing[0]))
        log.warning("warning: %s (example: %d); they are not scored", message, int(missing[0]))
    return int(len(missing))


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def _task_record(labels: TaskLabels, runs: list[TrainResult], order_names: list[str]) -> dict:
    scored = labels.scored
    scores = [r.score for r in runs]
    val = labels.validation[scored]
    return {
        "score": round(statistics.fmean(scores), 4),
        **_spread(scores),
        "n_clients": int(scored.sum()),
        "n_labels": labels.n_labels,
        "n_positives": {"train": int(labels.train[scored].sum()), "validation": int(val.sum())},
        "labels_with_validation_positive": int(val.any(axis=0).sum()),
        "wall_s": round(sum(r.wall_s for r in runs), 3),
        "runs": [
            {
                "order": name,
                "score": r.score,
                "best_epoch": r.best_epoch,
                "epochs": [
                    {"auroc": e.auroc, "novelty": e.novelty, "diversity": e.diversity, "score": e.score}
                    for e in r.epochs
                ],
            }
            for name, r in zip(order_names, runs)
        ],
    }


@dataclass(frozen=True)
class EvaluationResult:
    """What `ubp evaluate` wrote: the scores (as in scores.json) and where."""

    scores: dict
    scores_path: Path
    report_path: Path

    def describe(self) -> str:
        s = self.scores
        lines = [f"{s['mode']} evaluation of {s['entry']} on {s['device']} ({s['n_orders']} order(s))"]
        for task, rec in s["tasks"].items():
            spread = f"  ±{rec['std']:.4f} [{rec['min']:.4f}, {rec['max']:.4f}]" if s["n_orders"] > 1 else ""
            lines.append(f"  {task:<20} {rec['score']:.4f}{spread}  ({rec['n_clients']} clients, {rec['wall_s']:.0f}s)")
        lines.append(f"wrote {self.scores_path} and {self.report_path}")
        return "\n".join(lines)


def evaluate(
    data_dir: Path,
    entry_dir: Path,
    out: Path,
    tasks: tuple[str, ...] = TASKS,
    mode: str = "quick",
    device: str = "auto",
    orders: int = 1,
    strict: bool = False,
    show_progress: bool = False,
) -> EvaluationResult:
    """Score an entry on `tasks` with the `mode` protocol; write scores.json and report.html to `out`."""
    protocol = PROTOCOLS[mode]
    torch_device = resolve_device(device)
    client_ids, embeddings = load_valid_entry(entry_dir)
    n_missing = missing_relevant(data_dir, client_ids, strict)
    tasks = tuple(dict.fromkeys(tasks))
    labels = build_labels(data_dir, client_ids, tasks)
    for task, task_labels in labels.items():
        if not task_labels.scored.any():
            where = Path(data_dir) / "target" / "active_clients.npy" if task == "churn" else Path(entry_dir)
            raise input_error(where, f"task {task} has no client of the entry to score")
    x_all = torch.from_numpy(embeddings).to(torch_device)  # float16; cast per batch
    order_list = row_orders(client_ids, orders)
    records = {}
    for task in tasks:
        task_labels = labels[task]
        runs = []
        for name, perm in order_list:
            rows = perm[task_labels.scored[perm]]
            rows_t = torch.from_numpy(rows).to(torch_device)
            desc = task if len(order_list) == 1 else f"{task} [{name}]"
            runs.append(train_and_score(
                x_all[rows_t],
                torch.from_numpy(task_labels.train[rows]).to(torch_device),
                torch.from_numpy(task_labels.validation[rows]),
                task_labels.popularity, protocol, desc=desc, show_progress=show_progress,
            ))
        records[task] = _task_record(task_labels, runs, [n for n, _ in order_list])
    scores = {
        "package_version": ubp.__version__,
        "mode": mode,
        "device": str(torch_device),
        "torch_version": torch.__version__,
        "entry": str(entry_dir),
        "data_dir": str(data_dir),
        "n_clients": int(len(client_ids)),
        "embedding_width": int(embeddings.shape[1]),
        "missing_relevant_clients": n_missing,
        "order_fingerprint": order_fingerprint(client_ids),
        "n_orders": len(order_list),
        "orders": [{"name": n, "fingerprint": order_fingerprint(client_ids[p])} for n, p in order_list],
        "tasks": records,
    }
    out = Path(out)
    scores_path, report_path = out / SCORES_FILE, out / REPORT_FILE
    atomic_write_text(scores_path, json.dumps(scores, indent=2))
    write_report(scores, report_path)
    return EvaluationResult(scores=scores, scores_path=scores_path, report_path=report_path)
