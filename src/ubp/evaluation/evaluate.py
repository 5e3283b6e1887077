"""`ubp evaluate`: score an entry on the downstream tasks and write scores.json + report.html.

Row orders and seeds. The organisers' loaders do not shuffle, so an entry's row order moves its
scores (docs/protocol.md §5). With `orders=1` the entry is scored in its own order with their seed,
exactly what their pipeline would do with it. With `orders=K>1` it is scored K times: run k in
the behaviour-free order `hash_order(client_ids, salt=k)`, whatever order the file has, and with
the network initialised from seed 1278 + k. Every entry with the same clients then meets the same
K runs, so entries from any writer compare fairly. The seed varies too because the fixed seed
alone does not fix the network: its first layer's shape follows the entry's width, so two entries
of different widths start from unrelated weights. Measured on the small world (quick mode): the
counts entry with 64 all-zero columns appended, which holds exactly the same information, scored
new-SKU .579 against .593 over the same three orders. A spread over orders alone hides that.
(`ubp` itself writes entries in the salt-0 order, so for them run 0 is the organisers' run.)
Each task reports the mean over runs with its spread (std, min, max).
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
from ubp.data.raw import read_relevant_clients
from ubp.errors import UsageError, input_error
from ubp.evaluation.labels import TaskLabels, build_labels
from ubp.evaluation.trainer import PROTOCOLS, TrainResult, resolve_device, train_and_score
from ubp.evaluation.validate import load_valid_entry
from ubp.hashing import hash_order, order_fingerprint
from ubp.io import write_text
from ubp.layout import TASKS
from ubp.report import write_evaluation_report

log = logging.getLogger(__name__)

SCORES_FILE = "scores.json"
REPORT_FILE = "report.html"


@dataclass(frozen=True)
class ScoringRun:
    """One training of the downstream network: a row order (a permutation of entry rows) and a seed."""

    name: str
    perm: np.ndarray
    seed: int


def scoring_runs(client_ids: np.ndarray, k: int, base_seed: int) -> list[ScoringRun]:
    """The runs an entry is scored with; see the module docstring."""
    if k < 1:
        raise UsageError(f"orders must be at least 1, got {k}")
    if k == 1:
        return [ScoringRun("entry", np.arange(len(client_ids)), base_seed)]
    return [ScoringRun(f"hash-salt-{s}", hash_order(client_ids, salt=s), base_seed + s) for s in range(k)]


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


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def _task_record(labels: TaskLabels, runs: list[TrainResult], plan: list[ScoringRun]) -> dict:
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
                "order": p.name,
                "seed": p.seed,
                "score": r.score,
                "best_epoch": r.best_epoch,
                "epochs": [
                    {"auroc": e.auroc, "novelty": e.novelty, "diversity": e.diversity, "score": e.score}
                    for e in r.epochs
                ],
            }
            for p, r in zip(plan, runs)
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
    plan = scoring_runs(client_ids, orders, protocol.seed)
    records = {}
    for task in tasks:
        task_labels = labels[task]
        runs = []
        for p in plan:
            rows = p.perm[task_labels.scored[p.perm]]
            rows_t = torch.from_numpy(rows).to(torch_device)
            desc = task if len(plan) == 1 else f"{task} [{p.name}]"
            runs.append(train_and_score(
                x_all[rows_t],
                torch.from_numpy(task_labels.train[rows]).to(torch_device),
                torch.from_numpy(task_labels.validation[rows]),
                task_labels.popularity, protocol, seed=p.seed, desc=desc, show_progress=show_progress,
            ))
        records[task] = _task_record(task_labels, runs, plan)
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
        "n_orders": len(plan),
        "orders": [{"name": p.name, "seed": p.seed, "fingerprint": order_fingerprint(client_ids[p.perm])} for p in plan],
        "tasks": records,
    }
    out = Path(out)
    scores_path, report_path = out / SCORES_FILE, out / REPORT_FILE
    write_text(scores_path, json.dumps(scores, indent=2))
    write_evaluation_report(scores, report_path)
    return EvaluationResult(scores=scores, scores_path=scores_path, report_path=report_path)
