"""Wall time and peak resident memory per pipeline stage, for the run report."""

from __future__ import annotations

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
        start = time.perf_counter()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            peak[0] = max(peak[0], _rss(proc))
            self.stages.append(
                {"stage": name, "seconds": round(time.perf_counter() - start, 2), "peak_rss_mib": round(peak[0] / 2**20, 1)}
            )


def _rss(proc: psutil.Process) -> int:
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total
