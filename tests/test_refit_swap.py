"""The daily refit runs beside the scans: the current model keeps scanning, the new one is
swapped in whole once it is fitted.

The bot's runtime on the simulated test fleet with the graph model; its source holds every
history fetch (the long range a fit reads) until the test lets it go, so the refit is as slow
as the test wants. While the refit waits, a scan completes with the old model; once it is done,
the next scan uses the new one without fitting again.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from analysis.feature_plan import FeaturePlan
from analysis.types import FleetFrames, Reductions
from bot.config import load_settings
from bot.wiring import Runtime, build_runtime
from storage.source import MetricsSource, MetricsSourceError
from tests.fixtures import fleetdata as fd
from tests.fixtures.clock import Clock
from tests.fixtures.prometheus import free_port

HISTORY = timedelta(hours=1)  # a fetch longer than this is a fit's history


class HeldHistory:
    """A metrics source that holds history fetches while ``hold`` is set, until ``release``."""

    def __init__(self, source: MetricsSource) -> None:
        """Wrap ``source``; nothing held yet."""
        self.source = source
        self.hold = False
        self.held = threading.Event()
        self.release = threading.Event()
        self.history_fetches = 0

    def fetch(
        self,
        start: datetime,
        end: datetime,
        step: timedelta,
        *,
        gpu_metrics: Sequence[str] | None = None,
        nodes: Collection[str] | None = None,
    ) -> FleetFrames:
        """The wrapped fetch, after the release when it is a history fetch while holding."""
        if end - start > HISTORY:
            self.history_fetches += 1
            if self.hold:
                self.held.set()
                if not self.release.wait(120):
                    raise MetricsSourceError("the test never released the history fetch")
        return self.source.fetch(start, end, step, gpu_metrics=gpu_metrics, nodes=nodes)

    def reduce(self, plan: FeaturePlan, at: datetime) -> Reductions:
        """The wrapped source's reductions."""
        return self.source.reduce(plan, at)

    def cordoned(self, at: datetime) -> frozenset[str]:
        """The wrapped source's cordoned nodes."""
        return self.source.cordoned(at)


@pytest.fixture(scope="module")
def simulator() -> Any:
    """The test fleet's simulator (HBM fails at 2:00, PCIe at 2:30, a fan at 2:45)."""
    from storage.simulator import FleetSimulator, FleetSpec

    return fd.simulate(FleetSimulator, FleetSpec)


def _runtime(tmp_path: Path, source: HeldHistory, clock: Clock) -> Runtime:
    """The bot with the graph model fitted on 2 hours, on a temp SQLite file."""
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'state.db'}",
        detector="graph",
        fit_window_hours=2,
        open_after=1,
        open_for=0,
        console_log=tmp_path / "console.jsonl",
        http_host="127.0.0.1",
        http_port=free_port(),
        scan_interval=1,
    )
    return build_runtime(settings, source=source, clock=clock)


def test_a_slow_refit_leaves_the_current_model_scanning_then_swaps_in_whole(
    tmp_path: Path, simulator: Any
) -> None:
    source = HeldHistory(simulator)
    clock = Clock(fd.SIM_START + timedelta(hours=2, minutes=10))
    runtime = _runtime(tmp_path, source, clock)
    pipeline = runtime.pipeline
    try:
        assert runtime.scan() is True  # the cold start fits inline, in the first scan
        old = pipeline.current
        assert old is not None and source.history_fetches == 1
        first_fit = runtime.repository.latest_model()
        assert first_fit is not None

        clock.at += timedelta(minutes=5)
        source.hold = True
        errors: list[BaseException] = []

        def refit() -> None:
            try:
                runtime.refit()
            except BaseException as exc:  # reported by the assertion below
                errors.append(exc)

        worker = threading.Thread(target=refit, name="refit")
        worker.start()
        assert source.held.wait(120), "the refit never asked for its history"

        # the refit is fitting (held in its history fetch): a scan completes with the old model
        clock.at += timedelta(minutes=1)
        assert runtime.scan() is True
        assert pipeline.current is old
        assert runtime.repository.status().last_ok_scan is not None
        assert runtime.repository.status().last_ok_scan.at == clock.at
        assert worker.is_alive()

        source.release.set()
        worker.join(300)
        assert not worker.is_alive() and not errors, errors
        new = pipeline.current
        assert new is not None and new is not old
        assert new.scorer is not old.scorer and new.fingerprint == old.fingerprint
        # the refit was handed the old model's usual selves (kept by GPUs it has no rows for)
        assert not old.scorer.own_.empty
        assert new.scorer.usual_before is old.scorer.own_
        refitted = runtime.repository.latest_model()
        assert refitted is not None and refitted != first_fit

        # the next scan scores with the new model, without fitting again
        clock.at += timedelta(minutes=1)
        assert runtime.scan() is True
        assert pipeline.current is new
        assert source.history_fetches == 2
    finally:
        source.release.set()
        runtime.stop()
