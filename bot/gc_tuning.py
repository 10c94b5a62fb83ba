"""The process's garbage collector, set once for a bot that decodes a fleet every cycle.

A cycle allocates millions of short-lived containers (each answer's series decoded into dicts
and lists, the frames' labels) while the process holds a large, long-lived heap (the libraries,
the model, the kept window). At CPython's default thresholds a young collection runs every 700
allocations, and the older generations, which hold that heap, are scanned many times per cycle:
a 100,000-GPU cycle's reads spent about 10 s of this process's CPU in the collector. With
:data:`THRESHOLDS` (measured 2026-12-07, ``benchmarks/results/README.md``, forty-first session):
the reads' CPU 132 → 91 s over four reads, a cycle's reads 52.8 → 49.0 s, **the steady cycle
80.0 → 69.6 s** (F/G alternating, six cycles each) at the same peak memory (7.5 GB). A fetch
peaked 0.58 GB higher until the decoding hook stopped holding each response in a reference cycle
(``storage.promql_client._decoded_by_orjson``): a collector run less often finds cycles later,
so code on the hot path must not make them.

Almost every object a cycle makes is freed by reference counting; the collector only has to find
reference cycles, so running it 70x less often finds the same garbage a little later.

:func:`tune` is called by the ``gpu-risk`` entry point (``bot.cli.main``) before any command
runs, so the bot, a one-shot scan, the backtest and the evaluation all run with it.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "tune"]

#: ``gc.set_threshold``'s (young allocations, young collections per middle, middle per old):
#: CPython's defaults are (700, 10, 10).
THRESHOLDS: tuple[int, int, int] = (50_000, 20, 10)


def tune() -> None:
    """Set the collector's thresholds to :data:`THRESHOLDS` (process-wide; idempotent)."""
    gc.set_threshold(*THRESHOLDS)
