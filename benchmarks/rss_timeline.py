"""Where a scale phase's memory goes, over time: its resident size and the code at each peak.

    python -m benchmarks.rss_timeline OUT PHASE [scale_phases arguments ...]

runs ``benchmarks.scale_phases`` with the arguments given (the environment of a scale run:
``GPU_RISK_PROMETHEUS_URL``, ``GPU_RISK_TOPOLOGY``, ... as ``benchmarks.scale`` sets them) while
a thread reads ``/proc/self/statm`` every 10 ms, and writes to OUT one line per half-second:
the seconds since start, the highest resident size seen in that half-second (MiB) and the main
thread's innermost frames of this repository at that moment, innermost first. The sampler
sees only the main thread's stack: memory that a reader thread allocates beside it shows as a
rise under whatever the main thread was doing. Linux only (``/proc``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

#: How often the resident size is read, and how often a line is written (seconds).
SAMPLE_S, LINE_S = 0.01, 0.5
#: How many frames of this repository a line names.
FRAMES = 4


def resident_bytes() -> int:
    """This process's resident size, from ``/proc/self/statm``."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _where(thread_id: int, root: str) -> str:
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return ""
    ours = [
        f"{os.path.relpath(f.filename, root)}:{f.lineno} {f.name}"
        for f in traceback.extract_stack(frame)
        if f.filename.startswith(root) and "/.venv/" not in f.filename
    ]
    return " < ".join(reversed(ours[-FRAMES:]))


def sample(
    out: TextIO,
    thread_id: int,
    root: str,
    stop: threading.Event,
    read: Callable[[], int] = resident_bytes,
) -> None:
    """Write a line per :data:`LINE_S` until ``stop``: the half-second's highest resident size
    (``read``, in bytes) and where ``thread_id`` was when it was read."""
    start = last = time.perf_counter()
    best, where = 0, ""
    while not stop.is_set():
        size = read()
        if size > best:
            best, where = size, _where(thread_id, root)
        now = time.perf_counter()
        if now - last >= LINE_S:
            out.write(f"{now - start:8.1f} {best / 2**20:7.0f} | {where}\n")
            out.flush()
            best, last = 0, now
        stop.wait(SAMPLE_S)


def main() -> None:
    """Run ``scale_phases`` with ``sys.argv[2:]`` under the sampler, the timeline to argv[1]."""
    if len(sys.argv) < 3:
        sys.exit("usage: python -m benchmarks.rss_timeline OUT PHASE [scale_phases arguments]")
    root = str(Path(__file__).resolve().parent.parent) + os.sep
    stop = threading.Event()
    with open(sys.argv[1], "w") as out:
        thread = threading.Thread(
            target=sample, args=(out, threading.get_ident(), root, stop), daemon=True
        )
        thread.start()
        sys.argv = ["benchmarks.scale_phases", *sys.argv[2:]]
        from benchmarks import scale_phases

        try:
            scale_phases.main()
        finally:
            stop.set()
            thread.join()


if __name__ == "__main__":
    main()
