"""State store speed: one cycle's apply_cycle (256 GPU scores + incidents), outbox round trips,
score retention.

Run: ``.venv/bin/python -m benchmarks.bench_state_store [--url postgresql+psycopg://...]
[--cycles 60] [--gpus 256]``. Defaults to a temp SQLite file. Prints medians.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from analysis.types import GpuScore, Incident, RootCause
from storage.repository import MessageRef, Repository

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def _incidents(cycle: int, gpus: list[GpuScore]) -> list[Incident]:
    """Ten incidents whose severity and score drift, so every action type occurs."""
    out = []
    for i in range(10):
        if (cycle + i) % 17 == 0:  # some come and go
            continue
        sev = ("info", "warning", "critical")[(cycle // 5 + i) % 3]
        g = gpus[i * 8 : i * 8 + 8]
        score = 0.5 + 0.4 * ((cycle * 7 + i) % 10) / 10
        out.append(
            Incident(f"i{i}", T0, sev, score, RootCause(f"pdu-{i}", "pdu"), tuple(g))  # type: ignore[arg-type]
        )
    return out


def main() -> None:
    """Run the benchmark and print medians."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default=None)
    ap.add_argument("--cycles", type=int, default=60)
    ap.add_argument("--gpus", type=int, default=256)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        t = time.perf_counter()
        repo = Repository.from_url(url)
        print(f"backend {repo.dialect}; open + migrate {time.perf_counter() - t:.3f} s")
        gpus = [
            GpuScore(f"gpu-node-{n:03d}", str(g), 0.1)
            for n in range(args.gpus // 8)
            for g in range(8)
        ]
        cycle_s, claim_s = [], []
        for c in range(args.cycles):
            at = T0 + timedelta(minutes=c)
            t = time.perf_counter()
            repo.apply_cycle(at, _incidents(c, gpus), True, scores=gpus)
            cycle_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            for item in repo.claim_pending(50, "bench", timedelta(seconds=30), at=at):
                repo.mark_sent(item.id, at=at, message_ref=MessageRef("C1", f"{item.id}.0"))
            claim_s.append(time.perf_counter() - t)
        sent = len(repo.outbox(status="sent"))
        print(
            f"apply_cycle ({args.gpus} scores + 10 incidents): median "
            f"{statistics.median(cycle_s) * 1000:.1f} ms, max {max(cycle_s) * 1000:.1f} ms"
        )
        print(
            f"outbox claim+mark_sent per cycle: median {statistics.median(claim_s) * 1000:.1f} ms "
            f"({sent} notifications over {args.cycles} cycles)"
        )
        t = time.perf_counter()
        repo.open_incidents()
        repo.status()
        repo.top_gpus(10)
        repo.latest_for("gpu-node-003")
        print(
            f"read API (open, status, top, latest_for): {(time.perf_counter() - t) * 1000:.1f} ms"
        )
        t = time.perf_counter()
        n = repo.prune_scores(T0 + timedelta(minutes=args.cycles // 2))
        print(f"prune_scores: {n} rows in {time.perf_counter() - t:.3f} s")
        repo.close()


if __name__ == "__main__":
    main()
