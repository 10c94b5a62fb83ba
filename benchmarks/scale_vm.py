"""Start and stop a throw-away VictoriaMetrics for the scale benchmark (loopback, temp dir, by PID).

Flags from ../shared/NOTES.md: keep old synthetic data (``-retentionPeriod=100y``), honest repeat
timings (``-search.disableCache``), newest samples visible at once (``-search.latencyOffset=0s``)
and limits high enough for a 100k-GPU fleet (~2M series, one range query over all GPUs).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

BINARY = "victoria-metrics"
INSTALL_HINT = "apt-get install victoria-metrics"

FLAGS: tuple[str, ...] = (
    "-retentionPeriod=100y",
    "-search.disableCache",
    "-search.latencyOffset=0s",
    "-search.maxUniqueTimeseries=10000000",
    "-search.maxQueryDuration=30m",
    "-search.maxSamplesPerQuery=2000000000",
    "-search.maxSamplesPerSeries=100000000",
    "-search.maxPointsPerTimeseries=100000",
    "-import.maxLineLen=1GB",
    "-maxConcurrentInserts=8",
    "-loggerLevel=ERROR",
)


def binary() -> str | None:
    """Path of the VictoriaMetrics binary, or None when it is not installed."""
    return shutil.which(BINARY) or (
        "/usr/bin/victoria-metrics" if Path("/usr/bin/victoria-metrics").exists() else None
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Victoria:
    """A running VictoriaMetrics: its URL and process."""

    url: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path

    def stop(self) -> None:
        """Terminate by PID, wait, kill if it does not exit."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def rss_mb(self) -> float:
        """The server's resident memory now (MB), from /proc."""
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return float("nan")


def start(workdir: Path, timeout: float = 60.0) -> Victoria:
    """Start VictoriaMetrics on a free loopback port over ``workdir``/vmdata; wait for /health."""
    exe = binary()
    if exe is None:
        raise RuntimeError(f"{BINARY} is missing: install it with `{INSTALL_HINT}`")
    port = free_port()
    data = workdir / "vmdata"
    data.mkdir(parents=True, exist_ok=True)
    log = workdir / "victoria.log"
    args = [exe, f"-storageDataPath={data}", f"-httpListenAddr=127.0.0.1:{port}", *FLAGS]
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    vm = Victoria(f"http://127.0.0.1:{port}", proc, data, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(requests.RequestException):
            if requests.get(vm.url + "/health", timeout=1).status_code == 200:
                return vm
        time.sleep(0.05)
    vm.stop()
    raise RuntimeError(
        f"VictoriaMetrics at {vm.url} never became ready:\n{log.read_text(errors='replace')[-2000:]}"
    )


@contextlib.contextmanager
def serve(workdir: Path) -> Iterator[Victoria]:
    """A VictoriaMetrics for the duration of the block, stopped by PID afterwards."""
    vm = start(workdir)
    try:
        yield vm
    finally:
        vm.stop()
