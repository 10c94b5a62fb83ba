"""Serve the simulated fleet live on /metrics (prometheus_client custom collector).

One endpoint exposes every node's dcgm/ipmi/node series and the facility series with their
``instance`` and ``job`` labels, so scrape it with ``honor_labels: true``. Simulated time runs
``speed`` times faster than the wall clock; the history is generated one simulated day at a
time (each day its own seed), so the exporter can run for as long as it is left up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from wsgiref.simple_server import WSGIServer

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from storage.simulator.exposition import Family
from storage.simulator.faults import DEFAULT_FAULT_RATE
from storage.simulator.fleet import FleetSimulator
from storage.simulator.spec import FleetSpec

logger = logging.getLogger(__name__)

CHUNK = timedelta(days=1)


class LiveFleet:
    """A fleet whose simulated clock follows the wall clock at ``speed``, one day per chunk."""

    def __init__(
        self,
        spec: FleetSpec | None = None,
        *,
        seed: int = 0,
        speed: float = 1.0,
        fault_rate: float = DEFAULT_FAULT_RATE,
        healthy: bool = False,
        step: timedelta = timedelta(minutes=1),
        warmup: timedelta = timedelta(hours=1),
        clock: Callable[[], float] = time.time,
        origin: datetime | None = None,
    ) -> None:
        """Start simulated time at ``origin`` (default: the current minute) and wall time now."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.spec = spec or FleetSpec()
        self.seed = seed
        self.speed = speed
        self.fault_rate = fault_rate
        self.healthy = healthy
        self.step = step
        self.warmup = warmup
        self._clock = clock
        self._wall0 = clock()
        base = origin or datetime.fromtimestamp(self._wall0, UTC)
        self.origin = base.replace(second=0, microsecond=0)
        self._lock = threading.Lock()
        self._chunk_no = -1
        self._sim: FleetSimulator | None = None
        self._families: tuple[Family, ...] = ()

    def now(self) -> datetime:
        """Return the current simulated time."""
        elapsed = (self._clock() - self._wall0) * self.speed
        return self.origin + timedelta(seconds=elapsed)

    def snapshot(self) -> tuple[FleetSimulator, tuple[Family, ...], int]:
        """Return the chunk covering the simulated now, its families and the sample index."""
        now = self.now()
        chunk_no = int((now - self.origin) / CHUNK)
        with self._lock:
            if chunk_no != self._chunk_no or self._sim is None:
                start = self.origin + chunk_no * CHUNK
                logger.info("simulating day %d from %s", chunk_no, start.isoformat())
                self._sim = FleetSimulator(
                    self.spec,
                    start=start,
                    duration=CHUNK,
                    step=self.step,
                    seed=self.seed * 100_003 + chunk_no,
                    fault_rate=self.fault_rate,
                    healthy=self.healthy,
                    warmup=self.warmup if chunk_no == 0 else timedelta(0),
                )
                self._families = self._sim.families()
                self._chunk_no = chunk_no
            sim, families = self._sim, self._families
        index = min(max(sim.index_at(now), 0), sim.steps - 1)
        return sim, families, index


class FleetCollector(Collector):
    """A prometheus_client collector that reports the live fleet's current sample."""

    def __init__(self, live: LiveFleet) -> None:
        """Collect from ``live``."""
        self.live = live

    def collect(self) -> Iterator[Metric]:
        """Yield every family (except ``up``, which Prometheus makes itself) at simulated now."""
        _sim, families, i = self.live.snapshot()
        for family in families:
            if family.name == "up":
                continue
            names = [k for k, _ in family.series[0].labels] if family.series else []
            metric: GaugeMetricFamily | CounterMetricFamily
            if family.type == "counter":
                metric = CounterMetricFamily(family.name, family.help, labels=names)
            else:
                metric = GaugeMetricFamily(family.name, family.help, labels=names)
            for series in family.series:
                value = float(series.values[i])
                if np.isnan(value):
                    continue
                metric.add_metric([v for _, v in series.labels], value)
            yield metric


def build_registry(live: LiveFleet) -> CollectorRegistry:
    """Return a fresh registry holding only the fleet collector (no global REGISTRY)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(live))
    return registry


def start(live: LiveFleet, *, host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Start serving /metrics in a background thread; return the server (shutdown() stops it)."""
    server, thread = start_http_server(port, addr=host, registry=build_registry(live))
    return server, thread


def serve_forever(live: LiveFleet, *, host: str, port: int) -> None:
    """Serve /metrics until interrupted."""
    server, thread = start(live, host=host, port=port)
    try:
        while thread.is_alive():
            thread.join(timeout=1.0)
    finally:
        server.shutdown()
        server.server_close()
