"""The scale benchmark's loader round-trips through a real VictoriaMetrics (small N, fast)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks import scale, scale_vm
from benchmarks.scale import AT, slope
from benchmarks.scale_data import FleetShape, load_fleet, write_topology
from storage.metrics import PrometheusSource
from storage.topology import load_topology
from tests.fixtures.prometheus import require_binary


def test_shape_rounds_to_whole_nodes_and_racks() -> None:
    """1000 GPUs are 125 nodes in 4 racks of at most 32 nodes, one PDU/CRAC/leaf each."""
    shape = FleetShape(1000)
    assert (shape.nodes, shape.racks, shape.n_gpus) == (125, 4, 1000)
    topo = shape.topology()
    assert [len(r.nodes) for r in topo.racks] == [32, 32, 32, 29]
    assert len(topo.components) == 12


def test_slope_is_one_for_linear_time() -> None:
    """Time proportional to N has a log-log slope of 1."""
    assert slope([1000, 10000, 100000], [1.0, 10.0, 100.0]) == pytest.approx(1.0)


@pytest.mark.victoriametrics
def test_loader_and_one_fetch_round_trip(tmp_path: Path) -> None:
    """64 GPUs streamed in come back from the product's fetch: every GPU, node and component."""
    require_binary("/usr/bin/victoria-metrics")
    shape = FleetShape(64)
    topo = load_topology(write_topology(shape, tmp_path / "topology.yaml"))
    step = timedelta(seconds=60)
    with scale_vm.serve(tmp_path) as vm:
        stats = load_fleet(vm.url, shape, AT - timedelta(hours=1), AT, step, racks_per_post=1)
        frames = PrometheusSource(vm.url, topology=topo).fetch(AT - timedelta(minutes=30), AT, step)
    assert stats.samples == stats.series * 61
    assert len(frames.gpus) == 64
    assert frames.node["node"].nunique() == 8
    assert set(frames.component["component"]) == {"pdu-a1", "crac-a1", "leaf-a1"}
    assert frames.gpu["ts"].nunique() == 31


def test_a_stored_scan_without_a_model_is_refused_before_loading(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--phases scan-stored`` without ``cold`` (nor a kept workdir) would only record an error
    after loading the fleet: refused at once, saying what to add."""
    with pytest.raises(SystemExit) as exit_info:
        scale.main(["--gpus", "1000", "--phases", "scan,scan-stored", "--dry-run"])
    assert exit_info.value.code == 2
    assert "add cold to --phases" in capsys.readouterr().err


def test_the_rss_timeline_names_where_memory_was_held() -> None:
    """``benchmarks.rss_timeline``: a line per half-second with the highest resident size read
    in it and the main thread's frames of this repository when it was read (here: this test,
    while a scripted reader climbs to 700 MiB and falls back)."""
    import io
    import itertools
    import threading
    import time

    from benchmarks import rss_timeline

    sizes = itertools.chain([100, 300, 700, 200], itertools.repeat(50))
    read = lambda: next(sizes) * 2**20  # noqa: E731
    out, stop = io.StringIO(), threading.Event()
    root = str(Path(rss_timeline.__file__).resolve().parent.parent) + "/"
    sampler = threading.Thread(
        target=rss_timeline.sample, args=(out, threading.get_ident(), root, stop, read)
    )
    sampler.start()
    deadline = time.monotonic() + 60

    def lines() -> list[list[str]]:
        return [line.split(maxsplit=2) for line in out.getvalue().splitlines()]

    # until a line after the climb's (only the fall's 50 MiB in it), however busy the machine
    while not any(size == "50" for _, size, _ in lines()) and time.monotonic() < deadline:
        time.sleep(0.001)  # the main thread stays here, in this test
    stop.set()
    sampler.join()
    assert float(lines()[0][0]) >= rss_timeline.LINE_S
    assert max(int(size) for _, size, _ in lines()) == 700
    where = next(w for _, size, w in lines() if size == "700")
    assert where.startswith("| tests/test_scale_bench.py:")
    assert "test_the_rss_timeline_names_where_memory_was_held" in where
