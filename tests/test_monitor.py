"""Stage accounting: CPU time includes the stage's finished child processes."""

from __future__ import annotations

import subprocess
import sys

from ubp.monitor import StageTimes


def test_a_stage_counts_its_children_cpu_time() -> None:
    times = StageTimes()
    with times.stage("spin"):
        subprocess.run([sys.executable, "-c", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4: pass"],
                       check=True)
    (stage,) = times.stages
    assert stage["stage"] == "spin"
    assert stage["cpu_seconds"] >= 0.4 and stage["seconds"] >= 0.4 and stage["peak_rss_mib"] > 0
