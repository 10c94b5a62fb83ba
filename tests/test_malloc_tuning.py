"""The allocator set by ``bot.malloc_tuning`` gives freed arrays back to the system.

Measured by the resident size of a fresh interpreter (``/proc/self/statm``), never by time: a
cycle's worth of 8-MiB arrays allocated between smaller long-lived blocks (100 kB, from the heap
either way) and then freed, after one 24-MiB array was freed (which raises glibc's own threshold
to 24 MiB). Without the tuning those arrays come from the heap and stay resident; with it each is
mapped and unmapped on its own.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bot import malloc_tuning

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc's allocator, on Linux"
)

_PROGRAM = """
import os, sys
import numpy as np

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

if sys.argv[1] == "tuned":
    from bot.malloc_tuning import tune
    assert tune(), "not set"
big = np.ones((24 << 20) // 8)  # mapped on its own; freeing it raises glibc's threshold
del big
before = rss()
arrays, pins = [], []
for _ in range(16):  # 128 MiB of 8-MiB arrays, each followed by a smaller block that stays
    arrays.append(np.ones((8 << 20) // 8))
    pins.append(bytearray(100_000))
del arrays
print(rss() - before)
"""


def _growth(mode: str) -> int:
    """Bytes still resident after the arrays were freed, in a fresh interpreter."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(not malloc_tuning.glibc(), reason="glibc's mmap threshold")
def test_freed_arrays_go_back_to_the_system() -> None:
    mib = 1 << 20
    kept_untuned, kept_tuned = _growth("default"), _growth("tuned")
    # glibc's own behaviour, which is why the tuning exists: the arrays stay resident
    assert kept_untuned >= 100 * mib, kept_untuned / mib
    assert kept_tuned <= 16 * mib, kept_tuned / mib


def test_an_operators_setting_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    """``MALLOC_MMAP_THRESHOLD_`` in the environment (read by glibc at start-up) is left alone."""
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1048576")
    assert malloc_tuning.tune() is False


@pytest.mark.skipif(not malloc_tuning.glibc(), reason="glibc's mmap threshold")
def test_tune_sets_it_and_can_be_called_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    assert malloc_tuning.tune() is True
    assert malloc_tuning.tune() is True
