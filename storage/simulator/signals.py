"""Signal shapes the simulator's physics is built from: AR(1) noise, thermal lag, counts.

Deterministic, vectorised numpy/scipy over (time x ...) arrays; the random draws are made by
the caller and passed in, so these functions never touch a random stream themselves.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from storage.simulator.spec import FANS_PER_NODE


def ar1(noise: np.ndarray, phi: float) -> np.ndarray:
    """Return an AR(1) process x[t] = phi x[t-1] + noise[t] along axis 0."""
    out: np.ndarray = lfilter([1.0], [1.0, -phi], noise, axis=0)
    return out


def thermal_lag(x: np.ndarray, step_s: float, tau_s: float) -> np.ndarray:
    """First-order thermal lag with time constant ``tau_s``, starting at equilibrium."""
    alpha = 1.0 - math.exp(-step_s / tau_s)
    zi = ((1.0 - alpha) * x[0])[None]
    out, _ = lfilter([alpha], [1.0, -(1.0 - alpha)], x, axis=0, zi=zi)
    result: np.ndarray = out
    return result


def fan_weights(gpn: int) -> np.ndarray:
    """How much each fan cools each GPU slot (rows sum to 1): the two nearest fans dominate."""
    x = (np.arange(gpn) + 0.5) / gpn * FANS_PER_NODE
    centres = np.arange(FANS_PER_NODE) + 0.5
    w = np.exp(-((x[:, None] - centres[None, :]) ** 2) / (2 * 0.7**2))
    result: np.ndarray = w / w.sum(axis=1, keepdims=True)
    return result


def poisson_like(lam: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Integer counts with mean ``lam`` from uniforms ``u`` (deterministic, vectorised).

    Uses the normal approximation above 10 and an inverse-CDF on the first terms below, so the
    fault counters reuse one uniform draw per cell instead of a random stream per fault.
    """
    out = np.zeros_like(lam)
    small = (lam > 0) & (lam < 10)
    if small.any():
        lam_s = lam[small]
        us = u[small]
        k = np.zeros_like(lam_s)
        p = np.exp(-lam_s)
        cdf = p.copy()
        for i in range(1, 30):
            more = us > cdf
            if not more.any():
                break
            k += more
            p = p * lam_s / i
            cdf = cdf + p
        out[small] = k
    big = lam >= 10
    if big.any():
        z = np.sqrt(2.0) * _erfinv(2.0 * u[big] - 1.0)
        out[big] = np.maximum(0.0, np.round(lam[big] + np.sqrt(lam[big]) * z))
    return out


def _erfinv(y: np.ndarray) -> np.ndarray:
    """Inverse error function (scipy's), kept local for typing."""
    from scipy.special import erfinv

    result: np.ndarray = erfinv(np.clip(y, -0.999999, 0.999999))
    return result
