"""Scale benchmark: the product at N GPUs, side by side with the raw fetch of what it reads.

For each N: start a throw-away VictoriaMetrics (benchmarks/scale_vm.py), stream a synthetic fleet
of N GPUs into it (benchmarks/scale_data.py: the exporters' names and labels, racks of 32 x 8
GPUs, topology.yaml), then measure, each phase in a fresh process (benchmarks/scale_phases.py)
so its peak RSS is its own:

- ``fetch``: ``PrometheusSource.fetch`` of one cycle window (median of --repeat);
- ``bare``: the same HTTP queries with requests + json.loads only (HTTP and parse apart);
- ``cold``: ``build_pipeline`` + ``refit`` + ``run_cycle`` (history fetch, fit, first cycle);
- ``steady``: a new process loading the saved model, one warm-up cycle, then --repeat cycles;
- ``reads``: what a cycle reads (the peer metrics raw, the reductions from the server), --repeat
  times, no model: a lower bound of the steady cycle at sizes no model can be fitted at yet;
- ``scan``: ``gpu-risk scan --at T --format json`` with an empty model dir (fits, like a user's
  first one-shot scan);
- ``scan-stored``: the same scan with the model ``cold`` saved in ``GPU_RISK_MODEL_DIR`` (an
  operator's scan beside the running bot, which keeps its fitted model there; run ``cold``
  first);
- ``picture``: the one read of a new incident's panels (``bot.evidence.Evidence.picture_frames``):
  every series of one node and its 64 panel peers over the cycle window, --repeat times.

--pin puts the server on CPU 0 and the phases on CPU 1 after the load: the query engine on a core
of its own, as on its own machine (what a read that overlaps the server's work gains there).
A phase over --budget-seconds or --max-rss-gb is killed and shown as "> budget" / "> mem". Prints
one table, the ratios and the log-log slope of each phase's time against N; --out writes JSON.

    python -m benchmarks.scale --gpus 1000,10000 --out benchmarks/results/scale-DATE.json
    python -m benchmarks.scale --gpus 100000 --dry-run     # generation time only, no server
    make bench-scale N=1000,10000
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import scale_vm
from benchmarks.scale_data import FleetShape, load_fleet, write_topology

ROOT = Path(__file__).resolve().parent.parent
#: The scored instant (samples on the minute grid up to it); fixed so runs are comparable.
AT = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PHASES = ("fetch", "bare", "cold", "steady", "reads", "scan", "scan-stored", "picture")


def _rss_mb(pid: int) -> float:
    """Current resident memory of ``pid`` in MB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _pin(server: int) -> None:
    """The TSDB on CPU 0 (every thread of ``server``), this process and its phases on CPU 1:
    the query engine on a core of its own, as on its own machine (``--pin``)."""
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("--pin needs two CPUs")
    for task in Path(f"/proc/{server}/task").iterdir():
        os.sched_setaffinity(int(task.name), {0})
    os.sched_setaffinity(0, {1})


def run_child(
    args: list[str], env: dict[str, str], log: Path, budget: float, max_rss_mb: float
) -> dict[str, Any]:
    """Run one phase process: wall time, peak RSS (wait4), and kill it over budget or memory."""
    t0 = time.perf_counter()
    cwd = env.get("PYTHONPATH") or ROOT
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    killed = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.perf_counter() - t0
        if elapsed > budget:
            killed = "budget"
        elif _rss_mb(proc.pid) > max_rss_mb:
            killed = "mem"
        if killed:
            os.killpg(proc.pid, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": time.perf_counter() - t0,
        "rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "exit": proc.returncode,
        "killed": killed,
        "log": str(log),
    }


def _phase(
    name: str, work: Path, env: dict[str, str], opts: argparse.Namespace, extra: list[str]
) -> dict[str, Any]:
    """Run a benchmarks.scale_phases phase and merge its own timings with wall time and RSS."""
    result = work / f"{name}.json"
    args = [sys.executable, "-m", "benchmarks.scale_phases", name, "--at", AT.isoformat()]
    args += ["--result", str(result), "--repeat", str(opts.repeat), *extra]
    run = run_child(args, env, work / f"{name}.log", opts.budget_seconds, opts.max_rss_gb * 1024)
    if run["exit"] == 0 and result.exists():
        run |= json.loads(result.read_text())
    else:
        run["error"] = Path(run["log"]).read_text(errors="replace")[-1500:]
    return run


