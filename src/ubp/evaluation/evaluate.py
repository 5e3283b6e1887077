"""`ubp evaluate`: score entries on the downstream tasks and write scores.json + report.html each.

All entries of one call are scored in one session (`session.py`): labels from the content-keyed
cache, each entry read once, every (entry × task × run) network trained in one pool. Row orders
and seeds of the runs: `orders.py`. Each task reports the mean over runs with its spread (std,
min, max).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

import ubp
from ubp.device import resolve_device
from ubp.evaluation.orders import ScoringRun, scoring_runs
from ubp.evaluation.session import LabelSummary, ScoredEntry, SessionTimes, run_session
from ubp.evaluation.trainer import TrainResult
from ubp.hashing import order_fingerprint
from ubp.io import write_text
from ubp.layout import TASKS
from ubp.report import write_evaluation_report

__all__ = ["EvaluationResult", "evaluate", "evaluate_many", "scoring_runs"]

SCORES_FILE = "scores.json"
REPORT_FILE = "report.html"


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def _task_record(labels: LabelSummary, runs: list[TrainResult], plan: list[ScoringRun]) -> dict:
    scores = [r.score for r in runs]
    return {
        "score": round(statistics.fmean(scores), 4),
        **_spread(scores),
        "n_clients": labels.n_clients,
        "n_labels": labels.n_labels,
        "n_positives": {"train": labels.train_positives, "validation": labels.validation_positives},
        "labels_with_validation_positive": labels.labels_with_validation_positive,
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


def default_label_cache(data_dir: Path) -> Path:
    """Where a data dir's label tables are cached: inside it, so they travel with it."""
    return Path(data_dir) / "cache" / "labels"


def entry_scores(data_dir: Path, entry: ScoredEntry, mode: str, device: str) -> dict:
    """The scores.json content of one entry of a session."""
    plan = entry.plan
    return {
        "package_version": ubp.__version__,
        "mode": mode,
        "device": device,
        "torch_version": torch.__version__,
        "entry": str(entry.entry_dir),
        "data_dir": str(data_dir),
        "n_clients": int(len(entry.client_ids)),
        "embedding_width": entry.width,
        "missing_relevant_clients": entry.missing_relevant,
        "order_fingerprint": order_fingerprint(entry.client_ids),
        "n_orders": len(plan),
        "orders": [{"name": p.name, "seed": p.seed, "fingerprint": order_fingerprint(entry.client_ids[p.perm])}
                   for p in plan],
        "tasks": {task: _task_record(entry.labels[task], runs, plan) for task, runs in entry.results.items()},
    }


def write_scores(scores: dict, out: Path) -> EvaluationResult:
    out = Path(out)
    scores_path, report_path = out / SCORES_FILE, out / REPORT_FILE
    write_text(scores_path, json.dumps(scores, indent=2))
    write_evaluation_report(scores, report_path)
    return EvaluationResult(scores=scores, scores_path=scores_path, report_path=report_path)


def evaluate_many(
    data_dir: Path,
    entries: dict[str, Path],
    outs: dict[str, Path],
    tasks: tuple[str, ...] = TASKS,
    mode: str = "quick",
    device: str = "auto",
    orders: int = 1,
    strict: bool = False,
    show_progress: bool = False,
    workers: int | None = None,
    label_cache: Path | None | bool = True,
    user_tasks: dict[str, Path] | None = None,
) -> tuple[dict[str, EvaluationResult], SessionTimes]:
    """Score `entries` (name → entry dir) in one session; write each one's scores to `outs[name]`.

    `label_cache`: True for the data dir's own cache, a folder, or None/False to build labels afresh.
    `user_tasks`: name → label file of tasks of the user's own, scored beside the built-in ones.
    """
    cache = default_label_cache(data_dir) if label_cache is True else (label_cache or None)
    scored, times = run_session(data_dir, entries, tasks, mode=mode, device=device, orders=orders, strict=strict,
                                workers=workers, label_cache=cache, user_tasks=user_tasks, show_progress=show_progress)
    device_name = str(resolve_device(device))
    results = {name: write_scores(entry_scores(data_dir, entry, mode, device_name), outs[name])
               for name, entry in scored.items()}
    return results, times


def evaluate(data_dir: Path, entry_dir: Path, out: Path, **options: Any) -> EvaluationResult:
    """Score one entry and write scores.json and report.html to `out`; `options` are
    `evaluate_many`'s (tasks, mode, device, orders, strict, show_progress, workers, label_cache,
    user_tasks), so one session serves one entry exactly as it serves many."""
    results, _ = evaluate_many(data_dir, {"entry": Path(entry_dir)}, {"entry": Path(out)}, **options)
    return results["entry"]
