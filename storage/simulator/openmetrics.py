"""Write the simulator's history as OpenMetrics text for ``promtool tsdb create-blocks-from``.

One family after another (``# TYPE``/``# HELP`` then every series), each series' samples in time
order, timestamps in seconds, absent samples left out, and ``# EOF`` at the end. Counters are
typed ``counter`` and their samples end in ``_total``; DCGM fields keep their exact names and
are typed ``gauge`` (as dcgm-exporter types them).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO

import numpy as np

from storage.simulator.exposition import Family, fleet_families
from storage.simulator.history import FleetHistory


def _escape(value: str) -> str:
    """Escape a label value as the exposition format requires."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_values(values: np.ndarray) -> list[str]:
    """Format floats compactly: integers without a fraction, others with up to 6 decimals."""
    as_int = np.round(values)
    is_int = (values == as_int) & (np.abs(values) < 1e15)
    out = []
    for v, i, iv in zip(values.tolist(), is_int.tolist(), as_int.tolist(), strict=True):
        out.append(str(int(iv)) if i else f"{v:.6f}".rstrip("0").rstrip("."))
    return out


def write_family(fh: IO[str], family: Family, ts_text: list[str]) -> None:
    """Write one family's metadata and all of its samples."""
    base = family.name
    sample_name = family.name
    if family.type == "counter":
        if not base.endswith("_total"):
            raise ValueError(f"counter {base!r} must end in _total")
        base = base[: -len("_total")]
    fh.write(f"# TYPE {base} {family.type}\n# HELP {base} {family.help}\n")
    for series in family.series:
        labels = ",".join(f'{k}="{_escape(v)}"' for k, v in series.labels)
        prefix = f"{sample_name}{{{labels}}} "
        present = np.nonzero(~np.isnan(series.values))[0]
        if len(present) == 0:
            continue
        values = _format_values(series.values[present])
        fh.write(
            "".join(
                f"{prefix}{v} {ts_text[i]}\n" for v, i in zip(values, present.tolist(), strict=True)
            )
        )


def write_openmetrics(sim: FleetHistory, path: Path) -> None:
    """Write every family of ``sim`` to ``path`` as OpenMetrics text ending in ``# EOF``."""
    seconds = sim.times.asi8 // 1_000_000_000
    ts_text = [str(int(s)) for s in seconds]
    with Path(path).open("w", encoding="utf-8", newline="\n") as fh:
        for family in fleet_families(sim):
            write_family(fh, family, ts_text)
        fh.write("# EOF\n")