def _scan(
    work: Path, env: dict[str, str], opts: argparse.Namespace, *, stored: bool = False
) -> dict[str, Any]:
    """``gpu-risk scan --at T --format json``, ``--scan-repeat`` times, with an empty model dir
    (it fits), or with ``stored`` the model dir the ``cold`` phase saved its model in."""
    cli = "import sys; from bot.cli import main; sys.argv[0] = 'gpu-risk'; sys.exit(main())"
    if stored and not any((work / "models").glob("*")):
        return {"error": "scan-stored needs the model the cold phase saves: run cold first"}
    runs = []
    for i in range(opts.scan_repeat):
        models = work / "models" if stored else work / f"scan-models-{i}"
        senv = env | {"GPU_RISK_MODEL_DIR": str(models)}
        log = work / f"scan{'-stored' if stored else ''}-{i}.log"
        run = run_child(
            [sys.executable, "-c", cli, "scan", "--at", AT.isoformat(), "--format", "json"],
            senv,
            log,
            opts.budget_seconds,
            opts.max_rss_gb * 1024,
        )
        if run["exit"] == 0:
            text = log.read_text(errors="replace")
            answer = json.loads(text[text.index("{") :])
            run["gpus"] = answer.get("gpus_scored")
            run["incidents"] = len(answer.get("incidents", ()))
        else:
            run["error"] = log.read_text(errors="replace")[-1500:]
        runs.append(run)
        if run["killed"] or run["exit"]:
            break
    ok = [r["wall_s"] for r in runs if not r["killed"] and r["exit"] == 0]
    out = dict(runs[-1])
    if opts.profile and ok:  # one more run under cProfile, apart from the timed ones
        name = "scan-stored" if stored else "scan"
        prof = work / f"{name}.prof"
        models = work / "models" if stored else work / "scan-models-profile"
        statement = cli.split("; sys.exit", maxsplit=1)[0] + "; main()"
        code = f"import cProfile; cProfile.run({statement!r}, {str(prof)!r})"
        run_child(
            [sys.executable, "-c", code, "scan", "--at", AT.isoformat(), "--format", "json"],
            env | {"GPU_RISK_MODEL_DIR": str(models)},
            work / f"{name}-profile.log",
            opts.budget_seconds,
            opts.max_rss_gb * 1024,
        )
    out["times"] = [r["wall_s"] for r in runs]
    out["rss_mb"] = max(r["rss_mb"] for r in runs)
    if ok:
        out["median"] = float(np.median(ok))
    return out


