"""Wall time, CPU time and peak resident memory per pipeline stage, for the run report.

CPU seconds (this process and its finished children) say what a stage costs on a machine shared
with other jobs, where wall time only bounds it."""

from __future__ import annotations

import resource
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

import psutil


@dataclass
class StageTimes:
    """Sampled by a daemon thread: RSS of this process and its children, every 0.2 s."""

    stages: list[dict] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        proc = psutil.Process()
        peak = [_rss(proc)]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], _rss(proc))

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        start, cpu_start = time.perf_counter(), _cpu_seconds()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            peak[0] = max(peak[0], _rss(proc))
            self.stages.append(
                {"stage": name, "seconds": round(time.perf_counter() - start, 2),
                 "cpu_seconds": round(_cpu_seconds() - cpu_start, 2), "peak_rss_mib": round(peak[0] / 2**20, 1)}
            )


def _rss(proc: psutil.Process) -> int:
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def _cpu_seconds() -> float:
    """User + system time of this process and of its children that have ended."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
