"""One phase of the scale benchmark, run in its own process so its peak RSS is its own.

    python -m benchmarks.scale_phases PHASE --at ISO --result FILE [--repeat R] [--profile FILE]

PHASE is ``fetch`` (the product's ``PrometheusSource.fetch`` of one cycle window; records the
queries it sent), ``bare`` (the same queries with requests + json.loads only), ``cold``
(``build_pipeline`` + ``refit`` + ``run_cycle`` on a fresh store, saving the model) or
``steady`` (a new pipeline loading that model: one warm-up cycle, then ``--repeat`` cycles) or
``reads`` (what a cycle reads, ``Pipeline.read_window``: the peer metrics raw and the per-GPU
reductions computed by the server: one warm-up read, then ``--repeat`` at successive cycles;
no model needed, so it runs at any N). The settings come from the environment
(``GPU_RISK_PROMETHEUS_URL``, ``GPU_RISK_TOPOLOGY``, ``GPU_RISK_MODEL_DIR``,
``GPU_RISK_FIT_WINDOW_HOURS``, ...), as for ``gpu-risk``. Timings are written as JSON to FILE;
the parent measures wall time and peak RSS (``os.wait4``).
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

T_START = time.perf_counter()

import requests  # noqa: E402  (timed from T_START: imports are part of start-up)


class RecordingSession(requests.Session):
    """A requests session that remembers every request's URL and parameters."""

    def __init__(self) -> None:
        """No request recorded yet."""
        super().__init__()
        self.sent: list[dict[str, Any]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Record, then send."""
        self.sent.append({"method": method, "url": url, "params": kwargs.get("params")})
        return super().request(method, url, *args, **kwargs)


def _settings() -> Any:
    """Settings from the GPU_RISK_* environment."""
    from bot.config import Settings

    return Settings()


def phase_fetch(at: datetime, repeat: int, queries_file: Path | None) -> dict[str, Any]:
    """The product's fetch of one cycle window, ``repeat`` times."""
    from bot.wiring import load_topology_of
    from storage.metrics import PrometheusSource

    settings = _settings()
    topo = load_topology_of(settings)
    window = timedelta(minutes=settings.window_minutes)
    step = timedelta(seconds=settings.step_seconds)
    times, stats = [], None
    for _ in range(repeat):
        session = RecordingSession()
        src = PrometheusSource(
            settings.prometheus_url,
            topology=topo,
            session=session,
            timeout=settings.prometheus_timeout,
        )
        t0 = time.perf_counter()
        frames = src.fetch(at - window, at, step)
        times.append(time.perf_counter() - t0)
        stats = src.last_stats
        gpus = len(frames.gpus)
        if queries_file is not None:
            queries_file.write_text(json.dumps(session.sent), encoding="utf-8")
        del frames
    assert stats is not None
    return {
        "times": times,
        "median": statistics.median(times),
        "gpus": gpus,
        "requests": stats.requests,
        "series": stats.series,
        "rows": stats.samples,
    }


def phase_picture(at: datetime, repeat: int) -> dict[str, Any]:
    """The one read of an incident's picture (``bot.evidence.Evidence.picture_frames``): one
    node and its ``PEER_NODES`` panel peers, the GPU metrics the panels of an HBM-like GPU incident
    could show (explained by its correctable ECC count) and every other series, ``repeat``
    times."""
    from analysis.plots import picture_read
    from analysis.types import Explanation, Factor, GpuScore, Incident, RootCause
    from bot.wiring import load_topology_of
    from storage.metrics import PrometheusSource
    from storage.source import NodeSample

    settings = _settings()
    topo = load_topology_of(settings)
    names = [n for rack in topo.racks for n in rack.nodes]
    factor = Factor("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", f"{names[0]}/0", 0.8)
    incident = Incident(
        id="bench",
        at=at,
        severity="critical",
        score=0.95,
        root_cause=RootCause(f"{names[0]}/0", "gpu"),
        gpus=(GpuScore(names[0], "0", 0.95),),
        explanation=Explanation("bench", (factor,)),
    )
    chosen, metrics = picture_read([incident], names)  # as Evidence.picture_frames asks
    nodes = NodeSample(chosen)
    window = timedelta(minutes=settings.window_minutes)
    step = timedelta(seconds=settings.step_seconds)
    src = PrometheusSource(
        settings.prometheus_url, topology=topo, timeout=settings.prometheus_timeout
    )
    times, rows = [], 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        frames = src.fetch(at - window, at, step, gpu_metrics=metrics, nodes=nodes)
        times.append(time.perf_counter() - t0)
        rows = len(frames.gpu)
    stats = src.last_stats
    assert stats is not None
    return {
        "times": times,
        "median": statistics.median(times),
        "nodes": len(nodes),
        "gpu_metrics": metrics,
        "gpu_rows": rows,
        "requests": stats.requests,
        "series": stats.series,
    }


def phase_bare(repeat: int, queries_file: Path, timeout: float) -> dict[str, Any]:
    """Replay the product's queries: HTTP (body received) and json.loads, timed apart."""
    sent = json.loads(queries_file.read_text(encoding="utf-8"))
    http_t, parse_t, nbytes = [], [], 0
    for _ in range(repeat):
        session = requests.Session()
        h = p = 0.0
        nbytes = 0
        for q in sent:
            t0 = time.perf_counter()
            r = session.request(q["method"], q["url"], params=q["params"], timeout=timeout)
            body = r.content
            t1 = time.perf_counter()
            data = json.loads(body)
            t2 = time.perf_counter()
            assert data["status"] == "success", data
            h, p, nbytes = h + t1 - t0, p + t2 - t1, nbytes + len(body)
            del data, body
        http_t.append(h)
        parse_t.append(p)
    total = [a + b for a, b in zip(http_t, parse_t, strict=True)]
    return {
        "http": http_t,
        "parse": parse_t,
        "times": total,
        "median": statistics.median(total),
        "http_median": statistics.median(http_t),
        "parse_median": statistics.median(parse_t),
        "bytes": nbytes,
        "requests": len(sent),
    }


def _pipeline(settings: Any) -> Any:
    """The running bot's pipeline (``bot.wiring.build_pipeline``) on a fresh store.

    The store is a SQLite file in a temporary directory, not ``sqlite://``: a deployed bot's
    database is outside its process, and an in-memory one holds every cycle's scores in the
    process measured (at 100,000 GPUs it added tens of MB to the resident size each cycle).
    """
    from bot.wiring import build_pipeline, build_source, load_topology_of
    from storage.repository import Repository

    store = Path(tempfile.mkdtemp(prefix="gpu-risk-scale-")) / "state.db"
    atexit.register(shutil.rmtree, store.parent, True)
    topo = load_topology_of(settings)
    return build_pipeline(
        settings,
        source=build_source(settings, topo),
        topology=topo,
        repository=Repository.from_url(f"sqlite:///{store}"),
    )


def phase_cold(at: datetime, profile: Path | None = None) -> dict[str, Any]:
    """Fit (history fetch + scorer + explainer, model saved) and the first cycle.

    ``profile``: the refit runs under cProfile (so its time includes the profiler's overhead).
    """
    t0 = time.perf_counter()
    settings = _settings()
    pipeline = _pipeline(settings)
    t1 = time.perf_counter()
    if profile is None:
        pipeline.refit(at)
    else:
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        pipeline.refit(at)
        prof.disable()
        prof.dump_stats(str(profile))
    t2 = time.perf_counter()
    out = pipeline.run_cycle(at)
    t3 = time.perf_counter()
    assert out.ok, out.error
    return {
        "import_s": t0 - T_START,
        "build_s": t1 - t0,
        "refit_s": t2 - t1,
        "cycle_s": t3 - t2,
        "median": t3 - t0,
        "gpus": out.gpus_scored,
        "incidents": len(out.incidents),
    }


def phase_steady(at: datetime, repeat: int, profile: Path | None) -> dict[str, Any]:
    """A restarted bot: load the stored model in a warm-up cycle, then ``repeat`` cycles."""
    t0 = time.perf_counter()
    settings = _settings()
    pipeline = _pipeline(settings)
    t1 = time.perf_counter()
    step = timedelta(seconds=settings.scan_interval)
    first = pipeline.run_cycle(at - repeat * step)
    t2 = time.perf_counter()
    assert first.ok, first.error
    restored = pipeline.scorer is not None and pipeline.explainer is None
    times, gpus, incidents = [], 0, 0
    for i in range(repeat - 1, -1, -1):
        c0 = time.perf_counter()
        out = pipeline.run_cycle(at - i * step)
        times.append(time.perf_counter() - c0)
        assert out.ok, out.error
        gpus, incidents = out.gpus_scored, len(out.incidents)
    io = _cycle_io(pipeline, at)  # one more cycle, not timed: what it moves over HTTP
    if profile is not None:  # one more cycle under cProfile, not counted in the times
        import cProfile

        prof = cProfile.Profile()
        prof.enable()
        pipeline.run_cycle(at)
        prof.disable()
        prof.dump_stats(str(profile))
    return {
        "import_s": t0 - T_START,
        "ready_s": t1 - T_START,
        "first_cycle_s": t2 - t1,
        "model_loaded": restored,
        "times": times,
        "median": statistics.median(times),
        "gpus": gpus,
        "incidents": incidents,
        **io,
    }


def phase_reads(at: datetime, repeat: int) -> dict[str, Any]:
    """A cycle's reads alone (``Pipeline.read_window``): one warm-up read (as the steady phase's
    warm-up cycle: a running bot's first cycle reads its window whole), then ``repeat`` reads
    at successive cycles."""
    t0 = time.perf_counter()
    settings = _settings()
    pipeline = _pipeline(settings)
    step = timedelta(seconds=settings.scan_interval)
    c0 = time.perf_counter()
    pipeline.read_window(at - repeat * step)
    first = time.perf_counter() - c0
    times, gpus = [], 0
    for i in range(repeat - 1, -1, -1):
        c0 = time.perf_counter()
        frames = pipeline.read_window(at - i * step)
        times.append(time.perf_counter() - c0)
        assert frames.reduced is not None, "the scorer reads no reductions"
        gpus = len(frames.reduced.table)
        del frames
    return {
        "ready_s": t0 - T_START,
        "first_s": first,
        "times": times,
        "median": statistics.median(times),
        "gpus": gpus,
        "concurrency": settings.prometheus_concurrency,
    }


def _cycle_io(pipeline: Any, at: datetime) -> dict[str, Any]:
    """Run a cycle counting the answers it receives: requests, decoded bytes, series, samples.

    ``requests.Session.request`` is wrapped for the cycle, so any checkout's source is counted
    alike (the raw fetch, the reductions, the incident nodes' raw series).
    """
    original = requests.Session.request
    bodies: list[bytes] = []

    def counting(self: requests.Session, method: str, url: str, *a: Any, **kw: Any) -> Any:
        response = original(self, method, url, *a, **kw)
        bodies.append(response.content)
        return response

    requests.Session.request = counting  # type: ignore[method-assign]
    try:
        out = pipeline.run_cycle(at)
    finally:
        requests.Session.request = original  # type: ignore[method-assign]
    assert out.ok, out.error
    series = samples = 0
    for body in bodies:
        for item in json.loads(body).get("data", {}).get("result", []):
            series += 1
            samples += len(item["values"]) if "values" in item else 1
    return {
        "io_requests": len(bodies),
        "io_bytes": sum(len(b) for b in bodies),
        "io_series": series,
        "io_samples": samples,
    }


def main() -> None:
    """Run one phase and write its JSON result (with the collector and the allocator set as
    ``gpu-risk`` sets them)."""
    from bot import gc_tuning, malloc_tuning

    gc_tuning.tune()  # as bot.cli.main does before any command
    malloc_tuning.tune()
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["fetch", "bare", "cold", "steady", "reads", "picture"])
    ap.add_argument("--at", required=True)
    ap.add_argument("--result", type=Path, required=True)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--queries", type=Path)
    ap.add_argument("--profile", type=Path)
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    at = datetime.fromisoformat(args.at)
    if args.phase == "fetch":
        res = phase_fetch(at, args.repeat, args.queries)
    elif args.phase == "bare":
        res = phase_bare(args.repeat, args.queries, args.timeout)
    elif args.phase == "cold":
        res = phase_cold(at, args.profile)
    elif args.phase == "reads":
        res = phase_reads(at, args.repeat)
    elif args.phase == "picture":
        res = phase_picture(at, args.repeat)
    else:
        res = phase_steady(at, args.repeat, args.profile)
    args.result.write_text(json.dumps(res), encoding="utf-8")


if __name__ == "__main__":
    main()