def bench_one(n: int, opts: argparse.Namespace, root: Path) -> dict[str, Any]:
    """Load N GPUs into a fresh VictoriaMetrics and measure every phase."""
    shape = FleetShape(n)
    work = root / f"n{n}"
    work.mkdir(parents=True, exist_ok=True)
    fit = timedelta(hours=opts.fit_hours)
    window = timedelta(minutes=opts.window_minutes)
    start = AT - fit - window - timedelta(minutes=15)
    step = timedelta(seconds=60)
    topo = write_topology(shape, work / "topology.yaml")
    res: dict[str, Any] = {"gpus": shape.n_gpus, "nodes": shape.nodes, "racks": shape.racks}
    print(f"N={shape.n_gpus}: {shape.nodes} nodes, {shape.racks} racks", flush=True)
    if opts.dry_run:
        stats = load_fleet(None, shape, start, AT, step)
        res["load"] = stats.__dict__
        print(f"  dry run: generated {stats.series:,} series, {stats.samples:,} samples, "
              f"{stats.bytes / 1e6:.0f} MB in {stats.seconds:.1f} s", flush=True)  # fmt: skip
        return res
    with scale_vm.serve(work) as vm:
        stats = load_fleet(vm.url, shape, start, AT, step)
        res["load"] = stats.__dict__ | {"vm_rss_mb": vm.rss_mb()}
        print(f"  loaded {stats.series:,} series, {stats.samples:,} samples, "
              f"{stats.bytes / 1e6:.0f} MB in {stats.seconds:.1f} s "
              f"(generation {stats.generate_seconds:.1f} s); VM RSS {vm.rss_mb():.0f} MB",
              flush=True)  # fmt: skip
        if opts.pin:
            _pin(vm.process.pid)
        env = os.environ | {
            "GPU_RISK_PROMETHEUS_URL": vm.url,
            "GPU_RISK_TOPOLOGY": str(topo),
            "GPU_RISK_FIT_WINDOW_HOURS": str(opts.fit_hours),
            "GPU_RISK_WINDOW_MINUTES": str(opts.window_minutes),
            "GPU_RISK_STEP_SECONDS": "60",
            "GPU_RISK_MODEL_DIR": str(work / "models"),
            "GPU_RISK_DATABASE_URL": "sqlite://",
            "GPU_RISK_PROMETHEUS_TIMEOUT": str(opts.budget_seconds),
            "MPLBACKEND": "Agg",
        }
        env = {k: v for k, v in env.items() if not k.startswith("SLACK_")}
        if opts.code:  # measure another checkout (e.g. `git archive HEAD | tar -x -C DIR`)
            env["PYTHONPATH"] = str(Path(opts.code).resolve())
        queries = work / "queries.json"
        for name in opts.phases:
            if name in ("scan", "scan-stored"):
                r = _scan(work, env, opts, stored=name == "scan-stored")
            elif name == "reads" and opts.reads_concurrency:
                # the same reads at each concurrency, side by side in this run
                by = {}
                for c in opts.reads_concurrency:
                    env_c = env | {"GPU_RISK_PROMETHEUS_CONCURRENCY": str(c)}
                    extra = ["--timeout", str(opts.budget_seconds)]
                    by[str(c)] = _phase(name, work, env_c, opts, extra)
                    print(f"  reads at concurrency {c}: {_cell(by[str(c)])} s, "
                          f"peak RSS {by[str(c)]['rss_mb']:.0f} MB", flush=True)  # fmt: skip
                res["reads_by_concurrency"] = by
                r = by[str(opts.reads_concurrency[-1])]
            else:
                extra = ["--queries", str(queries), "--timeout", str(opts.budget_seconds)]
                if name in ("steady", "cold") and opts.profile:
                    extra += ["--profile", str(work / f"{name}.prof")]
                r = _phase(name, work, env, opts, extra)
            r["vm_rss_mb_after"] = vm.rss_mb()
            res[name] = r
            if "rss_mb" not in r:  # refused before it ran
                print(f"  {name:<6} not run: {r.get('error', '')}", flush=True)
                continue
            print(f"  {name:<6} {_cell(r)} s, peak RSS {r['rss_mb']:.0f} MB, wall {r['wall_s']:.1f} s"
                  + (f"  ERROR: {r['error'][-300:]}" if "error" in r else ""), flush=True)  # fmt: skip
        for name in ("steady", "cold", "scan", "scan-stored"):
            if not (opts.profile and (work / f"{name}.prof").exists()):
                continue
            prof_out = Path(opts.profile_out or root / f"steady-{n}.prof")
            if name != "steady":
                prof_out = prof_out.with_name(f"{name}-{prof_out.name.removeprefix('steady-')}")
            prof_out.write_bytes((work / f"{name}.prof").read_bytes())
            res["profile" if name == "steady" else f"{name}_profile"] = str(prof_out)
            what = {"steady": "one cycle", "cold": "the refit"}.get(name, "the whole process")
            print(f"  {name} profile ({what}):")
            pstats.Stats(str(prof_out)).sort_stats("cumulative").print_stats(opts.profile_top)
    return res


def _cell(r: dict[str, Any] | None, key: str = "median") -> str:
    """A time cell: the median, or "> budget" / "> mem" / "failed"."""
    if not r:
        return "-"
    if r.get("killed") == "budget":
        return "> budget"
    if r.get("killed") == "mem":
        return "> mem"
    if key not in r:
        return "failed"
    return f"{r[key]:.2f}"


def _spread(r: dict[str, Any] | None) -> str:
    """min/median/max of a phase's repeated times."""
    if not r or not r.get("times"):
        return "-"
    t = r["times"]
    return f"{min(t):.2f}/{float(np.median(t)):.2f}/{max(t):.2f}"


def slope(ns: list[int], ts: list[float]) -> float | None:
    """Log-log slope of time against N (1 = linear), None with fewer than two points."""
    pts = [(n, t) for n, t in zip(ns, ts, strict=True) if t and t > 0]
    if len(pts) < 2:
        return None
    x, y = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(x, y, 1)[0])


def report(results: list[dict[str, Any]]) -> str:
    """The table, the spreads, the ratios and the log-log slopes."""
    head = (
        f"{'N':>7} {'load s':>7} {'fetch s':>8} {'bare s':>7} {'(parse)':>8} {'steady s':>9} "
        f"{'st/fetch':>8} {'st/bare':>8} {'st RSS':>7} {'cold s':>8} {'cold RSS':>8} "
        f"{'scan s':>8} {'scan RSS':>8} {'ready s':>7}"
    )
    moved = "what one steady cycle moves (decoded JSON) vs the raw fetch of the cycle window:"
    lines = [head, "-" * len(head)]
    for r in results:
        g = r.get
        st, fe, ba = g("steady") or {}, g("fetch") or {}, g("bare") or {}

        def ratio(a: dict[str, Any], b: dict[str, Any]) -> str:
            return f"{a['median'] / b['median']:.2f}" if "median" in a and "median" in b else "-"

        def rss(x: dict[str, Any] | None) -> str:
            return f"{x['rss_mb']:.0f}" if x else "-"

        lines.append(
            f"{r['gpus']:>7} {r.get('load', {}).get('seconds', 0):>7.0f} {_cell(g('fetch')):>8} "
            f"{_cell(g('bare')):>7} {_cell(ba, 'parse_median'):>8} {_cell(g('steady')):>9} "
            f"{ratio(st, fe):>8} {ratio(st, ba):>8} {rss(g('steady')):>7} "
            f"{_cell(g('cold')):>8} {rss(g('cold')):>8} {_cell(g('scan')):>8} {rss(g('scan')):>8} "
            f"{_cell(st, 'ready_s'):>7}"
        )
    lines.append("")
    lines.append(moved)
    for r in results:
        st, fe, ba = r.get("steady") or {}, r.get("fetch") or {}, r.get("bare") or {}
        if "io_bytes" not in st:
            continue
        raw = (
            f"raw fetch {ba['bytes'] / 1e6:.1f} MB, {fe.get('series', 0):,} series, "
            f"{fe.get('rows', 0):,} samples"
            if "bytes" in ba
            else "raw fetch -"
        )
        lines.append(
            f"  N={r['gpus']}: cycle {st['io_requests']} requests, {st['io_bytes'] / 1e6:.1f} MB, "
            f"{st['io_series']:,} series, {st['io_samples']:,} samples; {raw}"
        )
    reads = [r for r in results if "median" in (r.get("reads") or {})]
    if reads:
        lines.append("")
        lines.append("a cycle's reads alone (peer metrics raw + server reductions, no model):")
    for r in reads:
        fe = r.get("fetch") or {}
        for rd in (r.get("reads_by_concurrency") or {"": r["reads"]}).values():
            if "median" not in rd:
                continue
            vs = f" = {rd['median'] / fe['median']:.2f}x the fetch" if "median" in fe else ""
            first = f", the first (whole) {rd['first_s']:.2f} s" if "first_s" in rd else ""
            lines.append(
                f"  N={r['gpus']}: {rd['median']:.2f} s{vs}{first}, peak RSS "
                f"{rd['rss_mb']:.0f} MB (concurrency {rd.get('concurrency', '-')})"
            )
    stored = [r for r in results if "median" in (r.get("scan-stored") or {})]
    if stored:
        lines.append("")
        lines.append("one-shot scan with the running bot's stored model (no fit):")
    for r in stored:
        sc = r["scan-stored"]
        lines.append(
            f"  N={r['gpus']}: {sc['median']:.2f} s, peak RSS {sc['rss_mb']:.0f} MB, "
            f"{sc.get('gpus')} GPUs scored, {sc.get('incidents')} incidents"
        )
    lines.append("")
    lines.append("min/median/max per phase (s):")
    for r in results:
        every = ("fetch", "bare", "steady", "reads", "scan", "scan-stored")
        parts = [f"{p} {_spread(r.get(p))}" for p in every]
        lines.append(f"  N={r['gpus']}: " + ", ".join(parts))
    ns = [r["gpus"] for r in results]
    if len(ns) > 1:
        lines.append("")
        lines.append("log-log slope of time vs N (1.0 = linear):")
        for p in ("fetch", "bare", "steady", "reads", "cold", "scan", "scan-stored"):
            ts = [(r.get(p) or {}).get("median", math.nan) for r in results]
            s = slope(ns, [t for t in ts])
            lines.append(f"  {p:<6} {s:.2f}" if s is not None else f"  {p:<6} -")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run every N, print the table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--gpus", default="1000", help="comma list of fleet sizes, e.g. 1000,10000")
    ap.add_argument("--fit-hours", type=int, default=2, help="history a model is fitted on")
    ap.add_argument("--window-minutes", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=3, help="repeats of fetch/bare/steady")
    ap.add_argument("--scan-repeat", type=int, default=3)
    ap.add_argument("--budget-seconds", type=float, default=900.0, help="per phase")
    ap.add_argument("--max-rss-gb", type=float, default=10.0, help="kill a phase above this")
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--dry-run", action="store_true", help="generate the data only (no server)")
    ap.add_argument(
        "--profile",
        action="store_true",
        help="cProfile one steady cycle, the cold refit and one extra scan of each scan phase",
    )
    ap.add_argument(
        "--profile-out",
        help="where the steady .prof goes (with one N; the cold one beside it, cold-*)",
    )
    ap.add_argument("--profile-top", type=int, default=15)
    ap.add_argument(
        "--reads-concurrency",
        type=lambda v: [int(c) for c in v.split(",") if c],
        default=[],
        help="run the reads phase at each of these GPU_RISK_PROMETHEUS_CONCURRENCY values, e.g. 1,4",
    )
    ap.add_argument(
        "--pin",
        action="store_true",
        help="after the load, VictoriaMetrics on CPU 0 and the phases on CPU 1 (the query "
        "engine on a core of its own)",
    )
    ap.add_argument("--out", type=Path, help="write the results as JSON")
    ap.add_argument("--code", help="run the phases on the checkout in this dir (PYTHONPATH)")
    ap.add_argument("--workdir", type=Path, help="keep data and logs here (default: temp)")
    opts = ap.parse_args(argv)
    opts.phases = [p for p in opts.phases.split(",") if p]
    unknown = set(opts.phases) - set(PHASES)
    if unknown:
        ap.error(f"unknown phase(s) {sorted(unknown)}; choose from {', '.join(PHASES)}")
    if "scan-stored" in opts.phases and "cold" not in opts.phases and opts.workdir is None:
        ap.error(
            "scan-stored scans with the model the cold phase saves: add cold to --phases, or "
            "give the --workdir of a run that had it"
        )
    ns = [int(float(x)) for x in opts.gpus.split(",") if x]
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu-risk-scale-") as tmp:
        root = opts.workdir or Path(tmp)
        cpus = os.sched_getaffinity(0)
        for n in ns:
            results.append(bench_one(n, opts, root))
            os.sched_setaffinity(0, cpus)  # --pin's, undone for the next N's server
            if opts.out:  # after each N: a long run keeps what it measured
                _write(opts, results)
    print()
    print(report(results))
    if opts.out:
        _write(opts, results)
        print(f"\nwrote {opts.out}")


def _write(opts: argparse.Namespace, results: list[dict[str, Any]]) -> None:
    """Write the JSON results with the run's parameters."""
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {
        "at": AT.isoformat(),
        "fit_hours": opts.fit_hours,
        "window_minutes": opts.window_minutes,
        "repeat": opts.repeat,
        "budget_seconds": opts.budget_seconds,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "code": opts.code or str(ROOT),
    }
    opts.out.write_text(json.dumps({"meta": meta, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
